import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { build } from 'esbuild';
import { PoolClosedError, VmError, WorkloadLoadError } from './errors.ts';
import { CTL_FAULTED, CTL_PARKED, ctlIndex } from './layout.ts';
import type { FromWorker, ToWorker, VcpuBinding, WorkerInit } from './worker-protocol.ts';

/** Options of a CpuPool. */
export interface CpuPoolOptions {
  /** pCPU worker threads. Default 2. */
  readonly pcpus?: number;
  /** Longest time slice a vCPU runs before the worker moves to the next one (ms). Default 2. */
  readonly sliceMs?: number;
}

/** The vCPUs of one VM as placed on the pool: which worker runs which vCPU. */
export interface PlacedVcpus {
  readonly keys: readonly string[];
  readonly workers: readonly number[];
}

interface PcpuWorker {
  readonly worker: Worker;
  readonly doorbell: Int32Array;
  vcpus: number;
  /** It has taken a vCPU: a worker that dies before that would only die again if started again. */
  served: boolean;
  /** Exited before it took any vCPU, and not started again: no vCPU is placed on it. */
  dead: boolean;
}

/** Where a vCPU runs, and its control block, so a lost worker's vCPUs can be marked faulted. */
interface Placement {
  readonly worker: number;
  readonly control: Int32Array;
  readonly vcpu: number;
}


/**
 * The agent-wide pool of pCPU worker threads that runs the vCPUs of every VM in time slices
 * (round robin, one slice per vCPU per round, so a VM's vCPU count is its share). Each new vCPU
 * goes to the worker with the fewest vCPUs. Worker threads are unref'd: an idle pool does not keep
 * the process alive, but call close() when done. VMs use the pool; nothing else should call
 * attach/detach/ring.
 *
 * A worker thread that dies (a workload module that ends its thread, an out-of-memory) takes its
 * vCPUs with it: each is marked faulted and parked (so pause and stop still complete) and its VM
 * hears `vcpu-faulted`; the worker is started again for the vCPUs placed from then on, unless it
 * died before taking any (it would only die again).
 */
export class CpuPool {
  readonly pcpus: number;
  readonly sliceMs: number;
  private readonly workers: PcpuWorker[] = [];
  private readonly pending = new Map<string, { resolve: () => void; reject: (err: Error) => void; worker: number }>();
  private readonly placements = new Map<string, Placement>();
  private source: URL | undefined;
  private readonly faultHandlers = new Map<string, (message: string) => void>();
  private closed = false;
  private starting: Promise<void> | undefined;

  /** A pool of `pcpus` worker threads (default 2), started when the first VM is placed. */
  constructor(options: CpuPoolOptions = {}) {
    const pcpus = options.pcpus ?? 2;
    const sliceMs = options.sliceMs ?? 2;
    if (!Number.isInteger(pcpus) || pcpus < 1 || pcpus > 256) throw new VmError('FERRY_ERR_POOL_OPTIONS', `pcpus must be an integer from 1 to 256, got ${pcpus}`);
    if (!(sliceMs > 0 && sliceMs <= 1000)) throw new VmError('FERRY_ERR_POOL_OPTIONS', `sliceMs must be in (0, 1000], got ${sliceMs}`);
    this.pcpus = pcpus;
    this.sliceMs = sliceMs;
  }

  /** Starts the worker threads on first use (the worker bundle is built asynchronously once per process). */
  private async started(): Promise<void> {
    this.starting ??= workerSourceUrl().then((url) => {
      if (this.closed) throw new PoolClosedError();
      this.source = url;
      for (let i = 0; i < this.pcpus; i++) this.workers.push(this.spawn(i, url));
    });
    await this.starting;
  }

  private spawn(index: number, source: URL): PcpuWorker {
    const doorbell = new SharedArrayBuffer(4);
    const init: WorkerInit = { doorbell, sliceMs: this.sliceMs, tsxApiUrl: TSX_API_URL };
    const worker = new Worker(source, { workerData: init, name: `ferry-pcpu-${index}` });
    worker.unref();
    worker.on('message', (msg: FromWorker) => this.onMessage(msg));
    let failure: Error | undefined;
    worker.on('error', (err) => (failure = err)); // 'exit' follows
    worker.on('exit', (code) => this.lost(index, worker, failure ? `crashed: ${failure.message}` : `exited with code ${code}`));
    return { worker, doorbell: new Int32Array(doorbell), vcpus: 0, served: false, dead: false };
  }

  /** A worker thread ended on its own: fault its vCPUs, fail its requests, start it again (see the class comment). */
  private lost(index: number, worker: Worker, why: string): void {
    const entry = this.workers[index];
    if (this.closed || entry?.worker !== worker) return;
    const message = `pCPU worker ${index} ${why}`;
    for (const [key, p] of this.pending) {
      if (p.worker !== index) continue;
      this.pending.delete(key);
      p.reject(new VmError('FERRY_ERR_PCPU_CRASHED', message));
    }
    for (const [key, at] of this.placements) {
      if (at.worker !== index) continue;
      this.placements.delete(key);
      for (const field of [CTL_FAULTED, CTL_PARKED]) {
        Atomics.store(at.control, ctlIndex(at.vcpu, field), 1);
        Atomics.notify(at.control, ctlIndex(at.vcpu, field));
      }
      this.faultHandlers.get(key)?.(message);
      this.faultHandlers.delete(key);
    }
    if (entry.served) this.workers[index] = this.spawn(index, this.source!);
    else entry.dead = true;
  }

