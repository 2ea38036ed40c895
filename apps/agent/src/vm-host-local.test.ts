import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostilePeer } from '@ferry/transport';
import type { AgentToCoordinatorMessage, CoordinatorToAgentMessage, VmReport, VmSpecWire } from '@ferry/protocol';
// The coordinator is imported by path: apps/agent does not depend on apps/coordinator, only this test does.
import { startCoordinator, createMigrationLab, type RunningCoordinator, type MigrationOrchestrator } from '../../coordinator/src/index.ts';
import { startAgent, type RunningAgent } from './agent.ts';
import { ProbeClient } from './probe.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const MiB = 2 ** 20;

async function cluster(ids: string[]): Promise<{ coord: RunningCoordinator; migrations: MigrationOrchestrator; agents: Map<string, RunningAgent>; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-vmhost-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const { modules, migrations } = createMigrationLab();
  const coord = await startCoordinator({ port: 0, stateDir: join(dir, 'c'), heartbeatIntervalMs: 100, failureTimeoutMs: 5000, modules });
  cleanups.push(() => coord.close());
  const agents = new Map<string, RunningAgent>();
  for (const id of ids) {
    const a = await startAgent({ coordinatorUrl: `ws://127.0.0.1:${coord.port}`, token: coord.token, hostId: id, capacity: { cpus: 4, memoryBytes: 256 * MiB, diskBytes: 2 ** 30 }, dataDir: join(dir, id), pcpus: 1, memoryPoolBytes: 64 * MiB });
    cleanups.push(() => a.close());
    await a.whenRegistered();
    agents.set(id, a);
  }
  return { coord, migrations, agents, dir };
}

/** Sends a request and returns the reply (request-failed rejects). */
function ask<T extends AgentToCoordinatorMessage>(coord: RunningCoordinator, host: string, m: Record<string, unknown>): Promise<T> {
  return coord.agents.request(host, m as unknown as Omit<CoordinatorToAgentMessage & { requestId: string }, 'requestId'>, 30_000) as Promise<T>;
}

type Reply<K extends AgentToCoordinatorMessage['type']> = Extract<AgentToCoordinatorMessage, { type: K }>;

