import type { LabCell, LabMode, LabRun, LabWws } from './model.ts';
import { medianIndex, summarize } from './stats.ts';

/** What names a cell. */
export interface CellMeta {
  readonly name: string;
  readonly vmBytes: number;
  readonly workload: string;
  readonly policy: string;
  /** Only when the cell ran in another mode than the rest of the report. */
  readonly mode?: LabMode;
}

/** Summarises the runs of one cell (at least one run). The median-downtime run becomes the chart sample. */
export function buildCell(meta: CellMeta, runs: readonly LabRun[], wws?: LabWws): LabCell {
  if (runs.length === 0) throw new RangeError(`cell ${meta.name}: no runs`);
  const pick = <T>(f: (r: LabRun) => T): T[] => runs.map(f);
  const hyp = pick((r) => r.hypervisorDowntimeMs);
  const client = runs.every((r) => r.clientDowntimeMs !== undefined) ? summarize(pick((r) => r.clientDowntimeMs!)) : undefined;
  const mid = runs[medianIndex(hyp)]!;
  return {
    ...meta,
    runs: runs.length,
    downtimeMs: { hypervisor: summarize(hyp), guest: summarize(pick((r) => r.guestDowntimeMs)), client },
    totalMs: summarize(pick((r) => r.totalMs)),
    setupMs: summarize(pick((r) => r.setupMs)),
    switchoverMs: summarize(runs.flatMap((r) => (r.switchoverMs !== undefined ? [r.switchoverMs] : []))),
    rounds: summarize(pick((r) => r.rounds)),
    wireRatio: summarize(pick((r) => r.bytesOnWire / r.vmBytes)),
    bytesOnWire: Math.round(summarize(pick((r) => r.bytesOnWire)).median),
    nonZeroBytes: Math.round(summarize(pick((r) => r.nonZeroBytes)).median),
    zeroPagesSkipped: Math.round(summarize(pick((r) => r.zeroPagesSkipped)).median),
    finalThrottlePercent: summarize(pick((r) => r.finalThrottlePercent)),
    bandwidthBytesPerSec: summarize(pick((r) => r.bandwidthBytesPerSec)).median,
    dirtyRatePagesPerSec: summarize(pick((r) => r.dirtyRatePagesPerSec)).median,
    digestVerified: runs.every((r) => r.digestVerified),
    stopReasons: [...new Set(pick((r) => r.stopReason))],
    ...(wws ? { wws } : {}),
    sample: mid,
    all: runs,
  };
}