  private onMessage(msg: FromWorker): void {
    if (msg.type === 'vcpu-faulted') {
      this.faultHandlers.get(msg.key)?.(msg.message);
      return;
    }
    const p = this.pending.get(msg.key + ':' + (msg.type === 'detached' ? 'detach' : 'attach'));
    if (!p) return;
    this.pending.delete(msg.key + ':' + (msg.type === 'detached' ? 'detach' : 'attach'));
    if (msg.type === 'attach-failed') p.reject(new WorkloadLoadError(msg.key, msg.message));
    else {
      if (msg.type === 'attached') this.workers[p.worker]!.served = true;
      p.resolve();
    }
  }

  private request(w: number, msg: ToWorker, key: string, kind: 'attach' | 'detach'): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.set(`${key}:${kind}`, { resolve, reject, worker: w });
      this.workers[w]!.worker.postMessage(msg);
    });
  }

  /** Places `bindings` (one VM's vCPUs) on the least-loaded workers; resolves once every worker took its vCPU. */
  async attach(bindings: readonly VcpuBinding[], onFault: (vcpu: number, message: string) => void): Promise<PlacedVcpus> {
    if (this.closed) throw new PoolClosedError();
    await this.started();
    const workers: number[] = [];
    for (const b of bindings) {
      let best = -1;
      for (let i = 0; i < this.workers.length; i++) if (!this.workers[i]!.dead && (best < 0 || this.workers[i]!.vcpus < this.workers[best]!.vcpus)) best = i;
      if (best < 0) throw new VmError('FERRY_ERR_PCPU_CRASHED', 'every pCPU worker died while starting; no vCPU can run');
      this.workers[best]!.vcpus++;
      workers.push(best);
      this.faultHandlers.set(b.key, (message) => onFault(b.vcpu, message));
      this.placements.set(b.key, { worker: best, control: new Int32Array(b.control), vcpu: b.vcpu });
    }
    const placed = { keys: bindings.map((b) => b.key), workers };
    const results = await Promise.allSettled(bindings.map((b, i) => this.request(workers[i]!, { type: 'attach', binding: b }, b.key, 'attach')));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await this.detach(placed);
      throw failed.reason;
    }
    return placed;
  }

  /** Removes vCPUs from their workers; once resolved no worker holds their memory any more. */
  async detach(placed: PlacedVcpus): Promise<void> {
    if (this.closed) return;
    await Promise.all(
      placed.keys.map((key, i) => {
        this.faultHandlers.delete(key);
        if (!this.placements.delete(key)) return undefined; // its worker died: nothing holds it any more
        const w = placed.workers[i]!;
        this.workers[w]!.vcpus--;
        return this.request(w, { type: 'detach', key }, key, 'detach');
      }),
    );
  }

  /** Wakes the workers running `placed` so they look at their control blocks now. */
  ring(placed: PlacedVcpus): void {
    for (const w of new Set(placed.workers)) {
      const bell = this.workers[w]!.doorbell;
      Atomics.add(bell, 0, 1);
      Atomics.notify(bell, 0);
    }
  }

  /** Whether close() was called (no vCPU runs any more). */
  get isClosed(): boolean {
    return this.closed;
  }

  /** vCPUs scheduled on each pCPU worker (all zero before the first VM starts). */
  vcpusPerPcpu(): number[] {
    return this.workers.length ? this.workers.map((w) => w.vcpus) : new Array<number>(this.pcpus).fill(0);
  }

  /** Stops every worker thread. VMs still attached stop running; call after stopping them. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) p.reject(new PoolClosedError());
    this.pending.clear();
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}

const TSX_API_URL = tsxEsmApiUrl();

/** file: URL of tsx's ESM API (the `import` condition of its `./esm/api` export). */
function tsxEsmApiUrl(): string {
  const manifestPath = createRequire(import.meta.url).resolve('tsx/package.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { exports: Record<string, { import: { default: string } }> };
  return pathToFileURL(join(dirname(manifestPath), manifest.exports['./esm/api']!.import.default)).href;
}
let workerSource: Promise<URL> | undefined;

/**
 * The pCPU worker as one plain-JS ES module (a data: URL), bundled once per process from
 * vcpu-worker.ts with esbuild's async API (a short-lived esbuild child process, nothing resident
 * in this process). Worker threads do not inherit the TypeScript loader of the thread that starts
 * them (tsx, vitest), and loading tsx in every worker costs ~25 MB of RSS per worker; tsx is
 * registered in a worker only if it loads a TypeScript workload module.
 */
function workerSourceUrl(): Promise<URL> {
  workerSource ??= build({
    entryPoints: [fileURLToPath(new URL('./vcpu-worker.ts', import.meta.url))],
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    write: false,
    logLevel: 'silent',
  }).then((out) => new URL('data:text/javascript,' + encodeURIComponent(out.outputFiles[0]!.text)));
  return workerSource;
}
