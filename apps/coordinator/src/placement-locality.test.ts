import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// The agent is imported by path: apps/coordinator does not depend on apps/agent, only this test does.
import { startAgent } from '../../agent/src/index.ts';
import { createCloudModules } from './cloud.ts';
import { startCoordinator } from './coordinator.ts';
import { EventBus } from './events.ts';
import { HostRegistry } from './hosts.ts';
import { ClusterPlacement } from './placement.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const MiB = 2 ** 20;
const CAPACITY = { cpus: 4, memoryBytes: 256 * MiB, diskBytes: 2 ** 34 };

describe('image locality from the cluster', () => {
  it('a second instance of an image goes to the host that provisioned the first, where worst-fit alone would spread it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-locality-test-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const stateDir = join(dir, 'coord');
    const { modules } = createCloudModules({ stateDir, strategy: 'worst-fit' });
    const coord = await startCoordinator({ port: 0, stateDir, heartbeatIntervalMs: 100, failureTimeoutMs: 10_000, modules });
    cleanups.push(() => coord.close());
    for (const id of ['host-1', 'host-2']) {
      const agent = await startAgent({ coordinatorUrl: `ws://127.0.0.1:${coord.port}`, token: coord.token, hostId: id, capacity: CAPACITY, dataDir: join(dir, id), pcpus: 1 });
      cleanups.push(() => agent.close());
      await agent.whenRegistered();
    }
    const run = async (body: object): Promise<{ host: string }> => {
      const res = await fetch(`${coord.url}/api/v1/vms`, { method: 'POST', headers: { authorization: `Bearer ${coord.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const json = (await res.json()) as { host: string };
      expect(res.status, JSON.stringify(json)).toBe(201);
      return json;
    };
    const first = await run({ image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB', host: 'host-2' });
    expect(first.host).toBe('host-2');
    // Worst-fit scores host-1 (empty) above host-2 by far less than the locality bonus (0.3).
    const second = await run({ image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB' });
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
