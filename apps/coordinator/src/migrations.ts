/**
 * The migration orchestrator: a CoordinatorModule that runs every live migration from the
 * coordinator's side and is THE commit point of each one.
 *
 * ```
 *   start ─► reserving ─(reserve-migration on the destination, one-time token)─►
 *            precopy ─(migration-start to the source; migration-progress per round)─►
 *            stop-and-copy ─(final round)─► committing ─(migration-ready from the source:
 *            owner switch recorded and journaled, THEN migration-decision commit)─► completed
 *   any failure before the owner switch ─► failed | cancelled (the VM stays on the source)
 * ```
 * Invariant: the source sends `activate` to the destination only after a `commit` decision, and
 * the coordinator answers `commit` only after `VmDirectory.recordOwner(vm, to)` and the journal
 * write. A source that aborts anyway (stream cut, decision timeout) reports `migration-finished`
 * failed and the owner is switched back, so the record follows the one place the VM runs.
 *
 * Restart: migrations are journaled (synchronously to `journalPath` when given, and through the
 * module's saveState). After a restart every migration that was not final either had its owner
 * switch recorded (it stays `committing` and completes when an agent reports it, or when the
 * destination reports the VM) or had not (it is failed at once: a re-sent `migration-ready` gets
 * `abort`, and its source gets `migration-cancel` when it registers).
 *
 * API: `migrate({vmId, to?, policy})`, `get(id)`, `require(id)`, `list()`, `active()`, `cancel(id)`,
 * `whenFinal(id)`. HTTP: GET/POST /api/v1/migrations, GET /api/v1/migrations/:id, POST /api/v1/migrations/:id/cancel,
 * POST /api/v1/vms/:id/migrate (see api-routes.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { nanoid } from 'nanoid';
import { Counter, Histogram } from 'prom-client';
import {
  ApiError,
  FINAL_MIGRATION_STATES,
  type AgentToCoordinatorMessage,
  type ApiErrorInfo,
  type Migration,
  type MigrationFinishedMessage,
  type MigrationRoundWire,
  type MigrationStartMessage,
  type MigrationPolicy,
  type MigrationState,
  type RoundStats,
  type VmState,
} from '@ferry/protocol';
import type { CoordinatorContext, CoordinatorModule } from './modules.ts';
import type { Logger } from './logger.ts';
export { readJson } from './migrations-http.ts';
import { handleMigrationRoutes } from './migrations-http.ts';
import { writeFileAtomic } from './state-dir.ts';
import { CommitLog } from './migrations-commit-log.ts';
import { emptyReport, journalOf, mergeJournals, sourceVmState, toReport, viewOf, type Journal, type MigrationRecord, type MigrationReportDetail } from './migrations-record.ts';
export type { MigrationReportDetail } from './migrations-record.ts';

/** Where a VM is and what it needs, as the VM registry knows it. */
export interface VmLocation {
  /** Host it is placed on; null when it has none (not placed, lost). */
  readonly host: string | null;
  readonly state: VmState;
  readonly memoryBytes: number;
  readonly cpus: number;
}

/**
 * What the orchestrator needs of the VM registry (implemented by the `vms` module over its
 * registry and the placement scheduler).
 */
export interface VmDirectory {
  /** The VM, or undefined when unknown. */
  get(vmId: string): VmLocation | undefined;
  /**
   * Picks (or, with `to`, checks) the destination for moving `vmId` off `from` and claims its
   * capacity in the scheduler (placement `beginMigration`). Throws an error with a `code`
   * (FERRY_ERR_PLACEMENT, FERRY_ERR_NO_CAPACITY, FERRY_ERR_UNKNOWN_HOST, FERRY_ERR_INVALID_STATE)
   * when there is none or `to` is not allowed.
   */
  chooseDestination(vmId: string, from: string, to?: string): string;
  /** The migration ended: `committed` (placement completeMigration) or `aborted` (abortMigration). Called once per chooseDestination. */
  migrationEnded(vmId: string, outcome: 'committed' | 'aborted'): void;
  /**
   * THE commit point: the VM is on `hostId` from now on. Must be durable (or re-derivable) before
   * it returns; the orchestrator also journals it. Called again (idempotently) after a restart and
   * when a source reverts a commit it could not carry out.
   */
  recordOwner(vmId: string, hostId: string): void;
  /** Sets the VM's state (`migrating` while a migration holds it; the source's report after). */
  setState(vmId: string, state: VmState): void;
}

