import { afterEach, describe, expect, it } from 'vitest';
import { HostilePeer, FERRY_CLOSE } from '@ferry/transport';
import type { Host } from '@ferry/protocol';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProcessGroup, waitFor, processExists } from './harness.ts';

const group = new ProcessGroup();
afterEach(() => group.stopAll());

const hostsOf = (c: { getJson<T>(p: string): Promise<T> }) => c.getJson<Host[]>('/api/v1/hosts');

describe('cluster membership with real processes', () => {
  it('agents register and appear in /api/v1/hosts; requests without the token are refused', async () => {
    const coord = await group.startCoordinator();
    await Promise.all([group.startAgent(coord, { id: 'host-1', cpus: 8, memory: '16GiB', disk: '100GiB' }), group.startAgent(coord, { id: 'host-2' })]);
    await waitFor(async () => (await hostsOf(coord)).length === 2, 10000, 'two hosts registered');
    const hosts = await hostsOf(coord);
    expect(hosts.map((h) => [h.id, h.state])).toEqual([['host-1', 'up'], ['host-2', 'up']]);
    expect(hosts[0]!.capacity).toEqual({ cpus: 8, memoryBytes: 16 * 2 ** 30, diskBytes: 100 * 2 ** 30 });
    expect(hosts[0]!.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(await coord.status('/api/v1/hosts', null)).toBe(401);
    expect(await coord.status('/api/v1/hosts', 'not-the-token')).toBe(401);
    expect(await coord.status('/metrics', null)).toBe(401);
    const metrics = await (await fetch(`${coord.url}/metrics`, { headers: { authorization: `Bearer ${coord.token}` } })).text();
    expect(metrics).toContain('ferry_hosts{state="up"} 2');
    const { upgrade } = await HostilePeer.connect(`${coord.wsUrl}/agent`);
    expect(upgrade.status).toBe(401);
  });

  it('garbage on /agent closes that connection and the coordinator keeps serving', async () => {
    const coord = await group.startCoordinator();
    await group.startAgent(coord, { id: 'host-1' });
    await waitFor(async () => (await hostsOf(coord)).length === 1);
    const auth = { authorization: `Bearer ${coord.token}` };
    const garbage = await HostilePeer.connect(`${coord.wsUrl}/agent`, auth);
    garbage.peer.sendControl(Buffer.from('this is not msgpack \xc1\xc1'));
    expect(await garbage.peer.closedByServer()).toBe(FERRY_CLOSE.BAD_MESSAGE);
    const huge = await HostilePeer.connect(`${coord.wsUrl}/agent`, auth);
    huge.peer.sendFrame({ payload: new Uint8Array(8), declaredLength: 2 ** 31 });
    expect(await huge.peer.closedByServer()).toBe(FERRY_CLOSE.MESSAGE_TOO_BIG);
    const frame = await HostilePeer.connect(`${coord.wsUrl}/agent`, auth);
    frame.peer.sendFrame({ payload: Buffer.from([2, 0, 0, 0]) });
    // A page frame before registering: page streams never go through the coordinator.
    expect(await frame.peer.closedByServer()).toBe(FERRY_CLOSE.UNEXPECTED_FRAME);
    const cut = await HostilePeer.connect(`${coord.wsUrl}/agent`, auth);
    cut.peer.sendTruncated({ payload: new Uint8Array(500) }, 40);
    cut.peer.hangUp();
    // Still serving: the registered agent is up and a new agent can join.
    await group.startAgent(coord, { id: 'host-2' });
    await waitFor(async () => (await hostsOf(coord)).filter((h) => h.state === 'up').length === 2, 10000, 'both hosts up');
    expect(processExists(coord.pid)).toBe(true);
  });

  it('kill -9 of an agent marks its host down within the failure-detection window', async () => {
    const coord = await group.startCoordinator({ heartbeatIntervalMs: 200, failureTimeoutMs: 600 });
    const a1 = await group.startAgent(coord, { id: 'host-1' });
    await group.startAgent(coord, { id: 'host-2' });
    await waitFor(async () => (await hostsOf(coord)).length === 2);
    a1.kill('SIGKILL');
    const ms = await waitFor(async () => (await hostsOf(coord)).find((h) => h.id === 'host-1')?.state === 'down', 5000, 'host-1 down');
    expect(ms).toBeLessThan(5000);
    expect((await hostsOf(coord)).find((h) => h.id === 'host-2')?.state).toBe('up');
    const events = await coord.getJson<{ type: string; host?: string }[]>('/api/v1/events');
    expect(events.some((e) => e.type === 'host-down' && e.host === 'host-1')).toBe(true);
  });

  it('a frozen agent (SIGSTOP) is marked down by missed heartbeats', async () => {
    const coord = await group.startCoordinator({ heartbeatIntervalMs: 100, failureTimeoutMs: 500 });
    const a1 = await group.startAgent(coord, { id: 'host-1' });
    await waitFor(async () => (await hostsOf(coord)).length === 1);
    a1.kill('SIGSTOP');
    await waitFor(async () => (await hostsOf(coord))[0]?.state === 'down', 5000, 'host-1 down');
    a1.kill('SIGCONT');
    // It comes back: the link was cut, the agent reconnects and registers again.
    await waitFor(async () => (await hostsOf(coord))[0]?.state === 'up', 10000, 'host-1 up again');
  });

  it('agents re-register after the coordinator restarts on the same port and state dir', async () => {
    const coord = await group.startCoordinator();
    await group.startAgent(coord, { id: 'host-1' });
    await group.startAgent(coord, { id: 'host-2' });
    await waitFor(async () => (await hostsOf(coord)).length === 2);
    coord.kill('SIGKILL');
    await coord.exited;
    const again = await group.startCoordinator({ port: coord.port, stateDir: coord.stateDir });
    expect(again.token).toBe(coord.token);
    await waitFor(async () => (await hostsOf(again)).filter((h) => h.state === 'up').length === 2, 15000, 'both hosts re-registered');
  });

  it('an agent with a wrong token gives up with exit code 3', async () => {
    const coord = await group.startCoordinator();
    const bad = await group.startAgent(coord, { id: 'host-x', token: 'wrong' });
    expect((await bad.exited).code).toBe(3);
    expect(await hostsOf(coord)).toEqual([]);
  });

  it('an agent refuses a malformed size with exit code 2', async () => {
    const coord = await group.startCoordinator();
    const bad = await group.startAgent(coord, { id: 'host-x', memory: 'lots', waitReady: false });
    expect((await bad.exited).code).toBe(2);
    expect(bad.logs()).toContain('--memory');
  });
});

describe('graceful shutdown', () => {
  it('SIGINT stops an agent and SIGTERM the coordinator with exit code 0; the host is reported down', async () => {
    const coord = await group.startCoordinator();
    const agent = await group.startAgent(coord, { id: 'host-1' });
    await waitFor(async () => (await hostsOf(coord)).length === 1);
    agent.kill('SIGINT');
    expect((await agent.exited).code).toBe(0);
    await waitFor(async () => (await hostsOf(coord))[0]?.state === 'down', 5000, 'host-1 down');
    coord.kill('SIGTERM');
    expect((await coord.exited).code).toBe(0);
    const state = JSON.parse(readFileSync(join(coord.stateDir, 'state.json'), 'utf8')) as { hosts: { id: string }[] };
    expect(state.hosts.map((h) => h.id)).toEqual(['host-1']);
  });
});
