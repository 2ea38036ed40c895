import { PAGES_PER_WORD } from './constants.ts';
import { InvalidMemorySizeError, PageOutOfRangeError } from './errors.ts';

/**
 * The dirty-page log: one bit per guest page in a SharedArrayBuffer.
 *
 * Protocol (the order is what makes concurrent copying safe): a writer stores the page's data,
 * then marks the page with `Atomics.or`. The hypervisor harvests with an atomic get-and-clear per
 * word (like KVM_GET_DIRTY_LOG), then reads the pages. A store that races with that read re-marks
 * the page after the harvest, so the page is sent again in the next round.
 *
 * The log also keeps a "pages ever written" bitmap (private to the hypervisor, folded in at each
 * harvest) so pages never touched are known to be zero without reading them.
 */
export class DirtyLog {
  readonly pageCount: number;
  readonly buffer: SharedArrayBuffer;
  private readonly words: Int32Array;
  private readonly everWords: Int32Array;
  private indices: Uint32Array;

  /** A clean log for `pageCount` pages, or one over an existing shared bitmap. */
  constructor(pageCount: number, buffer?: SharedArrayBuffer) {
    if (!Number.isInteger(pageCount) || pageCount < 1) {
      throw new InvalidMemorySizeError(`page count must be a positive integer, got ${pageCount}`);
    }
    const wordCount = Math.ceil(pageCount / PAGES_PER_WORD);
    if (buffer && buffer.byteLength !== wordCount * 4) {
      throw new InvalidMemorySizeError(`dirty bitmap of ${buffer.byteLength} bytes does not cover ${pageCount} pages`);
    }
    this.pageCount = pageCount;
    this.buffer = buffer ?? new SharedArrayBuffer(wordCount * 4);
    this.words = new Int32Array(this.buffer);
    this.everWords = new Int32Array(wordCount);
    this.indices = new Uint32Array(0);
  }

  /** Marks `page` dirty. Call after storing the page's data. Safe from any thread. */
  mark(page: number): void {
    if (!(page >= 0 && page < this.pageCount)) throw new PageOutOfRangeError(page, this.pageCount);
    Atomics.or(this.words, page >>> 5, 1 << (page & 31));
  }

  /** Whether `page` is dirty now (not harvested since its last mark). */
  isDirty(page: number): boolean {
    if (!(page >= 0 && page < this.pageCount)) throw new PageOutOfRangeError(page, this.pageCount);
    return (Atomics.load(this.words, page >>> 5) & (1 << (page & 31))) !== 0;
  }

  /** Whether `page` was ever marked (harvested before or dirty now). Never-written pages are zero. */
  isEverWritten(page: number): boolean {
    if (!(page >= 0 && page < this.pageCount)) throw new PageOutOfRangeError(page, this.pageCount);
    const bit = 1 << (page & 31);
    const w = page >>> 5;
    return ((this.everWords[w]! | Atomics.load(this.words, w)) & bit) !== 0;
  }

  /** Number of pages dirty now. Reads without clearing. */
  count(): number {
    let n = 0;
    const words = this.words;
    for (let w = 0; w < words.length; w++) {
      const v = words[w]!;
      if (v !== 0) n += popcount32(v);
    }
    return n;
  }

  /**
   * A copy of the "ever written" map as bytes: page p is bit (p & 7) of byte p >> 3 (the word
   * bitmap's own layout on a little-endian machine, which every Node platform Ferry runs on is).
   * A migration sends it ahead of round 1 so the destination can pre-fault exactly those pages.
   */
  everWrittenBitmap(): Uint8Array {
    const words = new Int32Array(this.words.length);
    for (let w = 0; w < words.length; w++) words[w] = this.everWords[w]! | Atomics.load(this.words, w);
    return new Uint8Array(words.buffer, 0, Math.ceil(this.pageCount / 8));
  }

  /**
   * The pages ever written (see isEverWritten), ascending, found a word at a time (empty words
   * skipped): what a migration's round 1 walks instead of every page of a mostly empty VM. A new
   * array each call.
   */
  everWrittenPages(): Uint32Array {
    // One snapshot of the words, so the count and the list agree while the guest keeps marking.
    const snapshot = new Int32Array(this.words.length);
    let count = 0;
    for (let w = 0; w < snapshot.length; w++) {
      const v = this.everWords[w]! | Atomics.load(this.words, w);
      snapshot[w] = v;
      if (v !== 0) count += popcount32(v);
    }
    const out = new Uint32Array(count);
    let n = 0;
    for (let w = 0; w < snapshot.length; w++) {
      let v = snapshot[w]!;
      const base = w << 5;
      while (v !== 0) {
        const low = v & -v;
        out[n++] = base + (31 - Math.clz32(low));
        v ^= low;
      }
    }
    return out;
  }

