// Transparency over real processes: a VM with a deterministic workload, migrated mid-run several
// times between three agent processes over real WebSockets, ends byte-identical to the same VM run
// the same number of steps without migrating; every migration reports its downtime.
import { afterEach, describe, expect, it } from 'vitest';
import { memoryDigest } from '@ferry/memory';
import { CpuPool, Vm } from '@ferry/vm';
import type { VmSpecWire } from '@ferry/protocol';
import { startMigrationCluster, type MigrationCluster } from '../../../scripts/bench/migrate-cluster.ts';

let cluster: MigrationCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const MiB = 2 ** 20;

async function referenceDigest(spec: VmSpecWire): Promise<string> {
  const pool = new CpuPool({ pcpus: 1 });
  try {
    const vm = Vm.create({ ...spec, workload: { ...spec.workload, kind: spec.workload.kind as 'uniform' } }, pool);
    await vm.start();
    await vm.whenStepLimitReached();
    const digest = memoryDigest(vm.memory);
    await vm.stop();
    return digest;
  } finally {
    await pool.close();
  }
}

describe('live migration between agent processes', () => {
  it('a VM migrated mid-run h1→h2→h3→h1 ends byte-identical to an unmigrated run; reports carry downtime', async () => {
    cluster = await startMigrationCluster({ agents: ['h1', 'h2', 'h3'], agentMemory: '256MiB' });
    const spec: VmSpecWire = { id: 'vm-det', name: 'det', vcpus: 2, memoryBytes: 16 * MiB, workload: { kind: 'uniform', seed: 11, rate: 8000 }, heartbeat: false, stepLimit: 6000 };
    await cluster.createVm('h1', spec);
    const hops = ['h2', 'h3', 'h1'];
    let midRunHops = 0;
    for (const to of hops) {
      const before = await cluster.digest('vm-det');
      if (before.totalSteps < spec.vcpus * spec.stepLimit!) midRunHops++;
      const m = await cluster.migrate('vm-det', { to, policy: { maxDowntimeMs: 50 } });
      expect(m.state).toBe('reserving');
      const done = await cluster.waitMigration(m.id, 30_000);
      expect(done.state, JSON.stringify(done.error)).toBe('completed');
      expect(done.to).toBe(to);
      expect(done.report?.digestVerified).toBe(true);
      expect(done.report!.downtimeMs).toBeGreaterThanOrEqual(0);
      expect(done.report!.downtimeMs).toBeLessThan(5000);
      expect(done.report!.bytesOnWire).toBeGreaterThan(0);
      expect(done.rounds.length).toBeGreaterThanOrEqual(1);
    }
    expect(midRunHops).toBeGreaterThanOrEqual(2);
    // It runs on exactly one agent.
    let final = await cluster.digest('vm-det');
    for (let i = 0; i < 400 && final.totalSteps < spec.vcpus * spec.stepLimit!; i++) {
      await new Promise((r) => setTimeout(r, 25));
      final = await cluster.digest('vm-det');
    }
    expect(final.host).toBe('h1');
    await new Promise((r) => setTimeout(r, 300)); // a heartbeat from every agent
    const where = (await cluster.vms()).filter((v) => v.vm.vmId === 'vm-det').map((v) => v.host);
    expect(where).toEqual(['h1']);
    expect(final.totalSteps).toBe(spec.vcpus * spec.stepLimit!);
    expect(final.digest).toBe(await referenceDigest(spec));
  }, 60_000);
});
