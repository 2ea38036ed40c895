import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiEvent, Host, Image, MigrationReport, Vm, WwsReport } from '@ferry/protocol';
import { jsonReplies, pidsIn, portClosed, spawnCluster, waitGone, type ClusterProcess } from './cloud-helpers.ts';

// The whole cloud through the real console: `scripts/cluster.ts` starts a coordinator and three
// agents as processes, the console reads commands from its stdin (a pipe), and end of input stops
// the cluster once the last command finished.

const dirs: string[] = [];
const clusters: ClusterProcess[] = [];
afterEach(async () => {
  for (const c of clusters.splice(0)) {
    c.child.kill('SIGKILL');
    await c.exited;
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('the coordinator console on a local cluster', () => {
  it('runs a VM, migrates it with a downtime figure, drains a host into maintenance, then stops every process', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'ferry-console-'));
    dirs.push(stateDir);
    const cluster = spawnCluster(['--state-dir', stateDir, '--port', '0', '--agents', '3', '--cpus', '2', '--memory', '256MiB', '--no-demo', '--log-level', 'warn', '--failure-timeout-ms', '10000']);
    clusters.push(cluster);
    cluster.send(
      [
        'run --image base-os --cpus 1 --memory 16MiB --name web --workload hotset --host host-1 --json',
        'run --image redis --cpus 1 --memory 16MiB --name cache --host host-1 --json',
        'migrate vm-1 --to host-2 --json',
        'drain host-1 --wait --json',
        'vms --json',
        'hosts --json',
        'events --json --limit 1000',
        'stop vm-2 --json',
        'stop vm-2 --json',
        'wws vm-1 --samples 4 --bandwidth 1Gbit/s --json',
        'capture vm-1 --name web-image --json',
        'run --image web-image --cpus 1 --memory 16MiB --name from-image --host host-3 --json',
        'exit',
      ],
      true,
    );
    const exit = await cluster.exited;
    const output = cluster.output();
    expect(exit.code, `${output}\n${cluster.errors()}`).toBe(0);
    const [web, cache, report, drained, vms, hosts, events, stopped, refused, wws, image, fromImage] = jsonReplies(output) as [Vm, Vm, MigrationReport, Host, Vm[], Host[], ApiEvent[], Vm, { error: { code: string } }, WwsReport, Image, Vm];
    expect(web).toMatchObject({ id: 'vm-1', host: 'host-1', state: 'running', credentials: { user: 'ferry' } });
    expect(web.ip).toMatch(/^10\.0\.\d+\.\d+$/);
    expect(web.credentials.password.length).toBeGreaterThanOrEqual(20);
    expect(cache).toMatchObject({ id: 'vm-2', host: 'host-1', state: 'running' });
    expect(cache.ip).not.toBe(web.ip);

    expect(report).toMatchObject({ vm: 'vm-1', from: 'host-1', to: 'host-2', state: 'completed' });
    expect(report.downtimeMs).toBeGreaterThanOrEqual(0);
    expect(report.totalMs).toBeGreaterThanOrEqual(report.downtimeMs);
    expect(report.bytesOnWire).toBeGreaterThan(0);
    expect(report.vmBytes).toBe(16 * 2 ** 20);

    expect(drained).toMatchObject({ id: 'host-1', state: 'maintenance', vms: 0 });
    expect(vms.map((v) => [v.id, v.state])).toEqual([['vm-1', 'running'], ['vm-2', 'running']]);
    expect(vms.every((v) => v.host !== 'host-1')).toBe(true);
    expect(hosts.find((h) => h.id === 'host-1')?.state).toBe('maintenance');

    // The lecture's six steps of `run`, in order, for each VM; then the drain's migration.
    const steps = ['request-received', 'placement-decided', 'dispatched-to-host', 'appliance-copied', 'vm-booted', 'credentials-issued', 'vm-provisioned'];
    expect(events.filter((e) => e.vm === 'vm-1' && steps.includes(e.type)).map((e) => e.type)).toEqual(steps);
    expect(events.some((e) => e.type === 'migration-completed' && e.vm === 'vm-2')).toBe(true);
    expect(events.some((e) => e.type === 'host-drain-completed' && e.host === 'host-1')).toBe(true);

    expect(stopped).toMatchObject({ id: 'vm-2', state: 'stopped' });
    expect(refused.error.code).toBe('FERRY_ERR_INVALID_STATE');
    // The writable working set of the running hot-set VM, with pre-copy predicted at 1 Gbit/s.
    expect(wws.samples).toHaveLength(4);
    expect(wws.wwsPages).toBeGreaterThan(0);
    expect(wws.prediction).toMatchObject({ bandwidthBytesPerSec: 125_000_000, maxDowntimeMs: 300 });
    expect(wws.prediction!.totalMs).toBeGreaterThan(100); // round 1 alone: 16 MiB at 125 MB/s
    // Capture: the image travels agent → coordinator → another agent, which boots a VM from it.
    expect(image).toMatchObject({ id: 'web-image', memoryBytes: 16 * 2 ** 20 });
    expect(fromImage).toMatchObject({ image: 'web-image', host: 'host-3', state: 'running' });

    // Every process of the cluster is gone and the coordinator's port is free.
    expect(await waitGone(pidsIn(output))).toEqual([]);
    const port = Number(/coordinator http:\/\/127\.0\.0\.1:(\d+)/.exec(output)?.[1]);
    expect(await portClosed(port)).toBe(true);
  });
});