describe('LocalVmHost', () => {
  it('provisions from an image with run-time config, runs the lifecycle, suspends to and resumes from its data dir', async () => {
    const { coord, dir } = await cluster(['h1']);
    const created = await ask<Reply<'vm-created'>>(coord, 'h1', {
      type: 'vm-create',
      spec: { id: 'vm-1', name: 'web', vcpus: 1, memoryBytes: 8 * MiB, workload: { kind: 'hotset', rate: 2000 } },
      image: 'base-os',
      config: { instanceId: 'vm-1', hostname: 'web', ip: '10.0.0.5', accessRules: [{ protocol: 'tcp', port: 22, cidr: '0.0.0.0/0' }], user: 'ferry', password: 'secret' },
      start: true,
    });
    expect(created.vm).toMatchObject({ vmId: 'vm-1', state: 'running', image: 'base-os', name: 'web' });
    expect(created.imagePages).toBeGreaterThan(0);
    const act = async (action: string): Promise<VmReport> => (await ask<Reply<'vm-updated'>>(coord, 'h1', { type: 'vm-action', vmId: 'vm-1', action })).vm;
    expect((await act('pause')).state).toBe('paused');
    expect((await act('resume')).state).toBe('running');
    expect((await act('suspend')).state).toBe('suspended');
    expect(existsSync(join(dir, 'h1', 'suspend', 'vm-1.snap'))).toBe(true);
    expect((await act('resume')).state).toBe('running');
    expect(existsSync(join(dir, 'h1', 'suspend', 'vm-1.snap'))).toBe(false);
    await expect(act('start')).rejects.toMatchObject({ code: expect.stringMatching(/FERRY_ERR/) });
    expect((await act('delete')).state).toBe('deleted');
    await expect(act('pause')).rejects.toMatchObject({ code: 'FERRY_ERR_UNKNOWN_VM' });
  });

  it('stop then delete works (a stopped VM holds no memory); the memory a stop or delete lets go goes to the pool', async () => {
    const { coord, agents } = await cluster(['h1']);
    const pool = (agents.get('h1')!.vmHost as unknown as { memoryPool: { stats: { given: number } } }).memoryPool;
    const act = async (vmId: string, action: string): Promise<VmReport> => (await ask<Reply<'vm-updated'>>(coord, 'h1', { type: 'vm-action', vmId, action })).vm;
    for (const vmId of ['vm-s', 'vm-d']) await ask(coord, 'h1', { type: 'vm-create', spec: { id: vmId, name: vmId, vcpus: 1, memoryBytes: 4 * MiB, workload: { kind: 'hotset', rate: 2000 } }, start: true });
    expect((await act('vm-s', 'stop')).state).toBe('stopped');
    expect((await act('vm-s', 'delete')).state).toBe('deleted');
    expect((await act('vm-d', 'delete')).state).toBe('deleted'); // straight from running
    await expect(act('vm-s', 'start')).rejects.toMatchObject({ code: 'FERRY_ERR_UNKNOWN_VM' });
    expect(pool.stats.given).toBe(2);
  });

  it('suspendOnClose: a shutdown suspends every VM and the next agent on the data dir brings each back as it was', async () => {
    const { coord, dir } = await cluster([]);
    const start = (): Promise<RunningAgent> =>
      startAgent({ coordinatorUrl: `ws://127.0.0.1:${coord.port}`, token: coord.token, hostId: 'h1', capacity: { cpus: 4, memoryBytes: 256 * MiB, diskBytes: 2 ** 30 }, dataDir: join(dir, 'h1'), pcpus: 1, suspendOnClose: true });
    let agent = await start();
    await agent.whenRegistered();
    const spec = (id: string): VmSpecWire => ({ id, name: id, vcpus: 1, memoryBytes: 4 * MiB, workload: { kind: 'uniform', seed: 3, rate: 5000 } });
    for (const id of ['vm-run', 'vm-paused', 'vm-susp']) await ask(coord, 'h1', { type: 'vm-create', spec: spec(id), start: true });
    await new Promise((r) => setTimeout(r, 100));
    await ask(coord, 'h1', { type: 'vm-action', vmId: 'vm-paused', action: 'pause' });
    await ask(coord, 'h1', { type: 'vm-action', vmId: 'vm-susp', action: 'suspend' });
    const digest = async (vmId: string): Promise<Reply<'vm-digested'>> => ask<Reply<'vm-digested'>>(coord, 'h1', { type: 'vm-digest', vmId });
    const pausedBefore = await digest('vm-paused');
    const runningSteps = (await digest('vm-run')).totalSteps;
    await agent.close(); // the shutdown
    expect(readdirSync(join(dir, 'h1', 'suspend')).sort()).toEqual(['vm-paused.shutdown.json', 'vm-paused.snap', 'vm-run.shutdown.json', 'vm-run.snap', 'vm-susp.shutdown.json', 'vm-susp.snap']);

    agent = await start();
    cleanups.push(() => agent.close());
    await agent.whenRegistered();
    expect(Object.fromEntries(agent.vmHost.listVms().map((v) => [v.vmId, v.state]))).toEqual({ 'vm-run': 'running', 'vm-paused': 'paused', 'vm-susp': 'suspended' });
    expect(await digest('vm-paused')).toMatchObject({ digest: pausedBefore.digest, totalSteps: pausedBefore.totalSteps }); // not one step lost or run
    const again = await digest('vm-run');
    expect(again.totalSteps).toBeGreaterThanOrEqual(runningSteps); // it carries on from where it was
    await new Promise((r) => setTimeout(r, 100));
    expect((await digest('vm-run')).totalSteps).toBeGreaterThan(again.totalSteps);
    expect(readdirSync(join(dir, 'h1', 'suspend'))).toEqual(['vm-susp.snap']); // notes consumed; the suspended VM keeps its file
    expect((await ask<Reply<'vm-updated'>>(coord, 'h1', { type: 'vm-action', vmId: 'vm-susp', action: 'resume' })).vm.state).toBe('running');
  });

  it('a digest taken while the VM runs into its step limit covers the steps it reports: the first one at the limit is final', async () => {
    const { coord } = await cluster(['h1']);
    // 32 MiB of written memory takes milliseconds to hash, while the vCPU runs 100 steps a millisecond.
    const spec: VmSpecWire = { id: 'vm-lim', name: 'lim', vcpus: 1, memoryBytes: 32 * MiB, workload: { kind: 'uniform', seed: 5, rate: 100_000 }, stepLimit: 40_000, heartbeat: false };
    await ask(coord, 'h1', { type: 'vm-create', spec, start: true });
    const digest = async (): Promise<Reply<'vm-digested'>> => ask<Reply<'vm-digested'>>(coord, 'h1', { type: 'vm-digest', vmId: 'vm-lim' });
    let first = await digest();
    while (first.totalSteps < spec.stepLimit!) first = await digest(); // back to back: one straddles the limit
    await new Promise((r) => setTimeout(r, 50));
    expect(await digest()).toMatchObject({ totalSteps: spec.stepLimit, digest: first.digest });
  });

  it('snapshots live, clones from the snapshot, samples the writable working set and digests memory', async () => {
    const { coord } = await cluster(['h1']);
    await ask(coord, 'h1', { type: 'vm-create', spec: { id: 'vm-s', name: 's', vcpus: 1, memoryBytes: 8 * MiB, workload: { kind: 'hotset', rate: 5000, params: { hotsetPages: 64, hotPercent: 100 } } }, start: true });
    const snap = await ask<Reply<'snapshot-taken'>>(coord, 'h1', { type: 'vm-snapshot', vmId: 'vm-s', snapshotId: 'snap-1' });
    expect(snap.fileBytes).toBeGreaterThan(0);
    const clone = await ask<Reply<'vm-created'>>(coord, 'h1', { type: 'vm-clone', snapshotId: 'snap-1', newVmId: 'vm-c', name: 'copy', start: true });
    expect(clone.vm).toMatchObject({ vmId: 'vm-c', name: 'copy', state: 'running' });
    const wws = await ask<Reply<'wws-sampled'>>(coord, 'h1', { type: 'vm-wws', vmId: 'vm-s', samples: 3, intervalMs: 50, predictAt: { bandwidthBytesPerSec: 125e6, maxDowntimeMs: 300 } });
    expect(wws.samples).toHaveLength(3);
    // Pre-copy simulated over the trace at 1 Gbit/s: round 1 sends all 8 MiB (~67 ms), then the hot set converges.
    expect(wws.prediction).toMatchObject({ bandwidthBytesPerSec: 125e6, maxDowntimeMs: 300, stopReason: 'converged' });
    expect(wws.prediction!.rounds).toBeGreaterThanOrEqual(2);
    expect(wws.prediction!.totalMs).toBeGreaterThan(60);
    expect(wws.prediction!.downtimeMs).toBeLessThan(300);
    expect(wws.wwsPages).toBeGreaterThan(0);
    expect(wws.wwsPages).toBeLessThanOrEqual(70); // the hot set (+ guest-info page)
    const d1 = await ask<Reply<'vm-digested'>>(coord, 'h1', { type: 'vm-digest', vmId: 'vm-s' });
    expect(d1.digest).toMatch(/^[0-9a-f]+$/);
  });

  it('a suspended VM migrates to another host and arrives running ("resume on another host"); nothing stays behind', async () => {
    const { coord, migrations, dir } = await cluster(['h1', 'h2']);
    await ask(coord, 'h1', { type: 'vm-create', spec: { id: 'vm-z', name: 'z', vcpus: 1, memoryBytes: 4 * MiB, workload: { kind: 'uniform', rate: 1000 } }, start: true });
    await ask(coord, 'h1', { type: 'vm-action', vmId: 'vm-z', action: 'suspend' });
    for (let i = 0; i < 50 && coord.hosts.find('h1')?.vms.find((v) => v.vmId === 'vm-z')?.state !== 'suspended'; i++) await new Promise((r) => setTimeout(r, 20));
    const m = migrations.migrate({ vmId: 'vm-z', to: 'h2', policy: { maxDowntimeMs: 300, maxRounds: 30, bandwidthLimit: 0, autoConverge: false } });
    const done = await migrations.whenFinal(m.id, 20_000);
    expect(done.state, JSON.stringify(done.error)).toBe('completed');
    await new Promise((r) => setTimeout(r, 250));
    expect(coord.hosts.find('h2')?.vms.find((v) => v.vmId === 'vm-z')?.state).toBe('running');
    expect(coord.hosts.find('h1')?.vms.some((v) => v.vmId === 'vm-z')).toBe(false);
    expect(readdirSync(join(dir, 'h1', 'suspend'))).toEqual([]);
  });

  it('answers probes: ok once the guest ran after the probe, timeout while paused, not-here elsewhere; the cluster token is required', async () => {
    const { coord, agents } = await cluster(['h1']);
    await ask(coord, 'h1', { type: 'vm-create', spec: { id: 'vm-p', name: 'p', vcpus: 1, memoryBytes: 4 * MiB, workload: { kind: 'idle' } }, start: true });
    const address = agents.get('h1')!.migrationAddress;
    const refused = await HostilePeer.connect(address.replace('/migrate', '/probe'));
    expect(refused.upgrade.status).toBe(401);
    refused.peer.hangUp();
    const probe = await ProbeClient.connect(address, coord.token);
    cleanups.push(() => probe.close());
    const sentAt = performance.timeOrigin + performance.now();
    const ok = await probe.probe('vm-p');
    expect(ok).toMatchObject({ status: 'ok', host: 'h1' });
    expect(ok.heartbeatMs!).toBeGreaterThan(sentAt);
    expect((await probe.probe('nope')).status).toBe('not-here');
    await ask(coord, 'h1', { type: 'vm-action', vmId: 'vm-p', action: 'pause' });
    expect((await probe.probe('vm-p', 150)).status).toBe('timeout');
    const waiting = probe.probe('vm-p', 5000);
    await new Promise((r) => setTimeout(r, 50));
    await ask(coord, 'h1', { type: 'vm-action', vmId: 'vm-p', action: 'resume' });
    expect((await waiting).status).toBe('ok');
  });
});