  /** Number of pages ever written (see isEverWritten). */
  countEverWritten(): number {
    let n = 0;
    for (let w = 0; w < this.words.length; w++) {
      const v = this.everWords[w]! | Atomics.load(this.words, w);
      if (v !== 0) n += popcount32(v);
    }
    return n;
  }

  /**
   * Atomically takes and clears every dirty bit; returns the dirty page indices in ascending order.
   * The returned array is a view of a buffer reused by the next harvest: consume or copy it first.
   * Empty words are skipped with a plain read (a racing mark is caught by the next harvest).
   */
  harvest(): Uint32Array {
    const words = this.words;
    const ever = this.everWords;
    let out = this.indices;
    let n = 0;
    for (let w = 0; w < words.length; w++) {
      if (words[w] === 0) continue;
      let v = Atomics.exchange(words, w, 0);
      if (v === 0) continue;
      ever[w] = ever[w]! | v;
      if (out.length - n < PAGES_PER_WORD) out = this.grow(n);
      const base = w << 5;
      while (v !== 0) {
        const low = v & -v;
        out[n++] = base + (31 - Math.clz32(low));
        v ^= low;
      }
    }
    return out.subarray(0, n);
  }

  /** Clears every dirty bit without reporting them (the "ever written" map still records them). */
  clear(): void {
    for (let w = 0; w < this.words.length; w++) {
      if (this.words[w] === 0) continue;
      const v = Atomics.exchange(this.words, w, 0);
      this.everWords[w] = this.everWords[w]! | v;
    }
  }

  /** Forgets the "ever written" map too: for memory known to be all zero again. */
  reset(): void {
    this.words.fill(0);
    this.everWords.fill(0);
  }

  /** Marks every page in `pages` as ever written (used when memory is loaded from a file or image). */
  markEverWritten(pages: Iterable<number>): void {
    for (const page of pages) {
      if (!(page >= 0 && page < this.pageCount)) throw new PageOutOfRangeError(page, this.pageCount);
      this.everWords[page >>> 5] = this.everWords[page >>> 5]! | (1 << (page & 31));
    }
  }

  /**
   * Marks the pages set in `map` as ever written, a word at a time: page p is bit (p & 7) of byte
   * p >> 3 (everWrittenBitmap's layout), at least ceil(pageCount / 8) bytes. What a migration's
   * destination passes inside the downtime: for 1 GiB, 8,192 word ORs against a loop over every
   * written page (8,000 pages cost ~2 ms in code that runs once per migration, never optimised).
   */
  markEverWrittenMap(map: Uint8Array): void {
    const bytes = Math.ceil(this.pageCount / 8);
    if (map.byteLength < bytes) throw new InvalidMemorySizeError(`a page map of ${map.byteLength} bytes does not cover ${this.pageCount} pages`);
    const ever = this.everWords;
    const whole = bytes >>> 2;
    if ((map.byteOffset & 3) === 0) {
      const words = new Int32Array(map.buffer, map.byteOffset, whole);
      for (let w = 0; w < whole; w++) if (words[w] !== 0) ever[w] = ever[w]! | words[w]!;
    } else {
      for (let w = 0; w < whole; w++) ever[w] = ever[w]! | (map[4 * w]! | (map[4 * w + 1]! << 8) | (map[4 * w + 2]! << 16) | (map[4 * w + 3]! << 24));
    }
    for (let b = whole * 4; b < bytes; b++) ever[b >>> 2] = ever[b >>> 2]! | (map[b]! << (8 * (b & 3)));
    const tail = this.pageCount & 31;
    if (tail !== 0) ever[ever.length - 1] = ever[ever.length - 1]! & ((1 << tail) - 1); // nothing past the last page
  }

  private grow(used: number): Uint32Array {
    const next = new Uint32Array(Math.min(this.pageCount + PAGES_PER_WORD, Math.max(1024, this.indices.length * 2)));
    next.set(this.indices.subarray(0, used));
    this.indices = next;
    return next;
  }
}

/** Number of set bits in a 32-bit integer. */
export function popcount32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}
