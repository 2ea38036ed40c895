import type { GuestMemory } from './guest-memory.ts';
import { PAGE_SIZE_BYTES } from './constants.ts';
import { runEvalWorker } from './eval-worker.ts';

/**
 * Pre-faults guest memory on a background thread, like QEMU's `-mem-prealloc` on a migration
 * destination. Fresh memory costs a page fault (kernel zero-fill) on first write: ~2 µs a page on
 * this machine's VMs (no transparent huge pages for V8's buffers), 0.5–1.3 s per GiB, which the
 * receiving thread would otherwise pay inside round 1 on top of its copy. The worker walks pages
 * from the top down while round 1 arrives from the bottom up, so the two threads split the faults
 * instead of taking turns on the same pages.
 *
 * Each page is touched with an atomic add of zero: it forces a write fault (a read would only map
 * the shared zero page) and never changes a value, even when the page is written concurrently.
 */
export interface Prefault {
  /** Resolves when every page is touched, or once stopped. Never rejects. */
  readonly done: Promise<void>;
  /** Stops the worker (idempotent); resolves when it has exited. */
  stop(): Promise<void>;
}

const PREFAULT_WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const words = new Int32Array(workerData.buffer);
const stop = new Int32Array(workerData.stop);
const pageInts = workerData.pageInts;
const map = workerData.pages;
for (let p = workerData.pageCount - 1; p >= 0; p--) {
  if ((p & 255) === 0 && Atomics.load(stop, 0) !== 0) break;
  if (map !== undefined && (map[p >> 3] & (1 << (p & 7))) === 0) continue;
  Atomics.add(words, p * pageInts, 0);
}
`;

/**
 * Starts pre-faulting `memory` (a GuestMemory: its buffer is a SharedArrayBuffer): every page, or
 * only those set in `pages` (page p = bit (p & 7) of byte p >> 3; DirtyLog.everWrittenBitmap).
 */
export function startPrefault(memory: GuestMemory, pages?: Uint8Array): Prefault {
  const stopFlag = new SharedArrayBuffer(4);
  const done = runEvalWorker(PREFAULT_WORKER_SOURCE, { buffer: memory.buffer, stop: stopFlag, pageCount: memory.pageCount, pageInts: PAGE_SIZE_BYTES / 4, pages }).then(() => undefined);
  return {
    done,
    stop() {
      Atomics.store(new Int32Array(stopFlag), 0, 1);
      return done;
    },
  };
}
