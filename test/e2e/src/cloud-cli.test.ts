import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Host, Migration, MigrationReport, Vm } from '@ferry/protocol';
import { runCommand } from '../../../apps/cli/src/index.ts';
import { detachedClusterDirs, pidsIn, portClosed, runFerry, spawnCluster, waitGone } from './cloud-helpers.ts';

// The one-shot `ferry` CLI against a cluster started with `pnpm cluster --detach`: it finds the
// coordinator through `.ferry/cluster.json` with no flags, prints JSON with --json, and errors
// as `{error: {code, message}}` with a non-zero exit status.

const dirs = detachedClusterDirs((d) => join(d, '.ferry'));

async function ferryJson(args: string[], cwd: string): Promise<{ code: number; value: unknown }> {
  let out = '';
  const code = await runCommand([...args, '--json'], { out: (t) => void (out += t), err: (t) => void (out += t), env: {}, cwd });
  return { code, value: JSON.parse(out) as unknown };
}

describe('the ferry CLI on a detached local cluster', () => {
  it('needs no flags, prints the instance and the migration report as JSON, drains a host, refuses bad requests without changing anything; cluster down stops it', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'ferry-cli-'));
    dirs.push(cwd);
    const stateDir = join(cwd, '.ferry');
    mkdirSync(join(cwd, 'sub'));
    const launcher = spawnCluster(['--state-dir', stateDir, '--port', '0', '--agents', '2', '--cpus', '2', '--memory', '256MiB', '--no-demo', '--detach', '--log-level', 'warn', '--failure-timeout-ms', '10000'], cwd);
    expect((await launcher.exited).code, launcher.errors()).toBe(0);
    expect(launcher.output()).toMatch(/running in the background/);

    // A real CLI process from a subdirectory: the cluster file is found upward from cwd.
    const hosts = await runFerry(['hosts', '--json'], join(cwd, 'sub'));
    expect(hosts.code, hosts.stderr).toBe(0);
    expect((JSON.parse(hosts.stdout) as Host[]).map((h) => [h.id, h.state])).toEqual([['host-1', 'up'], ['host-2', 'up']]);

    const run = await ferryJson(['run', '--image', 'redis', '--cpus', '1', '--memory', '16MiB', '--workload', 'uniform'], cwd);
    expect(run.code, JSON.stringify(run.value)).toBe(0);
    const vm = run.value as Vm;
    expect(vm).toMatchObject({ id: 'vm-1', state: 'running', image: 'redis', credentials: { user: 'ferry' } });
    expect(vm.host).toMatch(/^host-[12]$/);
    expect(vm.ip).toMatch(/^10\.0\./);

    const migrate = await ferryJson(['migrate', vm.id], cwd);
    expect(migrate.code, JSON.stringify(migrate.value)).toBe(0);
    const report = migrate.value as MigrationReport;
    expect(report).toMatchObject({ vm: 'vm-1', from: vm.host, to: vm.host === 'host-1' ? 'host-2' : 'host-1', state: 'completed', vmBytes: 16 * 2 ** 20 });
    for (const key of ['id', 'downtimeMs', 'totalMs', 'rounds', 'bytesOnWire'] as const) expect(report[key], key).toBeDefined();
    expect(report.downtimeMs).toBeGreaterThanOrEqual(0);

    const unknownImage = await ferryJson(['run', '--image', 'no-such-image', '--cpus', '1', '--memory', '16MiB'], cwd);
    expect(unknownImage).toMatchObject({ code: 1, value: { error: { code: 'FERRY_ERR_UNKNOWN_IMAGE' } } });
    const tooBig = await ferryJson(['run', '--image', 'base-os', '--cpus', '1', '--memory', '100GiB'], cwd);
    expect(tooBig).toMatchObject({ code: 1, value: { error: { code: 'FERRY_ERR_NO_CAPACITY' } } });
    expect((tooBig.value as { error: { message: string } }).error.message).toMatch(/more than any up host has/);
    const malformed = await ferryJson(['run', '--image', 'base-os', '--cpus', '1', '--memory', 'lots'], cwd);
    expect(malformed).toMatchObject({ code: 2, value: { error: { code: 'FERRY_ERR_INVALID_SIZE' } } });
    const unknownVm = await ferryJson(['stop', 'vm-99'], cwd);
    expect(unknownVm).toMatchObject({ code: 1, value: { error: { code: 'FERRY_ERR_UNKNOWN_VM' } } });
    const tooSmall = await ferryJson(['run', '--image', 'lamp', '--cpus', '1', '--memory', '1MiB'], cwd);
    expect(tooSmall).toMatchObject({ code: 1, value: { error: { code: 'FERRY_ERR_INVALID_SIZE' } } });

    const vms = await ferryJson(['vms'], cwd);
    expect((vms.value as Vm[]).map((v) => [v.id, v.state, v.host])).toEqual([['vm-1', 'running', report.to]]);
    const after = await ferryJson(['hosts'], cwd);
    const used = (after.value as Host[]).map((h) => [h.id, h.vms, h.used.memoryBytes]);
    expect(used).toEqual([['host-1', report.to === 'host-1' ? 1 : 0, report.to === 'host-1' ? 16 * 2 ** 20 : 0], ['host-2', report.to === 'host-2' ? 1 : 0, report.to === 'host-2' ? 16 * 2 ** 20 : 0]]);

    // Drain the VM's host through the CLI: the VM moves back live, the host ends in maintenance; undrain brings it back.
    const drained = await ferryJson(['drain', report.to, '--wait'], cwd);
    expect(drained.code, JSON.stringify(drained.value)).toBe(0);
    expect(drained.value).toMatchObject({ id: report.to, state: 'maintenance', vms: 0 });
    expect(((await ferryJson(['vms'], cwd)).value as Vm[]).map((v) => [v.id, v.state, v.host])).toEqual([['vm-1', 'running', report.from]]);
    const drainMigration = ((await ferryJson(['migrations'], cwd)).value as Migration[]).find((m) => m.from === report.to);
    expect(drainMigration).toMatchObject({ vm: 'vm-1', state: 'completed' });
    expect(drainMigration?.report?.downtimeMs).toBeGreaterThanOrEqual(0);
    expect((await ferryJson(['drain', report.to], cwd)).value).toMatchObject({ error: { code: 'FERRY_ERR_INVALID_STATE' } });
    expect((await ferryJson(['undrain', report.to], cwd)).value).toMatchObject({ id: report.to, state: 'up' });

    const port = Number(new URL((JSON.parse(readFileSync(join(stateDir, 'cluster.json'), 'utf8')) as { url: string }).url).port);
    const pids = [Number(readFileSync(join(stateDir, 'cluster.pid'), 'utf8')), ...pidsIn(readFileSync(join(stateDir, 'logs', 'cluster.log'), 'utf8'))];
    expect(pids.length).toBe(4); // supervisor, coordinator, two agents
    const down = spawnCluster(['down', '--state-dir', stateDir], cwd);
    expect((await down.exited).code).toBe(0);
    expect(down.output()).toMatch(/cluster stopped/);
    expect(await waitGone(pids)).toEqual([]);
    expect(await portClosed(port)).toBe(true);
    expect(existsSync(join(stateDir, 'cluster.json'))).toBe(false);
    expect(existsSync(join(stateDir, 'cluster.pid'))).toBe(false);
  });
});
