/**
 * The real hypervisor of an agent: runs VMs (packages/vm) on one CpuPool, provisions them from an
 * image library (@ferry/images) in the agent's data dir, answers the coordinator's VM requests
 * (vm-create, vm-action, vm-snapshot, vm-clone, vm-wws, vm-digest, vm-capture), sends and receives live
 * migrations (vm-host-outgoing.ts, vm-host-incoming.ts), reports its VMs in every register and
 * heartbeat, notifies `vm-state-changed`, and answers probes (probe.ts).
 *
 * Data dir layout (created on first use): `images/` (the library), `suspend/<vmId>.snap`,
 * `snapshots/<snapshotId>.snap`, `image-transfers/` (image files in transit, vm-host-images.ts).
 *
 * Exclusivity: one harvester of a VM's dirty log at a time. A VM held by an outgoing migration
 * (`migrationId` set) refuses every request but `vm-digest`; a VM being sampled (`vm-wws`) or
 * snapshotted refuses a migration.
 */
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { join } from 'node:path';
import { GuestMemory, MemoryPool, memoryDigest, startPrefault, type Prefault } from '@ferry/memory';
import { CpuPool, Vm, normalizeSpec, predictPrecopy, readHeartbeatMs, sampleWritableWorkingSet, type NormalizedVmSpec, type PrecopyPrediction, type VmSpec, type WorkloadKind, type WwsSampling } from '@ferry/vm';
import { ImageLibrary } from '@ferry/images';
import type {
  AgentToCoordinatorMessage,
  CoordinatorToAgentMessage,
  VmActionMessage,
  VmCloneMessage,
  VmCreateMessage,
  VmReport,
  VmSpecWire,
  VmWwsMessage,
  WwsPrediction,
} from '@ferry/protocol';
import type { CoordinatorLink, IncomingMigrationChannel, Reservation, ReservationBook, VmHost } from './vm-host.ts';
import type { Logger } from './logger.ts';
import { OutgoingMigrations } from './vm-host-outgoing.ts';
import { acceptIncoming } from './vm-host-incoming.ts';
import type { ProbeResult } from './probe.ts';
import { captureVm, ensureImage, type CoordinatorAccess } from './vm-host-images.ts';

/** Options of LocalVmHost. */
export interface LocalVmHostOptions {
  /** The agent's data dir (images, suspend files, snapshots). Created on first use. */
  readonly dataDir: string;
  /** pCPU worker threads of the pool. Default 2. */
  readonly pcpus?: number;
  /** Time slice of the pool, ms. Default 2. */
  readonly sliceMs?: number;
  readonly logger: Logger;
  /** Open the image library with the built-in appliances. Default true. */
  readonly builtInImages?: boolean;
  /** Start the vCPU worker threads when bound to the agent, not at the first VM. Default true. */
  readonly warmUp?: boolean;
  /**
   * Guest memory of departed VMs kept resident (zeroed) for the next incoming VM of the same size,
   * at most this many bytes for 30 s (see @ferry/memory MemoryPool). Default 0: none kept.
   */
  readonly memoryPoolBytes?: number;
  /**
   * On close, suspend every VM to `<dataDir>/suspend/` (with a note of its state) instead of
   * stopping it; the next LocalVmHost on the same data dir brings them back in restore(): running
   * ones run again, paused ones stay paused, suspended ones stay suspended (libvirt-guests'
   * ON_SHUTDOWN=suspend). The agent process sets it; tests that only clean up leave it off.
   */
  readonly suspendOnClose?: boolean;
  /**
   * The coordinator's URL and the cluster token, for image files over HTTP (vm-host-images.ts):
   * uploads of `vm-capture` and downloads of images this library lacks. Without it both fail.
   */
  readonly coordinator?: CoordinatorAccess;
}

/** A VM this host runs, with what the agent knows about it beyond the Vm. */
export interface VmEntry {
  vm: Vm;
  readonly spec: NormalizedVmSpec;
  readonly image: string | undefined;
  /** An outgoing migration holds the VM. */
  migrationId: string | undefined;
  /** A non-lifecycle operation using the dirty log (`wws`, `snapshot`). */
  busy: string | undefined;
  /** Where the VM was suspended to (state `suspended`). */
  suspendPath: string | undefined;
  off: () => void;
}

