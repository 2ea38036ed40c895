import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PlacementPlan, PlacementPlanRun, Vm } from '@ferry/protocol';
import { runCommand } from '../../../apps/cli/src/index.ts';
import { detachedClusterDirs, pidsIn, runFerry, spawnCluster, waitGone } from './cloud-helpers.ts';

// `ferry plan consolidate|rebalance [--apply]` against a cluster started with `pnpm cluster
// --detach`: the coordinator's scheduler plans over the real VMs, and --apply empties the hosts
// by live migrations, after which the plan has nothing left to do.

const dirs = detachedClusterDirs((d) => join(d, 'state'));

describe('placement plans on a detached local cluster', () => {
  it('plan consolidate shows the hosts it empties; --apply migrates in order and leaves nothing to plan; cluster down stops it', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'ferry-plans-'));
    dirs.push(cwd);
    const stateDir = join(cwd, 'state');
    const launcher = spawnCluster(['--state-dir', stateDir, '--port', '0', '--agents', '3', '--cpus', '2', '--memory', '128MiB', '--no-demo', '--detach', '--log-level', 'warn', '--failure-timeout-ms', '10000'], cwd);
    expect((await launcher.exited).code, launcher.errors()).toBe(0);
    const ferry = async (args: string[]): Promise<{ code: number; value: unknown }> => {
      let out = '';
      const code = await runCommand(['--state-dir', stateDir, ...args, '--json'], { out: (t) => void (out += t), err: (t) => void (out += t), env: {}, cwd });
      return { code, value: JSON.parse(out) as unknown };
    };
    for (const host of ['host-1', 'host-1', 'host-2', 'host-3']) {
      const run = await ferry(['run', '--image', 'minimal', '--cpus', '1', '--memory', '16MiB', '--disk', '256MiB', '--host', host]);
      expect(run.code, JSON.stringify(run.value)).toBe(0);
    }

    const planned = await ferry(['plan', 'consolidate']);
    expect(planned.code, JSON.stringify(planned.value)).toBe(0);
    const plan = planned.value as PlacementPlan;
    expect(plan).toMatchObject({ kind: 'consolidation', hostsBefore: 3, hostsAfter: 1, hostsEmptied: ['host-2', 'host-3'], costBytes: 2 * 16 * 2 ** 20 });
    expect(plan.migrations.map((m) => m.to)).toEqual(['host-1', 'host-1']);

    // The table from a real CLI process.
    const table = await runFerry(['--state-dir', stateDir, 'plan', 'consolidate'], cwd);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^STEP\s+VM\s+FROM\s+TO\s+COST$/m);
    expect(table.stdout).toMatch(/^hosts used\s+3 → 1$/m);

    const applied = await ferry(['plan', 'consolidate', '--apply']);
    expect(applied.code, JSON.stringify(applied.value)).toBe(0);
    expect(applied.value as PlacementPlanRun).toMatchObject({ state: 'completed', vmsMoved: 2 });
    const vms = (await ferry(['vms'])).value as Vm[];
    expect(vms.map((v) => [v.host, v.state])).toEqual(vms.map(() => ['host-1', 'running']));
    expect(((await ferry(['plan', 'consolidate'])).value as PlacementPlan).migrations).toEqual([]);

    const pids = [Number(readFileSync(join(stateDir, 'cluster.pid'), 'utf8')), ...pidsIn(readFileSync(join(stateDir, 'logs', 'cluster.log'), 'utf8'))];
    expect(pids.length).toBe(5); // supervisor, coordinator, three agents
    const down = spawnCluster(['down', '--state-dir', stateDir], cwd);
    expect((await down.exited).code).toBe(0);
    expect(await waitGone(pids)).toEqual([]);
  }, 20_000);
});
