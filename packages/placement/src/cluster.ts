import { DuplicateIdError, HostNotEmptyError, InvalidPlacementInputError, InvalidTransitionError, UnknownHostError, UnknownVmError } from './errors.ts';
import type { GroupPolicy, HostSpec, HostState, OvercommitRatios, PlacementRequest, Resources } from './types.ts';
import { GroupPolicyConflictError } from './errors.ts';

/** State code of a free slot (a removed host) in the model's `state` array. */
export const STATE_FREE = 0;
/** State code of an `up` host, the only state that takes VMs. */
export const STATE_UP = 1;
const STATE_CODE: Record<HostState, number> = { up: 1, down: 2, draining: 3, maintenance: 4 };
const STATE_NAME: readonly (HostState | undefined)[] = [undefined, 'up', 'down', 'draining', 'maintenance'];

/** Instance types interned per model; index 0 is "untyped", types beyond the last slot share it. */
export const MAX_INSTANCE_TYPES = 32;

/** A placement group: its policy, members, and how many members each host holds. */
export interface GroupRecord {
  readonly name: string;
  readonly policy: GroupPolicy;
  readonly members: Set<string>;
  readonly hostCounts: Map<number, number>;
}

/** A VM in the model. While migrating it holds a claim on both `hostIdx` and `migratingTo`. */
export interface VmRecord {
  readonly vmId: string;
  hostIdx: number;
  migratingTo: number;
  readonly cpus: number;
  readonly memoryBytes: number;
  readonly diskBytes: number;
  readonly group: GroupRecord | undefined;
  readonly typeIdx: number;
  readonly instanceType: string | undefined;
  readonly image: string | undefined;
}

/** The instance type of an untyped request: its shape (interned like a type name; `:` keeps it apart from names). */
export function shapeTypeName(d: Resources): string {
  return `shape:${d.cpus}/${d.memoryBytes}/${d.diskBytes}`;
}

function checkResources(what: string, r: Resources): void {
  for (const v of [r.cpus, r.memoryBytes, r.diskBytes]) {
    if (!Number.isFinite(v) || v < 0) throw new InvalidPlacementInputError(`${what} must be finite and ≥ 0, got ${v}`);
  }
}

/**
 * The cluster as typed arrays indexed by host slot: effective capacity (physical × overcommit),
 * use, state, VM count, incoming migrations, per-type counts. Every mutation keeps the arrays and
 * the group and image indexes consistent; nothing here decides anything (see select.ts).
 */
export class ClusterModel {
  /** Number of host slots in use (including freed slots below it). */
  size = 0;
  ratios: OvercommitRatios;
  capCpu = new Float64Array(16);
  capMem = new Float64Array(16);
  capDisk = new Float64Array(16);
  physCpu = new Float64Array(16);
  /** 1 ÷ effective capacity (0 for a zero capacity): the hot loop multiplies instead of dividing. */
  invCpu = new Float64Array(16);
  invMem = new Float64Array(16);
  invDisk = new Float64Array(16);
  usedCpu = new Float64Array(16);
  usedMem = new Float64Array(16);
  usedDisk = new Float64Array(16);
  state = new Uint8Array(16);
  vmCount = new Int32Array(16);
  incoming = new Int32Array(16);
  typeCounts = new Int32Array(16 * MAX_INSTANCE_TYPES);
  hostIds: (string | undefined)[] = [];
  hostIndex = new Map<string, number>();
  hostVms: Set<string>[] = [];
  hostImages: Set<string>[] = [];
  imageMasks = new Map<string, Uint8Array>();
  vms = new Map<string, VmRecord>();
  groups = new Map<string, GroupRecord>();
  types = new Map<string, number>();
  freeSlots: number[] = [];
  /** Slots holding at least one VM (any state), in no order; `activePos[h]` is h's index or -1. */
  active: number[] = [];
  activePos = new Int32Array(16).fill(-1);
  /** Capacity class of each slot (same effective capacity = same class). */
  classOf = new Int32Array(16);
  classIds = new Map<string, number>();
  /** Per class, [1 ÷ cpu, 1 ÷ memory, 1 ÷ disk] effective capacity. */
  classInv: number[][] = [];
  /** Per class, a min-heap of slots that may be empty and up (checked when read). */
  emptyHeaps: number[][] = [];
  /**
   * Max-tree over slots of each up host's free share sum (Σ free ÷ capacity over the three
   * resources; -Infinity when not up): leaves at `treeSize + slot`, each inner node the max of its
   * two children. Worst-fit searches it best-first instead of scanning every host.
   */
  treeSize = 16;
  remTree = new Float64Array(32).fill(-Infinity);
  /** Max-trees of free cpu, memory and disk (same layout): subtrees where nothing fits are skipped. */
  cpuTree = new Float64Array(32).fill(-Infinity);
  memTree = new Float64Array(32).fill(-Infinity);
  diskTree = new Float64Array(32).fill(-Infinity);

