/**
 * The binary page frame: how guest pages cross a migration channel. Many pages a frame, no
 * msgpack, a fixed little-endian layout that the receiver checks completely before it copies a
 * byte, and a shape that lets the sender hand contiguous runs of guest memory to the channel as
 * views (no copy): all headers come first, then the page bytes of the raw runs, in table order.
 *
 * ```text
 * frame  = header (16 bytes) · run table (runCount × 8 bytes) · data (dataBytes)
 * header:  u16 magic = 0x4650 ('PF')   u8 kind (0 invalid, 1 pages)   u8 version = 1
 *          u32 round                   u32 runCount (1..)              u32 dataBytes
 * run:     u32 firstPage   u16 pageCount (1..65535)   u8 encoding   u8 reserved = 0
 * encoding: 0 invalid · 1 raw (pageCount × 4096 bytes in data) · 2 zero (no data)
 *           3 hash reference, 4 delta: reserved, refused as unsupported
 * ```
 * Invariants checked by `readPageFrame`: frame length ≤ the cap; magic, kind, version; runCount ≥ 1
 * and the table fits; every run inside the VM's page count with a known, implemented encoding;
 * dataBytes = 4096 × (raw pages) and frame length = 16 + 8 × runCount + dataBytes exactly.
 * A 256-page raw run costs 8 bytes of table: a 1 MiB frame of contiguous pages is two parts.
 */
import {
  FrameEncodingError,
  FrameInvalidError,
  FramePageRangeError,
  FrameTooLargeError,
  FrameTruncatedError,
} from './errors.ts';

/** Guest page size the frame counts in (same as @ferry/memory's PAGE_SIZE_BYTES). */
export const FRAME_PAGE_BYTES = 4096;
/** 'PF' little-endian. */
export const PAGE_FRAME_MAGIC = 0x4650;
/** Layout version in the header; bumped with the migration protocol version when the layout changes. */
export const PAGE_FRAME_VERSION = 1;
export const PAGE_FRAME_HEADER_BYTES = 16;
export const PAGE_RUN_HEADER_BYTES = 8;
/** Most pages one run may hold (u16). */
export const MAX_RUN_PAGES = 0xffff;
/** Default cap a receiver puts on a frame: 4 MiB of page data plus a full table of single-page runs. */
export const DEFAULT_MAX_PAGE_FRAME_BYTES = 4 * 1024 * 1024 + PAGE_FRAME_HEADER_BYTES + 1024 * PAGE_RUN_HEADER_BYTES;

/** Frame kinds; 0 is reserved as invalid. */
export const FRAME_KIND = { invalid: 0, pages: 1 } as const;

/** Page encodings; 0 is invalid, 3 and 4 are reserved for later and refused today. */
export const PAGE_ENCODING = { invalid: 0, raw: 1, zero: 2, hashRef: 3, delta: 4 } as const;
export type PageEncoding = (typeof PAGE_ENCODING)[keyof typeof PAGE_ENCODING];

/** What readPageFrame found in a valid frame. */
export interface PageFrameSummary {
  readonly round: number;
  readonly runCount: number;
  readonly rawPages: number;
  readonly zeroPages: number;
}

/**
 * Called once per run of a valid frame, after the whole frame was checked: `dataOffset` is where
 * the run's bytes start in the frame (raw runs; -1 for zero runs).
 */
export type PageRunVisitor = (firstPage: number, pageCount: number, encoding: PageEncoding, dataOffset: number) => void;

/**
 * Checks `frame` completely against `vmPageCount` and `maxFrameBytes`, then calls `visit` for each
 * run in order. Throws FrameTooLargeError, FrameTruncatedError, FrameInvalidError,
 * FramePageRangeError or FrameEncodingError before visiting anything. Allocates nothing per page.
 */
