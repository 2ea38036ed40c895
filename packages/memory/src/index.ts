export { PAGE_SIZE_BYTES, PAGE_SHIFT, PAGES_PER_WORD, pageOffset } from './constants.ts';
export { MemoryError, PageOutOfRangeError, InvalidMemorySizeError } from './errors.ts';
export { GuestMemory, MAX_GUEST_PAGES } from './guest-memory.ts';
export { DirtyLog, popcount32 } from './dirty-log.ts';
export { isZeroPage, pageDigest, memoryDigest, pageSumDigest, pageSumTerm } from './page.ts';
export { SnapshotWriter, writeSnapshotFile, readSnapshotFile, SNAPSHOT_MAGIC, SNAPSHOT_END_MAGIC, SNAPSHOT_VERSION, SNAPSHOT_VERSIONS_ACCEPTED, SNAPSHOT_HEADER_BYTES, type SnapshotState, type SnapshotFileInfo, type LoadedSnapshot } from './snapshot-file.ts';
export { SnapshotFileError, SNAPSHOT_ERROR_CODES, type SnapshotFileProblem } from './snapshot-errors.ts';
export { startPrefault, type Prefault } from './prefault.ts';
export { MemoryPool, type MemoryPoolOptions, type MemoryPoolStats } from './memory-pool.ts';