/** Options of MigrationOrchestrator. */
export interface MigrationOrchestratorOptions {
  readonly directory: VmDirectory;
  /** A file the migration journal is written to synchronously (fsync + rename) at every commit-relevant step. Recommended: `<stateDir>/migrations.journal.json`. Without it the journal rides on saveState (written within ~50 ms: weaker). */
  readonly journalPath?: string;
  /** Reservation and token lifetime on the destination. Default 30 s. */
  readonly reservationTtlMs?: number;
  /** How long a source waits for the decision after `migration-ready` before aborting. Default 30 s. */
  readonly decisionTimeoutMs?: number;
  /** Finished migrations kept (oldest dropped first). Default 500. */
  readonly keepFinished?: number;
  /**
   * When the source reports that the page stream broke, how long to wait for the destination's
   * control link to drop too before blaming the stream itself. A killed destination closes both
   * sockets at once, but which close reaches which process first is a race. Default 1000 ms.
   */
  readonly streamFailureGraceMs?: number;
  /**
   * Called once the owner switch is durable and before the source hears `commit`: the moment a
   * coordinator crash is hardest to recover from. Fault tests crash the process here
   * (`FERRY_FAILPOINTS=crash-after-commit-record`); nothing else should need it.
   */
  readonly afterCommitRecorded?: (migrationId: string) => void;
}

/** Body of `migrate`. */
export interface StartMigrationRequest {
  readonly vmId: string;
  readonly to?: string;
  readonly policy: MigrationPolicy;
}


const ACTIVE_BEFORE_COMMIT: readonly MigrationState[] = ['reserving', 'precopy', 'stop-and-copy'];

/** A migration that cannot start or be changed: a stable `code` and its HTTP status. */
export class MigrationRequestError extends ApiError {}

/** The orchestrator module (`name` = `migrations`). */
export class MigrationOrchestrator implements CoordinatorModule {
  readonly name = 'migrations';
  private readonly options: MigrationOrchestratorOptions;
  private readonly directory: VmDirectory;
  private readonly records = new Map<string, MigrationRecord>();
  private ctx: CoordinatorContext | undefined;
  private log: Logger | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  /** With a journalPath: `<journalPath>.commits`, the commit point's write-ahead log. */
  private commitLog: CommitLog | undefined;
  private unsubscribe: (() => void) | undefined;
  private metrics: { outcomes: Counter; downtime: Histogram; bytes: Counter } | undefined;

  constructor(options: MigrationOrchestratorOptions) {
    this.options = options;
    this.directory = options.directory;
  }

  // ----- module ------------------------------------------------------------------------------

  start(ctx: CoordinatorContext): void {
    this.ctx = ctx;
    this.log = ctx.logger.child({ module: 'migrations' });
    this.metrics = {
      outcomes: new Counter({ name: 'ferry_migrations_total', help: 'Finished migrations by outcome', labelNames: ['outcome'], registers: [ctx.metrics] }),
      downtime: new Histogram({ name: 'ferry_migration_downtime_ms', help: 'Downtime of completed migrations, ms', buckets: [1, 2, 5, 10, 20, 50, 100, 300, 1000, 3000], registers: [ctx.metrics] }),
      bytes: new Counter({ name: 'ferry_migration_bytes_total', help: 'Bytes sent on the wire by finished migrations', registers: [ctx.metrics] }),
    };
    if (this.options.journalPath) this.commitLog = new CommitLog(`${this.options.journalPath}.commits`);
    for (const r of this.loadJournal(ctx)) {
      r.live = false;
      this.records.set(r.id, r);
      if (FINAL_MIGRATION_STATES.includes(r.state)) continue;
      if (r.committed) {
        this.log.warn({ event: 'migration-recovered-committed', migrationId: r.id, vmId: r.vm, to: r.to }, 'migration was committed before the restart; waiting for the agents to confirm');
        this.directory.recordOwner(r.vm, r.to);
      } else {
        this.finish(r, 'failed', { code: 'FERRY_ERR_COORDINATOR_RESTARTED', message: 'the coordinator restarted before the commit point; the VM stays on its source' });
      }
    }
    this.reconcileTimer = setInterval(() => this.reconcile(), 500);
    this.reconcileTimer.unref();
    // A host that (re)registers may still run a migration the coordinator has given up on.
    this.unsubscribe = ctx.events.subscribe((e) => {
      if ((e.type === 'host-up' || e.type === 'host-registered') && e.host) this.onHostUp(e.host);
    });
  }

  saveState(): unknown {
    return journalOf(this.records.values());
  }

