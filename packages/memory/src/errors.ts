import { FerryError } from '@ferry/protocol';

/** Base class of every error this package throws: a stable `code` and structured context. */
export class MemoryError extends FerryError {}

/** A page index or range outside guest memory. */
export class PageOutOfRangeError extends MemoryError {
  readonly page: number;
  readonly pageCount: number;
  constructor(page: number, pageCount: number) {
    super('FERRY_ERR_PAGE_OUT_OF_RANGE', `page ${page} is outside guest memory of ${pageCount} pages`);
    this.page = page;
    this.pageCount = pageCount;
  }
}

/** A size that cannot describe guest memory (zero, negative, fractional, or too large). */
export class InvalidMemorySizeError extends MemoryError {
  constructor(message: string) {
    super('FERRY_ERR_MEMORY_SIZE', message);
  }
}
