import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Host } from '@ferry/protocol';
import { pidsIn, portClosed, spawnCluster, waitGone, type ClusterProcess } from './cloud-helpers.ts';

// Ctrl-C on `pnpm cluster`: SIGINT to the launcher stops the agents and the coordinator it
// started, frees every port, and removes the cluster file, with the console still open.

const dirs: string[] = [];
const clusters: ClusterProcess[] = [];
afterEach(async () => {
  for (const c of clusters.splice(0)) {
    c.child.kill('SIGKILL');
    await c.exited;
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('pnpm cluster', () => {
  it('SIGINT leaves no process behind and no port bound', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'ferry-sigint-'));
    dirs.push(stateDir);
    const cluster = spawnCluster(['--state-dir', stateDir, '--port', '0', '--agents', '2', '--cpus', '2', '--memory', '256MiB', '--log-level', 'warn', '--failure-timeout-ms', '10000']);
    clusters.push(cluster);
    await cluster.waitForOutput(/Ferry console on/);
    const output = cluster.output();
    expect(output).toMatch(/demo VM vm-1 /); // the demo VMs booted before the console opened
    const port = Number(/coordinator http:\/\/127\.0\.0\.1:(\d+)/.exec(output)?.[1]);
    const token = readFileSync(join(stateDir, 'token'), 'utf8').trim();
    const hosts = (await (await fetch(`http://127.0.0.1:${port}/api/v1/hosts`, { headers: { authorization: `Bearer ${token}` } })).json()) as Host[];
    const ports = [port, ...hosts.map((h) => Number(h.address.split(':')[1]))];
    const pids = [cluster.child.pid!, ...pidsIn(output)];
    expect(pids.length).toBe(4); // launcher, coordinator, two agents
    expect(existsSync(join(stateDir, 'cluster.json'))).toBe(true);

    cluster.child.kill('SIGINT');
    const exit = await cluster.exited;
    expect(exit.code, cluster.errors()).toBe(0);
    expect(await waitGone(pids)).toEqual([]);
    for (const p of ports) expect(await portClosed(p), `port ${p}`).toBe(true);
    expect(existsSync(join(stateDir, 'cluster.json'))).toBe(false);
    expect(existsSync(join(stateDir, 'cluster.pid'))).toBe(false);
  });
});
