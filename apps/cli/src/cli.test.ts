import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, runCommand, unreachableHint, type CommandContext } from './commands.ts';
import { ApiClient } from './client.ts';
import { resolveConnection } from './connection.ts';
import { FakeCoordinator, fixtureRounds } from './test-utils/fake-coordinator.ts';

const TOKEN = 'test-token';
let fake: FakeCoordinator;

beforeEach(async () => {
  fake = await FakeCoordinator.start({ token: TOKEN });
});
afterEach(async () => {
  await fake.close();
});

/** Runs one CLI command against the fake; returns exit status and captured streams. */
async function ferry(args: string[], extra: Partial<CommandContext> = {}): Promise<{ status: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const status = await runCommand(args, {
    out: (s) => (out += s),
    err: (s) => (err += s),
    env: { FERRY_URL: fake.url, FERRY_TOKEN: TOKEN },
    cwd: tmpdir(),
    ...extra,
  });
  return { status, out, err };
}

describe('ferry CLI tables', () => {
  it('renders hosts as an aligned table with a header row', async () => {
    const { status, out } = await ferry(['hosts']);
    expect(status).toBe(EXIT_OK);
    const lines = out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+STATE\s+ADDRESS\s+CPUS\s+MEMORY\s+DISK\s+VMS\s+HEARTBEAT$/);
    expect(lines).toHaveLength(4);
    const stateColumn = lines[0]!.indexOf('STATE');
    for (const line of lines.slice(1)) expect(line.slice(stateColumn)).toMatch(/^(up|maintenance)\s/);
    expect(out).toContain('host-3');
    expect(out).toContain('128 MiB / 1 GiB'.replace('128', '64'));
  });

  it('renders vms, images and the instance fields of show', async () => {
    expect((await ferry(['vms'])).out).toMatch(/vm-1\s+web-1\s+running\s+host-1\s+10\.0\.0\.11/);
    expect((await ferry(['images'])).out).toMatch(/lamp\s+8 MiB\s+4 GiB\s+857\s+393\s+464/);
    const show = await ferry(['show', 'vm-2']);
    expect(show.out).toMatch(/^password\s+pw-2$/m);
    expect((await ferry(['show', 'host-2'])).out).toMatch(/^address\s+127\.0\.0\.1:7102$/m);
    expect((await ferry(['show', 'lamp'])).out).toContain('393 unique');
  });
});

