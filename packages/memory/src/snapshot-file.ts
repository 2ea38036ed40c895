import { open, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { Xxh64 } from '@node-rs/xxhash';
import { PAGE_SIZE_BYTES, pageOffset } from './constants.ts';
import { GuestMemory, MAX_GUEST_PAGES } from './guest-memory.ts';
import { SnapshotFileError } from './snapshot-errors.ts';

// The snapshot file (the lecture's .vmss), little-endian:
//
//   [0, 4096)                      header: magic "FERRYVMS", version, sizes (below)
//   [4096, 4096 + pages × 4096)    page data at fixed offsets: page p at 4096 + p × 4096. Pages not
//                                  in the map are holes (sparse file) and read as zero.
//   trailer                        spec (JSON bytes) | registers | devices | map (1 bit per page,
//                                  set = stored) | memory digest u64 | meta digest u64 | "VMSS-END"
//
// Header fields: 0 magic[8], 8 version u32, 12 header bytes u32, 16 page size u32, 20 page count u32,
// 24 spec bytes u32, 28 register bytes u32, 32 device bytes u32, 36 map bytes u32, 40 stored pages u32.
// The memory digest is xxh64 (seed 0) over the whole memory image, equal to memoryDigest(); the meta
// digest is xxh64 over header[0, 64), the trailer before the digests, and the memory digest.
// Fixed page offsets let a live snapshot pwrite dirty pages in place round after round and write the
// trailer last. Files are written to a temp file in the same directory, fsynced, renamed, and the
// directory fsynced: a reader sees the old file or the complete new one.

/** First 8 bytes of every snapshot file. */
export const SNAPSHOT_MAGIC = 'FERRYVMS';
/** Last 8 bytes of every complete snapshot file. */
export const SNAPSHOT_END_MAGIC = 'VMSS-END';
/** The version this build writes. */
export const SNAPSHOT_VERSION = 1;
/** The versions this build reads. */
export const SNAPSHOT_VERSIONS_ACCEPTED: readonly number[] = [1];
/** Bytes before the first page; page p lives at SNAPSHOT_HEADER_BYTES + p × PAGE_SIZE_BYTES. */
export const SNAPSHOT_HEADER_BYTES = 4096;

const HEADER_FIELDS_BYTES = 64;
const TAIL_BYTES = 24;
const MAX_BLOB_BYTES = 16 * 1024 * 1024;
const IO_CHUNK_PAGES = 2048; // 8 MiB per read/write call
const PAGE_WORDS = PAGE_SIZE_BYTES / 4;
const READ_GAP_PAGES = 16;
const WRITES_IN_FLIGHT = 16;
const WRITE_GAP_PAGES = 8;

/** The non-memory part of a VM's state as stored in a snapshot file. */
export interface SnapshotState {
  /** The VM spec, UTF-8 JSON. */
  readonly spec: Uint8Array;
  /** The register block of every vCPU. */
  readonly registers: Uint8Array;
  /** Device state. */
  readonly devices: Uint8Array;
}

/** What a finished snapshot file holds. */
export interface SnapshotFileInfo {
  readonly path: string;
  /** Logical size of the file (a sparse file occupies less on disk). */
  readonly fileBytes: number;
  readonly pageCount: number;
  /** Pages stored in the file; every other page is zero. */
  readonly storedPages: number;
  /** xxh64 of the memory image, 16 hex digits (equals memoryDigest of the memory). */
  readonly memoryDigest: string;
}

/** A snapshot loaded into fresh guest memory, returned only after both digests checked. */
export interface LoadedSnapshot extends SnapshotState, SnapshotFileInfo {
  readonly memory: GuestMemory;
  /** Ascending indices of the stored pages (all other pages are zero). */
  readonly storedPageList: Uint32Array;
}

/**
 * Writes one snapshot file. Pages can be written in any order, any number of times (a live
 * snapshot rewrites dirty pages each round); `finish` writes the trailer and header and publishes
 * the file atomically. Until then only a hidden temp file in the same directory exists; `abort`
 * removes it.
 */
export class SnapshotWriter {
  readonly path: string;
  readonly pageCount: number;
  private readonly tmpPath: string;
  private readonly fh: FileHandle;
  private readonly map: Uint8Array;
  private closed = false;

  private constructor(path: string, tmpPath: string, fh: FileHandle, pageCount: number) {
    this.path = path;
    this.tmpPath = tmpPath;
    this.fh = fh;
    this.pageCount = pageCount;
    this.map = new Uint8Array(Math.ceil(pageCount / 8));
  }

  /** Opens a temp file beside `path`, sized (sparse) for `pageCount` pages. */
  static async create(path: string, pageCount: number): Promise<SnapshotWriter> {
    const tmpPath = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
    const fh = await open(tmpPath, 'wx+', 0o644);
    try {
      await fh.truncate(SNAPSHOT_HEADER_BYTES + pageCount * PAGE_SIZE_BYTES);
    } catch (err) {
      await fh.close();
      await unlink(tmpPath).catch(() => undefined);
      throw err;
    }
    return new SnapshotWriter(path, tmpPath, fh, pageCount);
  }

  /** Number of pages stored so far. */
  storedPages(): number {
    let n = 0;
    for (let i = 0; i < this.map.length; i++) {
      let v = this.map[i]!;
      while (v !== 0) {
        v &= v - 1;
        n++;
      }
    }
    return n;
  }

  /** Writes `count` contiguous pages from `first` straight from guest memory (no copy). */
  async writeRun(memory: GuestMemory, first: number, count: number): Promise<void> {
    memory.checkRange(first, count);
    for (let done = 0; done < count; done += IO_CHUNK_PAGES) {
      const n = Math.min(IO_CHUNK_PAGES, count - done);
      const byteOffset = pageOffset(first + done);
      const length = n * PAGE_SIZE_BYTES;
      await this.fh.write(memory.bytes, byteOffset, length, SNAPSHOT_HEADER_BYTES + byteOffset);
    }
    for (let p = first; p < first + count; p++) this.map[p >>> 3] = this.map[p >>> 3]! | (1 << (p & 7));
  }

  /**
   * Writes `pages` (ascending page indices), several writes in flight. Pages at most
   * WRITE_GAP_PAGES apart go in one write together with the pages between them: those are written
   * with their current contents, which is always safe (a page changed later is dirty again and is
   * written again) and saves a syscall per scattered page.
   */
  async writePages(memory: GuestMemory, pages: ArrayLike<number>): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    let failure: { err: unknown } | undefined;
    let i = 0;
    while (i < pages.length && !failure) {
      const first = pages[i]!;
      let count = 1;
      let next = i + 1;
      while (next < pages.length && pages[next]! - (first + count - 1) <= WRITE_GAP_PAGES && pages[next]! - first < IO_CHUNK_PAGES) {
        count = pages[next]! - first + 1;
        next++;
      }
      const write: Promise<void> = this.writeRun(memory, first, count).then(
        () => void inFlight.delete(write),
        (err: unknown) => {
          inFlight.delete(write);
          failure ??= { err };
        },
      );
      inFlight.add(write);
      if (inFlight.size >= WRITES_IN_FLIGHT) await Promise.race(inFlight);
      i = next;
    }
    await Promise.all(inFlight);
    if (failure) throw failure.err;
  }

  /**
   * Writes every non-zero page of `memory` (skipping pages `known zero` says are zero without reading
   * them) and returns the memory digest, hashed while the writes are in flight. Memory must not
   * change during the call (VM paused) for the digest to hold; use it for suspend.
   */
  async writeAllNonZero(memory: GuestMemory, knownZero?: (page: number) => boolean): Promise<string> {
    const hasher = new Xxh64(0n);
    const words = new Int32Array(memory.buffer);
    const bytes = Buffer.from(memory.buffer);
    // Non-zero runs of pages [chunk, chunk + IO_CHUNK_PAGES) as [first, count] pairs.
    const scan = (chunk: number): number[] => {
      const end = Math.min(chunk + IO_CHUNK_PAGES, memory.pageCount);
      const runs: number[] = [];
      let p = chunk;
      while (p < end) {
        if ((knownZero && knownZero(p)) || isZeroPageAt(words, bytes, p)) {
          p++;
          continue;
        }
        let q = p + 1;
        while (q < end && !(knownZero && knownZero(q)) && !isZeroPageAt(words, bytes, q)) q++;
        runs.push(p, q - p);
        p = q;
      }
      return runs;
    };
    // Pipeline: while chunk k is being written, hash it and scan chunk k + 1 for zero pages.
    let runs = scan(0);
    for (let chunk = 0; chunk < memory.pageCount; chunk += IO_CHUNK_PAGES) {
      const writes: Promise<void>[] = [];
      for (let i = 0; i < runs.length; i += 2) writes.push(this.writeRun(memory, runs[i]!, runs[i + 1]!));
      const next = chunk + IO_CHUNK_PAGES;
      hasher.update(memory.bytes.subarray(pageOffset(chunk), pageOffset(Math.min(next, memory.pageCount))));
      const nextRuns = next < memory.pageCount ? scan(next) : [];
      await Promise.all(writes);
      runs = nextRuns;
    }
    return hex64(hasher.digest());
  }

  /** The digest of the memory image as stored so far, read back from the file (holes read as zero). */
  async digestStored(): Promise<string> {
    const hasher = new Xxh64(0n);
    const buf = new Uint8Array(IO_CHUNK_PAGES * PAGE_SIZE_BYTES);
    const total = this.pageCount * PAGE_SIZE_BYTES;
    for (let off = 0; off < total; off += buf.length) {
      const len = Math.min(buf.length, total - off);
      const { bytesRead } = await this.fh.read(buf, 0, len, SNAPSHOT_HEADER_BYTES + off);
      if (bytesRead !== len) throw new Error(`short read of ${this.tmpPath} at ${off}`);
      hasher.update(buf.subarray(0, len));
    }
    return hex64(hasher.digest());
  }

  /**
   * Writes the trailer and header, fsyncs, renames over `path`, fsyncs the directory. `memoryDigest`
   * is the digest of the memory image the stored pages form; if omitted it is read back from the file.
   */
  async finish(state: SnapshotState, memoryDigest?: string): Promise<SnapshotFileInfo> {
    if (this.closed) throw new Error(`snapshot writer for ${this.path} is closed`);
    for (const [name, blob] of [['spec', state.spec], ['registers', state.registers], ['devices', state.devices]] as const) {
      if (blob.byteLength > MAX_BLOB_BYTES) throw new Error(`snapshot ${name} of ${blob.byteLength} bytes exceeds ${MAX_BLOB_BYTES}`);
    }
    try {
      const digest = memoryDigest ?? (await this.digestStored());
      const storedPages = this.storedPages();
      const header = Buffer.alloc(SNAPSHOT_HEADER_BYTES);
      header.write(SNAPSHOT_MAGIC, 0, 'latin1');
      header.writeUInt32LE(SNAPSHOT_VERSION, 8);
      header.writeUInt32LE(SNAPSHOT_HEADER_BYTES, 12);
      header.writeUInt32LE(PAGE_SIZE_BYTES, 16);
      header.writeUInt32LE(this.pageCount, 20);
      header.writeUInt32LE(state.spec.byteLength, 24);
      header.writeUInt32LE(state.registers.byteLength, 28);
      header.writeUInt32LE(state.devices.byteLength, 32);
      header.writeUInt32LE(this.map.byteLength, 36);
      header.writeUInt32LE(storedPages, 40);
      const meta = Buffer.concat([state.spec, state.registers, state.devices, this.map]);
      const tail = Buffer.alloc(TAIL_BYTES);
      tail.writeBigUInt64LE(BigInt('0x' + digest), 0);
      tail.writeBigUInt64LE(metaDigest(header.subarray(0, HEADER_FIELDS_BYTES), meta, tail.subarray(0, 8)), 8);
      tail.write(SNAPSHOT_END_MAGIC, 16, 'latin1');
      const trailerOffset = SNAPSHOT_HEADER_BYTES + this.pageCount * PAGE_SIZE_BYTES;
      await this.fh.write(meta, 0, meta.length, trailerOffset);
      await this.fh.write(tail, 0, tail.length, trailerOffset + meta.length);
      await this.fh.write(header, 0, header.length, 0);
      await this.fh.sync();
      await this.fh.close();
      this.closed = true;
      await rename(this.tmpPath, this.path);
      await fsyncDir(dirname(this.path));
      return {
        path: this.path,
        fileBytes: trailerOffset + meta.length + TAIL_BYTES,
        pageCount: this.pageCount,
        storedPages,
        memoryDigest: digest,
      };
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  /** Closes and removes the temp file; the target path is untouched. Safe to call twice. */
  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.fh.close().catch(() => undefined);
    }
    await unlink(this.tmpPath).catch(() => undefined);
  }
}

