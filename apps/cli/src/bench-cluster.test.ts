import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Migration, MigrationReport, Vm } from '@ferry/protocol';
import { EXIT_OK, runCommand } from './commands.ts';
import type { BenchResult } from './bench-command.ts';
// The cloud launcher as the e2e tests drive it: a real coordinator and two real agent processes.
import { spawnCluster } from '../../../test/e2e/src/cloud-helpers.ts';

// `ferry bench` and `ferry migrate --rate-limit` against a real detached local cluster: the
// policy's rate limit crosses the cloud API, the coordinator and the agents; the migration carries
// its timeline; the bench probes the VM through the agents and reports downtime three ways.

describe('ferry bench and ferry migrate --rate-limit on a real cluster', () => {
  it('reports hypervisor, guest and client downtime for each workload; a Xen rate-limited migration completes with its policy and timeline', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'ferry-bench-'));
    const stateDir = join(cwd, '.ferry');
    const launcher = spawnCluster(['--state-dir', stateDir, '--port', '0', '--agents', '2', '--cpus', '2', '--memory', '256MiB', '--no-demo', '--detach', '--log-level', 'warn', '--failure-timeout-ms', '10000'], cwd);
    try {
      expect((await launcher.exited).code, launcher.errors()).toBe(0);
      await benchAndMigrate(cwd);
    } finally {
      await spawnCluster(['down', '--state-dir', stateDir], cwd).exited;
      rmSync(cwd, { recursive: true, force: true });
    }
  }, 60_000);
});

/** The checks, on the running cluster whose `.ferry` is in `cwd`. */
async function benchAndMigrate(cwd: string): Promise<void> {
  const ferry = async <T>(args: string[]): Promise<{ code: number; value: T }> => {
    const chunks: string[] = [];
    const code = await runCommand([...args, '--json'], { out: (t) => void chunks.push(t), err: (t) => void chunks.push(t), env: {}, cwd });
    return { code, value: JSON.parse(chunks.join('')) as T };
  };

  const bench = await ferry<BenchResult>(['bench', '--workloads', 'hotset', '--runs', '2', '--memory', '16MiB', '--image', 'minimal', '--warm', '300']);
  expect(bench.code, JSON.stringify(bench.value)).toBe(EXIT_OK);
  expect(bench.value.probe).toEqual({ intervalMs: 1, hosts: ['host-1', 'host-2'] });
  const [cell] = bench.value.cells;
  expect(cell!.runs).toBe(2);
  expect(cell!.digestVerified).toBe(true);
  for (const way of ['hypervisor', 'guest', 'client'] as const) {
    const d = cell!.downtimeMs[way];
    expect(d, way).not.toBeNull();
    expect(d!.median, way).toBeGreaterThan(0);
    expect(d!.max, way).toBeGreaterThanOrEqual(d!.median);
    expect(d!.max, way).toBeLessThan(10_000); // sanity: a 16 MiB VM on loopback
  }

  const run = await ferry<Vm>(['run', '--image', 'minimal', '--cpus', '1', '--memory', '16MiB', '--workload', 'hotset']);
  expect(run.code, JSON.stringify(run.value)).toBe(EXIT_OK);
  const migrated = await ferry<MigrationReport>(['migrate', run.value.id, '--rate-limit', 'xen', '--rate-start', '400Mbit/s', '--rate-max', '800Mbit/s']);
  expect(migrated.code, JSON.stringify(migrated.value)).toBe(EXIT_OK);
  expect(migrated.value).toMatchObject({ state: 'completed', digestVerified: true });
  const shown = await ferry<Migration>(['show', migrated.value.id]);
  expect(shown.value.policy.rateLimit).toEqual({ kind: 'xen', startBytesPerSec: 50_000_000, stepBytesPerSec: 6_250_000, maxBytesPerSec: 100_000_000, stopBelowBytes: 262_144 });
  const t = shown.value.timeline!;
  expect(t.rounds.length).toBe(shown.value.rounds.length);
  expect(t.rounds.at(-1)!.final).toBe(true);
  expect(t.committedMs!).toBeGreaterThanOrEqual(t.readyMs!);
  expect(t.finishedMs!).toBeGreaterThanOrEqual(t.committedMs!);
}