/** An error with a stable code, sent back as `request-failed`. */
export class VmHostError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'VmHostError';
    this.code = code;
  }
}

/** The agent's VM host. */
export class LocalVmHost implements VmHost {
  readonly dataDir: string;
  readonly logger: Logger;
  /** VMs by id. */
  readonly vms = new Map<string, VmEntry>();
  private readonly options: LocalVmHostOptions;
  private poolInstance: CpuPool | undefined;
  private library: Promise<ImageLibrary> | undefined;
  private linkRef: CoordinatorLink | undefined;
  private readonly outgoing: OutgoingMigrations;
  /** Incoming migrations by id (receiver running). */
  readonly incoming = new Map<string, { commit(): void; abort(): void }>();
  private closed = false;
  private warming: Promise<void> | undefined;
  /** Memory of departed VMs, zeroed, for incoming migrations (see memoryPoolBytes). */
  readonly memoryPool: MemoryPool;
  /** Memory handed out by the pool: resident already, nothing to pre-fault. */
  private readonly residentMemory = new WeakSet<GuestMemory>();

  constructor(options: LocalVmHostOptions) {
    this.options = options;
    this.dataDir = options.dataDir;
    this.logger = options.logger;
    this.outgoing = new OutgoingMigrations(this);
    this.memoryPool = new MemoryPool({ maxBytes: options.memoryPoolBytes ?? 0, onDrop: releaseMemorySoon });
    deferCollectionsWhile(() => this.incoming.size > 0 || this.outgoing.active > 0);
  }

  /**
   * Memory for an incoming VM: a pooled buffer of that size (waiting for its zeroing if need be),
   * else fresh memory, and then the pool lets go of what it holds: RSS stays one VM's worth.
   */
  async allocateIncoming(pageCount: number): Promise<GuestMemory> {
    const pooled = await this.memoryPool.take(pageCount);
    if (pooled) {
      this.residentMemory.add(pooled);
      this.logger.debug({ event: 'memory-pool-reused', bytes: pooled.byteLength }, 'incoming VM reuses pooled memory');
      return pooled;
    }
    this.memoryPool.clear();
    return new GuestMemory(pageCount);
  }

  /** Pre-faults fresh incoming memory on a worker (see startPrefault); pooled memory is resident already. */
  prefaultIncoming(memory: GuestMemory, pages: Uint8Array): Pick<Prefault, 'stop'> {
    return this.residentMemory.has(memory) ? { stop: () => Promise.resolve() } : startPrefault(memory, pages);
  }

  /**
   * Runs `release` (stop, delete) and hands the memory the VM held before it to the pool, zeroing
   * only its "ever written" pages, once the VM holds no memory any more (its vCPUs detached). The
   * caller guarantees nothing else reads it (a finished migration stream has been drained).
   */
  async releasing(vm: Vm, release: () => Promise<void>): Promise<void> {
    const held = vm.state === 'created' || vm.state === 'running' || vm.state === 'paused' ? { memory: vm.memory, log: vm.dirtyLog } : undefined;
    await release();
    if (held && !this.closed && (vm.state === 'stopped' || vm.state === 'deleted')) this.memoryPool.give(held.memory, held.log.everWrittenBitmap());
  }

  /** The CPU pool (created with the first VM). */
  get pool(): CpuPool {
    this.poolInstance ??= new CpuPool({ pcpus: this.options.pcpus ?? 2, sliceMs: this.options.sliceMs ?? 2 });
    return this.poolInstance;
  }

  /** The coordinator link (bound by the agent core). */
  get link(): CoordinatorLink {
    if (!this.linkRef) throw new Error('VM host not bound to an agent');
    return this.linkRef;
  }

  bind(link: CoordinatorLink): void {
    this.linkRef = link;
    if (this.options.warmUp ?? true) this.warming = this.warmUp();
  }