/**
 * Suspend-style save: writes every non-zero page of `memory` and `state` to `path` atomically.
 * `knownZero(page)` may name pages known to be zero without reading them (e.g. never written per
 * the dirty log). Memory must not change during the call.
 */
export async function writeSnapshotFile(
  path: string,
  memory: GuestMemory,
  state: SnapshotState,
  knownZero?: (page: number) => boolean,
): Promise<SnapshotFileInfo> {
  const writer = await SnapshotWriter.create(path, memory.pageCount);
  let digest: string;
  try {
    digest = await writer.writeAllNonZero(memory, knownZero);
  } catch (err) {
    await writer.abort();
    throw err;
  }
  return writer.finish(state, digest);
}

/**
 * Loads a snapshot file into fresh guest memory. Refuses (SnapshotFileError naming the file and the
 * problem) a file that is not a snapshot, has a version not in SNAPSHOT_VERSIONS_ACCEPTED, is
 * truncated, or fails a digest; the memory is returned only after every check passed.
 */
export async function readSnapshotFile(path: string): Promise<LoadedSnapshot> {
  const fh = await open(path, 'r');
  try {
    const fileBytes = (await fh.stat()).size;
    if (fileBytes < HEADER_FIELDS_BYTES) {
      throw new SnapshotFileError(path, 'truncated', `file of ${fileBytes} bytes is shorter than the ${HEADER_FIELDS_BYTES}-byte header`);
    }
    const header = Buffer.alloc(HEADER_FIELDS_BYTES);
    await readExactly(fh, path, header, 0);
    if (header.toString('latin1', 0, 8) !== SNAPSHOT_MAGIC) {
      throw new SnapshotFileError(path, 'not-a-snapshot', `magic is not ${SNAPSHOT_MAGIC}`);
    }
    const version = header.readUInt32LE(8);
    if (!SNAPSHOT_VERSIONS_ACCEPTED.includes(version)) {
      throw new SnapshotFileError(path, 'version', `version ${version}, this build reads versions ${SNAPSHOT_VERSIONS_ACCEPTED.join(', ')}`);
    }
    const headerBytes = header.readUInt32LE(12);
    const pageSize = header.readUInt32LE(16);
    const pageCount = header.readUInt32LE(20);
    const specBytes = header.readUInt32LE(24);
    const registerBytes = header.readUInt32LE(28);
    const deviceBytes = header.readUInt32LE(32);
    const mapBytes = header.readUInt32LE(36);
    if (headerBytes !== SNAPSHOT_HEADER_BYTES || pageSize !== PAGE_SIZE_BYTES) {
      throw new SnapshotFileError(path, 'corrupted', `header says ${headerBytes}-byte header and ${pageSize}-byte pages`);
    }
    if (pageCount < 1 || pageCount > MAX_GUEST_PAGES) {
      throw new SnapshotFileError(path, 'too-large', `page count ${pageCount} is outside 1..${MAX_GUEST_PAGES}`);
    }
    if (specBytes > MAX_BLOB_BYTES || registerBytes > MAX_BLOB_BYTES || deviceBytes > MAX_BLOB_BYTES || mapBytes !== Math.ceil(pageCount / 8)) {
      throw new SnapshotFileError(path, 'corrupted', 'header lengths are out of range');
    }
    const trailerOffset = SNAPSHOT_HEADER_BYTES + pageCount * PAGE_SIZE_BYTES;
    const metaBytes = specBytes + registerBytes + deviceBytes + mapBytes;
    const expectedBytes = trailerOffset + metaBytes + TAIL_BYTES;
    if (fileBytes < expectedBytes) {
      throw new SnapshotFileError(path, 'truncated', `file has ${fileBytes} bytes, its header describes ${expectedBytes} (${pageCount} pages): cut short, or the header is damaged`);
    }
    if (fileBytes > expectedBytes) {
      throw new SnapshotFileError(path, 'corrupted', `file has ${fileBytes - expectedBytes} bytes more than its header describes (${pageCount} pages): extra data, or the header is damaged`);
    }
    const meta = Buffer.alloc(metaBytes + TAIL_BYTES);
    await readExactly(fh, path, meta, trailerOffset);
    const tail = meta.subarray(metaBytes);
    if (tail.toString('latin1', 16, 24) !== SNAPSHOT_END_MAGIC) {
      throw new SnapshotFileError(path, 'corrupted', `end marker is not ${SNAPSHOT_END_MAGIC}`);
    }
    const wantMeta = tail.readBigUInt64LE(8);
    if (metaDigest(header, meta.subarray(0, metaBytes), tail.subarray(0, 8)) !== wantMeta) {
      throw new SnapshotFileError(path, 'corrupted', 'header/trailer digest does not match');
    }
    let at = 0;
    const spec = Uint8Array.prototype.slice.call(meta, at, (at += specBytes));
    const registers = Uint8Array.prototype.slice.call(meta, at, (at += registerBytes));
    const devices = Uint8Array.prototype.slice.call(meta, at, (at += deviceBytes));
    const map = meta.subarray(at, at + mapBytes);
    const stored = storedPagesOf(map, pageCount);
    const memory = new GuestMemory(pageCount);
    const digest = await readPagesAndDigest(fh, path, memory, stored);
    const want = hex64(tail.readBigUInt64LE(0));
    if (digest !== want) {
      throw new SnapshotFileError(path, 'corrupted', `memory digest ${digest} does not match the recorded ${want}`);
    }
    return { path, fileBytes, pageCount, storedPages: stored.length, memoryDigest: digest, spec, registers, devices, memory, storedPageList: stored };
  } finally {
    await fh.close();
  }
}

