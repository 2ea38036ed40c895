import { afterEach, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ApiEvent, Host, Vm } from '@ferry/protocol';
import { ProcessGroup, waitFor, type AgentProcess, type CoordinatorProcess } from './harness.ts';

// The cloud manager with real coordinator and agent processes: placement rules under concurrent
// requests, and what a coordinator restart keeps.

const group = new ProcessGroup();
afterEach(() => group.stopAll());

async function post(coord: CoordinatorProcess, path: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(coord.url + path, { method: 'POST', headers: { authorization: `Bearer ${coord.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

async function startAgents(coord: CoordinatorProcess, n: number): Promise<AgentProcess[]> {
  const agents = await Promise.all(Array.from({ length: n }, (_, i) => group.startAgent(coord, { id: `host-${i + 1}`, cpus: 2, memory: '256MiB', args: ['--data-dir', group.tempDir('ferry-agent-')] })));
  await waitFor(async () => (await coord.getJson<Host[]>('/api/v1/hosts')).filter((h) => h.state === 'up').length === n, 15_000, `${n} hosts up`);
  return agents;
}

describe('cloud manager with real processes', () => {
  it('anti-affinity holds when ten run requests arrive at once: one VM per host, the rest refused and nothing left behind', async () => {
    const coord = await group.startCoordinator({ failureTimeoutMs: 10_000 });
    await startAgents(coord, 4);
    const request = { image: 'base-os', cpus: 1, memory: '16MiB', disk: '1GiB', group: { name: 'ha', policy: 'anti-affinity' } };
    const replies = await Promise.all(Array.from({ length: 10 }, (_, i) => post(coord, '/api/v1/vms', { ...request, name: `ha-${i}` })));
    const placed = replies.filter((r) => r.status === 201).map((r) => r.body as Vm);
    const refused = replies.filter((r) => r.status !== 201);
    expect(placed.length).toBe(4);
    expect(new Set(placed.map((v) => v.host)).size).toBe(4);
    expect(placed.every((v) => v.state === 'running')).toBe(true);
    expect(refused.map((r) => [r.status, (r.body as { error: { code: string } }).error.code])).toEqual(Array(6).fill([409, 'FERRY_ERR_NO_CAPACITY']));
    const vms = await coord.getJson<Vm[]>('/api/v1/vms');
    expect(vms.map((v) => v.id).sort()).toEqual(placed.map((v) => v.id).sort());
    // The refused requests hold nothing: a VM outside the group still fits anywhere.
    const free = await post(coord, '/api/v1/vms', { image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB' });
    expect(free.status).toBe(201);
    const metrics = await (await fetch(`${coord.url}/metrics`, { headers: { authorization: `Bearer ${coord.token}` } })).text();
    expect(metrics).toContain('ferry_vms{state="running"} 5');
  });

  it('a coordinator restart keeps every VM and its credentials; a host that comes back without its VMs marks them lost', async () => {
    const coord = await group.startCoordinator({ failureTimeoutMs: 10_000 });
    const agents = await startAgents(coord, 2);
    const made: Vm[] = [];
    for (const [image, host] of [['base-os', 'host-1'], ['redis', 'host-2'], ['lamp', 'host-2']] as const) {
      const r = await post(coord, '/api/v1/vms', { image, cpus: 1, memory: '16MiB', disk: '1GiB', host, workload: { kind: 'uniform', rate: 500 } });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      made.push(r.body as Vm);
    }
    await coord.stop();

    const again = await group.startCoordinator({ stateDir: coord.stateDir, port: coord.port, failureTimeoutMs: 10_000 });
    expect(again.token).toBe(coord.token);
    // Before the agents are back, the journal already answers, credentials included.
    const early = await again.getJson<Vm[]>('/api/v1/vms');
    expect(early.map((v) => [v.id, v.host, v.ip, v.credentials])).toEqual(made.map((v) => [v.id, v.host, v.ip, v.credentials]));
    await waitFor(async () => (await again.getJson<Host[]>('/api/v1/hosts')).filter((h) => h.state === 'up').length === 2, 15_000, 'agents re-registered');
    const vms = await again.getJson<Vm[]>('/api/v1/vms');
    expect(vms.map((v) => [v.id, v.state, v.host, v.credentials.password])).toEqual(made.map((v) => [v.id, 'running', v.host, v.credentials.password]));
    // A new VM after the restart gets a fresh id and address.
    const next = await post(again, '/api/v1/vms', { image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB', host: 'host-1' });
    expect(next.status).toBe(201);
    expect((next.body as Vm).id).toBe('vm-4');
    expect(made.map((v) => v.ip)).not.toContain((next.body as Vm).ip);

    // host-2 dies (its VMs with it) and a fresh agent takes its place: its VMs are lost, not invented.
    agents[1]!.kill('SIGKILL');
    await waitFor(async () => (await again.getJson<Vm[]>('/api/v1/vms')).filter((v) => v.state === 'lost').length === 2, 10_000, 'VMs of the dead host lost');
    await group.startAgent(again, { id: 'host-2', cpus: 2, memory: '256MiB', args: ['--data-dir', group.tempDir('ferry-agent-')] });
    await waitFor(async () => (await again.getJson<Host[]>('/api/v1/hosts')).every((h) => h.state === 'up'), 15_000, 'host-2 back');
    const final = await again.getJson<Vm[]>('/api/v1/vms');
    expect(final.map((v) => [v.id, v.state])).toEqual([['vm-1', 'running'], ['vm-2', 'lost'], ['vm-3', 'lost'], ['vm-4', 'running']]);
    // A lost VM can be deleted (its record and address go), and its host's capacity is free again.
    const del = await fetch(`${again.url}/api/v1/vms/vm-2`, { method: 'DELETE', headers: { authorization: `Bearer ${again.token}` } });
    expect(del.status).toBe(200);
    expect(((await del.json()) as Vm).state).toBe('deleted');
  });

  it('a VM an agent runs but the journal lacks is adopted (flagged, fresh address, login unknown)', async () => {
    const coord = await group.startCoordinator({ failureTimeoutMs: 10_000 });
    await startAgents(coord, 1);
    expect((await post(coord, '/api/v1/vms', { image: 'base-os', cpus: 1, memory: '16MiB', disk: '1GiB', name: 'orphan' })).status).toBe(201);
    await coord.stop();
    // A coordinator with an empty state dir (same token, same port): its journal knows no VM.
    const fresh = group.tempDir('ferry-coord-');
    mkdirSync(fresh, { recursive: true });
    copyFileSync(join(coord.stateDir, 'token'), join(fresh, 'token'));
    const again = await group.startCoordinator({ stateDir: fresh, port: coord.port, failureTimeoutMs: 10_000 });
    await waitFor(async () => (await again.getJson<Vm[]>('/api/v1/vms')).length === 1, 15_000, 'VM adopted');
    const [vm] = await again.getJson<Vm[]>('/api/v1/vms');
    expect(vm).toMatchObject({ id: 'vm-1', name: 'orphan', host: 'host-1', state: 'running', image: 'base-os', credentials: { user: 'ferry', password: '' } });
    const events = await again.getJson<ApiEvent[]>('/api/v1/events');
    expect(events.some((e) => e.type === 'vm-state-changed' && e.vm === 'vm-1' && e.data['adopted'] === true)).toBe(true);
    // The adopted VM is a full citizen: its id is not handed out again, and it can be stopped.
    const next = await post(again, '/api/v1/vms', { image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB' });
    expect((next.body as Vm).id).not.toBe('vm-1');
    expect((await post(again, '/api/v1/vms/vm-1/stop', {})).body).toMatchObject({ state: 'stopped' });
  });
});
