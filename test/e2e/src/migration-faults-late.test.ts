// Faults late in a live migration between agent processes (real coordinator and agent processes,
// kill -9, a real coordinator crash): the destination killed during a later pre-copy round and
// during stop-and-copy, and the coordinator crashing right after its commit record (the
// `crash-after-commit-record` failpoint, apps/coordinator/src/failpoints.ts). Each test checks
// where the VM runs (one host, never two), that it keeps running, and that its memory is exactly
// what an unmigrated run of the same number of steps produces.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { memoryDigest } from '@ferry/memory';
import { CpuPool, Vm } from '@ferry/vm';
import type { Migration, MigrationPolicy, VmSpecWire } from '@ferry/protocol';
import { startMigrationCluster, type MigrationCluster } from '../../../scripts/bench/migrate-cluster.ts';
import { waitFor } from './harness.ts';

let cluster: MigrationCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const MiB = 2 ** 20;
/**
 * A deterministic VM (no heartbeat stamp) whose scan rewrites all of its 16 MiB about every 1.4 s:
 * under a bandwidth limit of a few MiB/s every pre-copy round lasts about a second and the
 * residual never shrinks, so stop-and-copy has megabytes left to send.
 */
const scanSpec = (id: string): VmSpecWire => ({ id, name: id, vcpus: 1, memoryBytes: 16 * MiB, workload: { kind: 'scan', seed: 7, rate: 3000 }, heartbeat: false });

type Placement = { host: string; state: string; migrationId?: string };

/** Where the agents report `vmId` (last heartbeat of every live agent). */
async function placements(c: MigrationCluster, vmId: string): Promise<Placement[]> {
  return (await c.vms()).filter((v) => v.vm.vmId === vmId).map((v) => ({ host: v.host, state: v.vm.state, ...(v.vm.migrationId ? { migrationId: v.vm.migrationId } : {}) }));
}

/** Waits until the agents report `vmId` exactly as `expected`, and still do two heartbeats later. */
async function expectSettledOn(c: MigrationCluster, vmId: string, expected: Placement[]): Promise<void> {
  let seen: Placement[] = [];
  const same = async (): Promise<boolean> => JSON.stringify((seen = await placements(c, vmId))) === JSON.stringify(expected);
  await waitFor(same, 10_000, `${vmId} on ${JSON.stringify(expected)} (last seen ${JSON.stringify(seen)})`).catch(() => undefined);
  expect(seen).toEqual(expected);
  await new Promise((r) => setTimeout(r, 450)); // two heartbeats (200 ms) from every live agent
  expect(await placements(c, vmId)).toEqual(expected);
}

/** Polls the migration until `done(m)` holds; returns that view. */
async function migrationWhen(c: MigrationCluster, id: string, done: (m: Migration) => boolean, timeoutMs = 20_000): Promise<Migration> {
  let m: Migration | undefined;
  await waitFor(async () => done((m = await c.api<Migration>('GET', `/api/v1/migrations/${id}`))), timeoutMs, `migration ${id} condition (last: ${m?.state}, ${m?.rounds.length} rounds)`);
  return m!;
}

/** Resolves once the VM's guest steps advance where it runs (asked of its agent, no heartbeat lag). */
async function stepsAdvance(c: MigrationCluster, vmId: string): Promise<void> {
  const a = await c.digest(vmId);
  await waitFor(async () => (await c.digest(vmId)).totalSteps > a.totalSteps, 5000, `${vmId} steps advance past ${a.totalSteps}`);
}

/**
 * Pauses the VM where it runs and checks its memory against the same spec run, in this process and
 * without any migration, for exactly as many steps: byte-identical or the fault lost or corrupted a page.
 */
async function expectMemoryIntact(c: MigrationCluster, spec: VmSpecWire): Promise<string> {
  await c.api('POST', `/api/v1/lab/vms/${spec.id}/action`, { action: 'pause' });
  const now = await c.digest(spec.id);
  expect(now.state).toBe('paused');
  expect(now.totalSteps).toBeGreaterThan(0);
  const pool = new CpuPool({ pcpus: 1 });
  try {
    const workload = { ...spec.workload, kind: spec.workload.kind as 'scan', rate: 0 }; // same steps, no pacing
    const vm = Vm.create({ ...spec, workload, stepLimit: now.totalSteps / spec.vcpus }, pool);
    await vm.start();
    await vm.whenStepLimitReached();
    const reference = memoryDigest(vm.memory);
    await vm.stop();
    expect(now.digest, `memory of ${spec.id} after ${now.totalSteps} steps`).toBe(reference);
  } finally {
    await pool.close();
  }
  return now.host;
}

