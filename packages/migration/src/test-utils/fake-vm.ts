import { Worker } from 'node:worker_threads';
import { DirtyLog, GuestMemory, PAGE_SIZE_BYTES } from '@ferry/memory';
import type { SourceVm, VmState } from '../source-vm.ts';

/** How the fake vCPU writes: random pages of its range, or sequentially over it (non-converging when fast). */
export interface FakeVmOptions {
  readonly pageCount: number;
  /** Pages the vCPU writes: `[firstPage, firstPage + writablePages)`. Default: all. */
  readonly firstPage?: number;
  readonly writablePages?: number;
  readonly mode?: 'uniform' | 'scan';
  /** Page writes per second; 0 = as fast as it can (default). */
  readonly writesPerSec?: number;
  readonly seed?: number;
  /** Fraction of pages filled with non-zero data before the vCPU starts (marked written). Default 0.5. */
  readonly fillFraction?: number;
}

const PAUSE = 0;
const PAUSED = 1;
const THROTTLE = 2;
const STOP = 3;
const WRITES = 4;

type WaitAsync = (a: Int32Array, index: number, value: number, timeoutMs: number) => { async: boolean; value: Promise<string> | string };
// Node 20 has Atomics.waitAsync; the TS lib in use does not declare it yet.
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/**
 * A small VM for migration tests: real guest memory and dirty log, one vCPU in a worker thread that
 * writes pages store-then-mark, pause that waits for the vCPU to park, throttle, and a state blob.
 * Implements SourceVm. Call `stop()` at the end of each test.
 */
export class FakeVm implements SourceVm {
  readonly memory: GuestMemory;
  readonly dirtyLog: DirtyLog;
  readonly throttleHistory: number[] = [];
  pauses = 0;
  resumes = 0;
  private readonly control = new Int32Array(new SharedArrayBuffer(32));
  private worker: Worker | undefined;
  private paused = false;

  constructor(private readonly options: FakeVmOptions) {
    this.memory = new GuestMemory(options.pageCount);
    this.dirtyLog = new DirtyLog(options.pageCount);
    const fill = options.fillFraction ?? 0.5;
    const words = new Int32Array(this.memory.buffer);
    let x = (options.seed ?? 7) >>> 0 || 7;
    for (let p = 0; p < options.pageCount; p++) {
      if ((p * 7919) % 1000 >= fill * 1000) continue;
      for (let w = 0; w < PAGE_SIZE_BYTES / 4; w += 16) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        words[p * 1024 + w] = x | 1;
      }
      this.dirtyLog.mark(p);
    }
    this.dirtyLog.clear();
  }

  /** Starts the vCPU thread. */
  start(): this {
    this.worker = new Worker(new URL('./fake-vm-worker.mjs', import.meta.url), {
      workerData: {
        memory: this.memory.buffer,
        dirty: this.dirtyLog.buffer,
        control: this.control.buffer,
        firstPage: this.options.firstPage ?? 0,
        pageCount: this.options.writablePages ?? this.options.pageCount,
        mode: this.options.mode ?? 'uniform',
        writesPerSec: this.options.writesPerSec ?? 0,
        seed: this.options.seed ?? 1,
      },
    });
    return this;
  }

  /** Page writes done so far. */
  get writes(): number {
    return Atomics.load(this.control, WRITES);
  }

  /** Whether the vCPU is parked by pause(). */
  get isPaused(): boolean {
    return this.paused;
  }

  async pause(): Promise<void> {
    this.pauses++;
    Atomics.store(this.control, PAUSE, 1);
    if (this.worker) {
      while (Atomics.load(this.control, PAUSED) !== 1) {
        const r = waitAsync(this.control, PAUSED, 0, 100);
        if (r.async) await r.value;
      }
    }
    this.paused = true;
  }

  resume(): void {
    this.resumes++;
    this.paused = false;
    Atomics.store(this.control, PAUSE, 0);
    Atomics.notify(this.control, PAUSE);
  }

  setThrottle(percent: number): void {
    this.throttleHistory.push(percent);
    Atomics.store(this.control, THROTTLE, percent);
  }

  captureState(): VmState {
    const registers = new Uint8Array(64);
    new DataView(registers.buffer).setUint32(0, this.writes, true);
    return { registers, devices: new TextEncoder().encode(JSON.stringify({ nic: 'virtio-net', writes: this.writes })) };
  }

  /** Stops the vCPU thread for good. */
  async stop(): Promise<void> {
    Atomics.store(this.control, STOP, 1);
    Atomics.store(this.control, PAUSE, 0);
    Atomics.notify(this.control, PAUSE);
    await this.worker?.terminate();
    this.worker = undefined;
  }
}
