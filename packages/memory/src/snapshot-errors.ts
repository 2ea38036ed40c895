import { MemoryError } from './errors.ts';

/** What is wrong with a snapshot file that was refused. */
export type SnapshotFileProblem = 'not-a-snapshot' | 'version' | 'truncated' | 'corrupted' | 'too-large';

/**
 * A snapshot file that cannot be loaded: not a snapshot, a version this build does not read, cut
 * short, or failing its digests. Nothing of it was loaded. `path` names the file, `problem` says
 * what is wrong, the message adds the detail (expected vs found).
 */
export class SnapshotFileError extends MemoryError {
  readonly path: string;
  readonly problem: SnapshotFileProblem;
  constructor(path: string, problem: SnapshotFileProblem, detail: string, options?: { cause?: unknown }) {
    super(SNAPSHOT_ERROR_CODES[problem], `snapshot file ${path}: ${detail}`, options);
    this.path = path;
    this.problem = problem;
  }
}

/** Stable error codes of SnapshotFileError, one per problem. */
export const SNAPSHOT_ERROR_CODES = {
  'not-a-snapshot': 'FERRY_ERR_SNAPSHOT_MAGIC',
  version: 'FERRY_ERR_SNAPSHOT_VERSION',
  truncated: 'FERRY_ERR_SNAPSHOT_TRUNCATED',
  corrupted: 'FERRY_ERR_SNAPSHOT_CORRUPTED',
  'too-large': 'FERRY_ERR_SNAPSHOT_TOO_LARGE',
} as const satisfies Record<SnapshotFileProblem, string>;
