import { ClusterModel } from './cluster.ts';
import type { VmRecord } from './cluster.ts';
import { InvalidPlacementInputError, InvalidTransitionError, NoValidHostError, PlacementError } from './errors.ts';
import { energyOf, fragmentationOf, hostWatts, lowerBoundOf } from './metrics.ts';
import type { EnergyReport } from './metrics.ts';
import { activeHostIds, activeHosts, loadSpread, planConsolidationOn, planDrainOn, planRebalanceOn } from './plans.ts';
import type { ConsolidationOptions, ConsolidationPlan, DrainPlan, RebalanceOptions, RebalancePlan } from './plans.ts';
import { explainRejection, makeQuery, scoreHost, selectHost, strategyCode } from './select.ts';
import type { Query, StrategyName } from './select.ts';
import { DEFAULT_ENERGY_MODEL, DEFAULT_OVERCOMMIT, DEFAULT_SOFT_WEIGHTS } from './types.ts';
import type { EnergyModel, HostSpec, HostState, Migration, OvercommitRatios, PlacementRequest, PlacementResult, Resources, SoftWeights, VmPlacement } from './types.ts';

/** Scheduler settings. Every field is optional; defaults in brackets. */
export interface SchedulerOptions {
  /** Strategy name [`best-fit`]; see STRATEGIES. */
  readonly strategy?: StrategyName;
  /** Overcommit ratios [cpu 4, memory 1, disk 1]. */
  readonly overcommit?: Partial<OvercommitRatios>;
  /** Soft-rule weights [image 0.3, soft-affinity 1, soft-anti-affinity 1]. */
  readonly weights?: Partial<SoftWeights>;
  /** Concurrent incoming migrations allowed per host [2]. */
  readonly maxIncomingMigrations?: number;
  /** Energy model [idle 100 W, peak 250 W, vCPU utilization 0.5, empty hosts off]. */
  readonly energy?: Partial<EnergyModel>;
}

/** A host as the scheduler sees it. */
export interface HostView {
  readonly id: string;
  readonly state: HostState;
  /** Capacity after overcommit. */
  readonly effectiveCapacity: Resources;
  readonly used: Resources;
  readonly vmCount: number;
  readonly incomingMigrations: number;
  readonly images: readonly string[];
}

/** A VM as the scheduler sees it; `migratingTo` is set while a destination is reserved. */
export interface VmView extends VmPlacement {
  readonly migratingTo?: string;
}

/**
 * The placement engine: a cluster model (hosts, VMs, groups), a strategy and filters. Every
 * decision reserves at once (the claim is in the model before `place` returns), so any number of
 * requests in flight never double-book a host or break a hard group rule. Pure: no I/O, no clock.
 */
export class Scheduler {
  private readonly m: ClusterModel;
  private strategyName: StrategyName;
  private code: number;
  private readonly weights: SoftWeights;
  private readonly migrationLimit: number;
  private readonly energyModel: EnergyModel;
  private readonly q: Query;

  /** Builds a scheduler from hosts and the VMs they already run (recorded as they are, unfiltered). */
  constructor(hosts: readonly HostSpec[] = [], placements: readonly VmPlacement[] = [], options: SchedulerOptions = {}) {
    this.m = new ClusterModel({ ...DEFAULT_OVERCOMMIT, ...options.overcommit });
    this.strategyName = options.strategy ?? 'best-fit';
    this.code = strategyCode(this.strategyName);
    this.weights = { ...DEFAULT_SOFT_WEIGHTS, ...options.weights };
    this.migrationLimit = options.maxIncomingMigrations ?? 2;
    if (!(Number.isInteger(this.migrationLimit) && this.migrationLimit >= 1)) {
      throw new InvalidPlacementInputError(`maxIncomingMigrations must be an integer ≥ 1, got ${this.migrationLimit}`);
    }
    this.energyModel = { ...DEFAULT_ENERGY_MODEL, ...options.energy };
    this.q = makeQuery(this.code, this.weights);
    for (const h of hosts) this.addHost(h);
    for (const p of placements) this.addVm(p);
  }

  /** The current strategy name. */
  get strategy(): StrategyName { return this.strategyName; }

  /** Changes the strategy for later decisions; throws InvalidPlacementInputError on an unknown name. */
  setStrategy(name: StrategyName): void {
    this.code = strategyCode(name);
    this.strategyName = name;
  }

  /** Adds a host. Throws DuplicateIdError if the id exists. */
  addHost(spec: HostSpec): void { this.m.addHost(spec); }

  /** Changes a host's state, capacity or cached images (VMs on it stay, even if now over capacity). */
  updateHost(hostId: string, patch: { state?: HostState; capacity?: Resources; images?: readonly string[] }): void {
    const i = this.m.indexOf(hostId);
    if (patch.state !== undefined) this.m.setState(i, patch.state);
    if (patch.capacity !== undefined) this.m.setCapacity(i, patch.capacity);
    if (patch.images !== undefined) this.m.setImages(i, patch.images);
  }