  /**
   * Starts the pool's worker threads with a throw-away 3-page VM, so the first real VM (often a
   * migration's destination, inside its downtime) does not pay for bundling and spawning the
   * vCPU workers (~0.15–0.5 s). Failures are logged and ignored.
   */
  private async warmUp(): Promise<void> {
    try {
      const vm = Vm.create({ id: '__warm-up', name: 'warm-up', vcpus: 1, memoryBytes: 3 * 4096, workload: { kind: 'idle' }, heartbeat: false }, this.pool);
      await vm.start();
      await vm.stop();
      await vm.delete();
    } catch (err) {
      this.logger.warn({ event: 'vm-pool-warm-up-failed', err: (err as Error).message }, 'could not warm up the vCPU pool');
    }
  }

  /** The agent's reservation book (once bound). */
  get reservations(): ReservationBook | undefined {
    return this.linkRef?.reservations;
  }

  /** Sends a notification to the coordinator if connected (dropped otherwise: heartbeats carry the state). */
  notify(message: AgentToCoordinatorMessage): void {
    this.linkRef?.send(message);
  }

  listVms(): VmReport[] {
    return [...this.vms.values()].map((e) => this.report(e));
  }

  /** The report of one VM. */
  report(e: VmEntry): VmReport {
    return {
      vmId: e.spec.id,
      state: e.vm.state,
      memoryBytes: e.spec.memoryBytes,
      cpus: e.spec.vcpus,
      name: e.spec.name,
      ...(e.image !== undefined ? { image: e.image } : {}),
      workload: { kind: e.spec.workload.kind, seed: e.spec.workload.seed, rate: e.spec.workload.rate, params: { ...e.spec.workload.params } },
      ...(e.migrationId !== undefined ? { migrationId: e.migrationId } : {}),
      totalSteps: e.vm.totalSteps(),
    };
  }

  acceptIncomingMigration(channel: IncomingMigrationChannel, reservation: Reservation): void {
    acceptIncoming(this, channel, reservation);
  }

  onCoordinatorMessage(message: CoordinatorToAgentMessage, reply: (m: AgentToCoordinatorMessage) => void): boolean {
    const respond = (requestId: string, work: () => Promise<AgentToCoordinatorMessage>): void => {
      work().then(reply, (err: unknown) => {
        const e = err as { code?: string; message?: string };
        this.logger.warn({ event: 'vm-request-failed', type: message.type, code: e.code, err: e.message }, 'VM request failed');
        reply({ type: 'request-failed', requestId, code: e.code ?? 'FERRY_ERR_INTERNAL', message: e.message ?? String(err) });
      });
    };
    switch (message.type) {
      case 'vm-create':
        respond(message.requestId, () => this.create(message));
        return true;
      case 'vm-action':
        respond(message.requestId, () => this.action(message));
        return true;
      case 'vm-snapshot':
        respond(message.requestId, () => this.snapshot(message.vmId, message.snapshotId, message.requestId));
        return true;
      case 'vm-clone':
        respond(message.requestId, () => this.clone(message));
        return true;
      case 'vm-wws':
        respond(message.requestId, () => this.wws(message));
        return true;
      case 'vm-capture':
        respond(message.requestId, () => captureVm(this, message, this.options.coordinator));
        return true;
      case 'vm-digest':
        respond(message.requestId, async () => {
          const e = this.entry(message.vmId);
          // Steps first: a running VM keeps stepping while its memory is hashed, so the digest
          // covers at least `totalSteps` steps, and once they reach the step limit it is final.
          const totalSteps = e.vm.totalSteps();
          return { type: 'vm-digested', requestId: message.requestId, vmId: message.vmId, totalSteps, digest: memoryDigest(e.vm.memory), state: e.vm.state };
        });
        return true;
      case 'migration-start':
        respond(message.requestId, () => this.outgoing.start(message));
        return true;
      case 'migration-decision':
        // Sent to both ends: the source releases (or resumes) its VM; the destination activates on commit.
        this.outgoing.decide(message.migrationId, message.decision);
        if (message.decision === 'commit') this.incoming.get(message.migrationId)?.commit();
        return true;
      case 'migration-cancel':
        this.outgoing.cancel(message.migrationId, message.reason);
        return true;
      default:
        return false;
    }
  }