  constructor(ratios: OvercommitRatios) {
    for (const [k, v] of Object.entries(ratios)) {
      if (!(v > 0) || !Number.isFinite(v)) throw new InvalidPlacementInputError(`overcommit ratio ${k} must be > 0, got ${v}`);
    }
    this.ratios = ratios;
  }

  private grow(): void {
    const n = this.capCpu.length * 2;
    const f64 = (a: Float64Array): Float64Array<ArrayBuffer> => { const b = new Float64Array(n); b.set(a); return b; };
    this.capCpu = f64(this.capCpu); this.capMem = f64(this.capMem); this.capDisk = f64(this.capDisk);
    this.physCpu = f64(this.physCpu);
    this.invCpu = f64(this.invCpu); this.invMem = f64(this.invMem); this.invDisk = f64(this.invDisk);
    this.usedCpu = f64(this.usedCpu); this.usedMem = f64(this.usedMem); this.usedDisk = f64(this.usedDisk);
    const s = new Uint8Array(n); s.set(this.state); this.state = s;
    const c = new Int32Array(n); c.set(this.vmCount); this.vmCount = c;
    const i = new Int32Array(n); i.set(this.incoming); this.incoming = i;
    const ap = new Int32Array(n).fill(-1); ap.set(this.activePos); this.activePos = ap;
    const co = new Int32Array(n); co.set(this.classOf); this.classOf = co;
    this.treeSize = n;
    this.remTree = new Float64Array(2 * n).fill(-Infinity);
    this.cpuTree = new Float64Array(2 * n).fill(-Infinity);
    this.memTree = new Float64Array(2 * n).fill(-Infinity);
    this.diskTree = new Float64Array(2 * n).fill(-Infinity);
    const t = new Int32Array(n * MAX_INSTANCE_TYPES); t.set(this.typeCounts); this.typeCounts = t;
    for (const [img, mask] of this.imageMasks) { const m = new Uint8Array(n); m.set(mask); this.imageMasks.set(img, m); }
    for (let h = 0; h < this.size; h++) this.touch(h);
  }

  /** Host slot of `hostId`; throws UnknownHostError. */
  indexOf(hostId: string): number {
    const i = this.hostIndex.get(hostId);
    if (i === undefined) throw new UnknownHostError(hostId);
    return i;
  }

  /** The state name of slot `i`. */
  stateOf(i: number): HostState {
    return STATE_NAME[this.state[i] ?? 0] ?? 'down';
  }

