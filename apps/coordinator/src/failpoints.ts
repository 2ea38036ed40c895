/**
 * Failpoints: named places where a coordinator process crashes on purpose, so fault tests can
 * strike a real crash (SIGKILL of the whole process, nothing flushed or closed) at an exact
 * moment instead of guessing it with timers.
 *
 * The environment variable `FERRY_FAILPOINTS` holds a comma-separated list of names; the process
 * entry points (apps/coordinator/src/main.ts, scripts/bench/migrate-coordinator.ts) read it and
 * pass `failpointHooks(value)` to the migration orchestrator. Names:
 * - `crash-after-commit-record`: once a migration's owner switch is durable (recorded and
 *   journaled) and before the source hears `commit` (MigrationOrchestratorOptions.afterCommitRecorded).
 *
 * Unset or empty: no failpoint, no cost. An unknown name throws at startup, so a typo cannot make
 * a fault test silently test nothing.
 */
import type { MigrationOrchestratorOptions } from './migrations.ts';

/** Every failpoint name `FERRY_FAILPOINTS` accepts. */
export const FAILPOINT_NAMES = ['crash-after-commit-record'] as const;

/** One failpoint name. */
export type FailpointName = (typeof FAILPOINT_NAMES)[number];

/** The names in a `FERRY_FAILPOINTS` value (comma-separated, blanks ignored); throws on an unknown name. */
export function parseFailpoints(value: string | undefined): Set<FailpointName> {
  const names = new Set<FailpointName>();
  for (const raw of (value ?? '').split(',')) {
    const name = raw.trim();
    if (name === '') continue;
    if (!(FAILPOINT_NAMES as readonly string[]).includes(name)) throw new Error(`FERRY_FAILPOINTS: unknown failpoint "${name}" (known: ${FAILPOINT_NAMES.join(', ')})`);
    names.add(name as FailpointName);
  }
  return names;
}

/** Kills this process at once, like a power cut: no exit handlers, no flush. */
function crash(): void {
  process.kill(process.pid, 'SIGKILL');
}

/**
 * The orchestrator hooks the failpoints in `value` (a `FERRY_FAILPOINTS` value) ask for: spread
 * them into MigrationOrchestratorOptions. `{}` when none is set.
 */
export function failpointHooks(value: string | undefined): Pick<MigrationOrchestratorOptions, 'afterCommitRecorded'> {
  const names = parseFailpoints(value);
  return names.has('crash-after-commit-record') ? { afterCommitRecorded: crash } : {};
}
