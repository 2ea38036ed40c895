import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PlacementPlan, PlacementPlanRun, Vm } from '@ferry/protocol';
// The agent is imported by path: apps/coordinator does not depend on apps/agent, only this test does.
import { startAgent } from '../../agent/src/index.ts';
import { createCloudModules } from './cloud.ts';
import { startCoordinator, type RunningCoordinator } from './coordinator.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const MiB = 2 ** 20;

async function cluster(hostIds: readonly string[]): Promise<RunningCoordinator> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-plans-test-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const stateDir = join(dir, 'coord');
  const { modules } = createCloudModules({ stateDir });
  const coord = await startCoordinator({ port: 0, stateDir, heartbeatIntervalMs: 100, failureTimeoutMs: 10_000, modules });
  cleanups.push(() => coord.close());
  for (const id of hostIds) {
    const agent = await startAgent({ coordinatorUrl: `ws://127.0.0.1:${coord.port}`, token: coord.token, hostId: id, capacity: { cpus: 4, memoryBytes: 128 * MiB, diskBytes: 2 ** 34 }, dataDir: join(dir, id), pcpus: 1 });
    cleanups.push(() => agent.close());
    await agent.whenRegistered();
  }
  return coord;
}

async function api<T>(coord: RunningCoordinator, method: string, path: string, body?: unknown, token = coord.token): Promise<{ status: number; body: T }> {
  const res = await fetch(`${coord.url}/api/v1${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, body: (await res.json()) as T };
}

const small = (host: string): object => ({ image: 'minimal', cpus: 1, memory: '16MiB', disk: '256MiB', host });

describe('placement plans over HTTP', () => {
  it('consolidation plans the lightly used hosts empty, changes nothing until applied, then apply empties them in order', async () => {
    const coord = await cluster(['host-1', 'host-2', 'host-3']);
    for (const h of ['host-1', 'host-1', 'host-2', 'host-3']) expect((await api(coord, 'POST', '/vms', small(h))).status).toBe(201);
    // A stopped VM never moves (live migration cannot take it) but keeps its place.
    const stopped = (await api<Vm>(coord, 'POST', '/vms', small('host-1'))).body;
    expect((await api(coord, 'POST', `/vms/${stopped.id}/stop`, { force: true })).status).toBe(200);

    const r = await api<PlacementPlan>(coord, 'GET', '/placement/consolidation');
    expect(r.status).toBe(200);
    const plan = r.body;
    expect(plan.kind).toBe('consolidation');
    expect(plan.hostsBefore).toBe(3);
    expect(plan.hostsAfter).toBe(1);
    expect(plan.hostsEmptied).toEqual(['host-2', 'host-3']);
    expect(plan.migrations.map((m) => m.from).sort()).toEqual(['host-2', 'host-3']);
    expect(plan.migrations.every((m) => m.to === 'host-1' && m.costBytes === 16 * MiB && m.vm !== stopped.id)).toBe(true);
    expect(plan.costBytes).toBe(2 * 16 * MiB);
    // Planning changed nothing.
    const vms = (await api<Vm[]>(coord, 'GET', '/vms')).body;
    expect(vms.filter((v) => v.host === 'host-1').length).toBe(3);

    const run = await api<PlacementPlanRun>(coord, 'POST', '/placement/consolidation/apply');
    expect(run.status, JSON.stringify(run.body)).toBe(200);
    expect(run.body.state).toBe('completed');
    expect(run.body.vmsMoved).toBe(2);
    expect(run.body.migrations.length).toBe(2);
    const after = (await api<Vm[]>(coord, 'GET', '/vms')).body;
    expect(after.every((v) => v.host === 'host-1')).toBe(true);
    expect(after.find((v) => v.id === stopped.id)?.state).toBe('stopped');
    // Nothing left to do.
    expect((await api<PlacementPlan>(coord, 'GET', '/placement/consolidation')).body.migrations).toEqual([]);
  }, 20_000);

  it('rebalance moves load off the busiest host and narrows the spread', async () => {
    const coord = await cluster(['host-1', 'host-2']);
    for (let i = 0; i < 4; i++) expect((await api(coord, 'POST', '/vms', small('host-1'))).status).toBe(201);
    const plan = (await api<PlacementPlan>(coord, 'GET', '/placement/rebalance')).body;
    expect(plan.kind).toBe('rebalance');
    expect(plan.migrations.length).toBeGreaterThan(0);
    expect(plan.migrations.every((m) => m.from === 'host-1' && m.to === 'host-2')).toBe(true);
    expect(plan.spreadAfter).toBeLessThan(plan.spreadBefore);
    expect(plan.hostsBefore).toBe(1);
    expect(plan.hostsAfter).toBe(2);
  }, 20_000);

  it('routes are token-protected and answer a wrong method with 405', async () => {
    const coord = await cluster(['host-1']);
    const bad = await api<{ error: { code: string } }>(coord, 'GET', '/placement/rebalance', undefined, 'wrong');
    expect(bad.status).toBe(401);
    expect(bad.body.error.code).toBe('FERRY_ERR_UNAUTHORIZED');
    const wrong = await api<{ error: { code: string } }>(coord, 'POST', '/placement/rebalance');
    expect(wrong.status).toBe(405);
    const get = await api<{ error: { code: string } }>(coord, 'GET', '/placement/rebalance/apply');
    expect(get.status).toBe(405);
    const empty = await api<PlacementPlanRun>(coord, 'POST', '/placement/rebalance/apply');
    expect(empty.body).toMatchObject({ state: 'completed', vmsMoved: 0, migrations: [] });
  }, 20_000);
});