  close(): void {
    this.commitLog?.close();
    this.commitLog = undefined;
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    for (const r of this.records.values()) if (r.streamFailure) clearTimeout(r.streamFailure.timer);
    this.unsubscribe?.();
  }

  onAgentMessage(hostId: string, message: AgentToCoordinatorMessage): boolean {
    switch (message.type) {
      case 'migration-progress':
        this.onProgress(hostId, message.migrationId, message.round);
        return true;
      case 'migration-stopping':
        this.onStopping(hostId, message.migrationId, message.rounds, message.pagesLeft);
        return true;
      case 'migration-ready':
        this.stampFrom(hostId, ['from', 'to'], message.migrationId, 'readyMs');
        this.onReady(hostId, message.migrationId);
        return true;
      case 'migration-finished':
        if (message.role === 'destination' && message.outcome === 'completed') this.stampFrom(hostId, ['to'], message.migrationId, 'activatedMs');
        this.onFinished(hostId, message);
        return true;
      default:
        return false;
    }
  }

  onHostDown(hostId: string, reason: string): void {
    for (const r of this.records.values()) {
      if (FINAL_MIGRATION_STATES.includes(r.state)) continue;
      if (r.from === hostId) {
        if (r.committed) {
          // The source may or may not have sent activate: the destination's report decides.
          this.log?.warn({ event: 'migration-source-down-after-commit', migrationId: r.id, vmId: r.vm }, 'source went down after the commit point');
          if (r.destinationDone) this.finish(r, 'completed', undefined, 'running');
          continue;
        }
        this.ctx?.agents.releaseReservation(r.to, r.id);
        this.finish(r, 'failed', { code: 'FERRY_ERR_MIGRATION_SOURCE_DOWN', message: `source host ${hostId} went down (${reason}); the VM is lost with it` }, 'lost');
      } else if (r.to === hostId) {
        if (r.committed) {
          this.finish(r, 'failed', { code: 'FERRY_ERR_MIGRATION_DESTINATION_DOWN', message: `destination host ${hostId} went down after the commit point (${reason}); the VM is lost with it` }, 'lost');
          continue;
        }
        const pending = r.streamFailure;
        const error = { code: 'FERRY_ERR_MIGRATION_DESTINATION_DOWN', message: `destination host ${hostId} went down (${reason}); the VM stays on ${r.from}` };
        if (pending) {
          // The source already aborted on the broken stream: this was why.
          clearTimeout(pending.timer);
          delete r.streamFailure;
          this.finish(r, 'failed', error, pending.vmState, pending.report);
          continue;
        }
        this.cancelOnSource(r, `destination host ${hostId} went down`);
        this.finish(r, 'failed', error);
      }
    }
  }

  handleHttp(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    return handleMigrationRoutes(this, req, res, url);
  }

  // ----- API ---------------------------------------------------------------------------------

  /**
   * Starts migrating `vmId` (running, paused, or suspended: a suspended VM arrives running, which
   * is how "resume on another host" works) to `to` or a destination placement picks. Returns the
   * Migration at once (state `reserving`); progress arrives as events. Throws MigrationRequestError:
   * FERRY_ERR_UNKNOWN_VM, FERRY_ERR_INVALID_STATE (wrong state, already migrating, same host),
   * FERRY_ERR_HOST_UNAVAILABLE (source not connected), or the directory's placement error.
   */
  migrate(request: StartMigrationRequest): Migration {
    const ctx = this.context();
    const vm = this.directory.get(request.vmId);
    if (!vm) throw new MigrationRequestError('FERRY_ERR_UNKNOWN_VM', `no vm ${request.vmId}`);
    if (!['running', 'paused', 'suspended'].includes(vm.state)) throw new MigrationRequestError('FERRY_ERR_INVALID_STATE', `vm ${request.vmId} is ${vm.state}; only running, paused or suspended VMs migrate`);
    if (vm.host === null) throw new MigrationRequestError('FERRY_ERR_INVALID_STATE', `vm ${request.vmId} has no host`);
    const busy = [...this.records.values()].find((r) => r.vm === request.vmId && !FINAL_MIGRATION_STATES.includes(r.state));
    if (busy) throw new MigrationRequestError('FERRY_ERR_INVALID_STATE', `vm ${request.vmId} is already migrating (${busy.id})`);
    if (request.to === vm.host) throw new MigrationRequestError('FERRY_ERR_INVALID_STATE', `vm ${request.vmId} is already on ${vm.host}`);
    const from = vm.host;
    if (!ctx.agents.isConnected(from)) throw new MigrationRequestError('FERRY_ERR_HOST_UNAVAILABLE', `source host ${from} is not connected`);
    let to: string;
    try {
      to = this.directory.chooseDestination(request.vmId, from, request.to);
    } catch (err) {
      const e = err as { code?: string; message?: string };
      throw new MigrationRequestError(e.code ?? 'FERRY_ERR_PLACEMENT', e.message ?? String(err), { cause: err });
    }
    if (to === from || !ctx.agents.isConnected(to)) {
      this.directory.migrationEnded(request.vmId, 'aborted');
      throw new MigrationRequestError(to === from ? 'FERRY_ERR_PLACEMENT' : 'FERRY_ERR_HOST_UNAVAILABLE', to === from ? `placement chose the source host ${from}` : `destination host ${to} is not connected`);
    }
    const now = Date.now();
    const r: MigrationRecord = {
      id: `mig-${nanoid(10)}`,
      vm: request.vmId,
      from,
      to,
      state: 'reserving',
      policy: request.policy,
      rounds: [],
      startedAt: new Date(now).toISOString(),
      startedAtMs: now,
      committed: false,
      priorState: vm.state,
      placementClaimed: true,
      live: true,
      destinationDone: false,
      timeline: { rounds: [] },
    };
    this.records.set(r.id, r);
    this.directory.setState(r.vm, 'migrating');
    this.persist(true);
    this.logFor(r).info({ event: 'migration-started', from, to, policy: r.policy }, 'migration started');
    ctx.events.emit('migration-started', this.refs(r), viewOf(r));
    void this.run(r);
    return viewOf(r);
  }

