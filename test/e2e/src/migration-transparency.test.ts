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
  it('a VM migrated mid-run h1→h2→h3→h1→h2→h1 ends byte-identical to an unmigrated run; reports carry downtime', async () => {
    cluster = await startMigrationCluster({ agents: ['h1', 'h2', 'h3'], agentMemory: '256MiB' });
    const spec: VmSpecWire = { id: 'vm-det', name: 'det', vcpus: 2, memoryBytes: 16 * MiB, workload: { kind: 'uniform', seed: 11, rate: 8000 }, heartbeat: false, stepLimit: 6000 };
    await cluster.createVm('h1', spec);
    const hops = ['h2', 'h3', 'h1', 'h2', 'h1'];
    let midRunHops = 0;
    // The switch-over cost each hop measured, by source→destination: a later hop on the same pair
    // estimates its downtime with it (the source agent's history) instead of guessing.
    const measured = new Map<string, number>();
    let from = 'h1';
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
      const report = done.report as unknown as { switchoverMs: number; switchoverMeasuredMs: number };
      expect(report.switchoverMeasuredMs).toBeGreaterThanOrEqual(0);
      expect(report.switchoverMeasuredMs).toBeLessThanOrEqual(done.report!.downtimeMs);
      const earlier = measured.get(`${from}→${to}`);
      if (earlier !== undefined) expect(report.switchoverMs).toBe(earlier);
      measured.set(`${from}→${to}`, report.switchoverMeasuredMs);
      from = to;
    }
    expect(measured.size).toBeLessThan(hops.length); // h1→h2 ran twice
    expect(midRunHops).toBeGreaterThanOrEqual(2);
    // It runs on exactly one agent.
    let final = await cluster.digest('vm-det');
    for (let i = 0; i < 400 && final.totalSteps < spec.vcpus * spec.stepLimit!; i++) {
      await new Promise((r) => setTimeout(r, 25));
      final = await cluster.digest('vm-det');
    }
    expect(final.host).toBe('h1');
    // Hosts list their VMs in heartbeats: wait (bounded) until every agent's latest one says where
    // it runs. A ghost would stay listed on a second host; one heartbeat late is not one.
    let where: string[] = [];
    for (let i = 0; i < 40; i++) {
      where = (await cluster.vms()).filter((v) => v.vm.vmId === 'vm-det').map((v) => v.host);
      if (where.length === 1 && where[0] === 'h1') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(where).toEqual(['h1']);
    expect(final.totalSteps).toBe(spec.vcpus * spec.stepLimit!);
    expect(final.digest).toBe(await referenceDigest(spec));
  }, 60_000);
});
