import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryDigest } from '@ferry/memory';
import { CpuPool, Vm } from '@ferry/vm';
import type { Migration, VmActionMessage, VmCreateMessage, VmDigestMessage, VmSpecWire } from '@ferry/protocol';
// The agent is imported by path: apps/coordinator does not depend on apps/agent, only this test does.
import { startAgent, type RunningAgent } from '../../agent/src/index.ts';
import { startCoordinator, type RunningCoordinator } from './coordinator.ts';
import { createMigrationLab } from './migrations-lab.ts';
import type { MigrationOrchestrator } from './migrations.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const MiB = 2 ** 20;

async function cluster(hostIds: string[]): Promise<{ coord: RunningCoordinator; migrations: MigrationOrchestrator; agents: Map<string, RunningAgent> }> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-mig-test-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const { modules, migrations } = createMigrationLab({ journalPath: join(dir, 'migrations.journal.json') });
  const coord = await startCoordinator({ port: 0, stateDir: join(dir, 'coord'), heartbeatIntervalMs: 100, failureTimeoutMs: 5000, modules });
  cleanups.push(() => coord.close());
  const agents = new Map<string, RunningAgent>();
  for (const id of hostIds) {
    const agent = await startAgent({ coordinatorUrl: `ws://127.0.0.1:${coord.port}`, token: coord.token, hostId: id, capacity: { cpus: 4, memoryBytes: 256 * MiB, diskBytes: 2 ** 30 }, dataDir: join(dir, id), pcpus: 1 });
    cleanups.push(() => agent.close());
    await agent.whenRegistered();
    agents.set(id, agent);
  }
  return { coord, migrations, agents };
}

async function create(coord: RunningCoordinator, host: string, spec: VmSpecWire): Promise<void> {
  const reply = await coord.agents.request<VmCreateMessage>(host, { type: 'vm-create', spec, start: true }, 30_000);
  expect(reply.type).toBe('vm-created');
  // the registry learns about it from the next heartbeat
  for (let i = 0; i < 100 && coord.hosts.find(host)?.vms.find((v) => v.vmId === spec.id)?.state !== 'running'; i++) await new Promise((r) => setTimeout(r, 20));
}

async function digestOn(coord: RunningCoordinator, host: string, vmId: string): Promise<{ digest: string; totalSteps: number }> {
  const reply = await coord.agents.request<VmDigestMessage>(host, { type: 'vm-digest', vmId }, 30_000);
  if (reply.type !== 'vm-digested') throw new Error(reply.type);
  return reply;
}

async function reference(spec: VmSpecWire): Promise<string> {
  const pool = new CpuPool({ pcpus: 1 });
  cleanups.push(() => pool.close());
  const vm = Vm.create({ ...spec, workload: { ...spec.workload, kind: spec.workload.kind as 'uniform' } }, pool);
  await vm.start();
  await vm.whenStepLimitReached();
  const d = memoryDigest(vm.memory);
  await vm.stop();
  return d;
}