describe('ferry CLI --json', () => {
  it('prints hosts and vms as arrays of objects with id and state', async () => {
    const hosts = JSON.parse((await ferry(['hosts', '--json'])).out) as { id: string; state: string }[];
    expect(hosts.map((h) => [h.id, h.state])).toEqual([['host-1', 'up'], ['host-2', 'up'], ['host-3', 'maintenance']]);
    const vms = JSON.parse((await ferry(['--json', 'vms'])).out) as { id: string; state: string }[];
    expect(vms.map((v) => v.id)).toEqual(['vm-1', 'vm-2']);
    expect(vms.every((v) => v.state === 'running')).toBe(true);
  });

  it('run prints the instance with id, host, ip, state and credentials, and sends sizes in bytes', async () => {
    const { status, out } = await ferry(['run', '--image', 'lamp', '--cpus', '2', '--memory', '32MiB', '--disk', '2G', '--name', 'db', '--group', 'web', '--anti-affinity', '--workload', 'kv', '--json']);
    expect(status).toBe(EXIT_OK);
    const vm = JSON.parse(out) as Record<string, unknown>;
    expect(vm).toMatchObject({ id: 'vm-3', host: 'host-1', state: 'running', credentials: { user: 'ferry', password: 'generated-pw' } });
    expect(typeof vm['ip']).toBe('string');
    const post = fake.requests.find((r) => r.method === 'POST');
    expect(post?.body).toEqual({ image: 'lamp', cpus: 2, memory: 32 * 1024 * 1024, disk: 2 * 1024 ** 3, name: 'db', group: { name: 'web', policy: 'anti-affinity' }, workload: { kind: 'kv' } });
    const steps = fake.events.map((e) => e.type).slice(0, 7);
    expect(steps).toEqual(['request-received', 'placement-decided', 'dispatched-to-host', 'appliance-copied', 'vm-booted', 'credentials-issued', 'vm-provisioned']);
  });

  it('run --policy sends a soft group policy; a policy without a group, or beside --affinity, or unknown is a usage error', async () => {
    const { status } = await ferry(['run', '--image', 'lamp', '--cpus', '1', '--memory', '32MiB', '--group', 'web', '--policy', 'soft-anti-affinity', '--json']);
    expect(status).toBe(EXIT_OK);
    const post = fake.requests.filter((r) => r.method === 'POST').at(-1);
    expect((post?.body as { group?: unknown }).group).toEqual({ name: 'web', policy: 'soft-anti-affinity' });
    const posts = fake.requests.length;
    for (const argv of [
      ['--policy', 'soft-affinity'],
      ['--group', 'web', '--policy', 'soft-affinity', '--affinity'],
      ['--group', 'web', '--policy', 'nearby'],
    ]) {
      const r = await ferry(['run', '--image', 'lamp', '--cpus', '1', '--memory', '32MiB', ...argv, '--json']);
      expect(r.status, argv.join(' ')).toBe(EXIT_USAGE);
      expect(JSON.parse(r.out)).toMatchObject({ error: { code: expect.any(String), message: expect.any(String) } });
    }
    expect(fake.requests.length).toBe(posts); // nothing sent
  });

  it('migrate --json waits and prints the report with the fixed fields', async () => {
    const { status, out } = await ferry(['migrate', 'vm-1', '--to', 'host-2', '--max-downtime', '50', '--bandwidth', '100MiB/s', '--auto-converge', '--json']);
    expect(status).toBe(EXIT_OK);
    const report = JSON.parse(out) as Record<string, unknown>;
    for (const field of ['id', 'vm', 'from', 'to', 'state', 'downtimeMs', 'totalMs', 'rounds', 'bytesOnWire', 'vmBytes']) expect(report).toHaveProperty(field);
    expect(report).toMatchObject({ vm: 'vm-1', from: 'host-1', to: 'host-2', state: 'completed', rounds: 4 });
    expect(fake.requests.find((r) => r.path === '/api/v1/migrations' && r.method === 'POST')?.body).toEqual({
      vm: 'vm-1',
      to: 'host-2',
      policy: { maxDowntimeMs: 50, bandwidthLimit: '100MiB/s', autoConverge: true },
    });
    expect(fake.migrations[0]!.policy.bandwidthLimit).toBe(100 * 1024 * 1024);
  });

  it('migrate --rate-limit xen sends Xen rate limiting (paper defaults, or the --rate-* overrides) and show renders it', async () => {
    expect((await ferry(['migrate', 'vm-1', '--rate-limit', 'xen', '--json'])).status).toBe(EXIT_OK);
    expect(fake.requests.find((r) => r.path === '/api/v1/migrations' && r.method === 'POST')?.body).toEqual({ vm: 'vm-1', policy: { rateLimit: 'xen' } });
    expect(fake.migrations[0]!.policy.rateLimit).toEqual({ kind: 'xen', startBytesPerSec: 12_500_000, stepBytesPerSec: 6_250_000, maxBytesPerSec: 62_500_000, stopBelowBytes: 262_144 });
    const custom = await ferry(['migrate', 'vm-2', '--rate-limit', 'xen', '--rate-start', '200Mbit/s', '--rate-step', '10MiB/s', '--rate-max', '1Gbit/s', '--json']);
    expect(custom.status, custom.out).toBe(EXIT_OK);
    expect(fake.migrations[1]!.policy.rateLimit).toMatchObject({ startBytesPerSec: 25_000_000, stepBytesPerSec: 10 * 2 ** 20, maxBytesPerSec: 125_000_000 });
    const shown = await ferry(['show', fake.migrations[1]!.id]);
    expect(shown.out).toMatch(/rate limit xen 200 Mbit\/s → 1 Gbit\/s/);
  });

  it('refuses rate-limit flags that make no sense as usage errors, before any request', async () => {
    for (const args of [
      ['--rate-limit', 'qemu'],
      ['--rate-start', '100Mbit/s'],
      ['--rate-limit', 'xen', '--rate-start', '600Mbit/s'],
      ['--rate-limit', 'xen', '--bandwidth', '1G/s'],
    ]) {
      const { status } = await ferry(['migrate', 'vm-1', ...args, '--json']);
      expect(status, args.join(' ')).toBe(EXIT_USAGE);
    }
    expect(fake.requests.filter((r) => r.method === 'POST')).toHaveLength(0);
  });
});