  /** A migration by id, or undefined. */
  get(id: string): Migration | undefined {
    const r = this.records.get(id);
    return r && viewOf(r);
  }

  /** A migration by id; throws FERRY_ERR_UNKNOWN_MIGRATION. */
  require(id: string): Migration {
    const m = this.get(id);
    if (!m) throw new MigrationRequestError('FERRY_ERR_UNKNOWN_MIGRATION', `no migration ${id}`);
    return m;
  }

  /** Every known migration, oldest first. */
  list(): Migration[] {
    return [...this.records.values()].map((r) => viewOf(r));
  }

  /** Migrations not final yet. */
  active(): Migration[] {
    return [...this.records.values()].filter((r) => !FINAL_MIGRATION_STATES.includes(r.state)).map((r) => viewOf(r));
  }

  /**
   * Cancels a migration before its commit point: the source abandons it and resumes the VM. Legal
   * in reserving, precopy and stop-and-copy; FERRY_ERR_INVALID_STATE after (committing or final).
   * Returns the migration (its state turns `cancelled` when the source confirms, at once when still reserving).
   */
  cancel(id: string, reason = 'cancelled by the operator'): Migration {
    const r = this.records.get(id);
    if (!r) throw new MigrationRequestError('FERRY_ERR_UNKNOWN_MIGRATION', `no migration ${id}`);
    if (!ACTIVE_BEFORE_COMMIT.includes(r.state)) throw new MigrationRequestError('FERRY_ERR_INVALID_STATE', `migration ${id} is ${r.state}; only a migration before its commit point can be cancelled`);
    if (r.state === 'reserving') {
      this.ctx?.agents.releaseReservation(r.to, r.id);
      this.cancelOnSource(r, reason);
      this.finish(r, 'cancelled', { code: 'FERRY_ERR_MIGRATION_CANCELLED', message: reason });
    } else {
      this.cancelOnSource(r, reason);
      // The source confirms with migration-finished (cancelled); until then the state stays.
      const timer = setTimeout(() => {
        if (!FINAL_MIGRATION_STATES.includes(r.state) && !r.committed) this.finish(r, 'cancelled', { code: 'FERRY_ERR_MIGRATION_CANCELLED', message: `${reason} (source did not confirm)` });
      }, 10_000);
      timer.unref();
    }
    return viewOf(r);
  }

