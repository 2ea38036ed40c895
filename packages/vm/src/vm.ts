import { DirtyLog, GuestMemory, PAGE_SIZE_BYTES, readSnapshotFile, writeSnapshotFile } from '@ferry/memory';
import type { LoadedSnapshot } from '@ferry/memory';
import type { CpuPool, PlacedVcpus } from './cpu-pool.ts';
import { bootDevices, decodeDevices, encodeDevices } from './devices.ts';
import type { DeviceState } from './devices.ts';
import { InvalidThrottleError, InvalidTransitionError, InvalidVmSpecError, MemoryReleasedError, VcpuFaultError, VmError } from './errors.ts';
import { readGuestInfo } from './guest-info.ts';
import type { GuestInfo } from './guest-info.ts';
import { CTL_AT_LIMIT, CTL_PARKED, CTL_RUN, CTL_THROTTLE, controlWords, ctlIndex } from './layout.ts';
import { takeLiveSnapshot } from './live-snapshot.ts';
import type { LiveSnapshotOptions, LiveSnapshotReport } from './live-snapshot.ts';
import { RegisterBlock } from './registers.ts';
import { decodeSpec, encodeSpec, normalizeSpec } from './spec.ts';
import type { NormalizedVmSpec, VmSpec } from './spec.ts';
import { waitUntilEqual, waitWhileEqual } from './atomics-wait.ts';
import { VmEmitter } from './vm-events.ts';

/**
 * Lifecycle states:
 *
 *   created --start--> running --pause--> paused --resume--> running
 *   running|paused --suspend--> suspended --resumeSuspended--> running   (Vm.resumeFrom: in any process)
 *   created|running|paused|suspended --stop--> stopped
 *   created|stopped|suspended --delete--> deleted
 *
 * Vm.incoming makes a `paused` VM whose state comes later: until loadState() only prepareResume,
 * stop and delete are legal in it.
 */
export type VmState = 'created' | 'running' | 'paused' | 'suspended' | 'stopped' | 'deleted';

/** The register block and device state: with guest memory, all the guest is. */
export interface VmCapturedState {
  readonly registers: Uint8Array;
  readonly devices: Uint8Array;
}

/** What suspend did. */
export interface SuspendReport {
  readonly path: string;
  readonly fileBytes: number;
  /** Non-zero pages written; all others are zero. */
  readonly storedPages: number;
  readonly memoryDigest: string;
  readonly durationMs: number;
}

/** What a resume from a file did. */
export interface ResumeReport {
  readonly path: string;
  readonly fileBytes: number;
  readonly storedPages: number;
  readonly durationMs: number;
}

/**
 * Which pages of restored memory hold data: a list, or a page map (page p = bit (p & 7) of byte
 * p >> 3; much cheaper for a large VM). Neither: every page counts as written.
 */
export interface WrittenPagesOption {
  readonly writtenPages?: Iterable<number>;
  readonly writtenPageMap?: Uint8Array;
}

/** A new identity for a clone. */
export interface VmIdentity {
  readonly id: string;
  readonly name: string;
}

/**
 * A virtual machine: guest memory (one SharedArrayBuffer), a dirty log, a register block and
 * devices, with vCPUs scheduled on a CpuPool. Every lifecycle method checks the current state and
 * throws InvalidTransitionError (changing nothing) when the action is not legal in it, or while
 * another lifecycle action is still in progress.
 */
export class Vm {
  readonly id: string;
  readonly spec: NormalizedVmSpec;
  /** Device state (the virtual NIC). Mutable counters; saved with snapshots. */
  devices: DeviceState;
  private readonly pool: CpuPool;
  private readonly events = new VmEmitter();
  private current: VmState;
  private mem: GuestMemory | undefined;
  private log: DirtyLog | undefined;
  private registers: RegisterBlock;
  private control: Int32Array | undefined;
  private placed: PlacedVcpus | undefined;
  private busy: string | undefined;
  private throttlePercent = 0;
  private suspendPath: string | undefined;
  private epoch = 0;
  private releasedAtMs: number | undefined;
  /** False for a VM from Vm.incoming until loadState(): its registers and devices are placeholders. */
  private stateLoaded = true;