export function readPageFrame(
  frame: Uint8Array,
  vmPageCount: number,
  visit: PageRunVisitor,
  maxFrameBytes: number = DEFAULT_MAX_PAGE_FRAME_BYTES,
): PageFrameSummary {
  const length = frame.byteLength;
  if (length > maxFrameBytes) throw new FrameTooLargeError(length, maxFrameBytes);
  if (length < PAGE_FRAME_HEADER_BYTES) throw new FrameTruncatedError(length, PAGE_FRAME_HEADER_BYTES);
  const view = new DataView(frame.buffer, frame.byteOffset, length);
  const magic = view.getUint16(0, true);
  if (magic !== PAGE_FRAME_MAGIC) throw new FrameInvalidError(`bad frame magic 0x${magic.toString(16)}`);
  const kind = view.getUint8(2);
  if (kind !== FRAME_KIND.pages) throw new FrameInvalidError(`frame kind ${kind} is ${kind === 0 ? 'reserved as invalid' : 'unknown'}`);
  const version = view.getUint8(3);
  if (version !== PAGE_FRAME_VERSION) throw new FrameInvalidError(`frame layout version ${version} is not ${PAGE_FRAME_VERSION}`);
  const round = view.getUint32(4, true);
  const runCount = view.getUint32(8, true);
  const dataBytes = view.getUint32(12, true);
  if (runCount === 0) throw new FrameInvalidError('frame has no runs');
  const tableEnd = PAGE_FRAME_HEADER_BYTES + runCount * PAGE_RUN_HEADER_BYTES;
  if (tableEnd > length) throw new FrameTruncatedError(length, tableEnd);
  if (tableEnd + dataBytes !== length) {
    if (tableEnd + dataBytes > length) throw new FrameTruncatedError(length, tableEnd + dataBytes);
    throw new FrameInvalidError(`frame of ${length} bytes is longer than its header says (${tableEnd + dataBytes})`);
  }
  // Pass 1: check every run before touching anything.
  let rawPages = 0;
  let zeroPages = 0;
  for (let at = PAGE_FRAME_HEADER_BYTES; at < tableEnd; at += PAGE_RUN_HEADER_BYTES) {
    const first = view.getUint32(at, true);
    const count = view.getUint16(at + 4, true);
    const encoding = view.getUint8(at + 6);
    if (view.getUint8(at + 7) !== 0) throw new FrameInvalidError('run reserved byte must be 0');
    if (count === 0) throw new FrameInvalidError(`run at page ${first} has no pages`);
    if (first + count > vmPageCount) throw new FramePageRangeError(first, count, vmPageCount);
    if (encoding === PAGE_ENCODING.raw) rawPages += count;
    else if (encoding === PAGE_ENCODING.zero) zeroPages += count;
    else if (encoding === PAGE_ENCODING.hashRef || encoding === PAGE_ENCODING.delta) throw new FrameEncodingError(encoding, 'is reserved and not supported yet');
    else throw new FrameEncodingError(encoding, encoding === 0 ? 'is reserved as invalid' : 'is unknown');
  }
  if (rawPages * FRAME_PAGE_BYTES !== dataBytes) {
    throw new FrameInvalidError(`frame carries ${dataBytes} data bytes for ${rawPages} raw pages`);
  }
  // Pass 2: hand each run over.
  let dataOffset = tableEnd;
  for (let at = PAGE_FRAME_HEADER_BYTES; at < tableEnd; at += PAGE_RUN_HEADER_BYTES) {
    const first = view.getUint32(at, true);
    const count = view.getUint16(at + 4, true);
    const encoding = view.getUint8(at + 6) as PageEncoding;
    if (encoding === PAGE_ENCODING.raw) {
      visit(first, count, encoding, dataOffset);
      dataOffset += count * FRAME_PAGE_BYTES;
    } else {
      visit(first, count, encoding, -1);
    }
  }
  return { round, runCount, rawPages, zeroPages };
}

/**
 * Builds page frames for a sender over one guest memory (`source`, all of its bytes). Pages are
 * added in any order; consecutive pages of the same encoding join one run, and a raw run is sent
 * as one view of `source`. `take()` returns the frame as parts for `Channel.sendFrame` and resets
 * the builder; the header buffer is fresh each frame (the channel may hold it until written).
 */
