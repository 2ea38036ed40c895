/**
 * The coordinator's placement: one @ferry/placement Scheduler kept in step with the host registry
 * (hosts added on register, capacity and state on every host event) and with the VM registry
 * (every placed instance holds its claim). Decisions claim synchronously, so concurrent `run`
 * requests never double-book a host or break a hard anti-affinity group; a request that fails
 * later must `release` its claim.
 */
import { DEFAULT_OVERCOMMIT, NoValidHostError, Scheduler, STRATEGIES, type ConsolidationPlan, type DrainPlan, type PlacementRequest, type RebalancePlan, type StrategyName } from '@ferry/placement';
import type { ApiEvent } from '@ferry/protocol';
import { CoordinatorError } from './errors.ts';
import type { EventBus } from './events.ts';
import type { HostRegistry } from './hosts.ts';
import type { VmRecord } from './vms-journal.ts';

/** The default strategy of the coordinator (`--placement`). */
export const DEFAULT_PLACEMENT_STRATEGY: StrategyName = 'best-fit';

/** No host can take the VM (409): capacity, host states or a hard group rule. */
export class NoCapacityError extends CoordinatorError {
  readonly vmId: string;
  readonly rejectedBy: Readonly<Record<string, number>>;
  constructor(vmId: string, message: string, rejectedBy: Readonly<Record<string, number>> = {}) {
    super('FERRY_ERR_NO_CAPACITY', message);
    this.vmId = vmId;
    this.rejectedBy = rejectedBy;
  }
}

/** Whether `name` is a strategy the scheduler knows. */
export function isStrategyName(name: string): name is StrategyName {
  return (STRATEGIES as readonly string[]).includes(name);
}

/** What a placed record asks of the scheduler. */
export function placementRequestOf(vm: Pick<VmRecord, 'id' | 'cpus' | 'memoryBytes' | 'diskBytes' | 'group' | 'image'>): PlacementRequest {
  return {
    vmId: vm.id,
    demand: { cpus: vm.cpus, memoryBytes: vm.memoryBytes, diskBytes: vm.diskBytes },
    ...(vm.group ? { group: vm.group } : {}),
    image: vm.image,
  };
}

/** The scheduler wired to the coordinator's registries. */
export class ClusterPlacement {
  readonly scheduler: Scheduler;
  private readonly hosts: HostRegistry;
  private readonly unsubscribe: () => void;

  /** Builds the scheduler from the known hosts and the placed records; follows host events from then on. */
  constructor(hosts: HostRegistry, events: EventBus, records: readonly VmRecord[], strategy: StrategyName = DEFAULT_PLACEMENT_STRATEGY) {
    this.hosts = hosts;
    this.scheduler = new Scheduler([], [], { strategy });
    for (const h of hosts.list()) this.syncHost(h.id);
    for (const vm of records) if (vm.host !== null) this.claimExisting(vm);
    this.unsubscribe = events.subscribe((e: ApiEvent) => {
      if (e.type.startsWith('host-') && e.host !== undefined) this.syncHost(e.host);
    });
  }

  /** Records an instance already on its host (restart, adoption) without filters. Idempotent. */
  claimExisting(vm: Pick<VmRecord, 'id' | 'host' | 'cpus' | 'memoryBytes' | 'diskBytes' | 'group' | 'image'>): void {
    if (vm.host === null) return;
    this.ensureHost(vm.host);
    const current = this.scheduler.vm(vm.id);
    if (current?.hostId === vm.host) return;
    if (current) this.scheduler.release(vm.id);
    this.scheduler.addVm({ ...placementRequestOf(vm), hostId: vm.host });
    if (vm.image) this.scheduler.addHostImage(vm.host, vm.image); // it was provisioned from that image there
  }

  /**
   * Records that `hostId` holds `image` (an instance was provisioned from it there), so image
   * locality prefers that host for later instances of the same image. Idempotent.
   */
  noteHostImage(hostId: string, image: string): void {
    this.ensureHost(hostId);
    this.scheduler.addHostImage(hostId, image);
  }

