import { afterEach, describe, expect, it } from 'vitest';
import type { ApiEvent, Host, HostDrain, Vm, VmSnapshot, WwsReport } from '@ferry/protocol';
import { ProcessGroup, callApi, waitFor, type CoordinatorProcess } from './harness.ts';

// Lifecycle actions routed to real agents: each from a right state, each refused from a wrong one.

const group = new ProcessGroup();
afterEach(() => group.stopAll());


async function cluster(n: number): Promise<CoordinatorProcess> {
  const coord = await group.startCoordinator({ failureTimeoutMs: 10_000 });
  await Promise.all(Array.from({ length: n }, (_, i) => group.startAgent(coord, { id: `host-${i + 1}`, cpus: 2, memory: '256MiB', args: ['--data-dir', group.tempDir('ferry-agent-')] })));
  await waitFor(async () => (await coord.getJson<Host[]>('/api/v1/hosts')).filter((h) => h.state === 'up').length === n, 15_000, `${n} hosts up`);
  return coord;
}

describe('VM lifecycle with real agents', () => {
  it('suspend, resume on another host, stop, start on another host, snapshot, clone, wws, delete; wrong states refused', async () => {
    const coord = await cluster(2);
    const run = await callApi(coord, 'POST', '/api/v1/vms', { image: 'redis', cpus: 1, memory: '16MiB', disk: '1GiB', host: 'host-1', workload: { kind: 'uniform', rate: 1000 } });
    expect(run.status).toBe(201);
    const id = (run.body as Vm).id;

    expect((await callApi(coord, 'POST', `/api/v1/vms/${id}/resume`, {})).body.error.code).toBe('FERRY_ERR_INVALID_STATE');
    expect((await callApi(coord, 'POST', `/api/v1/vms/${id}/start`, {})).status).toBe(409);
    const suspended = await callApi(coord, 'POST', `/api/v1/vms/${id}/suspend`);
    expect(suspended.body).toMatchObject({ state: 'suspended', host: 'host-1' });
    expect((await callApi(coord, 'POST', `/api/v1/vms/${id}/snapshot`, {})).body.error.message).toMatch(/it is suspended/);
    const resumed = await callApi(coord, 'POST', `/api/v1/vms/${id}/resume`, { host: 'host-2' });
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
    expect(resumed.body).toMatchObject({ state: 'running', host: 'host-2' });

    const stopped = await callApi(coord, 'POST', `/api/v1/vms/${id}/stop`, {});
    expect(stopped.body).toMatchObject({ state: 'stopped', host: 'host-2' });
    expect((await callApi(coord, 'POST', `/api/v1/vms/${id}/suspend`)).status).toBe(409);
    const started = await callApi(coord, 'POST', `/api/v1/vms/${id}/start`, { host: 'host-1' });
    expect(started.body).toMatchObject({ state: 'running', host: 'host-1' });

    const snap = await callApi(coord, 'POST', `/api/v1/vms/${id}/snapshot`, { name: 'before' });
    expect(snap.status).toBe(201);
    expect(snap.body as VmSnapshot).toMatchObject({ vm: id, name: 'before', host: 'host-1', memoryBytes: 16 * 2 ** 20 });
    const clone = await callApi(coord, 'POST', `/api/v1/vms/${id}/clone`, { name: 'twin', host: 'host-2' });
    expect(clone.status, JSON.stringify(clone.body)).toBe(201);
    expect(clone.body).toMatchObject({ name: 'twin', state: 'running', host: 'host-2', image: 'redis' });
    expect((clone.body as Vm).ip).not.toBe((run.body as Vm).ip);

    const wws = await callApi(coord, 'GET', `/api/v1/vms/${id}/wws?samples=2&intervalMs=100`);
    expect(wws.status).toBe(200);
    expect((wws.body as WwsReport).samples.length).toBe(2);
    expect((wws.body as WwsReport).wwsPages).toBeGreaterThan(0);

    const deleted = await callApi(coord, 'DELETE', `/api/v1/vms/${id}`);
    expect(deleted.body).toMatchObject({ id, state: 'deleted' });
    expect((await callApi(coord, 'GET', `/api/v1/vms/${id}`)).status).toBe(404);
    expect((await callApi(coord, 'POST', `/api/v1/vms/${id}/stop`, {})).body.error.code).toBe('FERRY_ERR_UNKNOWN_VM');
    const hosts = await coord.getJson<Host[]>('/api/v1/hosts');
    expect(hosts.map((h) => [h.id, h.vms])).toEqual([['host-1', 0], ['host-2', 1]]);
    const events = await coord.getJson<ApiEvent[]>('/api/v1/events?limit=1000');
    for (const type of ['vm-suspended', 'vm-resumed', 'vm-stopped', 'vm-started', 'vm-snapshotted', 'vm-cloned', 'vm-deleted'] as const) {
      expect(events.some((e) => e.type === type && (e.vm === id || type === 'vm-cloned')), type).toBe(true);
    }
  });

  it('a drain refuses what placement cannot honour, can be cancelled, and undrain brings the host back', async () => {
    const coord = await cluster(2);
    const ha = { name: 'pair', policy: 'anti-affinity' };
    for (const host of ['host-1', 'host-2']) {
      expect((await callApi(coord, 'POST', '/api/v1/vms', { image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB', host, group: ha })).status).toBe(201);
    }
    // Anti-affinity: host-1's VM cannot go to host-2, the only other host. Nothing changes.
    const refused = await callApi(coord, 'POST', '/api/v1/hosts/host-1/drain');
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toMatch(/no host can take vm-1/);
    expect((await coord.getJson<Host>('/api/v1/hosts/host-1')).state).toBe('up');

    expect((await callApi(coord, 'POST', '/api/v1/vms', { image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB', host: 'host-1' })).status).toBe(201);
    expect((await callApi(coord, 'DELETE', '/api/v1/vms/vm-1')).status).toBe(200);
    const drain = await callApi(coord, 'POST', '/api/v1/hosts/host-1/drain');
    expect(drain.status).toBe(202);
    expect(drain.body as HostDrain).toMatchObject({ host: 'host-1', state: 'running', vmsTotal: 1 });
    expect((await callApi(coord, 'POST', '/api/v1/hosts/host-1/drain')).status).toBe(409); // already draining
    const cancelled = await callApi(coord, 'POST', '/api/v1/hosts/host-1/drain/cancel');
    expect(cancelled.body as HostDrain).toMatchObject({ state: 'cancelled' });
    expect((await coord.getJson<Host>('/api/v1/hosts/host-1')).state).toBe('up');
    expect((await callApi(coord, 'POST', '/api/v1/hosts/host-1/drain/cancel')).status).toBe(409);

    await waitFor(async () => (await coord.getJson<Vm[]>('/api/v1/vms')).every((v) => v.state !== 'migrating'), 15_000, 'migration settled');
    const again = await callApi(coord, 'POST', '/api/v1/hosts/host-1/drain');
    expect(again.status, JSON.stringify(again.body)).toBe(202);
    await waitFor(async () => (await coord.getJson<Host>('/api/v1/hosts/host-1')).state === 'maintenance', 15_000, 'host-1 in maintenance');
    expect((await coord.getJson<Vm[]>('/api/v1/vms')).every((v) => v.host === 'host-2')).toBe(true);
    // Nothing is placed on a host in maintenance; undrain brings it back.
    expect((await callApi(coord, 'POST', '/api/v1/vms', { image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB', host: 'host-1' })).status).toBe(409);
    const undrained = await callApi(coord, 'POST', '/api/v1/hosts/host-1/undrain');
    expect(undrained.body).toMatchObject({ id: 'host-1', state: 'up' });
    expect((await callApi(coord, 'POST', '/api/v1/vms', { image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB', host: 'host-1' })).status).toBe(201);
  });
});
