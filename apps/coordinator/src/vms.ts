/**
 * The VM registry: every instance the coordinator knows (the API `Vm` plus bookkeeping), backed
 * by the journal (vms-journal.ts). Each change is written to the journal before the method
 * returns, so callers reply to users only after the change is durable.
 *
 * VM states (API VM_STATES) and the actions that move between them:
 * ```
 *   run ──► provisioning ──booted──► running ◄──resume/start── suspended / stopped
 *                │                     │ ▲
 *           failed: removed      pause │ │ resume        running|paused ──stop──► stopped
 *                                      ▼ │               running|paused ──suspend──► suspended
 *                                     paused             running|paused ──migrate──► migrating ──► running|paused (on either host)
 *   any but provisioning/migrating ──delete──► deleted (removed from the registry)
 *   host down ──► lost ──host back with the VM──► the state it reports
 * ```
 * Every transition is checked here (`expectState`): a wrong state throws VmInvalidStateError
 * (409 FERRY_ERR_INVALID_STATE) and changes nothing.
 */
import type { Vm, VmSnapshot, VmState } from '@ferry/protocol';
import { VM_STATES } from '@ferry/protocol';
import { CoordinatorError } from './errors.ts';
import { VM_JOURNAL_VERSION, type VmJournal, type VmRecord } from './vms-journal.ts';

/** No VM with this id (404). */
export class UnknownVmError extends CoordinatorError {
  readonly vmId: string;
  constructor(vmId: string) {
    super('FERRY_ERR_UNKNOWN_VM', `no VM ${vmId}`);
    this.vmId = vmId;
  }
}

/** An action not legal in the VM's current state (409); nothing changed. */
export class VmInvalidStateError extends CoordinatorError {
  readonly vmId: string;
  readonly state: VmState;
  readonly action: string;
  constructor(vmId: string, state: VmState, action: string, allowed: readonly VmState[]) {
    super('FERRY_ERR_INVALID_STATE', `cannot ${action} ${vmId}: it is ${state} (${action} needs ${allowed.join(' or ')})`);
    this.vmId = vmId;
    this.state = state;
    this.action = action;
  }
}

/** The address pool of instances: 10.0.0.0/16, hosts .0.2 to .255.254 (network, gateway and broadcast excluded). */
export const IP_POOL_PREFIX = '10.0.';
const IP_FIRST = 2;
const IP_LAST = 65534;

/** Every instance, journaled. */
export class VmRegistry {
  private readonly vms = new Map<string, VmRecord>();
  private readonly snapshots = new Map<string, VmSnapshot>();
  private readonly journal: VmJournal;
  private nextVmNumber: number;
  private nextSnapshotNumber: number;
  /** IPs handed out (held by a record, or reserved for a run in flight). */
  private readonly ipsInUse = new Set<string>();
  /** When each record last changed (ms, this process; 0 for records loaded from the journal). */
  private readonly changedAt = new Map<string, number>();

  /** Loads the journal (throws on a corrupt one). */
  constructor(journal: VmJournal) {
    this.journal = journal;
    const contents = journal.load();
    this.nextVmNumber = contents.nextVmNumber;
    this.nextSnapshotNumber = contents.nextSnapshotNumber;
    for (const vm of contents.vms) {
      this.vms.set(vm.id, vm);
      this.ipsInUse.add(vm.ip);
    }
    for (const s of contents.snapshots) this.snapshots.set(s.id, s);
  }

  /** A fresh `vm-<n>` id (never handed out before; journaled with the next write). */
  newVmId(): string {
    let id: string;
    do id = `vm-${this.nextVmNumber++}`;
    while (this.vms.has(id));
    return id;
  }

  /** A fresh `snap-<n>` id. */
  newSnapshotId(): string {
    return `snap-${this.nextSnapshotNumber++}`;
  }

  /** Claims the lowest free address of the pool; throws FERRY_ERR_NO_CAPACITY when it is exhausted. Free it with releaseIp unless a record takes it. */
  allocateIp(): string {
    for (let n = IP_FIRST; n <= IP_LAST; n++) {
      const ip = `${IP_POOL_PREFIX}${n >> 8}.${n & 255}`;
      if ((n & 255) === 0 || (n & 255) === 255) continue;
      if (!this.ipsInUse.has(ip)) {
        this.ipsInUse.add(ip);
        return ip;
      }
    }
    throw new CoordinatorError('FERRY_ERR_NO_CAPACITY', 'the instance address pool 10.0.0.0/16 is exhausted');
  }

  /** Returns an address to the pool (a run that failed). */
  releaseIp(ip: string): void {
    if (![...this.vms.values()].some((v) => v.ip === ip)) this.ipsInUse.delete(ip);
  }

