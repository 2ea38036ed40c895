import { Worker } from 'node:worker_threads';
import { PoolClosedError, VmError, WorkloadLoadError } from './errors.ts';
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
}

/**
 * The agent-wide pool of pCPU worker threads that runs the vCPUs of every VM in time slices
 * (round robin, one slice per vCPU per round, so a VM's vCPU count is its share). Each new vCPU
 * goes to the worker with the fewest vCPUs. Worker threads are unref'd: an idle pool does not keep
 * the process alive, but call close() when done. VMs use the pool; nothing else should call
 * attach/detach/ring.
 */
export class CpuPool {
  readonly pcpus: number;
  readonly sliceMs: number;
  private readonly workers: PcpuWorker[] = [];
  private readonly pending = new Map<string, { resolve: () => void; reject: (err: Error) => void }>();
  private readonly faultHandlers = new Map<string, (message: string) => void>();
  private closed = false;

  /** Starts `pcpus` worker threads (default 2). */
  constructor(options: CpuPoolOptions = {}) {
    const pcpus = options.pcpus ?? 2;
    const sliceMs = options.sliceMs ?? 2;
    if (!Number.isInteger(pcpus) || pcpus < 1 || pcpus > 256) throw new VmError('FERRY_ERR_POOL_OPTIONS', `pcpus must be an integer from 1 to 256, got ${pcpus}`);
    if (!(sliceMs > 0 && sliceMs <= 1000)) throw new VmError('FERRY_ERR_POOL_OPTIONS', `sliceMs must be in (0, 1000], got ${sliceMs}`);
    this.pcpus = pcpus;
    this.sliceMs = sliceMs;
    for (let i = 0; i < pcpus; i++) this.workers.push(this.spawn(i));
  }

  private spawn(index: number): PcpuWorker {
    const doorbell = new SharedArrayBuffer(4);
    const init: WorkerInit = { doorbell, sliceMs: this.sliceMs };
    const worker = new Worker(new URL('./worker-entry.mjs', import.meta.url), { workerData: init, name: `ferry-pcpu-${index}` });
    worker.unref();
    worker.on('message', (msg: FromWorker) => this.onMessage(msg));
    worker.on('error', (err) => {
      for (const [key, p] of this.pending) {
        p.reject(new VmError('FERRY_ERR_PCPU_CRASHED', `pCPU worker ${index} crashed: ${err.message}`, { cause: err }));
        this.pending.delete(key);
      }
    });
    return { worker, doorbell: new Int32Array(doorbell), vcpus: 0 };
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
    else p.resolve();
  }

  private request(w: number, msg: ToWorker, key: string, kind: 'attach' | 'detach'): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.set(`${key}:${kind}`, { resolve, reject });
      this.workers[w]!.worker.postMessage(msg);
    });
  }

  /** Places `bindings` (one VM's vCPUs) on the least-loaded workers; resolves once every worker took its vCPU. */
  async attach(bindings: readonly VcpuBinding[], onFault: (vcpu: number, message: string) => void): Promise<PlacedVcpus> {
    if (this.closed) throw new PoolClosedError();
    const workers: number[] = [];
    for (const b of bindings) {
      let best = 0;
      for (let i = 1; i < this.workers.length; i++) if (this.workers[i]!.vcpus < this.workers[best]!.vcpus) best = i;
      this.workers[best]!.vcpus++;
      workers.push(best);
      this.faultHandlers.set(b.key, (message) => onFault(b.vcpu, message));
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
        const w = placed.workers[i]!;
        this.workers[w]!.vcpus--;
        this.faultHandlers.delete(key);
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

  /** vCPUs scheduled on each pCPU worker. */
  vcpusPerPcpu(): number[] {
    return this.workers.map((w) => w.vcpus);
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