  private constructor(spec: NormalizedVmSpec, pool: CpuPool, memory: GuestMemory, log: DirtyLog, registers: RegisterBlock, devices: DeviceState, state: VmState) {
    this.id = spec.id;
    this.spec = spec;
    this.pool = pool;
    this.mem = memory;
    this.log = log;
    this.registers = registers;
    this.devices = devices;
    this.current = state;
  }

  /** A new VM in state `created`: zeroed memory, boot registers, fresh devices. Throws InvalidVmSpecError. */
  static create(spec: VmSpec, pool: CpuPool): Vm {
    const s = normalizeSpec(spec);
    const memory = GuestMemory.ofBytes(s.memoryBytes);
    return new Vm(s, pool, memory, new DirtyLog(memory.pageCount), RegisterBlock.boot(s.vcpus, s.workload.seed), bootDevices(s.id), 'created');
  }

  /**
   * A VM in state `paused` over existing memory and captured state (a migration's destination,
   * or boot from image memory), ready for resume(). The VM takes ownership of `memory`. Pages are
   * all treated as written (not known zero) unless `options` says which hold data.
   */
  static restore(spec: VmSpec, memory: GuestMemory, state: VmCapturedState, pool: CpuPool, options: WrittenPagesOption = {}): Vm {
    const vm = Vm.incoming(spec, memory, pool);
    vm.loadState(state, options);
    return vm;
  }

  /**
   * A migration's destination before the VM's state has arrived: state `paused` over `memory` (the
   * VM takes ownership), with placeholder registers and devices, and nothing but prepareResume,
   * stop and delete legal until loadState(). prepareResume() can place the vCPUs meanwhile (parked;
   * a workload's `create` waits for their first run), so that what is left inside the downtime,
   * loading the state and resuming, takes microseconds. Throws InvalidVmSpecError.
   */
  static incoming(spec: VmSpec, memory: GuestMemory, pool: CpuPool): Vm {
    const s = normalizeSpec(spec);
    if (memory.byteLength !== s.memoryBytes) throw new InvalidVmSpecError('memoryBytes', `spec says ${s.memoryBytes} bytes, memory holds ${memory.byteLength}`);
    const vm = new Vm(s, pool, memory, new DirtyLog(memory.pageCount), new RegisterBlock(s.vcpus), bootDevices(s.id), 'paused');
    vm.stateLoaded = false;
    return vm;
  }

  /**
   * Loads the register block and device state into a VM from Vm.incoming: legal once, while it is
   * paused, placed or not (the placed vCPUs share the register block, so they see the new values).
   * Pages are all treated as written (not known zero) unless `options` says which hold data.
   * Throws InvalidVmStateError for a malformed register block or device state, before it changes anything.
   */
  loadState(state: VmCapturedState, options: WrittenPagesOption = {}): void {
    this.check('load-state', ['paused']);
    if (this.stateLoaded) throw new InvalidTransitionError(this.id, this.current, 'load-state', 'its state is loaded already');
    const devices = decodeDevices(state.devices);
    this.registers.load(state.registers);
    this.devices = devices;
    if (options.writtenPageMap) this.dirtyLog.markEverWrittenMap(options.writtenPageMap);
    else this.dirtyLog.markEverWritten(options.writtenPages ?? allPages(this.memory.pageCount));
    this.stateLoaded = true;
  }

  /** Loads a suspend or snapshot file (any host) into a new VM; running unless `paused: true`. */
  static async resumeFrom(path: string, pool: CpuPool, options: { paused?: boolean } = {}): Promise<Vm> {
    const loaded = await readSnapshotFile(path);
    const vm = Vm.fromLoaded(loaded, decodeSpec(loaded.spec), pool, decodeDevices(loaded.devices));
    if (!options.paused) await vm.resume();
    return vm;
  }

  /** A new VM with a new id and name (and a new MAC) from a snapshot file; running unless `paused: true`. */
  static async clone(snapshotPath: string, identity: VmIdentity, pool: CpuPool, options: { paused?: boolean } = {}): Promise<Vm> {
    const loaded = await readSnapshotFile(snapshotPath);
    const spec = normalizeSpec({ ...decodeSpec(loaded.spec), id: identity.id, name: identity.name });
    const vm = Vm.fromLoaded(loaded, spec, pool, bootDevices(identity.id));
    if (!options.paused) await vm.resume();
    return vm;
  }

