/**
 * The commit point's write-ahead log: one line per commit decision, appended and fdatasync'ed
 * before the decision is sent. Appending a line costs one write and one data sync (~0.1 ms here);
 * rewriting the journal file atomically (write, fsync, rename, fsync of the directory) cost
 * 1–4 ms, and the commit point sits inside the VM's downtime. The journal is rewritten later (at
 * the migration's end) and then the log is emptied; after a crash, start() replays the lines the
 * journal does not show yet. A torn last line (a crash mid-append) is ignored: its decision was
 * never sent.
 */
import { closeSync, fdatasyncSync, fsyncSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** One commit decision. */
export interface CommitEntry {
  readonly id: string;
  readonly to: string;
  readonly atMs: number;
}

/** See the file comment. */
export class CommitLog {
  private readonly fd: number;
  private empty: boolean;

  /** Opens (creates) the log at `path`; the directory entry is made durable once here. */
  constructor(readonly path: string) {
    this.fd = openSync(path, 'a+', 0o600);
    const text = readFileSync(path, 'utf8');
    if (text.length > 0 && !text.endsWith('\n')) {
      writeSync(this.fd, '\n'); // end a torn line, so the next append starts a line of its own
      fdatasyncSync(this.fd);
    }
    this.empty = text.length === 0;
    const dir = openSync(dirname(path), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }

  /** The decisions logged since the last truncate(), in order (torn or malformed lines skipped). */
  read(): CommitEntry[] {
    const entries: CommitEntry[] = [];
    for (const line of readFileSync(this.path, 'utf8').split('\n')) {
      if (!line) continue;
      try {
        const e = JSON.parse(line) as Partial<CommitEntry>;
        if (typeof e.id === 'string' && typeof e.to === 'string' && typeof e.atMs === 'number') entries.push({ id: e.id, to: e.to, atMs: e.atMs });
      } catch {
        // a torn append: that decision was never sent
      }
    }
    return entries;
  }

  /** Appends `entry` and syncs it to disk before returning. */
  append(entry: CommitEntry): void {
    writeSync(this.fd, JSON.stringify(entry) + '\n');
    fdatasyncSync(this.fd);
    this.empty = false;
  }

  /** Empties the log (call once a journal holding every logged decision is durable). */
  truncate(): void {
    if (this.empty) return;
    ftruncateSync(this.fd, 0);
    fdatasyncSync(this.fd);
    this.empty = true;
  }

  close(): void {
    closeSync(this.fd);
  }
}
