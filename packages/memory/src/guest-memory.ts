import { Buffer } from 'node:buffer';
import { PAGE_SIZE_BYTES, pageOffset } from './constants.ts';
import { InvalidMemorySizeError, PageOutOfRangeError } from './errors.ts';

// TypedArray#set into a SharedArrayBuffer copies with relaxed atomic word stores, 2–3× slower than
// memcpy here (4 vs 11 GB/s warm); Buffer#copy is memcpy and accepts any Uint8Array on either side.
const memcpy = Buffer.prototype.copy;

/** Largest guest we allow: 64 GiB, far beyond this machine, well inside SharedArrayBuffer limits. */
export const MAX_GUEST_PAGES = 16 * 1024 * 1024;

/**
 * Guest-physical memory: `pageCount` pages of 4096 bytes in one SharedArrayBuffer, shared with the
 * vCPU worker threads. This is the only copy of guest memory an agent holds; page views are
 * subarrays of it, never copies.
 */
export class GuestMemory {
  readonly pageCount: number;
  readonly byteLength: number;
  readonly buffer: SharedArrayBuffer;
  /** The whole of guest memory as bytes. */
  readonly bytes: Uint8Array;

  /** Allocates zeroed memory, or wraps `buffer` (which must be exactly `pageCount` pages). */
  constructor(pageCount: number, buffer?: SharedArrayBuffer) {
    if (!Number.isInteger(pageCount) || pageCount < 1 || pageCount > MAX_GUEST_PAGES) {
      throw new InvalidMemorySizeError(`page count must be an integer from 1 to ${MAX_GUEST_PAGES}, got ${pageCount}`);
    }
    const byteLength = pageCount * PAGE_SIZE_BYTES;
    if (buffer && buffer.byteLength !== byteLength) {
      throw new InvalidMemorySizeError(`buffer of ${buffer.byteLength} bytes does not hold ${pageCount} pages`);
    }
    this.pageCount = pageCount;
    this.byteLength = byteLength;
    this.buffer = buffer ?? new SharedArrayBuffer(byteLength);
    this.bytes = new Uint8Array(this.buffer);
  }

  /** Memory of `bytes` bytes, which must be a whole, positive number of pages. */
  static ofBytes(bytes: number): GuestMemory {
    if (!Number.isInteger(bytes) || bytes <= 0 || bytes % PAGE_SIZE_BYTES !== 0) {
      throw new InvalidMemorySizeError(`memory must be a positive multiple of ${PAGE_SIZE_BYTES} bytes, got ${bytes}`);
    }
    return new GuestMemory(bytes / PAGE_SIZE_BYTES);
  }

  /** Throws PageOutOfRangeError unless `page .. page+count-1` lies in guest memory. */
  checkRange(page: number, count = 1): void {
    if (!Number.isInteger(page) || !Number.isInteger(count) || page < 0 || count < 1 || page + count > this.pageCount) {
      throw new PageOutOfRangeError(page, this.pageCount);
    }
  }

  /** A bounds-checked view (not a copy) of one page. */
  page(page: number): Uint8Array {
    this.checkRange(page);
    const start = pageOffset(page);
    return this.bytes.subarray(start, start + PAGE_SIZE_BYTES);
  }

  /** A bounds-checked view (not a copy) of `count` contiguous pages starting at `page`. */
  pages(page: number, count: number): Uint8Array {
    this.checkRange(page, count);
    const start = pageOffset(page);
    return this.bytes.subarray(start, start + count * PAGE_SIZE_BYTES);
  }

  /** Copies one page of `data` (exactly 4096 bytes) into guest memory. */
  writePage(page: number, data: Uint8Array): void {
    if (data.byteLength !== PAGE_SIZE_BYTES) {
      throw new InvalidMemorySizeError(`a page write needs ${PAGE_SIZE_BYTES} bytes, got ${data.byteLength}`);
    }
    this.checkRange(page);
    memcpy.call(data, this.bytes, pageOffset(page));
  }

  /**
   * Copies `data`, a whole number of pages, into guest memory from `page` on (memcpy: the
   * migration receiver's hot path). Throws InvalidMemorySizeError or PageOutOfRangeError first.
   */
  writePages(page: number, data: Uint8Array): void {
    if (data.byteLength === 0 || data.byteLength % PAGE_SIZE_BYTES !== 0) {
      throw new InvalidMemorySizeError(`a page write needs a positive multiple of ${PAGE_SIZE_BYTES} bytes, got ${data.byteLength}`);
    }
    this.checkRange(page, data.byteLength / PAGE_SIZE_BYTES);
    memcpy.call(data, this.bytes, pageOffset(page));
  }

  /** Zeroes one page. */
  zeroPage(page: number): void {
    this.checkRange(page);
    const start = pageOffset(page);
    this.bytes.fill(0, start, start + PAGE_SIZE_BYTES);
  }
}
