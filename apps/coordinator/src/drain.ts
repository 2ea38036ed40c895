/**
 * Host maintenance: `drain` live-migrates every running, paused or suspended VM off a host, then
 * puts the host in maintenance.
 *
 * ```
 *   up ──drain──► draining ──all moved──► maintenance ──undrain──► up
 *                    │ └──a migration failed──► (stays draining; drain `failed`; undrain or drain again)
 *                    └──cancel──► up (no new migration starts; running ones finish)
 * ```
 * The plan comes from the scheduler's `planDrain` (placement rules respected, targets spread, never
 * piled on one host); a plan that cannot place every VM is refused before anything changes.
 * Migrations then run with at most `maxPerHost` at once from the host and `maxPerCluster` at once
 * across every drain, and the scheduler's own limit of incoming migrations per destination.
 * Stopped and lost VMs stay where they are (nothing runs; `start --host` moves a stopped one).
 */
import type { HostDrain } from '@ferry/protocol';
import type { CloudDeps } from './cloud-deps.ts';
import { CoordinatorError } from './errors.ts';
import { NoCapacityError } from './placement.ts';

/** Limits of drains. */
export interface DrainLimits {
  /** Concurrent migrations off one draining host. Default 2. */
  readonly maxPerHost?: number;
  /** Concurrent drain migrations in the whole cluster. Default 4. */
  readonly maxPerCluster?: number;
}

interface DrainRun {
  host: string;
  state: HostDrain['state'];
  vmsTotal: number;
  vmsMoved: number;
  migrations: string[];
  error?: { code: string; message: string };
  active: number;
  cancelled: boolean;
  done: Promise<void>;
}

/** VM states live migration moves (drains and placement plans move only these). */
export const MOVABLE_STATES: readonly string[] = ['running', 'paused', 'suspended'];

/** Runs host drains. */
export class DrainManager {
  private readonly deps: CloudDeps;
  private readonly maxPerHost: number;
  private readonly maxPerCluster: number;
  private readonly runs = new Map<string, DrainRun>();
  private clusterActive = 0;
  private waiters: (() => void)[] = [];

  constructor(deps: CloudDeps, limits: DrainLimits = {}) {
    this.deps = deps;
    this.maxPerHost = limits.maxPerHost ?? 2;
    this.maxPerCluster = limits.maxPerCluster ?? 4;
  }

  /** Starts draining `hostId` (legal when it is up and no drain runs on it). Resolves with the drain as started. */
  start(hostId: string): HostDrain {
    const { hosts, vms, placement } = this.deps;
    const host = hosts.find(hostId);
    if (!host) throw new CoordinatorError('FERRY_ERR_UNKNOWN_HOST', `no host ${hostId}`);
    if (host.state !== 'up') throw new CoordinatorError('FERRY_ERR_INVALID_STATE', `cannot drain ${hostId}: it is ${host.state} (drain needs up)`);
    if (!this.deps.migrations) throw new CoordinatorError('FERRY_ERR_INVALID_STATE', `cannot drain ${hostId}: live migration is not available`);
    const movable = vms.list().filter((v) => v.host === hostId && MOVABLE_STATES.includes(v.state));
    const busy = vms.list().filter((v) => v.host === hostId && (v.state === 'provisioning' || v.state === 'migrating'));
    if (busy.length > 0) throw new CoordinatorError('FERRY_ERR_INVALID_STATE', `cannot drain ${hostId}: ${busy.map((v) => `${v.id} is ${v.state}`).join(', ')}; try again when they settle`);
    hosts.drain(hostId); // draining from here: the scheduler takes nothing new on it
    const plan = placement.planDrain(hostId);
    const planned = new Map(plan.migrations.map((m) => [m.vmId, m.toHostId]));
    const unplaced = movable.filter((v) => !planned.has(v.id));
    if (unplaced.length > 0) {
      hosts.undrain(hostId);
      throw new NoCapacityError(unplaced[0]!.id, `cannot drain ${hostId}: no host can take ${unplaced.map((v) => v.id).join(', ')} (capacity or placement rules)`);
    }
    const run: DrainRun = { host: hostId, state: 'running', vmsTotal: movable.length, vmsMoved: 0, migrations: [], active: 0, cancelled: false, done: Promise.resolve() };
    this.runs.set(hostId, run);
    this.deps.logger.info({ event: 'host-drain-started', hostId, vm_count: movable.length, plan: plan.migrations.map((m) => `${m.vmId}→${m.toHostId}`) }, 'drain started');
    run.done = this.execute(run, movable.map((v) => ({ vmId: v.id, to: planned.get(v.id) })));
    return view(run);
  }