  /**
   * Answers a probe: resolves `ok` with the guest heartbeat once it is newer than `afterMs` (so a
   * paused VM does not answer), `not-here` when the VM is not (or no longer) running here.
   */
  async probe(vmId: string, afterMs: number, timeoutMs: number): Promise<ProbeResult> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const e = this.vms.get(vmId);
      if (!e || e.vm.state === 'deleted' || e.vm.state === 'stopped' || e.vm.state === 'suspended') return { status: 'not-here' };
      const hb = e.vm.state === 'created' ? undefined : readHeartbeatMs(e.vm.memory);
      if (hb !== undefined && hb > afterMs) return { status: 'ok', heartbeatMs: hb };
      if (performance.now() >= deadline) return { status: 'timeout' };
      await new Promise((r) => setTimeout(r, 0));
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.warming;
    this.outgoing.abortAll('agent shutting down');
    for (const inc of this.incoming.values()) inc.abort();
    for (const e of this.vms.values()) {
      e.off();
      try {
        if (this.options.suspendOnClose && (await this.putAway(e))) continue;
        if (['created', 'running', 'paused', 'suspended'].includes(e.vm.state)) await e.vm.stop();
      } catch (err) {
        this.logger.error({ event: 'vm-shutdown-failed', vmId: e.spec.id, err: (err as Error).message }, 'could not put the VM away at shutdown; it is stopped');
      }
    }
    this.vms.clear();
    this.memoryPool.close();
    await this.poolInstance?.close();
    if (this.library) await (await this.library).close().catch(() => {});
  }

  // ----- requests ----------------------------------------------------------------------------

  /** A VM this host runs; throws FERRY_ERR_UNKNOWN_VM. */
  entry(vmId: string): VmEntry {
    const e = this.vms.get(vmId);
    if (!e) throw new VmHostError('FERRY_ERR_UNKNOWN_VM', `no vm ${vmId} on this host`);
    return e;
  }

  /** A VM free for a request: not held by a migration or another dirty-log user. */
  private free(vmId: string): VmEntry {
    const e = this.entry(vmId);
    if (e.migrationId) throw new VmHostError('FERRY_ERR_INVALID_STATE', `vm ${vmId} is migrating (${e.migrationId})`);
    if (e.busy) throw new VmHostError('FERRY_ERR_INVALID_STATE', `vm ${vmId} is busy (${e.busy})`);
    return e;
  }

  /** Adds a VM to the table and forwards its state changes. */
  adopt(vm: Vm, spec: NormalizedVmSpec, image: string | undefined, suspendPath?: string): VmEntry {
    const entry: VmEntry = { vm, spec, image, migrationId: undefined, busy: undefined, suspendPath, off: () => {} };
    const offState = vm.on('state-changed', (change) => {
      this.logger.info({ event: 'vm-state-changed', vmId: spec.id, from: change.from, to: change.to, action: change.action }, 'vm state changed');
    });
    const offFault = vm.on('vcpu-faulted', (err) => {
      this.logger.error({ event: 'vm-vcpu-faulted', vmId: spec.id, err: err.message }, 'vCPU faulted');
      this.notify({ type: 'vm-state-changed', vm: this.report(entry), reason: `vcpu fault: ${err.message}` });
    });
    entry.off = () => {
      offState();
      offFault();
    };
    this.vms.set(spec.id, entry);
    return entry;
  }

  /** Drops a VM from the table (after delete or a completed outgoing migration) and returns its memory to the OS soon. */
  forget(vmId: string): void {
    const e = this.vms.get(vmId);
    e?.off();
    this.vms.delete(vmId);
    releaseMemorySoon(); // the pCPU workers collect on their side when a vCPU detaches
  }

  /**
   * Creates a VM, provisioned from its image with its run-time configuration, and starts it if
   * asked. A VM of that id that is `stopped` here is replaced once the new one is up (a start after
   * a stop boots afresh: the stopped VM's memory is gone); any other existing one is refused.
   */
  private async create(m: VmCreateMessage): Promise<AgentToCoordinatorMessage> {
    const previous = this.vms.get(m.spec.id);
    if (previous && (previous.vm.state !== 'stopped' || previous.migrationId !== undefined || previous.busy !== undefined)) {
      throw new VmHostError('FERRY_ERR_INVALID_STATE', `vm ${m.spec.id} already exists on this host (${previous.vm.state})`);
    }
    const spec = normalizeSpec(toVmSpec(m.spec));
    const vm = Vm.create(spec, this.pool);
    let imagePages = 0;
    try {
      if (m.image !== undefined) {
        const library = await this.images();
        await ensureImage(this, library, m.image, spec.memoryBytes, this.options.coordinator);
        const config = m.config ?? { instanceId: spec.id, hostname: spec.name || spec.id, ip: '0.0.0.0', accessRules: [], user: 'ferry', password: '' };
        const report = await library.provision(m.image, vm.memory, vm.dirtyLog, config);
        imagePages = report.pagesCopied;
      }
      // Started before it is listed: a heartbeat never reports a VM that is only half up.
      if (m.start) await vm.start();
      if (previous) {
        if (this.vms.get(spec.id) !== previous || previous.vm.state !== 'stopped') throw new VmHostError('FERRY_ERR_INVALID_STATE', `vm ${spec.id} changed while it was being booted again`);
        this.forget(spec.id);
        await previous.vm.delete().catch(() => {});
      }
      const entry = this.adopt(vm, spec, m.image);
      this.logger.info({ event: 'vm-created', vmId: spec.id, image: m.image, image_pages: imagePages, memory_bytes: spec.memoryBytes, started: m.start }, 'vm created');
      return { type: 'vm-created', requestId: m.requestId, vm: this.report(entry), imagePages };
    } catch (err) {
      if (this.vms.get(spec.id)?.vm === vm || !previous) this.forget(spec.id); // a stopped VM it was to replace stays
      await vm.stop().catch(() => {});
      throw err;
    }
  }

  private async action(m: VmActionMessage): Promise<AgentToCoordinatorMessage> {
    const e = this.free(m.vmId);
    const vm = e.vm;
    switch (m.action) {
      case 'start':
        await vm.start();
        break;
      case 'stop':
        await this.releasing(vm, () => vm.stop());
        break;
      case 'pause':
        await vm.pause();
        break;
      case 'resume':
        if (vm.state === 'suspended') {
          await vm.resumeSuspended();
          await this.removeFile(e.suspendPath);
          e.suspendPath = undefined;
        } else await vm.resume();
        break;
      case 'suspend': {
        const path = join(await this.dir('suspend'), `${m.vmId}.snap`);
        const r = await vm.suspend(path);
        e.suspendPath = path;
        this.logger.info({ event: 'vm-suspended', vmId: m.vmId, file_bytes: r.fileBytes, duration_ms: r.durationMs }, 'vm suspended');
        break;
      }
      case 'delete': {
        await this.releasing(vm, async () => {
          if (vm.state === 'running' || vm.state === 'paused') await vm.stop();
          await vm.delete();
        });
        await this.removeFile(e.suspendPath);
        const report = this.report(e);
        this.forget(m.vmId);
        return { type: 'vm-updated', requestId: m.requestId, vm: report };
      }
    }
    return { type: 'vm-updated', requestId: m.requestId, vm: this.report(e) };
  }

  private async snapshot(vmId: string, snapshotId: string, requestId: string): Promise<AgentToCoordinatorMessage> {
    const e = this.free(vmId);
    const path = join(await this.dir('snapshots'), `${snapshotId}.snap`);
    e.busy = 'snapshot';
    try {
      const r = await e.vm.snapshot(path);
      this.logger.info({ event: 'vm-snapshotted', vmId, snapshotId, file_bytes: r.fileBytes, pause_ms: r.pauseMs }, 'snapshot taken');
      return { type: 'snapshot-taken', requestId, vmId, snapshotId, memoryBytes: e.spec.memoryBytes, fileBytes: r.fileBytes, durationMs: r.durationMs, pauseMs: r.pauseMs };
    } finally {
      e.busy = undefined;
    }
  }

  private async clone(m: VmCloneMessage): Promise<AgentToCoordinatorMessage> {
    if (this.vms.has(m.newVmId)) throw new VmHostError('FERRY_ERR_INVALID_STATE', `vm ${m.newVmId} already exists on this host`);
    const path = join(this.dataDir, 'snapshots', `${m.snapshotId}.snap`);
    const vm = await Vm.clone(path, { id: m.newVmId, name: m.name }, this.pool, { paused: !m.start });
    const entry = this.adopt(vm, vm.spec, undefined);
    return { type: 'vm-created', requestId: m.requestId, vm: this.report(entry), imagePages: 0 };
  }

  private async wws(m: VmWwsMessage): Promise<AgentToCoordinatorMessage> {
    const e = this.free(m.vmId);
    if (e.vm.state !== 'running') throw new VmHostError('FERRY_ERR_INVALID_STATE', `vm ${m.vmId} is ${e.vm.state}; sampling needs it running`);
    e.busy = 'wws';
    try {
      // Stops early if the VM stops running (its dirty log then says nothing about a workload).
      const stopped = new AbortController();
      const off = e.vm.on('state-changed', (change) => {
        if (change.to !== 'running') stopped.abort();
      });
      let sampling: WwsSampling;
      try {
        sampling = await sampleWritableWorkingSet(e.vm, { samples: m.samples, intervalMs: m.intervalMs, signal: stopped.signal });
      } finally {
        off();
      }
      const prediction = m.predictAt && sampling.samples.length > 0 ? predictionWire(predictPrecopy(sampling, m.predictAt), m.predictAt.maxDowntimeMs) : undefined;
      return { type: 'wws-sampled', requestId: m.requestId, vmId: m.vmId, samples: sampling.samples, wwsPages: sampling.wwsPages, memoryBytes: e.spec.memoryBytes, ...(prediction ? { prediction } : {}) };
    } finally {
      e.busy = undefined;
    }
  }

  // ----- shutdown and restart ----------------------------------------------------------------

  /** Suspends `e` to its file (if it is not suspended already) and notes its state; false if it cannot be kept. */
  private async putAway(e: VmEntry): Promise<boolean> {
    const state = e.vm.state;
    if (state !== 'running' && state !== 'paused' && state !== 'suspended') return false;
    const dir = await this.dir('suspend');
    let path = e.suspendPath;
    if (state !== 'suspended') {
      path = join(dir, `${e.spec.id}.snap`);
      await e.vm.suspend(path);
    }
    const note: ShutdownNote = { vmId: e.spec.id, state, file: path!, ...(e.image !== undefined ? { image: e.image } : {}) };
    const notePath = join(dir, `${e.spec.id}${SHUTDOWN_NOTE_SUFFIX}`);
    await writeFile(`${notePath}.tmp`, JSON.stringify(note));
    await rename(`${notePath}.tmp`, notePath);
    this.logger.info({ event: 'vm-put-away', vmId: e.spec.id, state }, 'VM suspended for the shutdown');
    return true;
  }

  /** Brings back the VMs the last shutdown put away (see suspendOnClose). A note that cannot be used is logged and left. */
  async restore(): Promise<void> {
    const dir = await this.dir('suspend');
    for (const name of (await readdir(dir)).filter((n) => n.endsWith(SHUTDOWN_NOTE_SUFFIX))) {
      const notePath = join(dir, name);
      try {
        const note = JSON.parse(await readFile(notePath, 'utf8')) as ShutdownNote;
        if (this.vms.has(note.vmId)) throw new Error(`vm ${note.vmId} exists already`);
        const vm = await Vm.resumeFrom(note.file, this.pool, { paused: note.state !== 'running' });
        if (note.state === 'suspended') await vm.suspend(note.file);
        else await this.removeFile(note.file);
        const entry = this.adopt(vm, vm.spec, note.image, note.state === 'suspended' ? note.file : undefined);
        await rm(notePath, { force: true });
        this.logger.info({ event: 'vm-brought-back', vmId: entry.spec.id, state: vm.state }, 'VM brought back from the last shutdown');
      } catch (err) {
        this.logger.error({ event: 'vm-bring-back-failed', note: notePath, err: (err as Error).message }, 'could not bring a VM back from the last shutdown');
      }
    }
  }

  // ----- helpers -----------------------------------------------------------------------------

  /** The image library (opened on first use). */
  images(): Promise<ImageLibrary> {
    this.library ??= this.dir('images').then((d) => ImageLibrary.open(d, { builtIns: this.options.builtInImages ?? true }));
    return this.library;
  }

  /** A subdirectory of the data dir, created if missing. */
  async dir(name: string): Promise<string> {
    const d = join(this.dataDir, name);
    await mkdir(d, { recursive: true });
    return d;
  }

  /** Removes a file if given (suspend files of VMs that moved or were deleted). */
  async removeFile(path: string | undefined): Promise<void> {
    if (path) await rm(path, { force: true });
  }
}

