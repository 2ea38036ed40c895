import { afterEach, describe, expect, it } from 'vitest';
import type { Host, Vm } from '@ferry/protocol';
import { ProcessGroup, callApi, waitFor } from './harness.ts';

// `start` after `stop` on the VM's own host (the EC2 stop/start cycle): the agent boots the
// instance afresh from its image in place of the stopped VM, keeping its id, IP and login.

const group = new ProcessGroup();
afterEach(() => group.stopAll());


describe('start after stop on the same host', () => {
  it('a stopped VM starts again on its own host, twice, with the same id, IP and credentials', async () => {
    const coord = await group.startCoordinator({ failureTimeoutMs: 10_000 });
    await group.startAgent(coord, { id: 'host-1', cpus: 2, memory: '128MiB', args: ['--data-dir', group.tempDir('ferry-agent-')] });
    await waitFor(async () => (await coord.getJson<Host[]>('/api/v1/hosts')).some((h) => h.id === 'host-1' && h.state === 'up'), 15_000, 'host-1 up');
    const run = await callApi(coord, 'POST', '/api/v1/vms', { image: 'base-os', cpus: 1, memory: '8MiB', disk: '1GiB', workload: { kind: 'uniform', rate: 500 } });
    expect(run.status, JSON.stringify(run.body)).toBe(201);
    const vm = run.body as Vm;

    for (let cycle = 0; cycle < 2; cycle++) {
      const stopped = await callApi(coord, 'POST', `/api/v1/vms/${vm.id}/stop`, {});
      expect(stopped.body).toMatchObject({ state: 'stopped', host: 'host-1' });
      const started = await callApi(coord, 'POST', `/api/v1/vms/${vm.id}/start`, {});
      expect(started.status, JSON.stringify(started.body)).toBe(200);
      expect(started.body).toMatchObject({ id: vm.id, state: 'running', host: 'host-1', ip: vm.ip, credentials: vm.credentials });
      expect((await callApi(coord, 'POST', `/api/v1/vms/${vm.id}/start`, {})).body.error.code).toBe('FERRY_ERR_INVALID_STATE');
    }
    // The agent reports one VM of that id, running (not a stopped twin beside it).
    await waitFor(async () => (await coord.getJson<Host[]>('/api/v1/hosts')).find((h) => h.id === 'host-1')?.vms === 1, 5000, 'one VM on host-1');
    expect((await callApi(coord, 'GET', `/api/v1/vms/${vm.id}`)).body).toMatchObject({ state: 'running', host: 'host-1' });
    expect((await callApi(coord, 'DELETE', `/api/v1/vms/${vm.id}`)).status).toBe(200);
  }, 20_000);

  it('a stopped VM stays stopped (not lost) when its agent restarts without it, and starts again there', async () => {
    const coord = await group.startCoordinator({ failureTimeoutMs: 10_000 });
    const dataDir = group.tempDir('ferry-agent-');
    const agentOptions = { id: 'host-1', cpus: 2, memory: '128MiB', args: ['--data-dir', dataDir] };
    const agent = await group.startAgent(coord, agentOptions);
    const hostUp = async (): Promise<boolean> => (await coord.getJson<Host[]>('/api/v1/hosts')).some((h) => h.id === 'host-1' && h.state === 'up');
    await waitFor(hostUp, 15_000, 'host-1 up');
    const vm = (await callApi(coord, 'POST', '/api/v1/vms', { image: 'minimal', cpus: 1, memory: '8MiB', disk: '1GiB' })).body as Vm;
    expect((await callApi(coord, 'POST', `/api/v1/vms/${vm.id}/stop`, {})).body).toMatchObject({ state: 'stopped' });

    await agent.stop();
    await waitFor(async () => !(await hostUp()), 10_000, 'host-1 down');
    expect((await callApi(coord, 'GET', `/api/v1/vms/${vm.id}`)).body).toMatchObject({ state: 'stopped' });
    await group.startAgent(coord, agentOptions);
    await waitFor(hostUp, 15_000, 'host-1 up again');
    expect((await callApi(coord, 'GET', `/api/v1/vms/${vm.id}`)).body).toMatchObject({ state: 'stopped', host: 'host-1' });
    const started = await callApi(coord, 'POST', `/api/v1/vms/${vm.id}/start`, {});
    expect(started.body).toMatchObject({ state: 'running', host: 'host-1', ip: vm.ip, credentials: vm.credentials });
  }, 20_000);
});