  /** Records that a host has cached an image (after a first provisioning there, say). */
  addHostImage(hostId: string, image: string): void { this.m.addImage(this.m.indexOf(hostId), image); }

  /** Removes an empty host; throws HostNotEmptyError while it holds VMs or reservations. */
  removeHost(hostId: string): void { this.m.removeHost(hostId); }

  /** Records a VM already running on a host, without filters (the agents' report is the truth). */
  addVm(p: VmPlacement): void {
    const i = this.m.indexOf(p.hostId);
    this.m.addVm(this.m.makeVm(p), i);
  }

  private fill(vm: VmRecord, imageOf?: string): Query {
    const q = this.q;
    q.strategy = this.code;
    q.cpus = vm.cpus; q.memoryBytes = vm.memoryBytes; q.diskBytes = vm.diskBytes;
    q.group = vm.group; q.typeIdx = vm.typeIdx;
    const image = imageOf ?? vm.image;
    q.imageMask = image !== undefined ? this.m.imageMasks.get(image) : undefined;
    q.selfIdx = -1; q.migrationLimit = -1; q.exclude = undefined; q.penalty = undefined;
    return q;
  }

  private failure(vmId: string, err: unknown): PlacementResult {
    if (err instanceof PlacementError) return { ok: false, vmId, error: err };
    throw err;
  }

  /**
   * Chooses a host for a new VM and claims its demand there before returning. On failure nothing
   * changes and `error` is a NoValidHostError (with per-filter rejection counts) or an input error.
   */
  place(request: PlacementRequest): PlacementResult {
    let vm: VmRecord;
    try { vm = this.m.makeVm(request); } catch (err) { return this.failure(request.vmId, err); }
    const q = this.fill(vm);
    const h = selectHost(this.m, q);
    if (h < 0) {
      const rejected = explainRejection(this.m, q);
      if (vm.group && vm.group.members.size === 0) this.m.groups.delete(vm.group.name);
      return { ok: false, vmId: request.vmId, error: new NoValidHostError(request.vmId, rejected) };
    }
    this.m.addVm(vm, h);
    return { ok: true, vmId: vm.vmId, hostId: this.m.hostIds[h]! };
  }

  /** Like `place`, but only on `hostId` (an operator's choice): the same filters, then claim. */
  placeOn(request: PlacementRequest, hostId: string): PlacementResult {
    let vm: VmRecord, h: number;
    try { h = this.m.indexOf(hostId); vm = this.m.makeVm(request); } catch (err) { return this.failure(request.vmId, err); }
    const q = this.fill(vm);
    const confinedElsewhere = vm.group?.policy === 'affinity' && vm.group.hostCounts.size > 0 && !vm.group.hostCounts.has(h);
    if (confinedElsewhere || scoreHost(this.m, q, h, this.m.size) === -Infinity) {
      const rejected = confinedElsewhere ? { affinity: 1 } : explainRejection(this.m, q, h);
      if (vm.group && vm.group.members.size === 0) this.m.groups.delete(vm.group.name);
      return { ok: false, vmId: request.vmId, error: new NoValidHostError(request.vmId, rejected) };
    }
    this.m.addVm(vm, h);
    return { ok: true, vmId: vm.vmId, hostId };
  }


  private onlyMask(h: number): Uint8Array {
    const mask = new Uint8Array(this.m.capCpu.length).fill(1);
    mask[h] = 0;
    return mask;
  }

  /** Frees a VM's claims (deleted, or provisioning failed). Returns false if the VM is unknown. */
  release(vmId: string): boolean {
    if (!this.m.vms.has(vmId)) return false;
    this.m.removeVm(vmId);
    return true;
  }

  /**
   * Reserves a migration destination for a placed VM (legal when it is not migrating): `toHostId`
   * if given (checked by the filters), else the strategy's choice. Filters add the per-host limit
   * of concurrent incoming migrations. The VM then holds claims on both hosts until
   * `completeMigration` (ownership moves) or `abortMigration` (destination freed).
   */
  beginMigration(vmId: string, toHostId?: string): PlacementResult {
    let vm: VmRecord, only: number | undefined;
    try {
      vm = this.m.vm(vmId);
      if (toHostId !== undefined) only = this.m.indexOf(toHostId);
      if (vm.migratingTo >= 0) throw new InvalidTransitionError(vmId, 'already migrating');
    } catch (err) { return this.failure(vmId, err); }
    const q = this.fill(vm);
    q.selfIdx = vm.hostIdx;
    q.migrationLimit = this.migrationLimit;
    if (only !== undefined) q.exclude = this.onlyMask(only);
    const h = selectHost(this.m, q);
    if (h < 0) return { ok: false, vmId, error: new NoValidHostError(vmId, explainRejection(this.m, q, only)) };
    this.m.beginMigration(vmId, h);
    return { ok: true, vmId, hostId: this.m.hostIds[h]! };
  }

