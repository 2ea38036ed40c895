export { PAGE_SIZE_BYTES, PAGE_SHIFT, PAGES_PER_WORD } from './constants.ts';
export { MemoryError, PageOutOfRangeError, InvalidMemorySizeError } from './errors.ts';
export { GuestMemory, MAX_GUEST_PAGES } from './guest-memory.ts';
export { DirtyLog, popcount32 } from './dirty-log.ts';
export { isZeroPage, pageDigest, memoryDigest, pageSumDigest, pageSumTerm } from './page.ts';