/** The wire spec as a packages/vm spec (the kind is checked by normalizeSpec). */
export function toVmSpec(w: VmSpecWire): VmSpec {
  return {
    id: w.id,
    name: w.name,
    vcpus: w.vcpus,
    memoryBytes: w.memoryBytes,
    workload: {
      kind: w.workload.kind as WorkloadKind,
      ...(w.workload.seed !== undefined ? { seed: w.workload.seed } : {}),
      ...(w.workload.rate !== undefined ? { rate: w.workload.rate } : {}),
      ...(w.workload.modulePath !== undefined ? { modulePath: w.workload.modulePath } : {}),
      ...(w.workload.params !== undefined ? { params: w.workload.params } : {}),
    },
    ...(w.heartbeat !== undefined ? { heartbeat: w.heartbeat } : {}),
    ...(w.stepLimit !== undefined ? { stepLimit: w.stepLimit } : {}),
  };
}

let gc: (() => void) | undefined | null;
let gcTimer: NodeJS.Timeout | undefined;
let gcLateTimer: NodeJS.Timeout | undefined;

/** What a shutdown noted beside a VM's suspend file (`<vmId>.shutdown.json`). */
interface ShutdownNote {
  readonly vmId: string;
  /** Its state when the agent shut down: the state it comes back in. */
  readonly state: 'running' | 'paused' | 'suspended';
  readonly file: string;
  readonly image?: string;
}