async function startVm(c: MigrationCluster, spec: VmSpecWire, minSteps = 1500): Promise<void> {
  await c.createVm('h1', spec);
  await waitFor(async () => (await c.digest(spec.id)).totalSteps >= minSteps, 10_000, `${spec.id} warmed up`); // memory written
}

function expectDestinationDown(m: Migration): void {
  expect(m.state).toBe('failed');
  expect(m.error?.code, JSON.stringify(m.error)).toBe('FERRY_ERR_MIGRATION_DESTINATION_DOWN');
  expect(m.error?.message).toMatch(/\bh2\b/);
}

/** After the destination (h2) died: the migration failed naming it; the VM runs on h1 only, advances, memory intact. */
async function expectKeptOnSource(c: MigrationCluster, migrationId: string, spec: VmSpecWire): Promise<Migration> {
  const done = await c.waitMigration(migrationId, 20_000);
  expectDestinationDown(done);
  await expectSettledOn(c, spec.id, [{ host: 'h1', state: 'running' }]);
  await stepsAdvance(c, spec.id);
  expect(await expectMemoryIntact(c, spec)).toBe('h1');
  return done;
}

const LATER_ROUNDS: Partial<MigrationPolicy> = { bandwidthLimit: 8 * MiB, maxDowntimeMs: 5, maxRounds: 30 };
/** One pre-copy round, then stop-and-copy of the whole residual (~16 MiB) at 6 MiB/s: seconds paused. */
const FORCED_STOP: Partial<MigrationPolicy> = { bandwidthLimit: 6 * MiB, maxDowntimeMs: 5, maxRounds: 1 };

