import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiEvent, Host } from '@ferry/protocol';
// The agent is imported by path: apps/coordinator does not depend on apps/agent, only this test does.
import { startAgent } from '../../agent/src/index.ts';
import { createCloudModules } from './cloud.ts';
import { startCoordinator, type RunningCoordinator } from './coordinator.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const MiB = 2 ** 20;

async function cluster(hostIds: string[], drain: { maxPerHost: number; maxPerCluster: number }): Promise<RunningCoordinator> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-drain-test-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const stateDir = join(dir, 'coord');
  const { modules } = createCloudModules({ stateDir, drain });
  const coord = await startCoordinator({ port: 0, stateDir, heartbeatIntervalMs: 100, failureTimeoutMs: 10_000, modules });
  cleanups.push(() => coord.close());
  for (const id of hostIds) {
    const agent = await startAgent({ coordinatorUrl: `ws://127.0.0.1:${coord.port}`, token: coord.token, hostId: id, capacity: { cpus: 4, memoryBytes: 256 * MiB, diskBytes: 2 ** 34 }, dataDir: join(dir, id), pcpus: 1 });
    cleanups.push(() => agent.close());
    await agent.whenRegistered();
  }
  return coord;
}

async function api(coord: RunningCoordinator, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${coord.url}/api/v1${path}`, { method, headers: { authorization: `Bearer ${coord.token}`, 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, body: await res.json() };
}

describe('host drain', () => {
  it('moves every VM off with at most one migration at a time, spread over the other hosts, then maintenance', async () => {
    const coord = await cluster(['host-1', 'host-2', 'host-3'], { maxPerHost: 1, maxPerCluster: 1 });
    for (let i = 0; i < 4; i++) {
      const r = await api(coord, 'POST', '/vms', { image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB', host: 'host-1' });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
    }
    const since = coord.events.lastSeq;
    expect((await api(coord, 'POST', '/hosts/host-1/drain')).status).toBe(202);
    for (let i = 0; i < 600 && coord.hosts.find('host-1')?.state !== 'maintenance'; i++) await new Promise((r) => setTimeout(r, 50));
    expect(coord.hosts.find('host-1')?.state).toBe('maintenance');

    const events: ApiEvent[] = coord.events.since(since);
    let running = 0;
    let most = 0;
    for (const e of events) {
      if (e.type === 'migration-started') most = Math.max(most, ++running);
      if (e.type === 'migration-completed' || e.type === 'migration-failed' || e.type === 'migration-cancelled') running--;
    }
    expect(most).toBe(1);
    const destinations = events.filter((e) => e.type === 'migration-completed').map((e) => (e.data as { to: string }).to);
    expect(destinations.length).toBe(4);
    expect(new Set(destinations)).toEqual(new Set(['host-2', 'host-3'])); // spread, not piled on one host
    const hosts = (await api(coord, 'GET', '/hosts')).body as Host[];
    expect(hosts.map((h) => [h.id, h.state, h.vms])).toEqual([['host-1', 'maintenance', 0], ['host-2', 'up', 2], ['host-3', 'up', 2]]);
    expect(events.some((e) => e.type === 'host-drain-completed' && e.host === 'host-1')).toBe(true);
  });
});
