/**
 * A migration as the orchestrator (migrations.ts) keeps it, and the pure functions over it: the
 * API's views, the journal's shape and how a restart merges what was written.
 */
import {
  FINAL_MIGRATION_STATES,
  type ApiErrorInfo,
  type Migration,
  type MigrationFinishedMessage,
  type MigrationPolicy,
  type MigrationReport,
  type MigrationState,
  type MigrationTimeline,
  type RoundStats,
  type TimelineRound,
  type VmState,
} from '@ferry/protocol';
import type { CommitEntry } from './migrations-commit-log.ts';

/** The full report: the API's MigrationReport plus engine detail. */
export interface MigrationReportDetail extends MigrationReport {
  readonly pausedAtMs: number;
  readonly stopReason: string;
  readonly pageBytesSent: number;
  readonly switchoverMs: number;
  /** -1 when the downtime is unknown. */
  readonly switchoverMeasuredMs: number;
  readonly finalThrottlePercent: number;
  readonly digest: string;
}

/** One migration as the orchestrator keeps and journals it. */
export interface MigrationRecord {
  id: string;
  vm: string;
  from: string;
  to: string;
  state: MigrationState;
  policy: MigrationPolicy;
  rounds: RoundStats[];
  report?: MigrationReportDetail;
  error?: ApiErrorInfo;
  startedAt: string;
  startedAtMs: number;
  /** The owner switch is recorded (journaled): the decision is commit from now on. */
  committed: boolean;
  /** When it was recorded (ms since epoch). */
  committedAtMs?: number;
  /** VM state before the migration (restored on abort when the source does not tell). */
  priorState: VmState;
  /** chooseDestination claimed placement capacity that migrationEnded must release. */
  placementClaimed: boolean;
  /** Finished before the coordinator restarted? Not persisted: true for live ones only. */
  live: boolean;
  destinationDone: boolean;
  /** The source reported a broken stream; the verdict waits for the destination's link (not persisted). */
  streamFailure?: PendingStreamFailure;
  /** Step times, ms since startedAtMs (see MigrationTimeline; `committedMs` comes from committedAtMs). Absent in old journals. */
  timeline?: TimelineStamps;
}

/** What the coordinator stamps itself (MigrationTimeline minus the commit, which committedAtMs holds). */
export interface TimelineStamps {
  reservedMs?: number;
  rounds: TimelineRound[];
  readyMs?: number;
  activatedMs?: number;
  finishedMs?: number;
}

/** A broken-stream failure the source reported, held until the destination's link says whether it died (streamFailureGraceMs). */
export interface PendingStreamFailure {
  readonly error: ApiErrorInfo;
  readonly vmState: VmState;
  readonly report: MigrationReportDetail | undefined;
  readonly timer: NodeJS.Timeout;
}

/** The journal's shape (file and state save). */
export interface Journal {
  readonly version: 1;
  readonly migrations: MigrationRecord[];
}

/** Finished migrations kept in the synchronous journal file besides the unfinished ones (the state save keeps them all). */
export const JOURNAL_RECENT_FINISHED = 16;

/** The source's report as the API's, with the engine's detail. */
export function toReport(r: MigrationRecord, w: NonNullable<MigrationFinishedMessage['report']>, outcome: string): MigrationReportDetail {
  return {
    id: r.id,
    vm: r.vm,
    from: r.from,
    to: r.to,
    state: outcome === 'completed' ? 'completed' : outcome === 'cancelled' ? 'cancelled' : 'failed',
    downtimeMs: w.downtimeMs,
    totalMs: w.totalMs,
    setupMs: w.setupMs,
    rounds: w.rounds,
    bytesOnWire: w.bytesOnWire,
    vmBytes: w.vmBytes,
    zeroPagesSkipped: w.zeroPagesSkipped,
    digestVerified: w.digestVerified,
    pausedAtMs: w.pausedAtMs,
    stopReason: w.stopReason,
    pageBytesSent: w.pageBytesSent,
    switchoverMs: w.switchoverMs,
    switchoverMeasuredMs: w.switchoverMeasuredMs,
    finalThrottlePercent: w.finalThrottlePercent,
    digest: w.digest,
  };
}