  /**
   * Chooses and claims a host for a new instance (on `pinnedHost` if given, same filters). Throws
   * NoCapacityError (nothing claimed) when no host fits; the message says which filters refused.
   */
  place(vm: Pick<VmRecord, 'id' | 'cpus' | 'memoryBytes' | 'diskBytes' | 'group' | 'image'>, pinnedHost?: string): string {
    if (pinnedHost !== undefined && !this.hosts.find(pinnedHost)) throw new CoordinatorError('FERRY_ERR_UNKNOWN_HOST', `no host ${pinnedHost}`);
    const request = placementRequestOf(vm);
    const result = pinnedHost === undefined ? this.scheduler.place(request) : this.scheduler.placeOn(request, pinnedHost);
    if (result.ok) return result.hostId;
    const err = result.error;
    const rejectedBy = err instanceof NoValidHostError ? err.rejectedBy : {};
    const live = this.hosts.list().filter((h) => h.state === 'up');
    const biggest = Math.max(0, ...live.map((h) => h.capacity.memoryBytes));
    const why =
      live.length === 0
        ? 'no host is up'
        : vm.memoryBytes > biggest
          ? `${vm.memoryBytes} bytes of memory is more than any up host has (largest: ${biggest})`
          : err.message;
    throw new NoCapacityError(vm.id, `cannot place ${vm.id}${pinnedHost !== undefined ? ` on ${pinnedHost}` : ''}: ${why}`, rejectedBy);
  }

  /** Frees an instance's claims (deleted, or its run failed). */
  release(vmId: string): void {
    this.scheduler.release(vmId);
  }

  /** Moves a claim to another host without filters (a migration committed elsewhere, a cold move). */
  moveClaim(vm: Pick<VmRecord, 'id' | 'host' | 'cpus' | 'memoryBytes' | 'diskBytes' | 'group' | 'image'>): void {
    this.scheduler.release(vm.id);
    this.claimExisting(vm);
  }

  /** Where each VM of `hostId` would go to empty it (changes nothing). */
  planDrain(hostId: string): DrainPlan {
    this.ensureHost(hostId);
    return this.scheduler.planDrain(hostId);
  }

  /**
   * Which hosts to empty, with as few migrations as possible (the scheduler's PABFD), moving only
   * VMs not in `fixed` (and not migrating): those keep their claims where they are. Changes nothing.
   */
  planConsolidation(fixed: ReadonlySet<string> = new Set()): ConsolidationPlan {
    return this.planner(fixed).planConsolidation();
  }

  /** Migrations that narrow the spread of load between up hosts, moving only VMs not in `fixed` (nor migrating). Changes nothing. */
  planRebalance(fixed: ReadonlySet<string> = new Set()): RebalancePlan {
    return this.planner(fixed).planRebalance();
  }

  /**
   * A scheduler to plan on: the live one when every VM may move, else a copy holding only the
   * movable VMs, each host's capacity reduced by what the others (and in-flight reservations) use.
   */
  private planner(fixed: ReadonlySet<string>): Scheduler {
    const vms = this.scheduler.vms();
    const moving = vms.filter((v) => !fixed.has(v.vmId) && v.migratingTo === undefined);
    if (moving.length === vms.length) return this.scheduler; // the engine plans on its own copy
    const r = DEFAULT_OVERCOMMIT;
    const hosts = this.scheduler.hosts().map((h) => {
      let { cpus, memoryBytes, diskBytes } = h.used;
      for (const v of moving) {
        if (v.hostId !== h.id) continue;
        cpus -= v.demand.cpus;
        memoryBytes -= v.demand.memoryBytes;
        diskBytes -= v.demand.diskBytes;
      }
      const e = h.effectiveCapacity;
      const capacity = { cpus: Math.max(0, (e.cpus - cpus) / r.cpu), memoryBytes: Math.max(0, (e.memoryBytes - memoryBytes) / r.memory), diskBytes: Math.max(0, (e.diskBytes - diskBytes) / r.disk) };
      return { id: h.id, state: h.state, capacity, images: h.images };
    });
    const placements = moving.map((v) => ({
      vmId: v.vmId,
      hostId: v.hostId,
      demand: v.demand,
      ...(v.group ? { group: v.group } : {}),
      ...(v.instanceType !== undefined ? { instanceType: v.instanceType } : {}),
      ...(v.image !== undefined ? { image: v.image } : {}),
    }));
    return new Scheduler(hosts, placements, { strategy: this.scheduler.strategy });
  }

  /** Stops following host events. */
  close(): void {
    this.unsubscribe();
  }

  /** Brings one host's scheduler view in line with the registry (added if new). */
  syncHost(hostId: string): void {
    const h = this.hosts.find(hostId);
    if (!h) return;
    const known = this.scheduler.hosts().some((v) => v.id === hostId);
    if (!known) this.scheduler.addHost({ id: hostId, state: h.state, capacity: h.capacity });
    else this.scheduler.updateHost(hostId, { state: h.state, ...(h.capacity.memoryBytes > 0 ? { capacity: h.capacity } : {}) });
  }

  private ensureHost(hostId: string): void {
    if (this.scheduler.hosts().some((v) => v.id === hostId)) return;
    const h = this.hosts.find(hostId);
    this.scheduler.addHost({ id: hostId, state: h?.state ?? 'down', capacity: h?.capacity ?? { cpus: 0, memoryBytes: 0, diskBytes: 0 } });
  }
}
