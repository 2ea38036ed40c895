import type { LabCell, LabReport } from './model.ts';
import { medianMax, type Summary } from './stats.ts';

const MiB = 1024 * 1024;

/** Bytes as `256 MiB` / `1 GiB`. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * MiB && bytes % (1024 * MiB) === 0) return `${bytes / (1024 * MiB)} GiB`;
  if (bytes >= MiB) return `${Math.round((bytes / MiB) * 10) / 10} MiB`;
  return `${Math.round(bytes / 1024)} KiB`;
}

function ms(s: Summary | undefined): string {
  if (!s || s.n === 0) return '—';
  const f = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  return `${f(s.median)} / ${f(s.max)}`;
}

/** The lab's table (markdown): one row per cell, downtime three ways as median / max. */
export function labTable(report: LabReport): string {
  const ws = report.ceiling.wsBytesPerSec;
  const head = [
    'cell',
    'VM',
    'workload',
    'policy',
    'runs',
    'hypervisor ms',
    'guest ms',
    'client ms',
    'total ms',
    'setup ms',
    'rounds',
    'wire ÷ VM',
    'zero pages',
    'throttle %',
    'MB/s (× ws)',
    'dirty MB/s',
    'WWS predicted ms',
  ];
  const rows = report.cells.map((c) => [
    c.name,
    formatBytes(c.vmBytes),
    c.workload,
    c.mode && c.mode !== report.mode ? `${c.policy} (${c.mode})` : c.policy,
    String(c.runs),
    ms(c.downtimeMs.hypervisor),
    ms(c.downtimeMs.guest),
    ms(c.downtimeMs.client),
    ms(c.totalMs),
    c.setupMs.median.toFixed(1),
    String(Math.round(c.rounds.median)),
    c.wireRatio.median.toFixed(3),
    String(c.zeroPagesSkipped),
    String(c.finalThrottlePercent.max),
    `${(c.bandwidthBytesPerSec / 1e6).toFixed(0)} (${ws > 0 ? (c.bandwidthBytesPerSec / ws).toFixed(2) : '—'})`,
    ((c.dirtyRatePagesPerSec * 4096) / 1e6).toFixed(1),
    c.wws ? `${c.wws.predictedDowntimeMs.toFixed(1)} vs ${c.wws.measuredDowntimeMs.toFixed(1)}` : '—',
  ]);
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n') + '\n';
}

/** One cell in the JSON form of `pnpm bench lab --json` (the fields of `pnpm bench migrate` plus the lab's). */
export function cellJson(c: LabCell, wsBytesPerSec: number): Record<string, unknown> {
  return {
    name: c.name,
    vmBytes: c.vmBytes,
    workload: c.workload,
    policy: c.policy,
    ...(c.mode ? { mode: c.mode } : {}),
    runs: c.runs,
    downtimeMs: {
      hypervisor: medianMax(c.downtimeMs.hypervisor),
      guest: medianMax(c.downtimeMs.guest),
      client: c.downtimeMs.client ? medianMax(c.downtimeMs.client) : null,
    },
    totalMs: medianMax(c.totalMs),
    setupMs: medianMax(c.setupMs),
    rounds: c.rounds.median,
    roundsMax: c.rounds.max,
    bandwidthBytesPerSec: Math.round(c.bandwidthBytesPerSec),
    bandwidthRatioToWs: wsBytesPerSec > 0 ? Math.round((c.bandwidthBytesPerSec / wsBytesPerSec) * 1000) / 1000 : null,
    bytesOnWire: c.bytesOnWire,
    nonZeroBytes: c.nonZeroBytes,
    wireRatio: medianMax(c.wireRatio),
    zeroPagesSkipped: c.zeroPagesSkipped,
    finalThrottlePercent: medianMax(c.finalThrottlePercent, 0),
    dirtyRatePagesPerSec: Math.round(c.dirtyRatePagesPerSec),
    stopReasons: c.stopReasons,
    digestVerified: c.digestVerified,
    ...(c.wws
      ? {
          wws: {
            intervalMs: c.wws.intervalMs,
            samples: c.wws.samples,
            wwsPages: c.wws.wwsPages,
            meanDirtyPagesPerSample: Math.round(c.wws.meanDirtyPagesPerSample),
            predictedDowntimeMs: Math.round(c.wws.predictedDowntimeMs * 1000) / 1000,
            predictedRounds: c.wws.predictedRounds,
            atBandwidthBytesPerSec: Math.round(c.wws.atBandwidthBytesPerSec),
            measuredDowntimeMs: Math.round(c.wws.measuredDowntimeMs * 1000) / 1000,
          },
        }
      : {}),
  };
}

/** The whole report as the one JSON object `--json` prints. */
export function labJson(report: LabReport): Record<string, unknown> {
  return {
    bench: 'lab',
    mode: report.mode,
    quick: report.quick,
    startedAt: report.startedAt,
    durationMs: Math.round(report.durationMs),
    machine: report.machine,
    ceiling: { tcpBytesPerSec: Math.round(report.ceiling.tcpBytesPerSec), wsBytesPerSec: Math.round(report.ceiling.wsBytesPerSec) },
    probeIntervalMs: report.probeIntervalMs ?? null,
    notes: report.notes,
    cells: report.cells.map((c) => cellJson(c, report.ceiling.wsBytesPerSec)),
  };
}
