import { open, readFile, appendFile, truncate, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { PAGE_SIZE_BYTES, pageDigest } from '@ferry/memory';
import { ImageLibraryFormatError, PoolPageCorruptedError } from './errors.ts';

// The content-addressed page pool of an image library: every distinct page of every image, once.
//
// Files (in the library directory):
//   pool.bin  pages back to back; slot s occupies bytes [s*4096, (s+1)*4096)
//   pool.idx  one key per line, line s = key of slot s
// A key is the page's xxh64 digest in 16 hex digits (pageDigest); if two different pages ever
// share a digest (checked byte by byte on every hit) the later one gets `<digest>-1`, `-2`, ...
// Appends write pages first and fsync, then append their keys and fsync: a crash in between
// leaves unindexed bytes past the last slot, which the next append overwrites. Slots never change.

const POOL_FILE = 'pool.bin';
const INDEX_FILE = 'pool.idx';
/** Most pages readMany fetches with one read. */
const MAX_RUN_PAGES = 256;
const KEY_PATTERN = /^[0-9a-f]{16}(-[0-9]+)?$/;

/** The 16-hex-digit digest part of a pool key. */
export function digestOfKey(key: string): string {
  return key.slice(0, 16);
}

/** Hex digest of one page, the base of its pool key. */
export function pageKeyDigest(page: Uint8Array): string {
  return pageDigest(page).toString(16).padStart(16, '0');
}

/** Result of PagePool.put for a batch: the key per page and how many pages were new. */
export interface PutResult {
  readonly keys: string[];
  readonly newPages: number;
}

/**
 * The page pool. Open with PagePool.open(dir); callers serialise writers (the library holds its
 * lock around put). Reads verify every page against its key and throw PoolPageCorruptedError.
 */
export class PagePool {
  private readonly slots = new Map<string, number>();
  private keys: string[] = [];

  private constructor(
    readonly dir: string,
    private readonly file: FileHandle,
  ) {}

  /** Opens (creating if absent) the pool in `dir`. */
  static async open(dir: string): Promise<PagePool> {
    const file = await open(join(dir, POOL_FILE), 'a+');
    const pool = new PagePool(dir, file);
    try {
      await pool.reload();
    } catch (err) {
      await file.close();
      throw err;
    }
    return pool;
  }

  /** Re-reads the index (pages appended by another process since open). */
  async reload(): Promise<void> {
    const path = join(this.dir, INDEX_FILE);
    let text = '';
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const lines = text.split('\n');
    lines.pop(); // after the last newline: empty, or a torn line that was never committed
    if (text.length > 0 && !text.endsWith('\n')) await truncate(path, text.lastIndexOf('\n') + 1);
    const { size } = await this.file.stat();
    if (lines.length * PAGE_SIZE_BYTES > size) throw new ImageLibraryFormatError(path, `indexes ${lines.length} pages but ${POOL_FILE} holds ${Math.floor(size / PAGE_SIZE_BYTES)}`);
    this.slots.clear();
    this.keys = [];
    for (const [slot, key] of lines.entries()) {
      if (!KEY_PATTERN.test(key)) throw new ImageLibraryFormatError(path, `line ${slot + 1} is not a page key: ${JSON.stringify(key.slice(0, 40))}`);
      this.slots.set(key, slot);
      this.keys.push(key);
    }
  }

  /** Number of distinct pages stored. */
  get size(): number {
    return this.keys.length;
  }

  /** Whether `key` is in the pool. */
  has(key: string): boolean {
    return this.slots.has(key);
  }

  /** Reads the page stored under `key` into `into` (4096 bytes) and verifies it. Throws PoolPageCorruptedError. */
  async read(key: string, into: Uint8Array): Promise<void> {
    const slot = this.slots.get(key);
    if (slot === undefined) throw new PoolPageCorruptedError(key, -1, 'no such key in the pool');
    const { bytesRead } = await this.file.read(into, 0, PAGE_SIZE_BYTES, slot * PAGE_SIZE_BYTES);
    if (bytesRead !== PAGE_SIZE_BYTES) throw new PoolPageCorruptedError(key, slot, `short read of ${bytesRead} bytes`);
    const digest = pageKeyDigest(into);
    if (digest !== digestOfKey(key)) throw new PoolPageCorruptedError(key, slot, `bytes hash to ${digest}`);
  }

  /**
   * Reads the pages stored under `keys`, calling `onPage(i, bytes)` for each `keys[i]` once its
   * bytes are verified (`bytes` is valid only during the call). Reads runs of adjacent slots with
   * one read each (at most MAX_RUN_PAGES), in slot order. Throws PoolPageCorruptedError.
   */
  async readMany(keys: readonly string[], onPage: (index: number, bytes: Uint8Array) => void): Promise<void> {
    const order = keys.map((key, index) => {
      const slot = this.slots.get(key);
      if (slot === undefined) throw new PoolPageCorruptedError(key, -1, 'no such key in the pool');
      return { key, index, slot };
    });
    order.sort((a, b) => a.slot - b.slot);
    const buffer = new Uint8Array(MAX_RUN_PAGES * PAGE_SIZE_BYTES);
    for (let start = 0; start < order.length; ) {
      let end = start + 1;
      while (end < order.length && end - start < MAX_RUN_PAGES && order[end]!.slot - order[start]!.slot === end - start) end++;
      const first = order[start]!.slot;
      const bytes = (end - start) * PAGE_SIZE_BYTES;
      const { bytesRead } = await this.file.read(buffer, 0, bytes, first * PAGE_SIZE_BYTES);
      for (let i = start; i < end; i++) {
        const { key, index, slot } = order[i]!;
        const offset = (slot - first) * PAGE_SIZE_BYTES;
        if (offset + PAGE_SIZE_BYTES > bytesRead) throw new PoolPageCorruptedError(key, slot, 'short read');
        const page = buffer.subarray(offset, offset + PAGE_SIZE_BYTES);
        const digest = pageKeyDigest(page);
        if (digest !== digestOfKey(key)) throw new PoolPageCorruptedError(key, slot, `bytes hash to ${digest}`);
        onPage(index, page);
      }
      start = end;
    }
  }

  /**
   * Stores `pages` (each 4096 bytes), deduplicating against the pool and within the batch;
   * returns each page's key. A digest hit is confirmed byte by byte before reuse.
   */
  async put(pages: readonly Uint8Array[]): Promise<PutResult> {
    const keys: string[] = [];
    const fresh: { key: string; bytes: Uint8Array }[] = [];
    const freshByKey = new Map<string, Uint8Array>();
    const scratch = new Uint8Array(PAGE_SIZE_BYTES);
    for (const page of pages) {
      const digest = pageKeyDigest(page);
      let key: string | undefined;
      for (let n = 0; ; n++) {
        const candidate = n === 0 ? digest : `${digest}-${n}`;
        const pending = freshByKey.get(candidate);
        if (pending) {
          if (Buffer.compare(pending, page) === 0) key = candidate;
        } else if (this.slots.has(candidate)) {
          await this.read(candidate, scratch);
          if (Buffer.compare(scratch, page) === 0) key = candidate;
        } else {
          key = candidate;
          const copy = page.slice();
          fresh.push({ key, bytes: copy });
          freshByKey.set(key, copy);
        }
        if (key !== undefined) break;
      }
      keys.push(key);
    }
    if (fresh.length > 0) await this.append(fresh);
    return { keys, newPages: fresh.length };
  }

  /** Checks every stored page against its key; returns the keys of corrupted pages (empty: pool intact). */
  async verify(): Promise<string[]> {
    const bad: string[] = [];
    const page = new Uint8Array(PAGE_SIZE_BYTES);
    for (const key of this.keys) {
      try {
        await this.read(key, page);
      } catch (err) {
        if (err instanceof PoolPageCorruptedError) bad.push(key);
        else throw err;
      }
    }
    return bad;
  }

  /** Closes the pool file. */
  async close(): Promise<void> {
    await this.file.close();
  }

  private async append(fresh: readonly { key: string; bytes: Uint8Array }[]): Promise<void> {
    const first = this.keys.length;
    const buffer = Buffer.allocUnsafe(fresh.length * PAGE_SIZE_BYTES);
    fresh.forEach((p, i) => buffer.set(p.bytes, i * PAGE_SIZE_BYTES));
    // 'a+' handles ignore positions on Linux for writes, so write through a positional handle.
    const writer = await open(join(this.dir, POOL_FILE), 'r+');
    try {
      await writer.write(buffer, 0, buffer.length, first * PAGE_SIZE_BYTES);
      await writer.sync();
    } finally {
      await writer.close();
    }
    const indexPath = join(this.dir, INDEX_FILE);
    await appendFile(indexPath, fresh.map((p) => `${p.key}\n`).join(''));
    const index = await open(indexPath, 'r');
    try {
      await index.sync();
    } finally {
      await index.close();
    }
    fresh.forEach((p, i) => {
      this.slots.set(p.key, first + i);
      this.keys.push(p.key);
    });
  }
}