export class PageFrameBuilder {
  private readonly source: Uint8Array;
  private readonly maxRuns: number;
  private firsts: Uint32Array;
  private counts: Uint16Array;
  private encodings: Uint8Array;
  private runs = 0;
  private raw = 0;
  private zero = 0;

  /** `maxRuns` bounds the run table (default 1024 runs, 8 KiB). */
  constructor(source: Uint8Array, maxRuns = 1024) {
    if (source.byteLength % FRAME_PAGE_BYTES !== 0) throw new RangeError('source must be a whole number of pages');
    this.source = source;
    this.maxRuns = maxRuns;
    this.firsts = new Uint32Array(maxRuns);
    this.counts = new Uint16Array(maxRuns);
    this.encodings = new Uint8Array(maxRuns);
  }

  /** Page bytes (raw pages × 4096) in the frame being built. */
  get dataBytes(): number {
    return this.raw * FRAME_PAGE_BYTES;
  }
  /** Pages (raw and zero) in the frame being built. */
  get pageCount(): number {
    return this.raw + this.zero;
  }
  /** Whether the run table is full: take() before adding more. */
  get full(): boolean {
    return this.runs >= this.maxRuns;
  }
  /** Bytes the frame will have on the wire. */
  get frameBytes(): number {
    return PAGE_FRAME_HEADER_BYTES + this.runs * PAGE_RUN_HEADER_BYTES + this.dataBytes;
  }

  /** Adds one page with `encoding` raw or zero. Throws RangeError when the table is full (check `full`). */
  add(page: number, encoding: typeof PAGE_ENCODING.raw | typeof PAGE_ENCODING.zero): void {
    const last = this.runs - 1;
    if (last >= 0 && this.encodings[last] === encoding && this.firsts[last]! + this.counts[last]! === page && this.counts[last]! < MAX_RUN_PAGES) {
      this.counts[last] = this.counts[last]! + 1;
    } else {
      if (this.runs >= this.maxRuns) throw new RangeError('page frame run table is full');
      this.firsts[this.runs] = page;
      this.counts[this.runs] = 1;
      this.encodings[this.runs] = encoding;
      this.runs++;
    }
    if (encoding === PAGE_ENCODING.raw) this.raw++;
    else this.zero++;
  }

  /** The frame as parts (header+table, then one view per raw run) for round `round`; resets the builder. Undefined when empty. */
  take(round: number): Uint8Array[] | undefined {
    if (this.runs === 0) return undefined;
    const tableEnd = PAGE_FRAME_HEADER_BYTES + this.runs * PAGE_RUN_HEADER_BYTES;
    const head = new Uint8Array(tableEnd);
    const view = new DataView(head.buffer);
    view.setUint16(0, PAGE_FRAME_MAGIC, true);
    view.setUint8(2, FRAME_KIND.pages);
    view.setUint8(3, PAGE_FRAME_VERSION);
    view.setUint32(4, round, true);
    view.setUint32(8, this.runs, true);
    view.setUint32(12, this.dataBytes, true);
    const parts: Uint8Array[] = [head];
    for (let r = 0; r < this.runs; r++) {
      const at = PAGE_FRAME_HEADER_BYTES + r * PAGE_RUN_HEADER_BYTES;
      const first = this.firsts[r]!;
      const count = this.counts[r]!;
      const encoding = this.encodings[r]!;
      view.setUint32(at, first, true);
      view.setUint16(at + 4, count, true);
      view.setUint8(at + 6, encoding);
      if (encoding === PAGE_ENCODING.raw) parts.push(this.source.subarray(first * FRAME_PAGE_BYTES, (first + count) * FRAME_PAGE_BYTES));
    }
    this.runs = 0;
    this.raw = 0;
    this.zero = 0;
    return parts;
  }
}

/** Concatenates frame parts into one buffer (what a wire delivers; for tests and transports that cannot send parts). */
export function joinFrameParts(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.byteLength;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
