import { GuestMemory } from './guest-memory.ts';
import { runEvalWorker } from './eval-worker.ts';
import { PAGE_SIZE_BYTES } from './constants.ts';

/**
 * Guest memory that no VM uses any more, kept resident and zeroed for the next VM of the same
 * size. Fresh memory costs a page fault per page on first write (~2 µs here, 0.5–1.3 s per GiB);
 * a migration into a host that recently let a VM of that size go (the ping-pong of a drain and its
 * undo, a benchmark, a cluster rebalancing) then copies into resident pages instead. The price is
 * RSS: up to `maxBytes` stay resident while idle, for at most `idleMs`.
 *
 * Only memory that nothing can write any more may be given: the VM stopped (its vCPUs detached)
 * and no stream still reading it.
 */
export interface MemoryPoolOptions {
  /** Most bytes held (zeroing or ready); memory that does not fit is not kept. 0 disables the pool. */
  readonly maxBytes: number;
  /** How long an unused buffer is kept. Default 30 s. */
  readonly idleMs?: number;
  /** Called when a buffer is dropped (evicted or closed), e.g. to ask for a GC that returns it to the OS. */
  readonly onDrop?: () => void;
}

/** Counters, for logs and tests. */
export interface MemoryPoolStats {
  readonly heldBytes: number;
  /** Of heldBytes, zeroed and ready for take(). */
  readonly readyBytes: number;
  readonly given: number;
  readonly taken: number;
  readonly refused: number;
  readonly evicted: number;
}

interface Entry {
  readonly buffer: SharedArrayBuffer;
  readonly pageCount: number;
  ready: boolean;
  /** Resolves true once zeroed, false when the zeroing failed. */
  zeroed: Promise<boolean>;
  timer: NodeJS.Timeout | undefined;
}

const ZERO_WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const bytes = new Uint8Array(workerData.buffer);
const map = workerData.pages;
const pageBytes = workerData.pageBytes;
if (map === undefined) bytes.fill(0);
else {
  // Only pages ever written: the others are zero already, and writing them would fault them in.
  const pageCount = bytes.byteLength / pageBytes;
  for (let p = 0; p < pageCount; p++) {
    if ((map[p >> 3] & (1 << (p & 7))) === 0) continue;
    let end = p + 1;
    while (end < pageCount && (map[end >> 3] & (1 << (end & 7))) !== 0) end++;
    bytes.fill(0, p * pageBytes, end * pageBytes);
    p = end - 1;
  }
}
`;

/** See MemoryPoolOptions. */
export class MemoryPool {
  private readonly options: MemoryPoolOptions;
  private readonly entries = new Set<Entry>();
  private heldBytes = 0;
  private counts = { given: 0, taken: 0, refused: 0, evicted: 0 };
  private closed = false;

  constructor(options: MemoryPoolOptions) {
    this.options = options;
  }

  /** Counters so far. */
  get stats(): MemoryPoolStats {
    let readyBytes = 0;
    for (const e of this.entries) if (e.ready) readyBytes += e.buffer.byteLength;
    return { heldBytes: this.heldBytes, readyBytes, ...this.counts };
  }

  /**
   * Takes `memory` back: it is zeroed on a worker thread, then take() may hand it out. With
   * `writtenPages` (DirtyLog.everWrittenBitmap) only those pages are zeroed: the rest are zero
   * and, never touched, not resident either, so a mostly-empty VM's memory stays small. Not kept
   * (returns false) when it would exceed maxBytes or the pool is closed.
   */
  give(memory: GuestMemory, writtenPages?: Uint8Array): boolean {
    const bytes = memory.byteLength;
    if (this.closed || this.heldBytes + bytes > this.options.maxBytes) {
      this.counts.refused++;
      return false;
    }
    const entry: Entry = { buffer: memory.buffer, pageCount: memory.pageCount, ready: false, zeroed: Promise.resolve(false), timer: undefined };
    this.entries.add(entry);
    this.heldBytes += bytes;
    this.counts.given++;
    entry.zeroed = runEvalWorker(ZERO_WORKER_SOURCE, { buffer: entry.buffer, pages: writtenPages, pageBytes: PAGE_SIZE_BYTES }).then((code) => {
      if (code !== 0) {
        this.drop(entry, false); // not zeroed: never hand it out
        return false;
      }
      entry.ready = true;
      if (this.entries.has(entry)) {
        entry.timer = setTimeout(() => this.drop(entry, true), this.options.idleMs ?? 30_000);
        entry.timer.unref();
      }
      return true;
    });
    return true;
  }

  /**
   * Resident memory of exactly `pageCount` pages, zeroed (a buffer still being zeroed is handed
   * out when that finishes: well under the page faults it saves), or undefined when none is held.
   * The promise resolves undefined if the zeroing failed.
   */
  take(pageCount: number): Promise<GuestMemory | undefined> | undefined {
    let best: Entry | undefined;
    for (const entry of this.entries) if (entry.pageCount === pageCount && (!best || (entry.ready && !best.ready))) best = entry;
    if (!best) return undefined;
    const entry = best;
    this.forget(entry);
    this.counts.taken++;
    return entry.zeroed.then((ok) => (ok ? new GuestMemory(pageCount, entry.buffer) : undefined));
  }

  /** Drops everything held now (e.g. memory of another size is needed: keep RSS to one VM's worth). */
  clear(): void {
    for (const entry of [...this.entries]) this.drop(entry, true);
  }

  /** Drops everything held; give() keeps nothing afterwards. */
  close(): void {
    this.closed = true;
    for (const entry of [...this.entries]) this.drop(entry, false);
  }

  private drop(entry: Entry, evicted: boolean): void {
    if (!this.entries.has(entry)) return;
    this.forget(entry);
    if (evicted) this.counts.evicted++;
    this.options.onDrop?.();
  }

  private forget(entry: Entry): void {
    if (entry.timer) clearTimeout(entry.timer);
    this.entries.delete(entry);
    this.heldBytes -= entry.buffer.byteLength;
  }
}
