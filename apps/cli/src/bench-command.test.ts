import { tmpdir } from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, runCommand } from './commands.ts';
import { FakeCoordinator } from './test-utils/fake-coordinator.ts';

const TOKEN = 'bench-token';
let fake: FakeCoordinator;
afterEach(async () => {
  await fake.close();
});

async function ferry(args: string[]): Promise<{ status: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const status = await runCommand(args, { out: (s) => (out += s), err: (s) => (err += s), env: { FERRY_URL: fake.url, FERRY_TOKEN: TOKEN }, cwd: tmpdir() });
  return { status, out, err };
}

describe('ferry bench (against the fake coordinator)', () => {
  beforeEach(async () => {
    fake = await FakeCoordinator.start({ token: TOKEN, roundIntervalMs: 1 });
  });

  it('runs one VM per workload, migrates it --runs times, reports the downtime from the reports and deletes the VM', async () => {
    const { status, out, err } = await ferry(['bench', '--workloads', 'idle,hotset', '--runs', '2', '--memory', '64MiB', '--warm', '1', '--image', 'lamp', '--json']);
    expect(err).toBe('');
    expect(status).toBe(EXIT_OK);
    const result = JSON.parse(out) as { probe: unknown; notes: string[]; cells: { workload: string; runs: number; downtimeMs: { hypervisor: { median: number; max: number }; guest: null; client: null }; digestVerified: boolean; migrations: string[]; wwsPages?: number }[] };
    // The fake's hosts have no agents behind their addresses: no probing client, and the notes say so.
    expect(result.probe).toBeNull();
    expect(result.notes.join(' ')).toMatch(/probe path could not be reached/);
    expect(result.cells.map((c) => c.workload)).toEqual(['idle', 'hotset']);
    for (const c of result.cells) {
      expect(c.runs).toBe(2);
      expect(c.migrations).toHaveLength(2);
      expect(c.downtimeMs.hypervisor.median).toBe(7); // the fake's report
      expect(c.downtimeMs.client).toBeNull();
      expect(c.downtimeMs.guest).toBeNull();
      expect(c.digestVerified).toBe(true);
      expect(c.wwsPages).toBe(420);
    }
    const paths = fake.requests.map((r) => `${r.method} ${r.path}`);
    expect(paths.filter((p) => p === 'POST /api/v1/vms')).toHaveLength(2);
    expect(paths.filter((p) => p === 'POST /api/v1/migrations')).toHaveLength(4);
    expect(paths.filter((p) => p.startsWith('DELETE /api/v1/vms/'))).toHaveLength(2);
    const table = await ferry(['bench', '--workloads', 'idle', '--runs', '1', '--warm', '1', '--image', 'lamp']);
    expect(table.out).toMatch(/WORKLOAD/i);
    expect(table.out).toMatch(/HYPERVISOR MS.*GUEST MS.*CLIENT MS/i);
    expect(table.out).toContain('note: the agents\' probe path could not be reached');
    const unprobed = JSON.parse((await ferry(['bench', '--workloads', 'idle', '--runs', '1', '--warm', '1', '--image', 'lamp', '--no-probe', '--json'])).out) as { notes: string[] };
    expect(unprobed.notes).toEqual(['--no-probe: guest and client downtime not measured.']);
    const xen = await ferry(['bench', '--workloads', 'idle', '--runs', '1', '--warm', '1', '--image', 'lamp', '--no-probe', '--rate-limit', 'xen', '--json']);
    expect(xen.status).toBe(EXIT_OK);
    expect(fake.migrations.at(-1)!.policy.rateLimit?.kind).toBe('xen');
  });

  it('refuses an unknown workload as a usage error', async () => {
    expect((await ferry(['bench', '--workloads', 'quake'])).status).toBe(EXIT_USAGE);
  });
});

describe('ferry bench when migrations fail', () => {
  beforeEach(async () => {
    fake = await FakeCoordinator.start({ token: TOKEN, roundIntervalMs: 1, migrationOutcome: 'failed' });
  });

  it('exits 1 with the migration error and still deletes the VM', async () => {
    const { status, err } = await ferry(['bench', '--workloads', 'idle', '--runs', '1', '--warm', '1', '--image', 'lamp']);
    expect(status).toBe(EXIT_FAILED);
    expect(err).toMatch(/migration .* failed/);
    expect(fake.requests.some((r) => r.method === 'DELETE')).toBe(true);
  });
});