  private static fromLoaded(loaded: LoadedSnapshot, spec: NormalizedVmSpec, pool: CpuPool, devices: DeviceState): Vm {
    if (spec.memoryBytes !== loaded.pageCount * PAGE_SIZE_BYTES) throw new InvalidVmSpecError('memoryBytes', `spec says ${spec.memoryBytes} bytes, file holds ${loaded.pageCount} pages`);
    const log = new DirtyLog(loaded.pageCount);
    log.markEverWritten(loaded.storedPageList);
    return new Vm(spec, pool, loaded.memory, log, RegisterBlock.decode(loaded.registers, spec.vcpus), devices, 'paused');
  }

  /** The current lifecycle state. */
  get state(): VmState {
    return this.current;
  }

  /**
   * When the vCPUs were last released to run (start or resume), epoch ms on
   * `performance.timeOrigin + performance.now()`; undefined before the first time. A migration's
   * downtime ends here, not when resume()'s promise settles: the thread that released them may
   * be descheduled for milliseconds right after, by the vCPUs it woke.
   */
  get lastReleasedAtMs(): number | undefined {
    return this.releasedAtMs;
  }

  /** Guest memory. Throws MemoryReleasedError when suspended, stopped or deleted. */
  get memory(): GuestMemory {
    if (!this.mem) throw new MemoryReleasedError(this.id, this.current);
    return this.mem;
  }

  /** The dirty log. Never cleared by pause/resume; harvested only by its consumer (a migration). Throws MemoryReleasedError without memory. */
  get dirtyLog(): DirtyLog {
    if (!this.log) throw new MemoryReleasedError(this.id, this.current);
    return this.log;
  }

  /** Subscribes to `state-changed` or `vcpu-faulted`; returns the unsubscribe function. */
  on: VmEmitter['on'] = (event, listener) => this.events.on(event, listener);

  /** created → running: places the vCPUs on the pool and lets them run. */
  async start(): Promise<void> {
    await this.transition('start', ['created'], 'running', () => this.attach(true));
  }

  /** running → paused: resolves once every vCPU finished its current step, parked and acknowledged. */
  async pause(): Promise<void> {
    await this.transition('pause', ['running'], 'paused', () => this.park());
  }

  /** paused → running. The dirty log is left as it is. */
  async resume(): Promise<void> {
    await this.transition('resume', ['paused'], 'running', async () => {
      if (this.placed) this.unpark();
      else await this.attach(true);
    });
  }

  /**
   * Legal when paused: places the vCPUs on the pool, parked, if they are not placed yet (a VM from
   * restore/resumeFrom/clone places them on its first resume). The state stays `paused`; the next
   * resume() then only unparks them. A migration's destination calls it before the commit so that
   * activation does not wait for the pCPU workers. No-op when the vCPUs are placed already.
   */
  async prepareResume(): Promise<void> {
    this.check('prepare-resume', ['paused']);
    if (this.placed) return;
    this.busy = 'prepare-resume';
    try {
      await this.attach(false);
    } finally {
      this.busy = undefined;
    }
  }

  /**
   * running|paused → suspended: parks the vCPUs, writes memory, registers and devices to `path`
   * atomically, then releases the memory (this process holds none of it afterwards). On a write
   * error the VM stays in its state (a running VM runs again).
   */
  async suspend(path: string): Promise<SuspendReport> {
    const started = performance.now();
    let report: SuspendReport | undefined;
    await this.transition('suspend', ['running', 'paused'], 'suspended', async () => {
      const wasRunning = this.current === 'running';
      await this.park();
      try {
        const state = this.captureStateUnchecked();
        const info = await writeSnapshotFile(path, this.memory, { spec: encodeSpec(this.spec), ...state });
        report = { path, fileBytes: info.fileBytes, storedPages: info.storedPages, memoryDigest: info.memoryDigest, durationMs: 0 };
      } catch (err) {
        if (wasRunning) this.unpark();
        throw err;
      }
      await this.release();
      this.suspendPath = path;
    });
    return { ...report!, durationMs: performance.now() - started };
  }