  /** Adds a host (state, capacity, cached images); returns its slot. */
  addHost(spec: HostSpec): number {
    if (this.hostIndex.has(spec.id)) throw new DuplicateIdError('host', spec.id);
    checkResources(`host ${spec.id} capacity`, spec.capacity);
    let i = this.freeSlots.pop();
    if (i === undefined) {
      if (this.size === this.capCpu.length) this.grow();
      i = this.size++;
    }
    this.hostIds[i] = spec.id;
    this.hostIndex.set(spec.id, i);
    this.hostVms[i] = new Set();
    this.hostImages[i] = new Set();
    this.vmCount[i] = 0;
    this.incoming[i] = 0;
    this.usedCpu[i] = 0; this.usedMem[i] = 0; this.usedDisk[i] = 0;
    this.setCapacity(i, spec.capacity);
    this.setState(i, spec.state);
    for (const img of spec.images ?? []) this.addImage(i, img);
    return i;
  }

  /** Sets the physical capacity of slot `i` (effective capacity = physical × overcommit ratio). */
  setCapacity(i: number, c: Resources): void {
    checkResources(`host ${this.hostIds[i]} capacity`, c);
    this.physCpu[i] = c.cpus;
    this.capCpu[i] = c.cpus * this.ratios.cpu;
    this.capMem[i] = c.memoryBytes * this.ratios.memory;
    this.capDisk[i] = c.diskBytes * this.ratios.disk;
    const inv = (x: number): number => (x > 0 ? 1 / x : 0);
    this.invCpu[i] = inv(this.capCpu[i]!); this.invMem[i] = inv(this.capMem[i]!); this.invDisk[i] = inv(this.capDisk[i]!);
    const key = `${this.capCpu[i]}/${this.capMem[i]}/${this.capDisk[i]}`;
    let cls = this.classIds.get(key);
    if (cls === undefined) {
      cls = this.classIds.size;
      this.classIds.set(key, cls);
      this.emptyHeaps.push([]);
      this.classInv.push([this.invCpu[i]!, this.invMem[i]!, this.invDisk[i]!]);
    }
    this.classOf[i] = cls;
    this.noteMaybeEmpty(i);
    this.touch(i);
  }

  private remLeaf(h: number): number {
    if (this.state[h] !== STATE_UP) return -Infinity;
    return (this.capCpu[h]! - this.usedCpu[h]!) * this.invCpu[h]! + (this.capMem[h]! - this.usedMem[h]!) * this.invMem[h]! +
      (this.capDisk[h]! - this.usedDisk[h]!) * this.invDisk[h]!;
  }

  /** Recomputes slot `h`'s leaves of the free-capacity trees and their ancestors. */
  touch(h: number): void {
    const up = this.state[h] === STATE_UP;
    const k0 = this.treeSize + h;
    this.remTree[k0] = this.remLeaf(h);
    this.cpuTree[k0] = up ? this.capCpu[h]! - this.usedCpu[h]! : -Infinity;
    this.memTree[k0] = up ? this.capMem[h]! - this.usedMem[h]! : -Infinity;
    this.diskTree[k0] = up ? this.capDisk[h]! - this.usedDisk[h]! : -Infinity;
    for (const t of [this.remTree, this.cpuTree, this.memTree, this.diskTree]) {
      for (let k = k0 >> 1; k >= 1; k >>= 1) {
        const v = Math.max(t[2 * k]!, t[2 * k + 1]!);
        if (t[k] === v) break;
        t[k] = v;
      }
    }
  }

  /** Offers slot `i` to its class's heap of empty up hosts (stale entries are dropped on read). */
  noteMaybeEmpty(i: number): void {
    if (this.state[i] !== STATE_UP || this.vmCount[i] !== 0) return;
    const heap = this.emptyHeaps[this.classOf[i]!];
    if (!heap) return;
    heap.push(i);
    let c = heap.length - 1;
    while (c > 0) {
      const p = (c - 1) >> 1;
      if (heap[p]! <= heap[c]!) break;
      const t = heap[p]!; heap[p] = heap[c]!; heap[c] = t; c = p;
    }
  }