describe('ferry CLI errors', () => {
  it('refuses --memory lots client-side with exit 2, a JSON error, and no request', async () => {
    const { status, out } = await ferry(['run', '--image', 'lamp', '--cpus', '1', '--memory', 'lots', '--json']);
    expect(status).toBe(EXIT_USAGE);
    const body = JSON.parse(out) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('FERRY_ERR_INVALID_SIZE');
    expect(body.error.message).toContain('"lots"');
    expect(fake.requests).toHaveLength(0);
  });

  it('refuses bad flags and unknown commands as usage errors', async () => {
    const cpus = await ferry(['run', '--image', 'lamp', '--cpus', 'two', '--memory', '1G', '--json']);
    expect(cpus.status).toBe(EXIT_USAGE);
    expect(JSON.parse(cpus.out).error.code).toBe('FERRY_ERR_USAGE');
    const bandwidth = await ferry(['migrate', 'vm-1', '--bandwidth', 'fast', '--json']);
    expect(bandwidth.status).toBe(EXIT_USAGE);
    expect(JSON.parse(bandwidth.out).error).toMatchObject({ code: 'FERRY_ERR_INVALID_SIZE' });
    expect(await ferry(['migrate', '--json'])).toMatchObject({ status: EXIT_USAGE });
    const unknown = await ferry(['frobnicate']);
    expect(unknown.status).toBe(EXIT_USAGE);
    expect(unknown.err).toMatch(/unknown command 'frobnicate'/);
  });

  it('passes server refusals through with their code and exit 1', async () => {
    const missing = await ferry(['show', 'vm-99', '--json']);
    expect(missing.status).toBe(EXIT_FAILED);
    expect(JSON.parse(missing.out).error.code).toBe('FERRY_ERR_NOT_FOUND');
    const wrongState = await ferry(['start', 'vm-1']);
    expect(wrongState.status).toBe(EXIT_FAILED);
    expect(wrongState.err).toMatch(/cannot start vm-1: it is running.*\[FERRY_ERR_INVALID_STATE\]/);
    const image = await ferry(['run', '--image', 'nope', '--cpus', '1', '--memory', '1G', '--json']);
    expect(JSON.parse(image.out).error.code).toBe('FERRY_ERR_UNKNOWN_IMAGE');
  });

  it('reports a refused token and an unreachable coordinator', async () => {
    const refused = await ferry(['hosts', '--json', '--token', 'wrong']);
    expect(refused.status).toBe(EXIT_FAILED);
    expect(JSON.parse(refused.out).error.code).toBe('FERRY_ERR_UNAUTHORIZED');
    const down = await ferry(['hosts', '--json', '--url', 'http://127.0.0.1:1', '--token', TOKEN]);
    expect(JSON.parse(down.out).error.code).toBe('FERRY_ERR_CONNECTION');
  });

  it('with no cluster to be found, an unreachable coordinator says how to start or name one', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'ferry-none-'));
    try {
      const conn = resolveConnection({ env: {}, cwd: empty });
      expect(conn.source).toBe('default');
      const client = new ApiClient({ url: 'http://127.0.0.1:1', token: undefined, ...unreachableHint(conn) });
      await expect(client.get('/api/v1/hosts')).rejects.toMatchObject({ code: 'FERRY_ERR_CONNECTION', message: expect.stringContaining('pnpm cluster --detach') });
      expect(unreachableHint({ url: 'http://x', source: 'flags' })).toEqual({});
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});