  /** Stops starting new migrations of the host's drain; running ones finish. The host goes back to `up`. */
  cancel(hostId: string): HostDrain {
    const run = this.runs.get(hostId);
    if (!run || run.state !== 'running') throw new CoordinatorError('FERRY_ERR_INVALID_STATE', `no drain in progress on ${hostId}`);
    run.cancelled = true;
    run.state = 'cancelled';
    this.wake();
    const host = this.deps.hosts.find(hostId);
    if (host?.state === 'draining') this.deps.hosts.undrain(hostId);
    this.deps.events.emit('host-drain-cancelled', { host: hostId }, view(run));
    this.deps.logger.info({ event: 'host-drain-cancelled', hostId, vms_moved: run.vmsMoved }, 'drain cancelled');
    return view(run);
  }

  /** The host's current or last drain, or undefined. */
  get(hostId: string): HostDrain | undefined {
    const run = this.runs.get(hostId);
    return run && view(run);
  }

  /** Resolves when the host's drain (if any) has ended. */
  async whenDone(hostId: string): Promise<HostDrain | undefined> {
    await this.runs.get(hostId)?.done;
    return this.get(hostId);
  }

  /** Cancels every running drain (shutdown). */
  close(): void {
    for (const run of this.runs.values()) run.cancelled = true;
    this.wake();
  }

  private async execute(run: DrainRun, steps: { vmId: string; to: string | undefined }[]): Promise<void> {
    const workers: Promise<void>[] = [];
    const failures: { vmId: string; code: string; message: string }[] = [];
    for (const step of steps) {
      while (!run.cancelled && (run.active >= this.maxPerHost || this.clusterActive >= this.maxPerCluster)) await new Promise<void>((r) => this.waiters.push(r));
      if (run.cancelled) break;
      run.active++;
      this.clusterActive++;
      workers.push(
        this.moveOne(run, step.vmId, step.to)
          .catch((err: unknown) => void failures.push({ vmId: step.vmId, code: (err as { code?: string }).code ?? 'FERRY_ERR_MIGRATION_FAILED', message: (err as Error).message }))
          .finally(() => {
            run.active--;
            this.clusterActive--;
            this.wake();
          }),
      );
    }
    await Promise.all(workers);
    if (run.cancelled) return;
    const left = this.deps.vms.list().filter((v) => v.host === run.host && MOVABLE_STATES.includes(v.state));
    if (failures.length > 0 || left.length > 0) {
      run.state = 'failed';
      const first = failures[0];
      run.error = first ? { code: first.code, message: `${first.vmId}: ${first.message}${failures.length > 1 ? ` (and ${failures.length - 1} more)` : ''}` } : { code: 'FERRY_ERR_DRAIN_INCOMPLETE', message: `${left.map((v) => v.id).join(', ')} still on ${run.host}` };
      this.deps.events.emit('host-drain-failed', { host: run.host }, view(run));
      this.deps.logger.warn({ event: 'host-drain-failed', hostId: run.host, err: run.error.message }, 'drain failed; host stays draining');
      return;
    }
    run.state = 'completed';
    const host = this.deps.hosts.find(run.host);
    if (host && (host.state === 'draining' || host.state === 'up')) this.deps.hosts.enterMaintenance(run.host);
    this.deps.logger.info({ event: 'host-drain-completed', hostId: run.host, vms_moved: run.vmsMoved }, 'drain completed; host in maintenance');
  }

  private async moveOne(run: DrainRun, vmId: string, to: string | undefined): Promise<void> {
    const starter = this.deps.migrations!;
    const vm = this.deps.vms.find(vmId);
    if (!vm || vm.host !== run.host || !MOVABLE_STATES.includes(vm.state)) {
      run.vmsMoved++; // deleted or moved meanwhile: nothing left to do for it
      return;
    }
    let started;
    try {
      started = await starter.start({ vm: vmId, ...(to !== undefined ? { to } : {}) });
    } catch (err) {
      if (to === undefined) throw err;
      started = await starter.start({ vm: vmId }); // the planned target filled up meanwhile: let the scheduler choose
    }
    run.migrations.push(started.id);
    const final = await starter.whenFinished(started.id);
    if (final.state !== 'completed') throw Object.assign(new Error(final.error?.message ?? `migration ${final.id} ${final.state}`), { code: final.error?.code ?? 'FERRY_ERR_MIGRATION_FAILED' });
    run.vmsMoved++;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

function view(run: DrainRun): HostDrain {
  return { host: run.host, state: run.state, vmsTotal: run.vmsTotal, vmsMoved: run.vmsMoved, migrations: [...run.migrations], ...(run.error ? { error: run.error } : {}) };
}
