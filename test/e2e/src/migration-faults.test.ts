// Faults during a live migration between agent processes: kill -9 of the destination or the
// source mid-precopy, the destination killed while the coordinator has not answered `ready` yet,
// and a coordinator restart mid-migration. The VM must end on exactly one live host (or be
// reported lost with its host), and the migration must end failed with its reason.
import { afterEach, describe, expect, it } from 'vitest';
import type { Migration, VmSpecWire } from '@ferry/protocol';
import { startMigrationCluster, type MigrationCluster } from '../../../scripts/bench/migrate-cluster.ts';
import { processExists } from './harness.ts';
import { freePort, startTcpProxy, type TcpProxy } from './tcp-proxy.ts';

let cluster: MigrationCluster | undefined;
let proxy: TcpProxy | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  await proxy?.close();
  proxy = undefined;
});

/**
 * A cluster whose h2 is reached for migrations only through a cuttable proxy: h2 listens on
 * 127.0.0.1:P and advertises 127.0.0.2:P, where the proxy forwards to it.
 */
async function clusterWithProxiedDestination(): Promise<MigrationCluster> {
  const port = await freePort();
  proxy = await startTcpProxy({ host: '127.0.0.2', port }, { host: '127.0.0.1', port });
  return startMigrationCluster({
    agents: ['h1', 'h2'],
    agentMemory: '256MiB',
    agentArgs: (id) => (id === 'h2' ? ['--migration-port', String(port), '--advertise-host', '127.0.0.2'] : []),
  });
}

const MiB = 2 ** 20;
/** A VM whose memory fills fast (scan), so round 1 under a bandwidth limit takes seconds. */
const busySpec = (id: string): VmSpecWire => ({ id, name: id, vcpus: 1, memoryBytes: 32 * MiB, workload: { kind: 'scan', seed: 3, rate: 20_000 } });
const SLOW = { bandwidthLimit: 8 * MiB, maxDowntimeMs: 50 };

