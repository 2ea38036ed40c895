import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// The coordinator is imported by path: apps/agent does not depend on apps/coordinator, only this test does.
import { startCoordinator, type RunningCoordinator } from '../../coordinator/src/index.ts';
import { HostilePeer, FERRY_CLOSE } from '@ferry/transport';
import { dialMigration } from './migration-server.ts';
import { startAgent, agentUrl, type RunningAgent } from './agent.ts';
import { ReservationBook, InsufficientCapacityError, NoVmHost } from './vm-host.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function cluster(): Promise<{ coord: RunningCoordinator; agent: RunningAgent }> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-agent-test-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const coord = await startCoordinator({ port: 0, stateDir: dir, heartbeatIntervalMs: 100 });
  cleanups.push(() => coord.close());
  const agent = await startAgent({
    coordinatorUrl: `ws://127.0.0.1:${coord.port}`,
    token: coord.token,
    hostId: 'host-1',
    capacity: { cpus: 4, memoryBytes: 64 * 2 ** 20, diskBytes: 2 ** 30 },
    vmHost: new NoVmHost(),
  });
  cleanups.push(() => agent.close());
  await agent.whenRegistered();
  return { coord, agent };
}

describe('agent migration port', () => {
  it('accepts a one-time token exactly once; wrong and reused tokens get 401', async () => {
    const { coord, agent } = await cluster();
    const r = await coord.agents.reserveMigration('host-1', { migrationId: 'm-1', vmId: 'vm-1', memoryBytes: 16 * 2 ** 20, cpus: 1, ttlMs: 5000 });
    expect(r.migrationAddress).toBe(agent.migrationAddress);
    expect(agent.reservations.get('m-1')?.memoryBytes).toBe(16 * 2 ** 20);

    const wrong = await HostilePeer.connect(`${r.migrationAddress}?token=nope`);
    expect(wrong.upgrade.status).toBe(401);
    wrong.peer.hangUp();

    // The right token opens the stream; with no VM host module the agent refuses the migration itself.
    const ch = await dialMigration(r.migrationAddress, r.token);
    const closed = await new Promise<{ code: number }>((resolve) => ch.onClose(resolve));
    expect(closed.code).toBe(FERRY_CLOSE.REFUSED);

    const reused = await HostilePeer.connect(r.migrationAddress, { authorization: `Bearer ${r.token}` });
    expect(reused.upgrade.status).toBe(401);
    reused.peer.hangUp();
  });

  it('refuses a reservation that does not fit, and release drops the token', async () => {
    const { coord, agent } = await cluster();
    await expect(coord.agents.reserveMigration('host-1', { migrationId: 'big', vmId: 'vm-1', memoryBytes: 2 ** 30, cpus: 1, ttlMs: 5000 })).rejects.toMatchObject({ code: 'FERRY_ERR_NO_CAPACITY' });
    const r = await coord.agents.reserveMigration('host-1', { migrationId: 'm-2', vmId: 'vm-2', memoryBytes: 2 ** 20, cpus: 1, ttlMs: 5000 });
    coord.agents.releaseReservation('host-1', 'm-2');
    await new Promise((res) => setTimeout(res, 100));
    expect(agent.reservations.get('m-2')).toBeUndefined();
    const after = await HostilePeer.connect(`${r.migrationAddress}?token=${r.token}`);
    expect(after.upgrade.status).toBe(401);
    after.peer.hangUp();
  });

  it('re-registers after the coordinator restarts on the same port', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-agent-test-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const first = await startCoordinator({ port: 0, stateDir: dir, heartbeatIntervalMs: 100 });
    const agent = await startAgent({ coordinatorUrl: `ws://127.0.0.1:${first.port}`, token: first.token, hostId: 'host-9', capacity: { cpus: 1, memoryBytes: 2 ** 26, diskBytes: 2 ** 26 }, backoff: { initialMs: 20, maxMs: 200 } });
    cleanups.push(() => agent.close());
    await agent.whenRegistered();
    await first.close();
    for (let i = 0; i < 200 && agent.registered; i++) await new Promise((res) => setTimeout(res, 10));
    expect(agent.registered).toBe(false);
    const second = await startCoordinator({ port: first.port, stateDir: dir, heartbeatIntervalMs: 100 });
    cleanups.push(() => second.close());
    expect(second.hosts.find('host-9')?.state).toBe('down');
    await agent.whenRegistered();
    await new Promise((res) => setTimeout(res, 20));
    expect(second.hosts.find('host-9')?.state).toBe('up');
  });
});

describe('reservation book', () => {
  it('counts running VMs and other reservations against capacity', () => {
    let now = 0;
    const book = new ReservationBook({ cpus: 2, memoryBytes: 100, diskBytes: 0 }, () => now);
    book.reserve({ migrationId: 'a', vmId: 'v', memoryBytes: 40, cpus: 1 }, 10, [{ vmId: 'r', state: 'running', memoryBytes: 30, cpus: 1 }]);
    expect(() => book.reserve({ migrationId: 'b', vmId: 'v', memoryBytes: 40, cpus: 1 }, 10, [{ vmId: 'r', state: 'running', memoryBytes: 30, cpus: 1 }])).toThrow(InsufficientCapacityError);
    now = 11;
    expect(book.reserve({ migrationId: 'b', vmId: 'v', memoryBytes: 40, cpus: 1 }, 10, []).migrationId).toBe('b');
  });

  it('agentUrl appends /agent and maps http to ws', () => {
    expect(agentUrl('http://127.0.0.1:7070')).toBe('ws://127.0.0.1:7070/agent');
    expect(agentUrl('ws://h:1/agent')).toBe('ws://h:1/agent');
    expect(() => agentUrl('ftp://h')).toThrow();
  });
});
