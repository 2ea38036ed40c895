import { API_ROUTES, apiPath, FINAL_MIGRATION_STATES, type ApiEvent, type Migration, type MigrationPolicyRequest, type RoundStats } from '@ferry/protocol';
import type { ApiClient, EventSubscription } from './client.ts';

/** How often the watcher polls the migration as a safety net beside the event stream. */
export const MIGRATION_POLL_MS = 500;

/** What startAndWatchMigration needs. `onRound` is called once per round, in order. */
export interface WatchOptions {
  readonly client: ApiClient;
  readonly vm: string;
  readonly to?: string;
  readonly policy: MigrationPolicyRequest;
  readonly onStarted?: (migration: Migration) => void;
  readonly onRound?: (round: RoundStats) => void;
  /** Stop waiting (the migration goes on); the promise then resolves with the latest state. */
  readonly signal?: AbortSignal;
}

/**
 * Starts a migration and follows it to its end. Subscribes to the VM's events first (so no round
 * is missed), then POSTs `/api/v1/migrations`; rounds come from migration-round-completed events
 * and, as a fallback when the WebSocket is unavailable, from polling `GET /api/v1/migrations/:id`.
 * Resolves with the final Migration (report included) or, if aborted, the latest one seen.
 */
export async function startAndWatchMigration(options: WatchOptions): Promise<Migration> {
  const { client, vm } = options;
  const pending: ApiEvent[] = [];
  let migrationId: string | undefined;
  let lastRound = 0;
  let wake: (() => void) | undefined;
  let finalSeen = false;

  const showRounds = (rounds: readonly RoundStats[]): void => {
    for (const r of [...rounds].sort((a, b) => a.round - b.round)) {
      if (r.round > lastRound) {
        lastRound = r.round;
        options.onRound?.(r);
      }
    }
  };
  const handle = (event: ApiEvent): void => {
    if (migrationId === undefined) {
      pending.push(event);
      return;
    }
    if (event.migration !== migrationId) return;
    if (event.type === 'migration-round-completed') showRounds([event.data as unknown as RoundStats]);
    if (event.type === 'migration-completed' || event.type === 'migration-failed' || event.type === 'migration-cancelled') {
      finalSeen = true;
      wake?.();
    }
  };

  let subscription: EventSubscription | undefined;
  try {
    subscription = await client.subscribe({ filter: { vm }, onEvent: handle });
  } catch {
    subscription = undefined; // no live channel: polling alone still shows every round
  }
  try {
    const body = { vm, ...(options.to !== undefined ? { to: options.to } : {}), policy: options.policy };
    let migration = await client.post<Migration>(API_ROUTES.migrations, body);
    migrationId = migration.id;
    options.onStarted?.(migration);
    for (const e of pending.splice(0)) handle(e);
    showRounds(migration.rounds);
    const path = apiPath(API_ROUTES.migration, migration.id);
    while (!FINAL_MIGRATION_STATES.includes(migration.state)) {
      if (options.signal?.aborted) return migration;
      if (!finalSeen) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, MIGRATION_POLL_MS);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
          options.signal?.addEventListener('abort', wake, { once: true });
        });
        wake = undefined;
      }
      migration = await client.get<Migration>(path);
      showRounds(migration.rounds);
      if (finalSeen && !FINAL_MIGRATION_STATES.includes(migration.state)) finalSeen = false; // the record lags the event: poll again
    }
    return migration;
  } finally {
    subscription?.close();
  }
}