  /** The lowest empty up slot of capacity class `cls`, or -1. */
  lowestEmpty(cls: number): number {
    const heap = this.emptyHeaps[cls];
    if (!heap) return -1;
    while (heap.length > 0) {
      const top = heap[0]!;
      if (this.state[top] === STATE_UP && this.vmCount[top] === 0 && this.classOf[top] === cls && this.hostIds[top] !== undefined) return top;
      const last = heap.pop()!;
      if (heap.length === 0) break;
      heap[0] = last;
      let c = 0;
      for (;;) {
        const l = 2 * c + 1, r = l + 1;
        let m = c;
        if (l < heap.length && heap[l]! < heap[m]!) m = l;
        if (r < heap.length && heap[r]! < heap[m]!) m = r;
        if (m === c) break;
        const t = heap[m]!; heap[m] = heap[c]!; heap[c] = t; c = m;
      }
    }
    return -1;
  }

  /** Sets the state of slot `i`. */
  setState(i: number, s: HostState): void {
    const code = STATE_CODE[s];
    if (code === undefined) throw new InvalidPlacementInputError(`unknown host state ${String(s)}`);
    this.state[i] = code;
    this.noteMaybeEmpty(i);
    this.touch(i);
  }

  /** Records that slot `i` has `image` cached (image locality). */
  addImage(i: number, image: string): void {
    this.hostImages[i]?.add(image);
    let mask = this.imageMasks.get(image);
    if (!mask) { mask = new Uint8Array(this.capCpu.length); this.imageMasks.set(image, mask); }
    mask[i] = 1;
  }

  /** Replaces the cached images of slot `i`. */
  setImages(i: number, images: readonly string[]): void {
    for (const img of this.hostImages[i] ?? []) { const m = this.imageMasks.get(img); if (m) m[i] = 0; }
    this.hostImages[i] = new Set();
    for (const img of images) this.addImage(i, img);
  }

  /** Removes an empty host; throws HostNotEmptyError if it holds VMs or incoming claims. */
  removeHost(hostId: string): void {
    const i = this.indexOf(hostId);
    const held = this.vmCount[i] ?? 0;
    if (held > 0) throw new HostNotEmptyError(hostId, held);
    this.setImages(i, []);
    this.state[i] = STATE_FREE;
    this.capCpu[i] = 0; this.capMem[i] = 0; this.capDisk[i] = 0; this.physCpu[i] = 0;
    this.invCpu[i] = 0; this.invMem[i] = 0; this.invDisk[i] = 0;
    this.touch(i);
    this.hostIds[i] = undefined;
    this.hostIndex.delete(hostId);
    this.freeSlots.push(i);
  }

  /** Interned index of an instance type (0 when untyped or when the table is full). */
  typeIndex(instanceType: string | undefined): number {
    if (instanceType === undefined) return 0;
    let t = this.types.get(instanceType);
    if (t === undefined) {
      t = this.types.size + 1 < MAX_INSTANCE_TYPES ? this.types.size + 1 : 0;
      if (t !== 0) this.types.set(instanceType, t);
    }
    return t;
  }

  /** The group record for a request (created on first use); throws on a policy conflict. */
  groupFor(ref: PlacementRequest['group']): GroupRecord | undefined {
    if (!ref) return undefined;
    const g = this.groups.get(ref.name);
    if (g) {
      if (g.policy !== ref.policy) throw new GroupPolicyConflictError(ref.name, g.policy, ref.policy);
      return g;
    }
    const rec: GroupRecord = { name: ref.name, policy: ref.policy, members: new Set(), hostCounts: new Map() };
    this.groups.set(ref.name, rec);
    return rec;
  }

  /** Builds a VM record for a request (validates demand; does not claim anything). */
  makeVm(req: PlacementRequest): VmRecord {
    if (this.vms.has(req.vmId)) throw new DuplicateIdError('vm', req.vmId);
    checkResources(`vm ${req.vmId} demand`, req.demand);
    return {
      vmId: req.vmId, hostIdx: -1, migratingTo: -1,
      cpus: req.demand.cpus, memoryBytes: req.demand.memoryBytes, diskBytes: req.demand.diskBytes,
      // Without a type name, a VM's shape is its instance type (segregation then still groups
      // like with like when the caller, e.g. an EC2-style `run --cpus --memory`, names no type).
      group: this.groupFor(req.group), typeIdx: this.typeIndex(req.instanceType ?? shapeTypeName(req.demand)),
      instanceType: req.instanceType, image: req.image,
    };
  }

