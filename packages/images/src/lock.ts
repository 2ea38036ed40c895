import { mkdir, rmdir, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { LibraryLockedError } from './errors.ts';

/** How long withLibraryLock waits for another holder, and after how long a lock counts as stale (its holder died). */
export const LOCK_WAIT_MS = 15_000;
export const LOCK_STALE_MS = 60_000;

/**
 * Runs `fn` holding the directory lock `lockPath` (an exclusive mkdir, so it works across
 * processes on one machine). Waits up to LOCK_WAIT_MS, breaking a lock older than LOCK_STALE_MS;
 * throws LibraryLockedError after that.
 */
export async function withLibraryLock<T>(lockPath: string, fn: () => Promise<T>): Promise<T> {
  const start = Date.now();
  for (;;) {
    try {
      await mkdir(lockPath);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try {
        const { mtimeMs } = await stat(lockPath);
        if (Date.now() - mtimeMs > LOCK_STALE_MS) await rmdir(lockPath).catch(() => undefined);
      } catch {
        // gone between mkdir and stat: retry at once
      }
      if (Date.now() - start > LOCK_WAIT_MS) throw new LibraryLockedError(lockPath, Date.now() - start);
      await sleep(20);
    }
  }
  try {
    return await fn();
  } finally {
    await rmdir(lockPath).catch(() => undefined);
  }
}
