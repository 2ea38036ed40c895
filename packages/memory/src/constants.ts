/** Size of one guest page. Every page index in Ferry counts pages of this size. */
export const PAGE_SIZE_BYTES = 4096;
/** log2(PAGE_SIZE_BYTES): `byteOffset = page << PAGE_SHIFT`. */
export const PAGE_SHIFT = 12;
/** Pages tracked by one 32-bit word of a dirty bitmap. */
export const PAGES_PER_WORD = 32;