const SHUTDOWN_NOTE_SUFFIX = '.shutdown.json';

/** The wire form of a pre-copy prediction. */
function predictionWire(p: PrecopyPrediction, maxDowntimeMs: number): WwsPrediction {
  return { bandwidthBytesPerSec: p.bandwidthBytesPerSec, maxDowntimeMs, rounds: p.rounds.length, finalPages: p.finalPages, downtimeMs: p.downtimeMs, totalMs: p.totalMs, stopReason: p.stopReason };
}

/** Delays of the collections after a release: soon, and once more when migration streams have closed. */
const GC_DELAYS_MS = [50, 1000] as const;

/**
 * Guest memory is a SharedArrayBuffer: V8 frees it only when the object is collected, and a
 * mostly idle agent may not collect for minutes, so a VM that left (migrated out, deleted) would
 * keep its memory resident next to the next one. After a release, run a full collection 50 ms
 * later, and again 1 s later (a finished migration's stream and engine objects, which still
 * reference the memory, are dropped only once the WebSocket close handshake is over); each
 * debounced, and postponed (up to 10 s) while a migration runs on this host: a full collection
 * stops the event loop for milliseconds, which inside a downtime window is downtime. Uses V8's gc through `--expose-gc` set at run time; a no-op if unavailable.
 */
