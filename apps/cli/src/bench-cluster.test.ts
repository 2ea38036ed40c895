import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) {
    const pidFile = join(d, '.ferry', 'cluster.pid');
    if (existsSync(pidFile)) {
      try {
        process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGTERM');
      } catch {
        /* gone already */
      }
    }
    rmSync(d, { recursive: true, force: true });
  }
});

async function ferryJson<T>(args: string[], cwd: string): Promise<{ code: number; value: T }> {
  let out = '';
  const code = await runCommand([...args, '--json'], { out: (t) => void (out += t), err: (t) => void (out += t), env: {}, cwd });
  return { code, value: JSON.parse(out) as T };
}

describe('ferry bench and ferry migrate --rate-limit on a real cluster', () => {
  it('reports hypervisor, guest and client downtime for each workload; a Xen rate-limited migration completes with its policy and timeline', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'ferry-bench-'));
    dirs.push(cwd);
    const stateDir = join(cwd, '.ferry');
    const launcher = spawnCluster(['--state-dir', stateDir, '--port', '0', '--agents', '2', '--cpus', '2', '--memory', '256MiB', '--no-demo', '--detach', '--log-level', 'warn', '--failure-timeout-ms', '10000'], cwd);
    expect((await launcher.exited).code, launcher.errors()).toBe(0);

    const bench = await ferryJson<BenchResult>(['bench', '--workloads', 'hotset', '--runs', '2', '--memory', '16MiB', '--image', 'minimal', '--warm', '300'], cwd);
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

    const run = await ferryJson<Vm>(['run', '--image', 'minimal', '--cpus', '1', '--memory', '16MiB', '--workload', 'hotset'], cwd);
    expect(run.code, JSON.stringify(run.value)).toBe(EXIT_OK);
    const migrated = await ferryJson<MigrationReport>(['migrate', run.value.id, '--rate-limit', 'xen', '--rate-start', '400Mbit/s', '--rate-max', '800Mbit/s'], cwd);
    expect(migrated.code, JSON.stringify(migrated.value)).toBe(EXIT_OK);
    expect(migrated.value).toMatchObject({ state: 'completed', digestVerified: true });
    const shown = await ferryJson<Migration>(['show', migrated.value.id], cwd);
    expect(shown.value.policy.rateLimit).toEqual({ kind: 'xen', startBytesPerSec: 50_000_000, stepBytesPerSec: 6_250_000, maxBytesPerSec: 100_000_000, stopBelowBytes: 262_144 });
    const t = shown.value.timeline!;
    expect(t.rounds.length).toBe(shown.value.rounds.length);
    expect(t.rounds.at(-1)!.final).toBe(true);
    expect(t.committedMs!).toBeGreaterThanOrEqual(t.readyMs!);
    expect(t.finishedMs!).toBeGreaterThanOrEqual(t.committedMs!);

    const down = spawnCluster(['down', '--state-dir', stateDir], cwd);
    expect((await down.exited).code).toBe(0);
  }, 60_000);
});