/** Reads the stored pages into `memory` chunk by chunk, hashing each chunk while the next is read. */
async function readPagesAndDigest(fh: FileHandle, path: string, memory: GuestMemory, stored: Uint32Array): Promise<string> {
  const hasher = new Xxh64(0n);
  let cursor = 0; // index into stored
  const readChunk = async (chunk: number): Promise<void> => {
    const end = Math.min(chunk + IO_CHUNK_PAGES, memory.pageCount);
    const reads: Promise<void>[] = [];
    while (cursor < stored.length && stored[cursor]! < end) {
      // One read per span of stored pages; short holes between them are read too (they read as
      // zero into memory that is zero): far fewer calls for scattered pages.
      const first = stored[cursor]!;
      let last = first;
      cursor++;
      while (cursor < stored.length && stored[cursor]! < end && stored[cursor]! - last <= READ_GAP_PAGES) last = stored[cursor++]!;
      const count = last - first + 1;
      const view = memory.pages(first, count);
      reads.push(readExactly(fh, path, view, SNAPSHOT_HEADER_BYTES + pageOffset(first)));
    }
    await Promise.all(reads);
  };
  let pending: Promise<void> | undefined = readChunk(0);
  for (let chunk = 0; chunk < memory.pageCount; chunk += IO_CHUNK_PAGES) {
    await pending;
    const next = chunk + IO_CHUNK_PAGES;
    pending = next < memory.pageCount ? readChunk(next) : undefined;
    hasher.update(memory.bytes.subarray(pageOffset(chunk), pageOffset(Math.min(next, memory.pageCount))));
  }
  return hex64(hasher.digest());
}

