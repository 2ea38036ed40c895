import { GuestMemory, PAGE_SIZE_BYTES, pageOffset, pageSumTerm } from '@ferry/memory';

const PAGE_INTS = PAGE_SIZE_BYTES / 4;

/**
 * Whether page `page` of `words` (Int32Array over all of guest memory) is all zero. Same test as
 * @ferry/memory's isZeroPage but over one prebuilt view: no allocation per page (isZeroPage builds
 * two typed-array views per call, which dominates on the sender's scan of every page).
 */
export function isZeroPageAt(words: Int32Array, page: number): boolean {
  const start = page * PAGE_INTS;
  const end = start + PAGE_INTS;
  if ((words[start]! | words[end - 1]!) !== 0) return false;
  for (let i = start; i < end; i += 4) {
    if ((words[i]! | words[i + 1]! | words[i + 2]! | words[i + 3]!) !== 0) return false;
  }
  return true;
}

/**
 * The incremental, order-independent memory digest both ends of a migration keep: the sum mod 2^64
 * over pages of term(page) = 0 for an all-zero page, else pageSumTerm(bytes, index) (@ferry/memory).
 * Zero pages count 0 so fresh memory starts at 0 on both sides without a pass. Updated per page
 * sent or received; equals `pageTermSum(memory)` recomputed from scratch.
 */
export class PageSumTracker {
  private readonly terms: BigUint64Array;
  private sum = 0n;

  constructor(pageCount: number) {
    this.terms = new BigUint64Array(pageCount);
  }

  /** Records that page `index` now holds `bytes` (one page). */
  update(index: number, bytes: Uint8Array, zero: boolean): void {
    const term = zero ? 0n : pageSumTerm(bytes, index);
    const old = this.terms[index]!;
    if (term === old) return;
    this.terms[index] = term;
    this.sum = BigInt.asUintN(64, this.sum + term - old);
  }

  /** Records that page `index` is all zero now. */
  setZero(index: number): void {
    const old = this.terms[index]!;
    if (old === 0n) return;
    this.terms[index] = 0n;
    this.sum = BigInt.asUintN(64, this.sum - old);
  }

  /** The digest: 16 hex digits. */
  digest(): string {
    return this.sum.toString(16).padStart(16, '0');
  }
}

/** PageSumTracker's digest recomputed over all of `memory` (a full pass; for tests and checks). */
export function pageTermSum(memory: GuestMemory): string {
  const tracker = new PageSumTracker(memory.pageCount);
  const words = new Int32Array(memory.buffer);
  for (let p = 0; p < memory.pageCount; p++) {
    const zero = isZeroPageAt(words, p);
    if (!zero) tracker.update(p, memory.bytes.subarray(pageOffset(p), pageOffset(p + 1)), false);
  }
  return tracker.digest();
}