  /** The migration committed: the VM now runs on its destination, the source claim is freed. */
  completeMigration(vmId: string): void { this.m.completeMigration(vmId); }

  /** The migration failed or was cancelled: the destination claim is freed, the VM stays. */
  abortMigration(vmId: string): void { this.m.abortMigration(vmId); }

  /** Where each VM of `hostId` should go to empty it (spread over targets). Changes nothing. */
  planDrain(hostId: string): DrainPlan {
    const m = this.m.clone();
    return planDrainOn(m, m.indexOf(hostId), this.weights);
  }

  /** Which hosts to empty, with as few migrations as possible (PABFD). Changes nothing. */
  planConsolidation(options?: ConsolidationOptions): ConsolidationPlan {
    return planConsolidationOn(this.m.clone(), this.weights, options);
  }

  /** Migrations that narrow the spread of load between up hosts. Changes nothing. */
  planRebalance(options?: RebalanceOptions): RebalancePlan {
    return planRebalanceOn(this.m.clone(), this.weights, options);
  }

  /** Max − min dominant-resource share over up hosts. */
  loadSpread(): number { return loadSpread(this.m); }

  /** Share of free capacity that cannot host `request` (default: the most common instance type). */
  fragmentation(request?: Resources): number { return fragmentationOf(this.m, request); }

  /** Power now, and energy over `durationSeconds` [3600] at that power. */
  energy(durationSeconds = 3600): EnergyReport { return energyOf(this.m, this.energyModel, durationSeconds); }

  /** Watts one host draws now under the energy model. */
  hostWatts(hostId: string): number { return hostWatts(this.m, this.m.indexOf(hostId), this.energyModel); }

  /** Up hosts holding at least one VM. */
  hostsUsed(): number { return activeHosts(this.m); }

  /**
   * What `moves` (a plan's migrations) would leave, worked out on a copy of the model (this one is
   * unchanged): the up hosts holding a VM (ids, sorted) and the load spread (see loadSpread). A
   * move the model refuses (unknown VM or host, a VM already migrating) is left out.
   */
  outcome(moves: readonly Migration[] = []): { hostsUsed: string[]; spread: number } {
    const m = this.m.clone();
    for (const x of moves) {
      try {
        m.moveVm(x.vmId, m.indexOf(x.toHostId));
      } catch {
        // left out, as documented
      }
    }
    return { hostsUsed: activeHostIds(m), spread: loadSpread(m) };
  }

  /** Lower bound on hosts for the VMs placed (total demand ÷ largest host capacity, max over resources). */
  lowerBound(): number { return lowerBoundOf(this.m); }

  /** Number of VMs placed (including reservations of new VMs). */
  get vmCount(): number { return this.m.vms.size; }

  /** A host's view; throws UnknownHostError. */
  host(hostId: string): HostView { return this.hostAt(this.m.indexOf(hostId)); }

  private hostAt(i: number): HostView {
    const m = this.m;
    return {
      id: m.hostIds[i]!, state: m.stateOf(i),
      effectiveCapacity: { cpus: m.capCpu[i]!, memoryBytes: m.capMem[i]!, diskBytes: m.capDisk[i]! },
      used: { cpus: m.usedCpu[i]!, memoryBytes: m.usedMem[i]!, diskBytes: m.usedDisk[i]! },
      vmCount: m.vmCount[i]!, incomingMigrations: m.incoming[i]!, images: [...(m.hostImages[i] ?? [])],
    };
  }

  /** Every host's view, in slot order. */
  hosts(): HostView[] {
    const out: HostView[] = [];
    for (let i = 0; i < this.m.size; i++) if (this.m.state[i] !== 0) out.push(this.hostAt(i));
    return out;
  }

  /** A VM's view, or undefined when unknown. */
  vm(vmId: string): VmView | undefined {
    const vm = this.m.vms.get(vmId);
    if (!vm) return undefined;
    const m = this.m;
    return {
      vmId, hostId: m.hostIds[vm.hostIdx]!,
      demand: { cpus: vm.cpus, memoryBytes: vm.memoryBytes, diskBytes: vm.diskBytes },
      ...(vm.group ? { group: { name: vm.group.name, policy: vm.group.policy } } : {}),
      ...(vm.instanceType !== undefined ? { instanceType: vm.instanceType } : {}),
      ...(vm.image !== undefined ? { image: vm.image } : {}),
      ...(vm.migratingTo >= 0 ? { migratingTo: m.hostIds[vm.migratingTo]! } : {}),
    };
  }

  /** Every VM's view. */
  vms(): VmView[] { return [...this.m.vms.keys()].map((id) => this.vm(id)!); }
}