async function readExactly(fh: FileHandle, path: string, into: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < into.byteLength) {
    const { bytesRead } = await fh.read(into, done, into.byteLength - done, position + done);
    if (bytesRead === 0) throw new SnapshotFileError(path, 'truncated', `file ends at ${position + done} while reading`);
    done += bytesRead;
  }
}

function storedPagesOf(map: Uint8Array, pageCount: number): Uint32Array {
  let n = 0;
  for (let p = 0; p < pageCount; p++) if (map[p >>> 3]! & (1 << (p & 7))) n++;
  const out = new Uint32Array(n);
  n = 0;
  for (let p = 0; p < pageCount; p++) if (map[p >>> 3]! & (1 << (p & 7))) out[n++] = p;
  return out;
}

function metaDigest(header: Uint8Array, meta: Uint8Array, memoryDigest: Uint8Array): bigint {
  const h = new Xxh64(0n);
  h.update(header.subarray(0, HEADER_FIELDS_BYTES));
  h.update(meta);
  h.update(memoryDigest);
  return h.digest();
}

const ZERO_PAGE = Buffer.alloc(PAGE_SIZE_BYTES);

/**
 * Zero check of page `page` over views of all memory (no allocation per page): the first and last
 * words (almost every non-zero page fails there), then a memcmp against a zero page, which
 * `pnpm bench memory` measures at ~2.7× a word loop on zero pages.
 */
function isZeroPageAt(words: Int32Array, bytes: Buffer, page: number): boolean {
  const base = page * PAGE_WORDS;
  if ((words[base]! | words[base + PAGE_WORDS - 1]!) !== 0) return false;
  const start = pageOffset(page);
  return ZERO_PAGE.compare(bytes, start, start + PAGE_SIZE_BYTES) === 0;
}

function hex64(v: bigint): string {
  return v.toString(16).padStart(16, '0');
}

async function fsyncDir(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
