import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// The agent is imported by path: apps/coordinator does not depend on apps/agent, only this test does.
import { startAgent } from '../../agent/src/index.ts';
import { createCloudModules } from './cloud.ts';
import { startCoordinator, type RunningCoordinator } from './coordinator.ts';
import { EventBus } from './events.ts';
import { HostRegistry } from './hosts.ts';
import { ClusterPlacement } from './placement.ts';
import { GROUP_POLICIES as SCHEDULER_GROUP_POLICIES, type StrategyName } from '@ferry/placement';
import { GROUP_POLICIES, type Vm } from '@ferry/protocol';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const MiB = 2 ** 20;
const CAPACITY = { cpus: 4, memoryBytes: 256 * MiB, diskBytes: 2 ** 34 };

/** A coordinator with the cloud modules (strategy `strategy`) and one real agent per host id; `run` posts a run request and expects 201. */
async function cluster(strategy: StrategyName, hostIds: readonly string[]): Promise<{ coord: RunningCoordinator; run: (body: object) => Promise<Vm> }> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-placement-test-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const stateDir = join(dir, 'coord');
  const { modules } = createCloudModules({ stateDir, strategy });
  const coord = await startCoordinator({ port: 0, stateDir, heartbeatIntervalMs: 100, failureTimeoutMs: 10_000, modules });
  cleanups.push(() => coord.close());
  for (const id of hostIds) {
    const agent = await startAgent({ coordinatorUrl: `ws://127.0.0.1:${coord.port}`, token: coord.token, hostId: id, capacity: CAPACITY, dataDir: join(dir, id), pcpus: 1 });
    cleanups.push(() => agent.close());
    await agent.whenRegistered();
  }
  const run = async (body: object): Promise<Vm> => {
    const res = await fetch(`${coord.url}/api/v1/vms`, { method: 'POST', headers: { authorization: `Bearer ${coord.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const json = (await res.json()) as Vm;
    expect(res.status, JSON.stringify(json)).toBe(201);
    return json;
  };
  return { coord, run };
}

describe('image locality from the cluster', () => {
  it('a second instance of an image goes to the host that provisioned the first, where worst-fit alone would spread it', async () => {
    const c = await cluster('worst-fit', ['host-1', 'host-2']);
    const first = await c.run({ image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB', host: 'host-2' });
    expect(first.host).toBe('host-2');
    // Worst-fit scores host-1 (empty) above host-2 by far less than the locality bonus (0.3).
    const second = await c.run({ image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB' });
    expect(second.host).toBe('host-2');
  }, 20_000);

  it('an instance already on its host (restart, adoption) marks its image as cached there', () => {
    const events = new EventBus();
    const hosts = new HostRegistry(events);
    hosts.register('host-1', CAPACITY, 'ws://127.0.0.1:1/migrate', []);
    hosts.register('host-2', CAPACITY, 'ws://127.0.0.1:2/migrate', []);
    const vm = { id: 'vm-1', host: 'host-2', cpus: 1, memoryBytes: 16 * MiB, diskBytes: 256 * MiB, image: 'minimal' };
    const placement = new ClusterPlacement(hosts, events, [], 'worst-fit');
    placement.claimExisting(vm);
    expect(placement.scheduler.hosts().find((h) => h.id === 'host-2')?.images).toEqual(['minimal']);
    expect(placement.place({ id: 'vm-2', cpus: 1, memoryBytes: 16 * MiB, diskBytes: 256 * MiB, image: 'minimal' })).toBe('host-2');
    // Control: another image has no cached copy anywhere, so worst-fit spreads it to the empty host.
    expect(placement.place({ id: 'vm-3', cpus: 1, memoryBytes: 16 * MiB, diskBytes: 256 * MiB, image: 'other' })).toBe('host-1');
    placement.close();
  });
});

describe('group policies from the cluster', () => {
  it('the API offers exactly the policies the scheduler knows, soft ones included', () => {
    expect([...GROUP_POLICIES].sort()).toEqual([...SCHEDULER_GROUP_POLICIES].sort());
  });

  it('soft-anti-affinity spreads members where best-fit would pack them, yet never refuses one', async () => {
    const c = await cluster('best-fit', ['host-1', 'host-2']);
    const group = { name: 'web', policy: 'soft-anti-affinity' };
    const a = await c.run({ image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB', group });
    const b = await c.run({ image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB', group });
    expect(b.group).toEqual(group);
    expect(new Set([a.host, b.host])).toEqual(new Set(['host-1', 'host-2']));
    // A third member has no member-free host left: a soft rule places it all the same (hard anti-affinity would refuse).
    const third = await c.run({ image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB', group });
    expect(['host-1', 'host-2']).toContain(third.host);
  }, 20_000);

  it('soft-affinity keeps members together where worst-fit would spread them', async () => {
    const c = await cluster('worst-fit', ['host-1', 'host-2']);
    // One instance on each host first: both hold the image (no locality difference) and the same load.
    await c.run({ image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB', host: 'host-1' });
    await c.run({ image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB', host: 'host-2' });
    const group = { name: 'db', policy: 'soft-affinity' };
    const a = await c.run({ image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB', group });
    const b = await c.run({ image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB', group });
    expect(b.host).toBe(a.host);
  }, 20_000);
});