  /** suspended → running, from the file this VM was suspended to. Throws SnapshotFileError if the file is refused. */
  async resumeSuspended(): Promise<ResumeReport> {
    const started = performance.now();
    let report: ResumeReport | undefined;
    await this.transition('resume-suspended', ['suspended'], 'running', async () => {
      const path = this.suspendPath!;
      const loaded = await readSnapshotFile(path);
      const spec = decodeSpec(loaded.spec);
      if (spec.id !== this.id) throw new InvalidVmSpecError('id', `file ${path} holds vm ${spec.id}, not ${this.id}`);
      const registers = RegisterBlock.decode(loaded.registers, this.spec.vcpus);
      this.devices = decodeDevices(loaded.devices);
      this.registers = registers;
      this.mem = loaded.memory;
      this.log = new DirtyLog(loaded.pageCount);
      this.log.markEverWritten(loaded.storedPageList);
      try {
        await this.attach(true);
      } catch (err) {
        await this.release();
        throw err;
      }
      report = { path, fileBytes: loaded.fileBytes, storedPages: loaded.storedPages, durationMs: 0 };
    });
    return { ...report!, durationMs: performance.now() - started };
  }

  /**
   * A point-in-time snapshot into `path` while the VM keeps running (legal when running or paused;
   * the state does not change): iterative copy rounds using the dirty log, then a short pause for
   * the last pages. The report gives the rounds and the pause.
   */
  async snapshot(path: string, options: LiveSnapshotOptions = {}): Promise<LiveSnapshotReport> {
    this.check('snapshot', ['running', 'paused']);
    this.busy = 'snapshot';
    try {
      return await takeLiveSnapshot(
        {
          vmId: this.id,
          memory: this.memory,
          dirtyLog: this.dirtyLog,
          running: this.current === 'running',
          park: () => this.park(),
          unpark: () => this.unpark(),
          state: () => ({ spec: encodeSpec(this.spec), ...this.captureStateUnchecked() }),
        },
        path,
        options,
      );
    } finally {
      this.busy = undefined;
    }
  }

  /** created|running|paused|suspended → stopped: the vCPUs leave the pool and memory is released. */
  async stop(): Promise<void> {
    await this.transition('stop', ['created', 'running', 'paused', 'suspended'], 'stopped', () => this.release());
  }

  /** created|stopped|suspended → deleted. Files written by suspend or snapshot are left to the caller. */
  async delete(): Promise<void> {
    await this.transition('delete', ['created', 'stopped', 'suspended'], 'deleted', () => this.release());
  }

  /** The register block and device state. Legal only when paused. */
  captureState(): VmCapturedState {
    this.check('capture-state', ['paused']);
    return this.captureStateUnchecked();
  }

  /** Slows every vCPU to (100 - percent)% of its speed; 0 = full speed. Legal in created, running and paused. */
  setThrottle(percent: number): void {
    if (!Number.isInteger(percent) || percent < 0 || percent > 99) throw new InvalidThrottleError(percent);
    if (!['created', 'running', 'paused'].includes(this.current)) throw new InvalidTransitionError(this.id, this.current, 'set-throttle');
    this.throttlePercent = percent;
    if (this.control) Atomics.store(this.control, CTL_THROTTLE, percent);
  }

  /** The throttle percent set last. */
  throttle(): number {
    return this.throttlePercent;
  }

  /** Steps executed over all vCPUs (from the register block; legal in every state). */
  totalSteps(): number {
    return this.registers.totalSteps();
  }

  /** Steps executed by vCPU `k`. */
  vcpuSteps(k: number): number {
    return this.registers.steps(k);
  }

  /** What the guest stamped into its guest-info page, or undefined (heartbeat off or not run yet). Needs memory. */
  guestInfo(): GuestInfo | undefined {
    return readGuestInfo(this.memory);
  }