  private claim(i: number, vm: VmRecord): void {
    this.usedCpu[i] = (this.usedCpu[i] ?? 0) + vm.cpus;
    this.usedMem[i] = (this.usedMem[i] ?? 0) + vm.memoryBytes;
    this.usedDisk[i] = (this.usedDisk[i] ?? 0) + vm.diskBytes;
    if ((this.vmCount[i] = (this.vmCount[i] ?? 0) + 1) === 1) { this.activePos[i] = this.active.length; this.active.push(i); }
    const ti = i * MAX_INSTANCE_TYPES + vm.typeIdx;
    this.typeCounts[ti] = (this.typeCounts[ti] ?? 0) + 1;
    this.hostVms[i]?.add(vm.vmId);
    if (vm.group) vm.group.hostCounts.set(i, (vm.group.hostCounts.get(i) ?? 0) + 1);
    this.touch(i);
  }

  private unclaim(i: number, vm: VmRecord): void {
    this.usedCpu[i] = (this.usedCpu[i] ?? 0) - vm.cpus;
    this.usedMem[i] = (this.usedMem[i] ?? 0) - vm.memoryBytes;
    this.usedDisk[i] = (this.usedDisk[i] ?? 0) - vm.diskBytes;
    if ((this.vmCount[i] = (this.vmCount[i] ?? 0) - 1) === 0) {
      // Clear float drift so an empty host is exactly empty.
      this.usedCpu[i] = 0; this.usedMem[i] = 0; this.usedDisk[i] = 0;
      const pos = this.activePos[i]!;
      const last = this.active.pop()!;
      if (last !== i) { this.active[pos] = last; this.activePos[last] = pos; }
      this.activePos[i] = -1;
      this.noteMaybeEmpty(i);
    }
    const ti = i * MAX_INSTANCE_TYPES + vm.typeIdx;
    this.typeCounts[ti] = (this.typeCounts[ti] ?? 0) - 1;
    this.hostVms[i]?.delete(vm.vmId);
    if (vm.group) {
      const n = (vm.group.hostCounts.get(i) ?? 0) - 1;
      if (n > 0) vm.group.hostCounts.set(i, n); else vm.group.hostCounts.delete(i);
    }
    this.touch(i);
  }

  /** Records `vm` on slot `i` (claims its demand there). No filter runs here. */
  addVm(vm: VmRecord, i: number): void {
    vm.hostIdx = i;
    this.vms.set(vm.vmId, vm);
    vm.group?.members.add(vm.vmId);
    this.claim(i, vm);
  }

  /** The VM record of `vmId`; throws UnknownVmError. */
  vm(vmId: string): VmRecord {
    const vm = this.vms.get(vmId);
    if (!vm) throw new UnknownVmError(vmId);
    return vm;
  }

  /** Removes a VM and frees every claim it holds (source, and destination when migrating). */
  removeVm(vmId: string): VmRecord {
    const vm = this.vm(vmId);
    if (vm.migratingTo >= 0) this.abortMigration(vmId);
    this.unclaim(vm.hostIdx, vm);
    this.vms.delete(vmId);
    if (vm.group) {
      vm.group.members.delete(vmId);
      if (vm.group.members.size === 0) this.groups.delete(vm.group.name);
    }
    return vm;
  }

  /** Claims the destination of a migration (legal only when the VM is not migrating). */
  beginMigration(vmId: string, to: number): void {
    const vm = this.vm(vmId);
    if (vm.migratingTo >= 0) throw new InvalidTransitionError(vmId, 'already migrating');
    if (to === vm.hostIdx) throw new InvalidTransitionError(vmId, 'destination is its own host');
    vm.migratingTo = to;
    this.incoming[to] = (this.incoming[to] ?? 0) + 1;
    this.claim(to, vm);
  }

