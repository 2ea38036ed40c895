import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryDigest } from '@ferry/memory';
import { CpuPool, Vm } from '@ferry/vm';
import type { VmCreateMessage, VmDigestMessage, VmDigestedMessage, VmSpecWire } from '@ferry/protocol';
// The agent is imported by path: apps/coordinator does not depend on apps/agent, only this test does.
import { startAgent, type RunningAgent } from '../../agent/src/index.ts';
import type { LocalVmHost } from '../../agent/src/vm-host-local.ts';
import { startCoordinator } from './coordinator.ts';
import { createMigrationLab } from './migrations-lab.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const MiB = 2 ** 20;
const POLICY = { maxDowntimeMs: 50, maxRounds: 10, bandwidthLimit: 0, autoConverge: false };

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) throw new Error(`${what} not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('pooled guest memory on the destination', () => {
  it('a VM migrating back to a host reuses the memory it left there, zeroed; it ends byte-identical to a run without migrating', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-pool-test-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const lab = createMigrationLab({ journalPath: join(dir, 'migrations.journal.json') });
    const coord = await startCoordinator({ port: 0, stateDir: join(dir, 'coord'), heartbeatIntervalMs: 100, failureTimeoutMs: 5000, modules: lab.modules });
    cleanups.push(() => coord.close());
    const agents = new Map<string, RunningAgent>();
    for (const id of ['h1', 'h2']) {
      const agent = await startAgent({ coordinatorUrl: `ws://127.0.0.1:${coord.port}`, token: coord.token, hostId: id, capacity: { cpus: 4, memoryBytes: 256 * MiB, diskBytes: 2 ** 30 }, dataDir: join(dir, id), pcpus: 1, memoryPoolBytes: 64 * MiB });
      cleanups.push(() => agent.close());
      await agent.whenRegistered();
      agents.set(id, agent);
    }
    const pool = (id: string): LocalVmHost['memoryPool'] => (agents.get(id)!.vmHost as LocalVmHost).memoryPool;
    const spec: VmSpecWire = { id: 'vm-pool', name: 'pool', vcpus: 1, memoryBytes: 8 * MiB, workload: { kind: 'uniform', seed: 11, rate: 20_000 }, heartbeat: false, stepLimit: 6000 };
    const created = await coord.agents.request<VmCreateMessage>('h1', { type: 'vm-create', spec, start: true }, 30_000);
    expect(created.type).toBe('vm-created');
    await until(() => coord.hosts.find('h1')?.vms.some((v) => v.vmId === spec.id) === true, 'vm reported');

    const there = await lab.migrations.whenFinal(lab.migrations.migrate({ vmId: spec.id, to: 'h2', policy: POLICY }).id, 20_000);
    expect(there.state).toBe('completed');
    expect(pool('h2').stats.taken).toBe(0); // h2 had nothing pooled: fresh memory
    await until(() => pool('h1').stats.readyBytes === spec.memoryBytes, 'h1 pools the memory the VM left, zeroed');
    await until(() => coord.hosts.find('h2')?.vms.some((v) => v.vmId === spec.id) === true, 'vm reported on h2');

    const back = await lab.migrations.whenFinal(lab.migrations.migrate({ vmId: spec.id, to: 'h1', policy: POLICY }).id, 20_000);
    expect(back.state).toBe('completed');
    expect(pool('h1').stats.taken).toBe(1);
    expect(back.report?.digestVerified).toBe(true);

    let d: VmDigestedMessage | undefined;
    await until(async () => {
      const reply = await coord.agents.request<VmDigestMessage>('h1', { type: 'vm-digest', vmId: spec.id }, 30_000);
      if (reply.type !== 'vm-digested') throw new Error(reply.type);
      d = reply;
      return reply.totalSteps >= spec.stepLimit!;
    }, 'step limit reached', 20_000);
    const cpu = new CpuPool({ pcpus: 1 });
    cleanups.push(() => cpu.close());
    const ref = Vm.create({ ...spec, workload: { ...spec.workload, kind: 'uniform' } }, cpu);
    await ref.start();
    await ref.whenStepLimitReached();
    expect(d!.digest).toBe(memoryDigest(ref.memory));
    await ref.stop();
  }, 60_000);
});
