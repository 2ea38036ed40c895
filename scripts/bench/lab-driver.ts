// What the lab needs of a way to migrate VMs (in-process, or between agent processes), and the
// in-process measurements (the probe-reply gaps both drivers use are in @ferry/lab).
import type { GuestMemory } from '@ferry/memory';
import type { SenderRoundStats, SenderState } from '@ferry/migration';
import type { LabMode, LabPhase, LabRun } from '@ferry/lab';
import { readGuestInfo, type WwsSampling } from '@ferry/vm';
import type { LabCellSpec } from './lab-matrix.ts';

/** Migrates lab cells, one run at a time. */
export interface LabDriver {
  readonly mode: LabMode;
  /** Interval of the probing client (ms), or undefined when this driver cannot probe. */
  readonly probeIntervalMs: number | undefined;
  /** Boots a fresh VM of the cell, warms it, migrates it once, measures, and cleans up. */
  runOnce(cell: LabCellSpec): Promise<LabRun>;
  /** Boots a fresh VM of the cell, warms it, samples its writable working set, and cleans up. */
  sampleWws(cell: LabCellSpec, samples: number, intervalMs: number): Promise<WwsSampling>;
  close(): Promise<void>;
}

// Page 0 layout written by the vCPUs (packages/vm layout.ts): vCPU slots of 32 bytes from byte 64,
// field 2 (f64) the largest step gap; header word 2 the slot count.
const SLOTS_OFFSET = 64;
const SLOT_BYTES = 32;
const MAX_GAP_FIELD = 2;

/**
 * Clears the guest's "largest step gap" in page 0 (the hypervisor's page) just before a migration,
 * so the gap read afterwards is the largest one since: the migration's, or the guest's ordinary
 * scheduling gaps if those were larger. Legal on a running VM (one aligned 8-byte store per vCPU).
 */
export function guestGapReset(memory: GuestMemory): void {
  if (!readGuestInfo(memory)) return;
  const header = new Uint32Array(memory.buffer, 0, 4);
  const slots = Math.min(header[2]!, 64);
  const f64 = new Float64Array(memory.buffer, 0, 512);
  for (let k = 0; k < slots; k++) f64[(SLOTS_OFFSET + k * SLOT_BYTES) / 8 + MAX_GAP_FIELD] = 0;
}

/** The timeline of one migration from its sender's state changes and round ends (ms from startMs). */
export function phasesOf(startMs: number, states: readonly { to: SenderState; atMs: number }[], rounds: readonly { stats: SenderRoundStats; endMs: number }[]): LabPhase[] {
  const at = (s: SenderState): number | undefined => states.find((x) => x.to === s)?.atMs;
  const rel = (t: number | undefined): number => (t === undefined ? Number.NaN : t - startMs);
  const phases: LabPhase[] = [];
  const precopy = at('precopying');
  phases.push({ name: 'setup', startMs: 0, endMs: rel(precopy) });
  for (const r of rounds) {
    if (r.stats.final) continue;
    phases.push({ name: 'pre-copy', startMs: rel(r.endMs - r.stats.durationMs), endMs: rel(r.endMs), round: r.stats.round });
  }
  phases.push({ name: 'stop-and-copy', startMs: rel(at('stopping')), endMs: rel(at('awaiting-ready')) });
  phases.push({ name: 'commitment', startMs: rel(at('awaiting-ready')), endMs: rel(at('activating')) });
  phases.push({ name: 'activation', startMs: rel(at('activating')), endMs: rel(at('completed')) });
  return phases.filter((p) => Number.isFinite(p.startMs) && Number.isFinite(p.endMs));
}
