import { afterEach, describe, expect, it } from 'vitest';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommitLog } from './migrations-commit-log.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function logPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-commit-log-'));
  dirs.push(dir);
  return join(dir, 'migrations.journal.json.commits');
}

describe('CommitLog', () => {
  it('keeps appended decisions across reopening, skips a torn last line, and empties on truncate', () => {
    const path = logPath();
    const log = new CommitLog(path);
    log.append({ id: 'm-1', to: 'h2', atMs: 1 });
    log.append({ id: 'm-2', to: 'h3', atMs: 2 });
    log.close();
    appendFileSync(path, '{"id":"m-3","to":"h'); // a crash mid-append
    const reopened = new CommitLog(path);
    expect(reopened.read()).toEqual([
      { id: 'm-1', to: 'h2', atMs: 1 },
      { id: 'm-2', to: 'h3', atMs: 2 },
    ]);
    reopened.append({ id: 'm-5', to: 'h2', atMs: 5 }); // after the torn line, on a line of its own
    expect(reopened.read().map((e) => e.id)).toEqual(['m-1', 'm-2', 'm-5']);
    reopened.truncate();
    expect(readFileSync(path, 'utf8')).toBe('');
    reopened.append({ id: 'm-4', to: 'h1', atMs: 4 });
    expect(reopened.read()).toEqual([{ id: 'm-4', to: 'h1', atMs: 4 }]);
    reopened.close();
  });
});
