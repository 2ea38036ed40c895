import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Host } from '@ferry/protocol';
import { runCommand } from '../../../apps/cli/src/index.ts';
import { detachedClusterDirs, spawnCluster } from './cloud-helpers.ts';

// `pnpm cluster` starts again over a state dir whose last run left a host in maintenance (kept in
// the state dir): the host registers in maintenance, which counts as up and running for the start.

const dirs = detachedClusterDirs();

async function ferryJson(args: string[], stateDir: string): Promise<{ code: number; value: unknown }> {
  let out = '';
  const code = await runCommand([...args, '--json', '--state-dir', stateDir], { out: (t) => void (out += t), err: (t) => void (out += t), env: {}, cwd: tmpdir() });
  return { code, value: JSON.parse(out) as unknown };
}

describe('pnpm cluster restart', () => {
  it('starts again when the last run left a host in maintenance, and the host is still in maintenance', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'ferry-restart-'));
    dirs.push(stateDir);
    const args = ['--state-dir', stateDir, '--port', '0', '--agents', '2', '--cpus', '1', '--memory', '64MiB', '--no-demo', '--detach', '--log-level', 'warn'];
    const first = spawnCluster(args);
    expect((await first.exited).code, first.errors()).toBe(0);
    const drained = await ferryJson(['drain', 'host-2', '--wait'], stateDir);
    expect(drained.value).toMatchObject({ id: 'host-2', state: 'maintenance' });
    expect((await spawnCluster(['down', '--state-dir', stateDir]).exited).code).toBe(0);

    const second = spawnCluster(args);
    expect((await second.exited).code, second.output() + second.errors()).toBe(0);
    const hosts = (await ferryJson(['hosts'], stateDir)).value as Host[];
    expect(hosts.map((h) => [h.id, h.state])).toEqual([['host-1', 'up'], ['host-2', 'maintenance']]);
    expect((await spawnCluster(['down', '--state-dir', stateDir]).exited).code).toBe(0);
  }, 30_000);
});