describe('ferry migrate', () => {
  it('--watch shows one progress line per round, then the report', async () => {
    const { status, out } = await ferry(['migrate', 'vm-1', '--watch']);
    expect(status).toBe(EXIT_OK);
    const rounds = out.split('\n').filter((l) => /^round\s+\d/.test(l));
    expect(rounds).toHaveLength(fixtureRounds().length);
    expect(rounds[0]).toMatch(/^round  1 \[#+\.*\]\s+\d+%\s+pages left 2,000\s+dirty 20,000 pages\/s\s+bw 640 MiB\/s\s+expected downtime 12 ms$/);
    expect(rounds[2]).toContain('throttle 20%');
    expect(out).toMatch(/^downtime\s+7 ms$/m);
    expect(out).toMatch(/^bytes on wire\s+74 MiB of 64 MiB VM \(1\.16x VM size\)$/m);
  });

  it('shows the progress per round without --watch too; --no-progress and --json print only the report', async () => {
    const roundLines = (out: string): string[] => out.split('\n').filter((l) => /^round\s+\d/.test(l));
    const plain = await ferry(['migrate', 'vm-1']);
    expect(plain.status).toBe(EXIT_OK);
    expect(roundLines(plain.out)).toHaveLength(fixtureRounds().length);
    const quiet = await ferry(['migrate', 'vm-1', '--no-progress']);
    expect(roundLines(quiet.out)).toHaveLength(0);
    expect(quiet.out).toMatch(/^downtime\s+7 ms$/m);
    expect(JSON.parse((await ferry(['migrate', 'vm-1', '--json'])).out)).toMatchObject({ vm: 'vm-1', downtimeMs: expect.any(Number) });
  });

  it('a failed migration prints its error and exits 1', async () => {
    await fake.close();
    fake = await FakeCoordinator.start({ token: TOKEN, migrationOutcome: 'failed' });
    const { status, out } = await ferry(['migrate', 'vm-2', '--json']);
    expect(status).toBe(EXIT_FAILED);
    const body = JSON.parse(out) as { error: { code: string }; report: { state: string } };
    expect(body.error.code).toBe('FERRY_ERR_MIGRATION_DIGEST');
    expect(body.report.state).toBe('failed');
  });

  it('--cancel cancels by migration id, and migrations lists them', async () => {
    await fake.close();
    fake = await FakeCoordinator.start({ token: TOKEN, roundIntervalMs: 5_000 });
    const started = JSON.parse((await ferry(['migrate', 'vm-1', '--no-wait', '--json'])).out) as { id: string };
    const cancelled = await ferry(['migrate', '--cancel', started.id, '--json']);
    expect(JSON.parse(cancelled.out)).toMatchObject({ id: started.id, state: 'cancelled' });
    expect((await ferry(['migrations'])).out).toMatch(new RegExp(`${started.id}\\s+vm-1\\s+host-1\\s+host-2\\s+cancelled`));
  });
});

describe('ferry plan', () => {
  it('prints the plan as an aligned table of steps with hosts, spread and cost, and the PlacementPlan with --json', async () => {
    const { status, out } = await ferry(['plan', 'consolidate']);
    expect(status).toBe(EXIT_OK);
    const lines = out.split('\n');
    expect(lines[0]).toBe('consolidation plan: 1 migration');
    expect(lines[1]).toMatch(/^STEP\s+VM\s+FROM\s+TO\s+COST$/);
    expect(lines[2]).toMatch(/^\s*1\s+vm-2\s+host-2\s+host-1\s+64 MiB$/);
    expect(lines[1]!.indexOf('FROM')).toBe(lines[2]!.indexOf('host-2'));
    expect(out).toMatch(/^hosts used\s+2 → 1$/m);
    expect(out).toMatch(/^hosts emptied\s+host-2$/m);
    expect(out).toMatch(/^load spread\s+25\.0% → 50\.0%$/m);
    expect(out).toMatch(/^total cost\s+64 MiB to send$/m);
    const json = JSON.parse((await ferry(['plan', 'rebalance', '--json'])).out) as Record<string, unknown>;
    expect(json).toEqual({ kind: 'rebalance', migrations: [{ vm: 'vm-2', from: 'host-2', to: 'host-1', costBytes: 64 * 1024 * 1024 }], hostsBefore: 2, hostsAfter: 2, hostsEmptied: [], spreadBefore: 0.25, spreadAfter: 0.125, costBytes: 64 * 1024 * 1024 });
    expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /api/v1/placement/consolidation', 'GET /api/v1/placement/rebalance']);
  });

  it('--apply posts to the apply route and prints the run; a failed step exits 1', async () => {
    const ok = await ferry(['plan', 'consolidate', '--apply']);
    expect(ok.status).toBe(EXIT_OK);
    expect(ok.out).toMatch(/^applied\s+completed$/m);
    expect(ok.out).toMatch(/^vms moved\s+1 of 1$/m);
    expect(fake.requests.at(-1)).toMatchObject({ method: 'POST', path: '/api/v1/placement/consolidation/apply' });
    await fake.close();
    fake = await FakeCoordinator.start({ token: TOKEN, migrationOutcome: 'failed' });
    const bad = await ferry(['plan', 'rebalance', '--apply', '--json']);
    expect(bad.status).toBe(EXIT_FAILED);
    expect(JSON.parse(bad.out)).toMatchObject({ state: 'failed', error: { code: 'FERRY_ERR_MIGRATION_FAILED' } });
  });

  it('an unknown plan name is a usage error with the names, as {error} with --json', async () => {
    const { status, out } = await ferry(['plan', 'defrag', '--json']);
    expect(status).toBe(EXIT_USAGE);
    const body = JSON.parse(out) as { error: { code: string; message: string } };
    expect(body.error.message).toMatch(/consolidate, rebalance/);
    expect(fake.requests).toEqual([]);
  });
});

describe('ferry events and connection', () => {
  it('events prints the past stream and --follow prints live events until aborted', async () => {
    fake.emit('host-up', { host: 'host-1' });
    expect((await ferry(['events'])).out).toMatch(/^#1 .* host-up {2}host=host-1$/m);
    const abort = new AbortController();
    let out = '';
    const follow = runCommand(['events', '--follow', '--json'], {
      out: (s) => {
        out += s;
        if (out.split('\n').length > 3) abort.abort();
      },
      err: () => undefined,
      env: { FERRY_URL: fake.url, FERRY_TOKEN: TOKEN },
      cwd: tmpdir(),
      signal: abort.signal,
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    fake.emit('host-down', { host: 'host-2' });
    fake.emit('vm-lost', { vm: 'vm-2' });
    expect(await follow).toBe(EXIT_OK);
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; type: string });
    expect(lines.map((e) => e.type)).toEqual(['host-up', 'host-down', 'vm-lost']);
  });

  it('events --limit N without --since prints the latest N events', async () => {
    for (const host of ['host-1', 'host-2', 'host-3', 'host-4']) fake.emit('host-up', { host });
    const { status, out } = await ferry(['events', '--limit', '2', '--json']);
    expect(status).toBe(EXIT_OK);
    expect((JSON.parse(out) as { seq: number }[]).map((e) => e.seq)).toEqual([3, 4]);
  });

  it('finds url and token in .ferry/cluster.json from a subdirectory', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ferry-cli-'));
    try {
      await mkdir(join(root, '.ferry'));
      await writeFile(join(root, '.ferry', 'cluster.json'), JSON.stringify({ url: fake.url, token: TOKEN }));
      await mkdir(join(root, 'a', 'b'), { recursive: true });
      const { status, out } = await ferry(['hosts', '--json'], { env: {}, cwd: join(root, 'a', 'b') });
      expect(status).toBe(EXIT_OK);
      expect(JSON.parse(out)).toHaveLength(3);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('finds a cluster started with --state-dir DIR through --state-dir or FERRY_STATE_DIR, and says so when none runs there', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-state-'));
    try {
      await writeFile(join(dir, 'cluster.json'), JSON.stringify({ url: fake.url, token: TOKEN }));
      const byFlag = await ferry(['hosts', '--json', '--state-dir', dir], { env: {} });
      expect(byFlag.status).toBe(EXIT_OK);
      expect(JSON.parse(byFlag.out)).toHaveLength(3);
      const byEnv = await ferry(['vms', '--json'], { env: { FERRY_STATE_DIR: dir } });
      expect(byEnv.status).toBe(EXIT_OK);
      const missing = await ferry(['hosts', '--json', '--state-dir', join(dir, 'nope')], { env: {} });
      expect(missing.status).toBe(EXIT_USAGE);
      expect(JSON.parse(missing.out).error.message).toMatch(/no cluster runs from .*nope/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('ferry lifecycle commands', () => {
  it('stop, start, suspend, resume on another host, snapshot, clone and delete each print the VM in its new state', async () => {
    const state = async (args: string[]): Promise<Record<string, unknown>> => {
      const { status, out } = await ferry([...args, '--json']);
      expect(status).toBe(EXIT_OK);
      return JSON.parse(out) as Record<string, unknown>;
    };
    expect(await state(['stop', 'vm-1'])).toMatchObject({ id: 'vm-1', state: 'stopped' });
    expect(await state(['start', 'vm-1'])).toMatchObject({ state: 'running' });
    expect(await state(['suspend', 'vm-1'])).toMatchObject({ state: 'suspended' });
    expect(await state(['resume', 'vm-1', '--host', 'host-2'])).toMatchObject({ state: 'running', host: 'host-2' });
    expect(fake.requests.at(-1)).toMatchObject({ path: '/api/v1/vms/vm-1/resume', body: { host: 'host-2' } });
    expect(await state(['snapshot', 'vm-1', '--name', 'before-upgrade'])).toMatchObject({ vm: 'vm-1', name: 'before-upgrade' });
    expect(await state(['clone', 'vm-1', '--name', 'web-copy'])).toMatchObject({ id: 'vm-3', name: 'web-copy' });
    expect(await state(['delete', 'vm-3'])).toMatchObject({ id: 'vm-3', state: 'deleted' });
    const again = await ferry(['resume', 'vm-1']);
    expect(again.status).toBe(EXIT_FAILED);
    expect(again.err).toContain('resume needs suspended');
  });

  it('drain, drain --cancel and undrain call the host routes', async () => {
    expect((await ferry(['drain', 'host-1'])).out).toMatch(/^drain\s+running$/m);
    expect(JSON.parse((await ferry(['drain', 'host-1', '--cancel', '--json'])).out)).toMatchObject({ host: 'host-1', state: 'cancelled' });
    expect(JSON.parse((await ferry(['undrain', 'host-3', '--json'])).out)).toMatchObject({ id: 'host-3', state: 'up' });
    expect(fake.requests.map((r) => r.path)).toEqual(['/api/v1/hosts/host-1/drain', '/api/v1/hosts/host-1/drain/cancel', '/api/v1/hosts/host-3/undrain']);
  });

  it('wws prints the samples and the working set; capture prints the new image', async () => {
    const wws = await ferry(['wws', 'vm-2', '--samples', '3', '--interval', '100']);
    expect(wws.status).toBe(EXIT_OK);
    expect(wws.out.split('\n').filter((l) => /^\s*\d+ ms/.test(l))).toHaveLength(3);
    expect(wws.out).toContain('writable working set: 420 pages');
    expect(fake.requests.at(-1)?.path).toBe('/api/v1/vms/vm-2/wws');
    const captured = await ferry(['capture', 'vm-2', '--name', 'my-lamp', '--json']);
    expect(JSON.parse(captured.out)).toMatchObject({ id: 'my-lamp', uniquePages: 40 });
  });
});