describe('late migration faults (real processes)', () => {
  it('kill -9 of the destination during a later pre-copy round: the VM keeps running on the source, memory intact; failed DESTINATION_DOWN naming the host', async () => {
    cluster = await startMigrationCluster({ agents: ['h1', 'h2'], agentMemory: '256MiB' });
    const spec = scanSpec('vm-late');
    await startVm(cluster, spec);
    const m = await cluster.migrate(spec.id, { to: 'h2', policy: LATER_ROUNDS });
    // Two rounds done: round 3 is being copied (each round ~1 s), and the VM still runs (not stop-and-copy).
    const atKill = await migrationWhen(cluster, m.id, (x) => x.rounds.length >= 2 || !['reserving', 'precopy'].includes(x.state));
    expect(atKill.state).toBe('precopy');
    const source = await cluster.digest(spec.id);
    cluster.agent('h2').kill('SIGKILL');
    expect(source).toMatchObject({ host: 'h1', state: 'running' });
    const roundsAtKill = atKill.rounds.length;
    expect(roundsAtKill).toBeGreaterThanOrEqual(2);

    const done = await expectKeptOnSource(cluster, m.id, spec);
    expect(done.rounds.length).toBeGreaterThanOrEqual(roundsAtKill);
  }, 60_000);

  it('kill -9 of the destination during stop-and-copy: the paused source resumes, memory intact; failed DESTINATION_DOWN', async () => {
    cluster = await startMigrationCluster({ agents: ['h1', 'h2'], agentMemory: '256MiB' });
    const spec = scanSpec('vm-stop');
    await startVm(cluster, spec);
    const m = await cluster.migrate(spec.id, { to: 'h2', policy: FORCED_STOP });
    // maxRounds 1: after round 1 the source says `migration-stopping`, pauses the VM and copies the residual.
    const atKill = await migrationWhen(cluster, m.id, (x) => x.state !== 'reserving' && x.state !== 'precopy');
    let source = await cluster.digest(spec.id);
    await waitFor(async () => (source = await cluster!.digest(spec.id)).state === 'paused', 2000, 'the source paused for stop-and-copy').catch(() => undefined);
    cluster.agent('h2').kill('SIGKILL');
    // The coordinator says stop-and-copy, the VM is paused on the source, and only round 1 is done:
    // the final copy is under way.
    expect(atKill.state).toBe('stop-and-copy');
    expect(source).toMatchObject({ host: 'h1', state: 'paused' });
    expect(atKill.rounds).toHaveLength(1);

    const done = await expectKeptOnSource(cluster, m.id, spec);
    expect(done.rounds).toHaveLength(1); // the final round never completed: the kill fell inside it
  }, 60_000);

  it('kill -9 of the destination while a paused VM is being copied: it stays paused on the source, memory unchanged', async () => {
    cluster = await startMigrationCluster({ agents: ['h1', 'h2'], agentMemory: '256MiB' });
    const spec = scanSpec('vm-paused');
    await startVm(cluster, spec, 4096); // every page written once
    await cluster.api('POST', `/api/v1/lab/vms/${spec.id}/action`, { action: 'pause' });
    const before = await cluster.digest(spec.id);
    expect(before.state).toBe('paused');
    // A paused VM dirties nothing: its one long phase is the copy of round 1 (16 MiB at 4 MiB/s).
    const m = await cluster.migrate(spec.id, { to: 'h2', policy: { ...FORCED_STOP, bandwidthLimit: 4 * MiB } });
    await migrationWhen(cluster, m.id, (x) => x.state !== 'reserving');
    await new Promise((r) => setTimeout(r, 300)); // a few frames in
    const atKill = await cluster.api<Migration>('GET', `/api/v1/migrations/${m.id}`);
    cluster.agent('h2').kill('SIGKILL');
    expect(atKill.state).toBe('precopy');
    expect(atKill.rounds).toHaveLength(0);

    const done = await cluster.waitMigration(m.id, 20_000);
    expectDestinationDown(done);
    await expectSettledOn(cluster, spec.id, [{ host: 'h1', state: 'paused' }]);
    const after = await cluster.digest(spec.id);
    expect(after).toEqual(before); // not resumed, not one step run, not one byte changed
    await cluster.api('POST', `/api/v1/lab/vms/${spec.id}/action`, { action: 'resume' });
    await stepsAdvance(cluster, spec.id);
  }, 60_000);

  it('the coordinator crashes right after its commit record and restarts: the migration completes; the VM runs on the destination only, memory intact', async () => {
    cluster = await startMigrationCluster({ agents: ['h1', 'h2'], agentMemory: '256MiB', coordinatorEnv: { FERRY_FAILPOINTS: 'crash-after-commit-record' } });
    const spec = scanSpec('vm-commit');
    await startVm(cluster, spec);
    const crashed = cluster.coordinator();
    const m = await cluster.migrate(spec.id, { to: 'h2', policy: { maxDowntimeMs: 50 } });
    const exit = await Promise.race([crashed.exited, new Promise<null>((r) => setTimeout(() => r(null), 20_000))]);
    expect(exit, 'the coordinator reached the failpoint').toEqual({ code: null, signal: 'SIGKILL' });
    // It died after the owner switch was logged (the commit log, fdatasync'ed), before the source
    // heard `commit`; the journal itself still shows the migration uncommitted.
    const logged = readFileSync(join(cluster.stateDir, 'migrations.journal.json.commits'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; to: string });
    expect(logged).toContainEqual(expect.objectContaining({ id: m.id, to: 'h2' }));
    const journal = JSON.parse(readFileSync(join(cluster.stateDir, 'migrations.journal.json'), 'utf8')) as { migrations: { id: string; committed: boolean }[] };
    expect(journal.migrations.find((r) => r.id === m.id)?.committed).toBe(false);

    await cluster.restartCoordinator('SIGKILL'); // same port and state dir, no failpoint
    // Recovery: the commit log is replayed; the source re-sends ready on re-registering and hears commit.
    const samples: Placement[][] = [];
    let done: Migration | undefined;
    await waitFor(
      async () => {
        samples.push(await placements(cluster!, spec.id));
        done = await cluster!.api<Migration>('GET', `/api/v1/migrations/${m.id}`);
        return ['completed', 'failed', 'cancelled'].includes(done.state);
      },
      20_000,
      'the recovered migration ends',
    );
    expect(done?.state, JSON.stringify(done?.error)).toBe('completed');
    expect(done?.to).toBe('h2');
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 150));
      samples.push(await placements(cluster, spec.id));
    }
    const running = samples.map((s) => s.filter((p) => p.state === 'running').map((p) => p.host));
    expect(running.filter((hosts) => hosts.length > 1), 'samples with the VM running on two hosts').toEqual([]);
    expect(samples.length).toBeGreaterThanOrEqual(3);
    await expectSettledOn(cluster, spec.id, [{ host: 'h2', state: 'running' }]);
    await stepsAdvance(cluster, spec.id);
    expect(await expectMemoryIntact(cluster, spec)).toBe('h2');
  }, 60_000);
});
