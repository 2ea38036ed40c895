/** Size of one guest page. Every page index in Ferry counts pages of this size. */
export const PAGE_SIZE_BYTES = 4096;
/** log2(PAGE_SIZE_BYTES). Never compute byte offsets with `page << PAGE_SHIFT`: it overflows 32 bits at 2 GiB; use pageOffset. */
export const PAGE_SHIFT = 12;
/** Pages tracked by one 32-bit word of a dirty bitmap. */
export const PAGES_PER_WORD = 32;

/**
 * Byte offset of `page` in guest memory. A multiplication, not `page << PAGE_SHIFT`: JavaScript
 * shifts are 32-bit, so a shift overflows from page 524,288 (2 GiB) on.
 */
export function pageOffset(page: number): number {
  return page * PAGE_SIZE_BYTES;
}