  /** Switches ownership to the destination and frees the source (legal only while migrating). */
  completeMigration(vmId: string): void {
    const vm = this.vm(vmId);
    const to = vm.migratingTo;
    if (to < 0) throw new InvalidTransitionError(vmId, 'not migrating');
    this.incoming[to] = (this.incoming[to] ?? 0) - 1;
    this.unclaim(vm.hostIdx, vm);
    vm.hostIdx = to;
    vm.migratingTo = -1;
  }

  /** Frees the destination claim; the VM stays on its source (legal only while migrating). */
  abortMigration(vmId: string): void {
    const vm = this.vm(vmId);
    const to = vm.migratingTo;
    if (to < 0) throw new InvalidTransitionError(vmId, 'not migrating');
    this.incoming[to] = (this.incoming[to] ?? 0) - 1;
    this.unclaim(to, vm);
    vm.migratingTo = -1;
  }

  /** Moves a VM at once (begin + complete): used by plans on a cloned model. */
  moveVm(vmId: string, to: number): void {
    this.beginMigration(vmId, to);
    this.completeMigration(vmId);
  }

  /** Whether slot `i` has room for the demand (effective capacity, with a tiny tolerance). */
  fits(i: number, cpus: number, memoryBytes: number, diskBytes: number): boolean {
    return (this.usedCpu[i] ?? 0) + cpus <= (this.capCpu[i] ?? 0) + 1e-9 &&
      (this.usedMem[i] ?? 0) + memoryBytes <= (this.capMem[i] ?? 0) + 1e-3 &&
      (this.usedDisk[i] ?? 0) + diskBytes <= (this.capDisk[i] ?? 0) + 1e-3;
  }

  /** A deep copy (plans run on a copy and never change the scheduler's model). */
  clone(): ClusterModel {
    const c = new ClusterModel(this.ratios);
    c.size = this.size;
    c.capCpu = this.capCpu.slice(); c.capMem = this.capMem.slice(); c.capDisk = this.capDisk.slice();
    c.physCpu = this.physCpu.slice();
    c.invCpu = this.invCpu.slice(); c.invMem = this.invMem.slice(); c.invDisk = this.invDisk.slice();
    c.usedCpu = this.usedCpu.slice(); c.usedMem = this.usedMem.slice(); c.usedDisk = this.usedDisk.slice();
    c.state = this.state.slice(); c.vmCount = this.vmCount.slice(); c.incoming = this.incoming.slice();
    c.typeCounts = this.typeCounts.slice();
    c.hostIds = this.hostIds.slice();
    c.hostIndex = new Map(this.hostIndex);
    c.hostVms = this.hostVms.map((s) => new Set(s));
    c.hostImages = this.hostImages.map((s) => new Set(s));
    for (const [img, m] of this.imageMasks) c.imageMasks.set(img, m.slice());
    for (const [name, g] of this.groups) {
      c.groups.set(name, { name, policy: g.policy, members: new Set(g.members), hostCounts: new Map(g.hostCounts) });
    }
    for (const [id, vm] of this.vms) {
      c.vms.set(id, { ...vm, group: vm.group ? c.groups.get(vm.group.name) : undefined });
    }
    c.types = new Map(this.types);
    c.freeSlots = this.freeSlots.slice();
    c.active = this.active.slice(); c.activePos = this.activePos.slice(); c.classOf = this.classOf.slice();
    c.treeSize = this.treeSize; c.remTree = this.remTree.slice();
    c.cpuTree = this.cpuTree.slice(); c.memTree = this.memTree.slice(); c.diskTree = this.diskTree.slice();
    c.classIds = new Map(this.classIds); c.classInv = this.classInv.map((x) => x.slice()); c.emptyHeaps = this.emptyHeaps.map((h) => h.slice());
    return c;
  }
}