async function waitState(c: MigrationCluster, id: string, states: readonly string[], timeoutMs = 15_000): Promise<Migration> {
  const start = Date.now();
  for (;;) {
    const m = await c.api<Migration>('GET', `/api/v1/migrations/${id}`);
    if (states.includes(m.state)) return m;
    if (Date.now() - start > timeoutMs) throw new Error(`migration ${id} still ${m.state}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function hostsOf(c: MigrationCluster, vmId: string): Promise<{ host: string; state: string; migrationId?: string }[]> {
  await new Promise((r) => setTimeout(r, 450)); // two heartbeats from every live agent
  return (await c.vms()).filter((v) => v.vm.vmId === vmId).map((v) => ({ host: v.host, state: v.vm.state, ...(v.vm.migrationId ? { migrationId: v.vm.migrationId } : {}) }));
}

async function stepsAdvance(c: MigrationCluster, vmId: string): Promise<boolean> {
  const a = await c.digest(vmId);
  await new Promise((r) => setTimeout(r, 200));
  const b = await c.digest(vmId);
  return b.totalSteps > a.totalSteps;
}

describe('migration faults (real processes)', () => {
  it('kill -9 of the destination mid-precopy: the VM keeps running on the source; the migration failed with the reason', async () => {
    cluster = await startMigrationCluster({ agents: ['h1', 'h2'], agentMemory: '256MiB' });
    await cluster.createVm('h1', busySpec('vm-a'));
    await new Promise((r) => setTimeout(r, 500)); // let the scan fill memory
    const m = await cluster.migrate('vm-a', { to: 'h2', policy: SLOW });
    await waitState(cluster, m.id, ['precopy']);
    await new Promise((r) => setTimeout(r, 300));
    cluster.agent('h2').kill('SIGKILL');
    const done = await cluster.waitMigration(m.id, 20_000);
    expect(done.state).toBe('failed');
    expect(done.error?.code).toBe('FERRY_ERR_MIGRATION_DESTINATION_DOWN');
    expect(done.error?.message).toMatch(/h2/);
    expect(await hostsOf(cluster, 'vm-a')).toEqual([{ host: 'h1', state: 'running' }]);
    expect(await stepsAdvance(cluster, 'vm-a')).toBe(true);
    // and it can migrate again to a new host
    await cluster.startAgent('h3');
    const again = await cluster.waitMigration((await cluster.migrate('vm-a', { to: 'h3' })).id, 20_000);
    expect(again.state).toBe('completed');
  }, 60_000);

  it('kill -9 of the source mid-precopy: the destination discards the partial VM; the VM is lost with its host', async () => {
    cluster = await startMigrationCluster({ agents: ['h1', 'h2'], agentMemory: '256MiB' });
    await cluster.createVm('h1', busySpec('vm-b'));
    await new Promise((r) => setTimeout(r, 500));
    const m = await cluster.migrate('vm-b', { to: 'h2', policy: SLOW });
    await waitState(cluster, m.id, ['precopy']);
    await new Promise((r) => setTimeout(r, 300));
    cluster.agent('h1').kill('SIGKILL');
    const done = await cluster.waitMigration(m.id, 20_000);
    expect(done.state).toBe('failed');
    expect(done.error?.code).toBe('FERRY_ERR_MIGRATION_SOURCE_DOWN');
    expect(processExists(cluster.agent('h2').pid)).toBe(true);
    expect(await hostsOf(cluster, 'vm-b')).toEqual([]); // no ghost VM on the destination
    const hosts = await cluster.api<{ id: string; state: string }[]>('GET', '/api/v1/hosts');
    expect(hosts.find((h) => h.id === 'h1')?.state).toBe('down');
    expect(hosts.find((h) => h.id === 'h2')?.state).toBe('up');
    await expect(cluster.digest('vm-b')).rejects.toMatchObject({ status: expect.any(Number) });
  }, 60_000);

  it('the destination dies while the coordinator has not answered ready: abort, the VM resumes on the source', async () => {
    // A long failure timeout: a frozen coordinator must not declare the live source down.
    cluster = await startMigrationCluster({ agents: ['h1', 'h2'], agentMemory: '256MiB', failureTimeoutMs: 10_000 });
    await cluster.createVm('h1', { id: 'vm-c', name: 'c', vcpus: 1, memoryBytes: 8 * MiB, workload: { kind: 'hotset', seed: 2, rate: 2000 } });
    const m = await cluster.migrate('vm-c', { to: 'h2' });
    await waitState(cluster, m.id, ['precopy', 'stop-and-copy', 'committing', 'completed']);
    cluster.coordinator().kill('SIGSTOP'); // ready (if it comes) waits in the socket
    await new Promise((r) => setTimeout(r, 1500)); // an 8 MiB VM reaches ready well within this
    cluster.agent('h2').kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    cluster.coordinator().kill('SIGCONT');
    const done = await cluster.waitMigration(m.id, 20_000);
    if (done.state === 'completed') {
      // The coordinator committed before the destination died and the source activated it: then
      // the VM was lost with the destination, never on two hosts.
      expect(await hostsOf(cluster, 'vm-c')).toEqual([]);
      return;
    }
    expect(done.state).toBe('failed');
    expect(await hostsOf(cluster, 'vm-c')).toEqual([{ host: 'h1', state: 'running' }]);
    expect(await stepsAdvance(cluster, 'vm-c')).toBe(true);
  }, 60_000);

  it('the page stream stops mid-precopy (destination frozen with SIGSTOP): the source gives up, the VM stays; the thawed destination keeps nothing', async () => {
    cluster = await startMigrationCluster({ agents: ['h1', 'h2'], agentMemory: '256MiB', failureTimeoutMs: 60_000 });
    await cluster.createVm('h1', busySpec('vm-e'));
    await new Promise((r) => setTimeout(r, 500));
    const m = await cluster.migrate('vm-e', { to: 'h2', policy: SLOW });
    await waitState(cluster, m.id, ['precopy']);
    await new Promise((r) => setTimeout(r, 300));
    cluster.agent('h2').kill('SIGSTOP'); // the stream goes silent: no reads, no pongs
    const done = await cluster.waitMigration(m.id, 30_000);
    cluster.agent('h2').kill('SIGCONT');
    expect(done.state).toBe('failed');
    expect(done.error?.message ?? '').toMatch(/heartbeat|closed|timeout|4008|1006/i);
    expect(await hostsOf(cluster, 'vm-e')).toEqual([{ host: 'h1', state: 'running' }]);
    expect(await stepsAdvance(cluster, 'vm-e')).toBe(true);
    // The destination is alive again and holds no trace of the VM.
    const hosts = await cluster.api<{ id: string; state: string }[]>('GET', '/api/v1/hosts');
    expect(hosts.find((h) => h.id === 'h2')?.state).toBe('up');
  }, 60_000);

  it('the page stream cut mid-round (connection reset): the VM keeps running on the source; the migration failed; it can migrate again', async () => {
    cluster = await clusterWithProxiedDestination();
    await cluster.createVm('h1', busySpec('vm-f'));
    await new Promise((r) => setTimeout(r, 500));
    const m = await cluster.migrate('vm-f', { to: 'h2', policy: SLOW });
    await waitState(cluster, m.id, ['precopy']);
    await new Promise((r) => setTimeout(r, 300));
    expect(proxy!.accepted).toBe(1); // the stream really goes through the proxy
    proxy!.cut();
    const done = await cluster.waitMigration(m.id, 20_000);
    expect(done.state).toBe('failed');
    expect(done.error?.code).toBe('FERRY_ERR_MIGRATION_CHANNEL_CLOSED');
    expect(await hostsOf(cluster, 'vm-f')).toEqual([{ host: 'h1', state: 'running' }]);
    expect(await stepsAdvance(cluster, 'vm-f')).toBe(true);
    const hosts = await cluster.api<{ id: string; state: string }[]>('GET', '/api/v1/hosts');
    expect(hosts.find((h) => h.id === 'h2')?.state).toBe('up');
    const again = await cluster.waitMigration((await cluster.migrate('vm-f', { to: 'h2' })).id, 20_000);
    expect(again.state).toBe('completed');
    expect(await hostsOf(cluster, 'vm-f')).toEqual([{ host: 'h2', state: 'running' }]);
  }, 60_000);

  it('a cut stream followed by the destination dying is blamed on the destination, whichever the coordinator hears first', async () => {
    cluster = await clusterWithProxiedDestination();
    await cluster.createVm('h1', busySpec('vm-g'));
    await new Promise((r) => setTimeout(r, 500));
    const m = await cluster.migrate('vm-g', { to: 'h2', policy: SLOW });
    await waitState(cluster, m.id, ['precopy']);
    await new Promise((r) => setTimeout(r, 300));
    proxy!.cut(); // the source hears about the stream first...
    await new Promise((r) => setTimeout(r, 150));
    cluster.agent('h2').kill('SIGKILL'); // ...and the coordinator about the host a little later
    const done = await cluster.waitMigration(m.id, 20_000);
    expect(done.state).toBe('failed');
    expect(done.error?.code).toBe('FERRY_ERR_MIGRATION_DESTINATION_DOWN');
    expect(await hostsOf(cluster, 'vm-g')).toEqual([{ host: 'h1', state: 'running' }]);
  }, 60_000);

  it('a coordinator restart mid-migration ends it (aborted before the commit point); the VM runs on one host only', async () => {
    cluster = await startMigrationCluster({ agents: ['h1', 'h2'], agentMemory: '256MiB' });
    await cluster.createVm('h1', busySpec('vm-d'));
    await new Promise((r) => setTimeout(r, 500));
    const m = await cluster.migrate('vm-d', { to: 'h2', policy: SLOW });
    await waitState(cluster, m.id, ['precopy']);
    await cluster.restartCoordinator('SIGKILL');
    const done = await cluster.waitMigration(m.id, 30_000);
    expect(done.state).toBe('failed');
    expect(done.error?.code).toBe('FERRY_ERR_COORDINATOR_RESTARTED');
    // The source learns on re-registration (migration-cancel) or at its ready (abort).
    let where: { host: string; state: string; migrationId?: string }[] = [];
    for (let i = 0; i < 40; i++) {
      where = await hostsOf(cluster, 'vm-d');
      if (where.length === 1 && where[0]!.migrationId === undefined) break;
    }
    expect(where).toEqual([{ host: 'h1', state: 'running' }]);
  }, 60_000);
});
