import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

  it('rejects a module that does not build, and does not keep the failure: the next call builds again', async () => {
    const missing = new URL('./fixtures/no-such-module.ts', import.meta.url).pathname;
    const first = bundledEntry(missing);
    await expect(first).rejects.toThrow(/no-such-module/);
    const second = bundledEntry(missing);
    expect(second).not.toBe(first);
    await expect(second).rejects.toThrow(/no-such-module/);
  });
});
