import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VmCreateMessage } from '@ferry/protocol';
// The agent is imported by path: apps/coordinator does not depend on apps/agent, only this test does.
import { startAgent } from '../../agent/src/index.ts';
import { startCoordinator, type RunningCoordinator } from './coordinator.ts';
import { createMigrationLab } from './migrations-lab.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const MiB = 2 ** 20;
const POLICY = { maxDowntimeMs: 300, maxRounds: 5, bandwidthLimit: 0, autoConverge: false };

describe('migration journal', () => {
  it('the synchronous journal file keeps unfinished and recent migrations only; a restart still lists the whole history', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-journal-test-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const journalPath = join(dir, 'migrations.journal.json');
    const boot = async (): Promise<{ coord: RunningCoordinator; lab: ReturnType<typeof createMigrationLab> }> => {
      const lab = createMigrationLab({ journalPath });
      const coord = await startCoordinator({ port: 0, stateDir: join(dir, 'coord'), heartbeatIntervalMs: 100, failureTimeoutMs: 5000, modules: lab.modules });
      return { coord, lab };
    };
    let { coord, lab } = await boot();
    const agents = [];
    for (const id of ['h1', 'h2']) {
      const agent = await startAgent({ coordinatorUrl: `ws://127.0.0.1:${coord.port}`, token: coord.token, hostId: id, capacity: { cpus: 4, memoryBytes: 256 * MiB, diskBytes: 2 ** 30 }, dataDir: join(dir, id), pcpus: 1 });
      cleanups.push(() => agent.close());
      await agent.whenRegistered();
      agents.push(agent);
    }
    const reply = await coord.agents.request<VmCreateMessage>('h1', { type: 'vm-create', spec: { id: 'vm-j', name: 'j', vcpus: 1, memoryBytes: 2 * MiB, workload: { kind: 'uniform', seed: 1, rate: 200 } }, start: true }, 30_000);
    expect(reply.type).toBe('vm-created');
    for (let i = 0; i < 50 && !coord.hosts.find('h1')?.vms.some((v) => v.vmId === 'vm-j'); i++) await new Promise((r) => setTimeout(r, 20));
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const m = lab.migrations.migrate({ vmId: 'vm-j', to: i % 2 === 0 ? 'h2' : 'h1', policy: POLICY });
      const done = await lab.migrations.whenFinal(m.id, 20_000);
      expect(done.state, JSON.stringify(done.error)).toBe('completed');
      ids.push(m.id);
    }
    const file = JSON.parse(readFileSync(journalPath, 'utf8')) as { migrations: { id: string }[] };
    expect(file.migrations.map((r) => r.id)).toEqual(ids.slice(-16));
    expect(lab.migrations.list().map((m) => m.id)).toEqual(expect.arrayContaining(ids));

    await new Promise((r) => setTimeout(r, 200)); // the state save (asynchronous) catches up
    await coord.close();
    ({ coord, lab } = await boot());
    cleanups.push(() => coord.close());
    const listed = lab.migrations.list();
    expect(listed.filter((m) => ids.includes(m.id)).map((m) => m.state)).toEqual(ids.map(() => 'completed'));
  }, 60_000);
});
