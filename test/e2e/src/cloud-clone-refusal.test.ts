import { afterEach, describe, expect, it } from 'vitest';
import type { Host, Vm } from '@ferry/protocol';
import { ProcessGroup, callApi, waitFor } from './harness.ts';

// `clone --host H` to a host that cannot take the clone is refused and changes nothing: no clone
// is left on the source (it used to be made there first and stay behind when its move failed).

const group = new ProcessGroup();
afterEach(() => group.stopAll());


describe('clone onto another host', () => {
  it('a destination without room, in maintenance or unknown is refused with nothing left behind; a good one gets the clone; a group member clones outside its group', async () => {
    const coord = await group.startCoordinator({ failureTimeoutMs: 10_000 });
    await group.startAgent(coord, { id: 'host-1', cpus: 2, memory: '128MiB', args: ['--data-dir', group.tempDir('ferry-agent-')] });
    await group.startAgent(coord, { id: 'host-2', cpus: 2, memory: '16MiB', args: ['--data-dir', group.tempDir('ferry-agent-')] });
    await group.startAgent(coord, { id: 'host-3', cpus: 2, memory: '128MiB', args: ['--data-dir', group.tempDir('ferry-agent-')] });
    await waitFor(async () => (await coord.getJson<Host[]>('/api/v1/hosts')).filter((h) => h.state === 'up').length === 3, 15_000, '3 hosts up');
    const run = await callApi(coord, 'POST', '/api/v1/vms', { image: 'base-os', cpus: 1, memory: '32MiB', disk: '1GiB', host: 'host-1' });
    expect(run.status, JSON.stringify(run.body)).toBe(201);
    const vm = run.body as Vm;
    const ids = async (): Promise<string[]> => (await coord.getJson<Vm[]>('/api/v1/vms')).map((v) => v.id).sort();
    const before = await ids();

    const tooSmall = await callApi(coord, 'POST', `/api/v1/vms/${vm.id}/clone`, { host: 'host-2' });
    expect(tooSmall.status).toBe(409);
    expect(tooSmall.body.error.code).toBe('FERRY_ERR_NO_CAPACITY');
    const unknown = await callApi(coord, 'POST', `/api/v1/vms/${vm.id}/clone`, { host: 'host-9' });
    expect(unknown.body.error.code).toBe('FERRY_ERR_UNKNOWN_HOST');
    expect((await callApi(coord, 'POST', '/api/v1/hosts/host-3/drain')).status).toBeLessThan(300);
    await waitFor(async () => (await coord.getJson<Host>('/api/v1/hosts/host-3')).state === 'maintenance', 5000, 'host-3 in maintenance');
    expect((await callApi(coord, 'POST', `/api/v1/vms/${vm.id}/clone`, { host: 'host-3' })).status).toBe(409);
    expect(await ids()).toEqual(before);
    expect((await coord.getJson<Host>('/api/v1/hosts/host-1')).used.memoryBytes).toBe(32 * 2 ** 20);

    expect((await callApi(coord, 'POST', '/api/v1/hosts/host-3/undrain')).status).toBe(200);
    const good = await callApi(coord, 'POST', `/api/v1/vms/${vm.id}/clone`, { host: 'host-3', name: 'twin' });
    expect(good.status, JSON.stringify(good.body)).toBe(201);
    expect(good.body).toMatchObject({ name: 'twin', host: 'host-3', state: 'running' });

    // A member of an anti-affinity group clones too: the clone is a new instance outside the group.
    const member = await callApi(coord, 'POST', '/api/v1/vms', { image: 'minimal', cpus: 1, memory: '8MiB', disk: '1GiB', host: 'host-1', group: { name: 'ha', policy: 'anti-affinity' } });
    expect(member.status, JSON.stringify(member.body)).toBe(201);
    const copy = await callApi(coord, 'POST', `/api/v1/vms/${(member.body as Vm).id}/clone`, {});
    expect(copy.status, JSON.stringify(copy.body)).toBe(201);
    expect(copy.body).toMatchObject({ host: 'host-1', state: 'running' });
    expect((copy.body as Vm).group).toBeUndefined();
  }, 20_000);
});