export function releaseMemorySoon(): void {
  if (gc === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as () => void;
    } catch {
      gc = null;
    }
  }
  if (!gc) return;
  gcTimer ??= later(GC_DELAYS_MS[0], () => (gcTimer = undefined));
  gcLateTimer ??= later(GC_DELAYS_MS[1], () => (gcLateTimer = undefined));
}

/** Postpone forced collections while this says so (a migration is running here), up to GC_MAX_DEFER_MS. */
let collectionsDeferredWhile: () => boolean = () => false;
/** A full collection stops the event loop for milliseconds: never inside a migration's downtime. */
const GC_MAX_DEFER_MS = 10_000;
const GC_RETRY_MS = 100;

/** Sets the predicate that postpones releaseMemorySoon's collections (LocalVmHost: while migrations run). */
export function deferCollectionsWhile(busy: () => boolean): void {
  collectionsDeferredWhile = busy;
}

function later(delayMs: number, done: () => void, deferredMs = 0): NodeJS.Timeout {
  const timer = setTimeout(() => {
    if (deferredMs < GC_MAX_DEFER_MS && collectionsDeferredWhile()) {
      later(GC_RETRY_MS, done, deferredMs + GC_RETRY_MS);
      return;
    }
    done();
    gc?.();
  }, delayMs);
  timer.unref();
  return timer;
}
