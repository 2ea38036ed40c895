import type { LabPhase } from './model.ts';

/**
 * A migration's step times as the coordinator records them (the shape of the API's
 * MigrationTimeline, ms since the migration started; repeated here so this package needs none).
 */
export interface StepTimes {
  readonly rounds: readonly { readonly round: number; readonly final: boolean; readonly startMs: number; readonly endMs: number }[];
  readonly readyMs?: number;
  readonly committedMs?: number;
  readonly activatedMs?: number;
}

/**
 * The timeline chart's phases from a migration's step times: setup until round 1, each pre-copy
 * round, stop-and-copy from the final round's start to ready, commitment from ready to the recorded
 * commit, activation from the commit to the destination's report. Round times come from the source's
 * clock and the others from message arrival, so a span may start a little before the previous one
 * ended: each start is clamped to the previous end. A step not reached yet leaves its phase out.
 */
export function timelinePhases(t: StepTimes): LabPhase[] {
  const phases: LabPhase[] = [];
  let cursor = 0;
  const span = (name: LabPhase['name'], startMs: number | undefined, endMs: number | undefined, round?: number): void => {
    if (startMs === undefined || endMs === undefined) return;
    const start = Math.max(cursor, startMs);
    const end = Math.max(start, endMs);
    phases.push({ name, startMs: start, endMs: end, ...(round !== undefined ? { round } : {}) });
    cursor = end;
  };
  span('setup', 0, t.rounds[0]?.startMs);
  for (const r of t.rounds) if (!r.final) span('pre-copy', r.startMs, r.endMs, r.round);
  span('stop-and-copy', t.rounds.find((r) => r.final)?.startMs, t.readyMs);
  span('commitment', t.readyMs, t.committedMs);
  span('activation', t.committedMs, t.activatedMs);
  return phases;
}