/** A report for a migration that ended without the source's (downtime -1: unknown). */
export function emptyReport(r: MigrationRecord): MigrationReport {
  return { id: r.id, vm: r.vm, from: r.from, to: r.to, state: r.state, downtimeMs: -1, totalMs: Date.now() - r.startedAtMs, setupMs: 0, rounds: r.rounds.length, bytesOnWire: 0, vmBytes: 0, zeroPagesSkipped: 0, digestVerified: false };
}

/** The API's Migration. */
export function viewOf(r: MigrationRecord): Migration {
  return {
    id: r.id,
    vm: r.vm,
    from: r.from,
    to: r.to,
    state: r.state,
    policy: r.policy,
    rounds: [...r.rounds],
    ...(r.report ? { report: r.report } : {}),
    ...(r.error ? { error: r.error } : {}),
    startedAt: r.startedAt,
    ...(r.timeline ? { timeline: timelineOf(r, r.timeline) } : {}),
  };
}

/**
 * The API's timeline: the stamps plus the commit time. Activation is the destination's own
 * resume time once the source's report carries it (pause + downtime; epoch clocks of one
 * machine, or synchronized ones), else the arrival of the destination's report, which comes
 * one message and a busy event loop later.
 */
export function timelineOf(r: MigrationRecord, t: TimelineStamps): MigrationTimeline {
  const resumed = r.report && r.report.pausedAtMs > 0 && r.report.downtimeMs >= 0 ? r.report.pausedAtMs + r.report.downtimeMs - r.startedAtMs : undefined;
  const activatedMs = resumed !== undefined && resumed >= 0 ? resumed : t.activatedMs;
  return {
    ...(t.reservedMs !== undefined ? { reservedMs: t.reservedMs } : {}),
    rounds: t.rounds.map((x) => ({ ...x })),
    ...(t.readyMs !== undefined ? { readyMs: t.readyMs } : {}),
    ...(r.committedAtMs !== undefined ? { committedMs: r.committedAtMs - r.startedAtMs } : {}),
    ...(activatedMs !== undefined ? { activatedMs } : {}),
    ...(t.finishedMs !== undefined ? { finishedMs: t.finishedMs } : {}),
  };
}

/** Every record (the state save), or only the unfinished ones and the last few finished (the synchronous journal file). */
export function journalOf(all: Iterable<MigrationRecord>, scope: 'all' | 'recent' = 'all'): Journal {
  let records = [...all];
  if (scope === 'recent') {
    const finished = records.filter((r) => FINAL_MIGRATION_STATES.includes(r.state));
    const dropped = new Set(finished.slice(0, Math.max(0, finished.length - JOURNAL_RECENT_FINISHED)));
    records = records.filter((r) => !dropped.has(r));
  }
  return {
    version: 1,
    migrations: records.map(({ streamFailure: _pending, ...r }) => ({ ...r, rounds: r.rounds.slice(-64), ...(r.timeline ? { timeline: { ...r.timeline, rounds: r.timeline.rounds.slice(-64) } } : {}) })),
  };
}

/**
 * The records to start from: the history from the state save, overlaid with the journal file
 * (written synchronously: it wins unless it is behind on a finish), then the commit decisions
 * logged after the file was last written (see CommitLog).
 */
export function mergeJournals(file: Journal | undefined, saved: Journal | undefined, commits: readonly CommitEntry[]): MigrationRecord[] {
  const merged = new Map<string, MigrationRecord>();
  for (const r of Array.isArray(saved?.migrations) ? saved.migrations : []) merged.set(r.id, r);
  for (const r of Array.isArray(file?.migrations) ? file.migrations : []) {
    const other = merged.get(r.id);
    if (!other || FINAL_MIGRATION_STATES.includes(r.state) || !FINAL_MIGRATION_STATES.includes(other.state)) merged.set(r.id, r);
  }
  for (const e of commits) {
    const r = merged.get(e.id);
    if (!r || r.committed || FINAL_MIGRATION_STATES.includes(r.state)) continue;
    r.committed = true;
    r.committedAtMs = e.atMs;
    r.state = 'committing';
  }
  return [...merged.values()].sort((a, b) => a.startedAtMs - b.startedAtMs);
}

/** The VM's state on the source after a failed or cancelled migration: its report, else what it was before. */
export function sourceVmState(m: MigrationFinishedMessage, prior: VmState): VmState {
  const s = m.vm?.state;
  if (s === 'running' || s === 'paused' || s === 'suspended' || s === 'stopped') return s;
  return prior;
}