describe('migration orchestrator with real agents (in-process)', () => {
  it('moves a VM mid-run between three agents; it ends byte-identical to one run without migrating', async () => {
    const { coord, migrations } = await cluster(['h1', 'h2', 'h3']);
    const spec: VmSpecWire = { id: 'vm-det', name: 'det', vcpus: 2, memoryBytes: 8 * MiB, workload: { kind: 'uniform', seed: 7, rate: 20_000 }, heartbeat: false, stepLimit: 4000 };
    await create(coord, 'h1', spec);
    const hops = ['h2', 'h3', 'h1'];
    const done: Migration[] = [];
    for (const to of hops) {
      const m = migrations.migrate({ vmId: 'vm-det', to, policy: { maxDowntimeMs: 50, maxRounds: 10, bandwidthLimit: 0, autoConverge: false } });
      done.push(await migrations.whenFinal(m.id, 20_000));
    }
    for (const m of done) {
      expect(m.state, JSON.stringify(m.error)).toBe('completed');
      expect(m.report?.digestVerified).toBe(true);
      expect(m.report!.downtimeMs).toBeGreaterThanOrEqual(0);
      expect(m.rounds.length).toBeGreaterThan(0);
    }
    // only h1 runs it now
    await new Promise((r) => setTimeout(r, 250));
    expect(coord.hosts.find('h2')?.vms.some((v) => v.vmId === 'vm-det')).toBe(false);
    expect(coord.hosts.find('h3')?.vms.some((v) => v.vmId === 'vm-det')).toBe(false);
    let d = await digestOn(coord, 'h1', 'vm-det');
    for (let i = 0; i < 400 && d.totalSteps < spec.vcpus * spec.stepLimit!; i++) {
      await new Promise((r) => setTimeout(r, 25));
      d = await digestOn(coord, 'h1', 'vm-det');
    }
    expect(d.totalSteps).toBe(spec.vcpus * spec.stepLimit!);
    expect(d.digest).toBe(await reference(spec));
  }, 60_000);

  it('a paused VM migrates and arrives paused; the API lists the migration with its report', async () => {
    const { coord, migrations } = await cluster(['h1', 'h2']);
    const spec: VmSpecWire = { id: 'vm-p', name: 'p', vcpus: 1, memoryBytes: 4 * MiB, workload: { kind: 'hotset', seed: 1, rate: 1000 } };
    await create(coord, 'h1', spec);
    await coord.agents.request<VmActionMessage>('h1', { type: 'vm-action', vmId: 'vm-p', action: 'pause' });
    const res = await fetch(`${coord.url}/api/v1/vms/vm-p/migrate`, { method: 'POST', headers: { authorization: `Bearer ${coord.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ to: 'h2' }) });
    expect(res.status).toBe(202);
    const started = (await res.json()) as Migration;
    const m = await migrations.whenFinal(started.id, 20_000);
    expect(m.state).toBe('completed');
    for (let i = 0; i < 50 && !coord.hosts.find('h2')?.vms.some((v) => v.vmId === 'vm-p'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(coord.hosts.find('h2')?.vms.find((v) => v.vmId === 'vm-p')?.state).toBe('paused');
    const listed = (await (await fetch(`${coord.url}/api/v1/migrations/${m.id}`, { headers: { authorization: `Bearer ${coord.token}` } })).json()) as Migration;
    expect(listed.report?.vmBytes).toBe(4 * MiB);
  }, 30_000);

  it('cancel before the commit point leaves the VM running on the source; the migration ends cancelled', async () => {
    const { coord, migrations } = await cluster(['h1', 'h2']);
    await create(coord, 'h1', { id: 'vm-k', name: 'k', vcpus: 1, memoryBytes: 16 * MiB, workload: { kind: 'scan', rate: 20_000 } });
    await new Promise((r) => setTimeout(r, 400)); // memory fills
    const m = migrations.migrate({ vmId: 'vm-k', to: 'h2', policy: { maxDowntimeMs: 50, maxRounds: 30, bandwidthLimit: 4 * MiB, autoConverge: false } });
    for (let i = 0; i < 200 && migrations.get(m.id)?.state === 'reserving'; i++) await new Promise((r) => setTimeout(r, 10));
    expect(migrations.cancel(m.id, 'changed my mind').id).toBe(m.id);
    const done = await migrations.whenFinal(m.id, 20_000);
    expect(done.state).toBe('cancelled');
    expect(done.error?.message).toMatch(/changed my mind/);
    await new Promise((r) => setTimeout(r, 250));
    expect(coord.hosts.find('h1')?.vms.find((v) => v.vmId === 'vm-k')).toMatchObject({ state: 'running' });
    expect(coord.hosts.find('h1')?.vms.find((v) => v.vmId === 'vm-k')?.migrationId).toBeUndefined();
    expect(coord.hosts.find('h2')?.vms.some((v) => v.vmId === 'vm-k')).toBe(false);
    expect(() => migrations.cancel(m.id)).toThrow(/cancelled/);
  }, 30_000);

  it('refuses a migration to the host the VM is on and of an unknown VM, changing nothing', async () => {
    const { coord, migrations } = await cluster(['h1', 'h2']);
    await create(coord, 'h1', { id: 'vm-x', name: 'x', vcpus: 1, memoryBytes: 4 * MiB, workload: { kind: 'idle' } });
    expect(() => migrations.migrate({ vmId: 'vm-x', to: 'h1', policy: { maxDowntimeMs: 300, maxRounds: 30, bandwidthLimit: 0, autoConverge: false } })).toThrow(/already on h1/);
    expect(() => migrations.migrate({ vmId: 'nope', policy: { maxDowntimeMs: 300, maxRounds: 30, bandwidthLimit: 0, autoConverge: false } })).toThrow(/no vm nope/);
    expect(migrations.list()).toHaveLength(0);
  });
});
