import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MIGRATION_PROTOCOL_VERSION } from '@ferry/protocol';
import { bundledEntry } from './bundle-entry.ts';

const MAIN = new URL('./fixtures/bundled-main.ts', import.meta.url).pathname;

describe('bundledEntry', () => {
  it('bundles workspace code for plain node; third-party imports and paths relative to a source file still resolve', async () => {
    const path = await bundledEntry(MAIN);
    expect(path.startsWith(tmpdir())).toBe(true);
    expect(await bundledEntry(MAIN)).toBe(path); // built once per process
    const code = readFileSync(path, 'utf8');
    expect(code).not.toMatch(/from ["']@ferry\//); // bundled
    expect(code).toMatch(/from "file:\/\/[^"]*\/node_modules\/[^"]*ws[^"]*"/); // external, by absolute URL
    const out = JSON.parse(execFileSync(process.execPath, [path], { encoding: 'utf8', cwd: tmpdir() })) as Record<string, unknown>;
    expect(out).toEqual({ protocol: MIGRATION_PROTOCOL_VERSION, ws: 'function', sibling: 'found next to bundled-main.ts', tsx: 0 });
  });

  it('builds again when its file was removed, and then removes bundles of the same entry older than a day', async () => {
    const path = await bundledEntry(MAIN);
    const stale = join(dirname(path), 'bundled-main-0000000000000000.mjs');
    const fresh = join(dirname(path), 'bundled-main-1111111111111111.mjs');
    writeFileSync(stale, '// old');
    writeFileSync(fresh, '// another checkout, an hour ago');
    utimesSync(stale, new Date(Date.now() - 2 * 86_400_000), new Date(Date.now() - 2 * 86_400_000));
    utimesSync(fresh, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
    rmSync(path);
    expect(await bundledEntry(MAIN)).toBe(path);
    expect(existsSync(path)).toBe(true);
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(fresh)).toBe(true);
    rmSync(fresh);
  });

  it('rejects a module that does not build, every time (a failure is not kept)', async () => {
    const missing = new URL('./fixtures/no-such-module.ts', import.meta.url).pathname;
    await expect(bundledEntry(missing)).rejects.toThrow(/no-such-module/);
    await expect(bundledEntry(missing)).rejects.toThrow(/no-such-module/);
  });
});