  /** Adds a new record (a run being provisioned, a clone, an adopted VM) and journals it. */
  add(record: VmRecord): VmRecord {
    if (this.vms.has(record.id)) throw new CoordinatorError('FERRY_ERR_INTERNAL', `VM ${record.id} exists`);
    this.vms.set(record.id, record);
    this.ipsInUse.add(record.ip);
    this.changedAt.set(record.id, Date.now());
    this.save();
    return record;
  }

  /** One record, or undefined. */
  find(vmId: string): VmRecord | undefined {
    return this.vms.get(vmId);
  }

  /** One record; throws UnknownVmError. */
  get(vmId: string): VmRecord {
    const vm = this.vms.get(vmId);
    if (!vm) throw new UnknownVmError(vmId);
    return vm;
  }

  /** Every record, by creation order of their ids (vm-2 before vm-10). */
  list(): VmRecord[] {
    return [...this.vms.values()].sort((a, b) => compareIds(a.id, b.id));
  }

  /** When the record last changed in this process (ms since the epoch; 0 if not since the journal was loaded, or unknown). */
  changedAtMs(vmId: string): number {
    return this.changedAt.get(vmId) ?? 0;
  }

  /** The record, checked to be in one of `allowed` states; throws VmInvalidStateError (nothing changed) otherwise. */
  expectState(vmId: string, allowed: readonly VmState[], action: string): VmRecord {
    const vm = this.get(vmId);
    if (!allowed.includes(vm.state)) throw new VmInvalidStateError(vmId, vm.state, action, allowed);
    return vm;
  }

  /** Changes fields of a record and journals it; returns the new record. */
  update(vmId: string, patch: Partial<Omit<VmRecord, 'id'>>): VmRecord {
    const vm = this.get(vmId);
    const next: VmRecord = { ...vm, ...patch };
    if (patch.state !== undefined && patch.state !== 'lost' && next.stateBeforeLost !== undefined && patch.stateBeforeLost === undefined) {
      const { stateBeforeLost: _drop, ...rest } = next;
      this.vms.set(vmId, rest);
    } else {
      this.vms.set(vmId, next);
    }
    this.changedAt.set(vmId, Date.now());
    this.save();
    return this.vms.get(vmId)!;
  }

  /** Removes a record (deleted, or a failed run) and its address; journals it. Returns the record as it was. */
  remove(vmId: string): VmRecord {
    const vm = this.get(vmId);
    this.vms.delete(vmId);
    this.changedAt.delete(vmId);
    this.ipsInUse.delete(vm.ip);
    this.save();
    return vm;
  }

  /** Records a snapshot and journals it. */
  addSnapshot(snapshot: VmSnapshot): void {
    this.snapshots.set(snapshot.id, snapshot);
    this.save();
  }

  /** A snapshot by id, or undefined. */
  findSnapshot(id: string): VmSnapshot | undefined {
    return this.snapshots.get(id);
  }

  /** Snapshots of one VM, oldest first. */
  snapshotsOf(vmId: string): VmSnapshot[] {
    return [...this.snapshots.values()].filter((s) => s.vm === vmId);
  }

  /** Number of records in each API state (deleted ones are gone, so `deleted` is 0). */
  countByState(): Record<VmState, number> {
    const counts = Object.fromEntries(VM_STATES.map((s) => [s, 0])) as Record<VmState, number>;
    for (const vm of this.vms.values()) counts[vm.state]++;
    return counts;
  }

  private save(): void {
    this.journal.save({
      version: VM_JOURNAL_VERSION,
      nextVmNumber: this.nextVmNumber,
      nextSnapshotNumber: this.nextSnapshotNumber,
      vms: [...this.vms.values()],
      snapshots: [...this.snapshots.values()],
    });
  }
}

/** The API resource of a record; `withCredentials` false for events (the password stays out of the stream). */
export function toApiVm(record: VmRecord, withCredentials = true): Vm | Omit<Vm, 'credentials'> {
  const vm: Vm = {
    id: record.id,
    name: record.name,
    host: record.host,
    ip: record.ip,
    state: record.state,
    image: record.image,
    cpus: record.cpus,
    memoryBytes: record.memoryBytes,
    diskBytes: record.diskBytes,
    workload: record.workload,
    ...(record.group ? { group: record.group } : {}),
    credentials: record.credentials,
    createdAt: record.createdAt,
  };
  if (withCredentials) return vm;
  const { credentials: _c, ...rest } = vm;
  return rest;
}

/** Orders `vm-2` before `vm-10`: by prefix, then by the trailing number, then as text. */
export function compareIds(a: string, b: string): number {
  const ma = /^(.*?)(\d+)$/.exec(a);
  const mb = /^(.*?)(\d+)$/.exec(b);
  if (ma && mb && ma[1] === mb[1]) return Number(ma[2]) - Number(mb[2]);
  return a.localeCompare(b);
}