  /** Resolves with the migration once it is final (tests, drain). */
  whenFinal(id: string, timeoutMs = 120_000): Promise<Migration> {
    const ctx = this.context();
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const r = this.records.get(id);
        if (!r) {
          reject(new MigrationRequestError('FERRY_ERR_UNKNOWN_MIGRATION', `no migration ${id}`));
          return true;
        }
        if (FINAL_MIGRATION_STATES.includes(r.state)) {
          resolve(viewOf(r));
          return true;
        }
        return false;
      };
      if (check()) return;
      const timer = setTimeout(() => {
        off();
        reject(new MigrationRequestError('FERRY_ERR_TIMEOUT', `migration ${id} not final within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = ctx.events.subscribe((e) => {
        if (e.migration === id && check()) {
          clearTimeout(timer);
          off();
        }
      });
    });
  }

  // ----- the run -----------------------------------------------------------------------------

  private async run(r: MigrationRecord): Promise<void> {
    const ctx = this.context();
    const log = this.logFor(r);
    const vm = this.directory.get(r.vm);
    try {
      const reservation = await ctx.agents.reserveMigration(r.to, {
        migrationId: r.id,
        vmId: r.vm,
        memoryBytes: vm?.memoryBytes ?? 0,
        cpus: vm?.cpus ?? 1,
        ttlMs: this.options.reservationTtlMs ?? 30_000,
      });
      if (r.state !== 'reserving') {
        ctx.agents.releaseReservation(r.to, r.id);
        return;
      }
      this.stamp(r, 'reservedMs');
      ctx.events.emit('migration-reserved', this.refs(r), { to: r.to, expiresAtMs: reservation.expiresAtMs });
      log.info({ event: 'migration-reserved', to: r.to }, 'destination reserved');
      r.state = 'precopy';
      this.persist(false);
      const reply = await ctx.agents.request<MigrationStartMessage>(
        r.from,
        {
          type: 'migration-start',
          migrationId: r.id,
          vmId: r.vm,
          destinationHostId: r.to,
          address: reservation.migrationAddress,
          token: reservation.token,
          policy: r.policy,
          decisionTimeoutMs: this.options.decisionTimeoutMs ?? 30_000,
        },
        10_000,
      );
      if (reply.type !== 'migration-accepted') throw new MigrationRequestError('FERRY_ERR_AGENT_REPLY', `source replied ${reply.type} to migration-start`);
      log.info({ event: 'migration-accepted' }, 'source started the migration');
    } catch (err) {
      if (FINAL_MIGRATION_STATES.includes(r.state)) return;
      const e = err as { code?: string; message?: string };
      log.warn({ event: 'migration-start-failed', err: e.message }, 'migration could not start');
      ctx.agents.releaseReservation(r.to, r.id);
      this.finish(r, 'failed', { code: e.code ?? 'FERRY_ERR_INTERNAL', message: e.message ?? String(err) });
    }
  }

  private onProgress(hostId: string, migrationId: string, round: MigrationRoundWire): void {
    const r = this.records.get(migrationId);
    if (!r || r.from !== hostId || FINAL_MIGRATION_STATES.includes(r.state)) return;
    const stats: RoundStats = {
      round: round.round,
      pagesSent: round.pagesSent,
      bytesSent: round.bytesSent,
      dirtyPages: round.dirtyPages,
      dirtyRatePagesPerSec: round.dirtyRatePagesPerSec,
      bandwidthBytesPerSec: round.bandwidthBytesPerSec,
      expectedDowntimeMs: round.expectedDowntimeMs,
      throttlePercent: round.throttlePercent,
      pagesLeft: round.pagesLeft,
    };
    r.rounds.push(stats);
    const endMs = (round.endedAtMs ?? Date.now()) - r.startedAtMs;
    (r.timeline ??= { rounds: [] }).rounds.push({ round: round.round, final: round.final, startMs: Math.max(0, endMs - round.durationMs), endMs });
    if (r.state === 'reserving') r.state = 'precopy';
    this.context().events.emit('migration-round-completed', this.refs(r), stats);
    if (round.final) this.onStopping(hostId, migrationId, round.round - 1, round.pagesSent); // a source that did not say so first
  }

  /** Pre-copy is over: the source pauses the VM and sends the final round (stop-and-copy). */
  private onStopping(hostId: string, migrationId: string, rounds: number, pagesLeft: number): void {
    const r = this.records.get(migrationId);
    if (!r || r.from !== hostId || (r.state !== 'precopy' && r.state !== 'reserving')) return;
    r.state = 'stop-and-copy';
    this.logFor(r).info({ event: 'migration-stop-and-copy', rounds, pages_left: pagesLeft }, 'pre-copy over: stop-and-copy');
    this.context().events.emit('migration-stop-and-copy', this.refs(r), { round: rounds + 1, pagesLeft });
  }

  /** The commit point. */
  private onReady(hostId: string, migrationId: string): void {
    const ctx = this.context();
    const r = this.records.get(migrationId);
    // Both ends ask (the destination once it verified, the source once it heard `ready`) and both
    // hear the answer: the destination activates on it directly, the source releases or resumes.
    const decide = (decision: 'commit' | 'abort'): void => {
      for (const host of r && (hostId === r.from || hostId === r.to) ? [r.to, r.from] : [hostId]) {
        try {
          ctx.agents.send(host, { type: 'migration-decision', migrationId, decision });
        } catch {
          // the source re-sends migration-ready when it is back; the journal answers the same
        }
      }
    };
    if (!r || (r.from !== hostId && r.to !== hostId)) {
      this.log?.warn({ event: 'migration-ready-unknown', migrationId, hostId }, 'ready for an unknown migration: abort');
      decide('abort');
      return;
    }
    const log = this.logFor(r);
    if (r.committed) {
      decide('commit'); // a re-sent ready (reconnect, restart): same answer
      return;
    }
    if (!ACTIVE_BEFORE_COMMIT.includes(r.state) || !ctx.agents.isConnected(r.to)) {
      log.warn({ event: 'migration-abort-decided', state: r.state, destination_connected: ctx.agents.isConnected(r.to) }, 'abort at the commit point');
      decide('abort');
      if (!FINAL_MIGRATION_STATES.includes(r.state)) this.finish(r, 'failed', { code: 'FERRY_ERR_MIGRATION_DESTINATION_DOWN', message: `destination host ${r.to} is not connected at the commit point` });
      return;
    }
    r.state = 'committing';
    r.committed = true;
    r.committedAtMs = Date.now();
    try {
      this.directory.recordOwner(r.vm, r.to);
      if (this.commitLog) {
        this.commitLog.append({ id: r.id, to: r.to, atMs: r.committedAtMs }); // durable now; the journal follows
        this.persist(false);
      } else this.persist(true);
    } catch (err) {
      r.committed = false;
      log.error({ event: 'migration-commit-record-failed', err }, 'could not record the owner switch: abort');
      decide('abort');
      this.finish(r, 'failed', { code: 'FERRY_ERR_MIGRATION_COMMIT_RECORD', message: `could not record the owner switch: ${(err as Error).message}` });
      return;
    }
    this.options.afterCommitRecorded?.(r.id);
    // The source is paused and waits for this: answer first, then log and tell listeners.
    decide('commit');
    log.info({ event: 'migration-committed', to: r.to }, 'owner switch recorded; commit');
    ctx.events.emit('migration-committed', this.refs(r), { from: r.from, to: r.to });
  }

  private onFinished(hostId: string, m: MigrationFinishedMessage): void {
    const r = this.records.get(m.migrationId);
    if (!r) return;
    const log = this.logFor(r);
    if (m.role === 'destination') {
      if (hostId !== r.to) return;
      if (m.outcome === 'completed') {
        r.destinationDone = true;
        if (!r.committed) log.error({ event: 'migration-destination-activated-uncommitted' }, 'destination activated a VM the coordinator did not commit');
        // The source's report carries the figures; if the source is gone, complete without it.
        if (!this.context().agents.isConnected(r.from) && !FINAL_MIGRATION_STATES.includes(r.state)) this.finish(r, 'completed', undefined, 'running');
        else if (r.state === 'failed' && r.committed) {
          // Reported lost earlier (source down after commit) but the destination did activate.
          r.state = 'completed';
          this.directory.recordOwner(r.vm, r.to);
          this.directory.setState(r.vm, (m.vm?.state as VmState | undefined) ?? 'running');
          this.persist(true);
        }
      } else if (!FINAL_MIGRATION_STATES.includes(r.state)) {
        log.warn({ event: 'migration-destination-failed', err: m.error }, 'destination discarded the incoming VM');
        // Committed but never activated, and the source is gone: nothing runs the VM any more.
        if (r.committed && !this.context().agents.isConnected(r.from)) {
          this.finish(r, 'failed', { code: 'FERRY_ERR_MIGRATION_SOURCE_DOWN', message: `source host ${r.from} went down after the commit point before activating ${r.to}; the VM is lost` }, 'lost');
        }
      }
      return;
    }
    if (hostId !== r.from) return;
    const report = m.report ? toReport(r, m.report, m.outcome) : undefined;
    if (m.outcome === 'completed') {
      if (FINAL_MIGRATION_STATES.includes(r.state) && r.state !== 'failed') return;
      this.finish(r, 'completed', undefined, (m.vm?.state as VmState | undefined) ?? 'running', report);
      return;
    }
    // failed or cancelled on the source: the VM is on the source.
    if (r.committed) {
      log.warn({ event: 'migration-commit-reverted', err: m.error }, 'the source aborted after the commit decision (it never activated the destination): owner back to the source');
      r.committed = false;
      this.directory.recordOwner(r.vm, r.from);
    }
    const state = sourceVmState(m, r.priorState);
    if (FINAL_MIGRATION_STATES.includes(r.state)) {
      // Already failed (e.g. destination down): only the VM's state is news.
      this.directory.setState(r.vm, state);
      if (report && !r.report) r.report = report;
      this.persist(false);
      return;
    }
    const error = m.error ?? { code: 'FERRY_ERR_MIGRATION_FAILED', message: 'the source reported a failure' };
    if (error.code === 'FERRY_ERR_MIGRATION_CHANNEL_CLOSED' && !r.streamFailure) {
      if (!this.context().agents.isConnected(r.to)) {
        // Its link closed already (the close event may not have run yet): the stream broke because the destination went.
        this.finish(r, 'failed', destinationGone(r), state, report);
        return;
      }
      // The VM is back on the source now; only the verdict waits (see streamFailureGraceMs).
      this.directory.setState(r.vm, state);
      const timer = setTimeout(() => {
        delete r.streamFailure;
        if (FINAL_MIGRATION_STATES.includes(r.state)) return;
        // A busy loop may run this timer before the link's close event in the same turn: ask the link.
        if (!this.context().agents.isConnected(r.to)) this.finish(r, 'failed', destinationGone(r), state, report);
        else this.finish(r, 'failed', error, state, report);
      }, this.options.streamFailureGraceMs ?? 1000);
      timer.unref();
      r.streamFailure = { error, vmState: state, report, timer };
      return;
    }
    this.finish(r, m.outcome, error, state, report);
  }

  // ----- helpers -----------------------------------------------------------------------------

  private finish(r: MigrationRecord, outcome: 'completed' | 'failed' | 'cancelled', error?: ApiErrorInfo, vmState?: VmState, report?: MigrationReportDetail): void {
    const ctx = this.context();
    r.state = outcome;
    this.stamp(r, 'finishedMs');
    if (error) r.error = error;
    if (report) r.report = report;
    if (r.placementClaimed) {
      r.placementClaimed = false;
      try {
        this.directory.migrationEnded(r.vm, outcome === 'completed' ? 'committed' : 'aborted');
      } catch (err) {
        this.log?.warn({ event: 'migration-placement-release-failed', err }, 'placement release failed');
      }
    }
    if (outcome === 'completed') this.directory.recordOwner(r.vm, r.to);
    this.directory.setState(r.vm, vmState ?? (outcome === 'completed' ? 'running' : r.priorState));
    if (outcome !== 'completed') ctx.agents.releaseReservation(r.to, r.id);
    this.persist(true);
    this.trim();
    this.metrics?.outcomes.inc({ outcome });
    if (r.report) {
      this.metrics?.bytes.inc(r.report.bytesOnWire);
      if (outcome === 'completed' && r.report.downtimeMs >= 0) this.metrics?.downtime.observe(r.report.downtimeMs);
    }
    const log = this.logFor(r);
    if (outcome === 'completed') {
      log.info({ event: 'migration-completed', downtime_ms: r.report?.downtimeMs, total_ms: r.report?.totalMs, rounds: r.report?.rounds }, 'migration completed');
      ctx.events.emit('migration-completed', this.refs(r), r.report ?? emptyReport(r));
    } else {
      log.warn({ event: `migration-${outcome}`, code: error?.code, err: error?.message }, `migration ${outcome}`);
      ctx.events.emit(outcome === 'failed' ? 'migration-failed' : 'migration-cancelled', this.refs(r), { error: error ?? { code: 'FERRY_ERR_MIGRATION_FAILED', message: outcome }, ...(r.report ? { report: r.report } : {}) });
    }
  }

  private cancelOnSource(r: MigrationRecord, reason: string): void {
    const ctx = this.context();
    if (!ctx.agents.isConnected(r.from)) return;
    try {
      ctx.agents.send(r.from, { type: 'migration-cancel', migrationId: r.id, reason });
    } catch {
      // source gone: nothing runs there to cancel
    }
  }

  private onHostUp(hostId: string): void {
    for (const r of this.records.values()) {
      if (r.live || r.from !== hostId || r.committed) continue;
      if (r.state === 'failed' && r.error?.code === 'FERRY_ERR_COORDINATOR_RESTARTED') this.cancelOnSource(r, 'the coordinator restarted before the commit point');
    }
  }

  /** Committed migrations recovered after a restart complete once an agent reports where the VM runs. */
  private reconcile(): void {
    const ctx = this.ctx;
    if (!ctx) return;
    for (const r of this.records.values()) {
      // Live ones wait for the agents' messages; only a committed migration silent for 10 s is reconciled from reports.
      if (r.state !== 'committing' || (r.live && Date.now() - (r.committedAtMs ?? 0) < 10_000)) continue;
      const dest = ctx.hosts.find(r.to);
      const src = ctx.hosts.find(r.from);
      const onDest = dest?.state !== 'down' && dest?.vms.some((v) => v.vmId === r.vm && v.migrationId === undefined);
      const onSrc = src?.state !== 'down' && src?.vms.some((v) => v.vmId === r.vm && v.migrationId === undefined);
      if (onDest) this.finish(r, 'completed', undefined, (dest!.vms.find((v) => v.vmId === r.vm)!.state as VmState) ?? 'running');
      else if (onSrc) {
        r.committed = false;
        this.directory.recordOwner(r.vm, r.from);
        this.finish(r, 'failed', { code: 'FERRY_ERR_MIGRATION_FAILED', message: 'the source kept the VM (it aborted while the coordinator was away)' }, src!.vms.find((v) => v.vmId === r.vm)!.state as VmState);
      }
    }
  }


  /** Records when `step` first happened (ms since the start); later repeats (re-sent messages) keep the first time. */
  private stamp(r: MigrationRecord, step: 'reservedMs' | 'readyMs' | 'activatedMs' | 'finishedMs'): void {
    const t = (r.timeline ??= { rounds: [] });
    t[step] ??= Date.now() - r.startedAtMs;
  }

  /** `stamp` for a message from `hostId` when that host is one of the migration's `sides` (ready: before the migration is final). */
  private stampFrom(hostId: string, sides: readonly ('from' | 'to')[], migrationId: string, step: 'readyMs' | 'activatedMs'): void {
    const r = this.records.get(migrationId);
    if (r && sides.some((side) => r[side] === hostId) && (step === 'activatedMs' || !FINAL_MIGRATION_STATES.includes(r.state))) this.stamp(r, step);
  }

  private refs(r: MigrationRecord): { vm: string; migration: string; host: string } {
    return { vm: r.vm, migration: r.id, host: r.from };
  }

  private logFor(r: MigrationRecord): Logger {
    return (this.log ?? this.context().logger).child({ migrationId: r.id, vmId: r.vm, from: r.from, to: r.to });
  }

  private context(): CoordinatorContext {
    if (!this.ctx) throw new Error('migrations module not started');
    return this.ctx;
  }

  private trim(): void {
    const keep = this.options.keepFinished ?? 500;
    const finished = [...this.records.values()].filter((r) => FINAL_MIGRATION_STATES.includes(r.state));
    for (const r of finished.slice(0, Math.max(0, finished.length - keep))) this.records.delete(r.id);
  }


  /**
   * Writes the journal: synchronously to journalPath when `sync` (commit-relevant steps), and asks
   * for a state save. The synchronous file holds only what a restart must not get wrong (unfinished
   * migrations, the last few finished): the commit point writes it inside the VM's downtime, and
   * with the whole history (500 migrations of rounds) it cost milliseconds more there.
   */
  private persist(sync: boolean): void {
    if (sync && this.options.journalPath) {
      writeFileAtomic(this.options.journalPath, JSON.stringify(journalOf(this.records.values(), 'recent')));
      this.commitLog?.truncate(); // the journal holds every logged decision now
    }
    this.ctx?.requestSave();
  }

  /** What a restart starts from: see mergeJournals. */
  private loadJournal(ctx: CoordinatorContext): MigrationRecord[] {
    let file: Journal | undefined;
    if (this.options.journalPath) {
      try {
        file = JSON.parse(readFileSync(this.options.journalPath, 'utf8')) as Journal;
      } catch (err) {
        if ((err as { code?: string }).code !== 'ENOENT') throw err;
      }
    }
    return mergeJournals(file, ctx.persisted(this.name) as Journal | undefined, this.commitLog?.read() ?? []);
  }
}

/** The verdict on a page stream that broke along with the destination's link. */
function destinationGone(r: MigrationRecord): ApiErrorInfo {
  return { code: 'FERRY_ERR_MIGRATION_DESTINATION_DOWN', message: `destination host ${r.to} went down (its link closed with the page stream); the VM stays on ${r.from}` };
}