  /**
   * Resolves when every vCPU has executed exactly spec.stepLimit steps (the VM stays running,
   * idle). Rejects if the spec has no step limit, or if the VM is stopped or deleted meanwhile.
   */
  async whenStepLimitReached(): Promise<void> {
    const limit = this.spec.stepLimit;
    if (limit === undefined) throw new VmError('FERRY_ERR_VM_NO_STEP_LIMIT', `vm ${this.id} has no stepLimit`);
    for (;;) {
      let lagging = -1;
      for (let k = 0; k < this.spec.vcpus; k++) {
        if (this.registers.steps(k) < limit) {
          lagging = k;
          break;
        }
      }
      if (lagging < 0) return;
      if (this.current === 'stopped' || this.current === 'deleted') throw new InvalidTransitionError(this.id, this.current, 'wait-step-limit');
      const ctl = this.control;
      if (ctl) await waitWhileEqual(ctl, ctlIndex(lagging, CTL_AT_LIMIT), 0, 50);
      else await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  // ---- internals --------------------------------------------------------------------------

  private check(action: string, allowed: readonly VmState[]): void {
    if (this.busy) throw new InvalidTransitionError(this.id, this.current, action, `${this.busy} in progress`);
    if (!allowed.includes(this.current)) throw new InvalidTransitionError(this.id, this.current, action);
    if (!this.stateLoaded && !STATELESS_ACTIONS.includes(action)) throw new InvalidTransitionError(this.id, this.current, action, 'its state is not loaded yet (loadState)');
  }

  private async transition(action: string, allowed: readonly VmState[], to: VmState, work: () => Promise<void> | void): Promise<void> {
    this.check(action, allowed);
    this.busy = action;
    const from = this.current;
    try {
      await work();
      this.current = to;
    } finally {
      this.busy = undefined;
    }
    this.events.emit('state-changed', { vmId: this.id, from, to, action, atMs: performance.timeOrigin + performance.now() });
  }

  private captureStateUnchecked(): VmCapturedState {
    return { registers: this.registers.encode(), devices: encodeDevices(this.devices) };
  }

  private async attach(run: boolean): Promise<void> {
    const memory = this.memory;
    const control = new Int32Array(new SharedArrayBuffer(controlWords(this.spec.vcpus) * 4));
    control[CTL_RUN] = run ? 1 : 0;
    control[CTL_THROTTLE] = this.throttlePercent;
    this.epoch++;
    const w = this.spec.workload;
    const bindings = Array.from({ length: this.spec.vcpus }, (_, k) => ({
      key: `${this.id}#${k}@${this.epoch}`,
      vmId: this.id,
      vcpu: k,
      vcpuCount: this.spec.vcpus,
      pageCount: memory.pageCount,
      memory: memory.buffer,
      dirtyBitmap: this.dirtyLog.buffer,
      registers: this.registers.buffer,
      control: control.buffer as SharedArrayBuffer,
      workloadKind: w.kind,
      ...(w.modulePath !== undefined ? { modulePath: w.modulePath } : {}),
      rate: w.rate / this.spec.vcpus,
      params: w.params,
      heartbeat: this.spec.heartbeat,
      stepLimit: this.spec.stepLimit ?? 0,
      deferCreate: !this.stateLoaded,
    }));
    this.control = control;
    this.placed = await this.pool.attach(bindings, (vcpu, message) => this.events.emit('vcpu-faulted', new VcpuFaultError(this.id, vcpu, message)));
    if (run) this.releasedAtMs = performance.timeOrigin + performance.now(); // running from here on, at the latest
    this.pool.ring(this.placed);
  }

  /** Asks every vCPU to park and resolves once all acknowledged. */
  private async park(): Promise<void> {
    const ctl = this.control;
    if (!ctl || !this.placed || this.pool.isClosed) return; // a closed pool runs nothing: already parked
    Atomics.store(ctl, CTL_RUN, 0);
    this.pool.ring(this.placed);
    for (let k = 0; k < this.spec.vcpus; k++) await waitUntilEqual(ctl, ctlIndex(k, CTL_PARKED), 1);
  }

  private unpark(): void {
    if (!this.control || !this.placed) return;
    this.releasedAtMs = performance.timeOrigin + performance.now();
    Atomics.store(this.control, CTL_RUN, 1);
    this.pool.ring(this.placed);
  }

  /** Parks and detaches the vCPUs and drops every reference to guest memory and the dirty log. */
  private async release(): Promise<void> {
    if (this.placed) {
      await this.park();
      await this.pool.detach(this.placed);
    }
    this.placed = undefined;
    this.control = undefined;
    this.mem = undefined;
    this.log = undefined;
  }
}

/** What a VM from Vm.incoming allows before loadState(). */
const STATELESS_ACTIONS: readonly string[] = ['load-state', 'prepare-resume', 'stop', 'delete'];

function* allPages(pageCount: number): Generator<number> {
  for (let p = 0; p < pageCount; p++) yield p;
}
