import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VmJournal, VmJournalFormatError, type VmRecord } from './vms-journal.ts';
import { VmInvalidStateError, VmRegistry, UnknownVmError, compareIds, toApiVm } from './vms.ts';
import { workloadWireOf } from './vms-run.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ferry-vms-test-'));
  dirs.push(d);
  return d;
}

function record(registry: VmRegistry, patch: Partial<VmRecord> = {}): VmRecord {
  const id = registry.newVmId();
  return registry.add({
    id,
    name: id,
    host: 'host-1',
    ip: registry.allocateIp(),
    state: 'running',
    image: 'base-os',
    cpus: 1,
    memoryBytes: 16 * 2 ** 20,
    diskBytes: 2 ** 30,
    workload: { kind: 'idle' },
    credentials: { user: 'ferry', password: `secret-${id}` },
    createdAt: new Date(0).toISOString(),
    ...patch,
  });
}

describe('VM registry and journal', () => {
  it('every change is in the journal at once: a new registry on the same dir has the VMs, credentials and id counters', () => {
    const dir = tempDir();
    const a = new VmRegistry(new VmJournal(dir));
    record(a);
    record(a, { host: 'host-2' });
    a.update('vm-2', { state: 'suspended' });
    a.addSnapshot({ id: a.newSnapshotId(), vm: 'vm-1', name: 'snap', host: 'host-1', memoryBytes: 16 * 2 ** 20, createdAt: new Date(0).toISOString() });
    const b = new VmRegistry(new VmJournal(dir));
    expect(b.list().map((v) => [v.id, v.host, v.state, v.credentials.password])).toEqual([
      ['vm-1', 'host-1', 'running', 'secret-vm-1'],
      ['vm-2', 'host-2', 'suspended', 'secret-vm-2'],
    ]);
    expect(b.snapshotsOf('vm-1').map((s) => s.name)).toEqual(['snap']);
    expect(b.newVmId()).toBe('vm-3');
    expect(b.newSnapshotId()).toBe('snap-2');
    expect(b.allocateIp()).toBe('10.0.0.4'); // .2 and .3 are held by the two VMs
    expect(statSync(join(dir, 'vms.json')).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['vms.json']);
  });

  it('a removed VM frees its address and is gone after a reload; its id is never handed out again', () => {
    const dir = tempDir();
    const a = new VmRegistry(new VmJournal(dir));
    const first = record(a);
    a.remove(first.id);
    const b = new VmRegistry(new VmJournal(dir));
    expect(b.find(first.id)).toBeUndefined();
    expect(b.allocateIp()).toBe(first.ip);
    expect(b.newVmId()).toBe('vm-2');
  });

  it('a wrong state is refused with FERRY_ERR_INVALID_STATE and changes nothing', () => {
    const a = new VmRegistry(new VmJournal(tempDir()));
    record(a, { state: 'stopped' });
    const err = (() => {
      try {
        a.expectState('vm-1', ['running', 'paused'], 'suspend');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(VmInvalidStateError);
    expect((err as VmInvalidStateError).code).toBe('FERRY_ERR_INVALID_STATE');
    expect((err as Error).message).toBe('cannot suspend vm-1: it is stopped (suspend needs running or paused)');
    expect(a.get('vm-1').state).toBe('stopped');
    expect(() => a.get('vm-9')).toThrow(UnknownVmError);
  });

  it('a corrupt journal is refused, never replaced by an empty one', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'vms.json'), '{"version": 1, "vms": "nope"');
    expect(() => new VmRegistry(new VmJournal(dir))).toThrow(VmJournalFormatError);
    writeFileSync(join(dir, 'vms.json'), JSON.stringify({ version: 2, nextVmNumber: 1, nextSnapshotNumber: 1, vms: [], snapshots: [] }));
    expect(() => new VmRegistry(new VmJournal(dir))).toThrow(/journal version 2/);
  });

  it('losing a VM keeps its previous state; any later state clears it', () => {
    const a = new VmRegistry(new VmJournal(tempDir()));
    record(a, { state: 'paused' });
    expect(a.update('vm-1', { state: 'lost', stateBeforeLost: 'paused' }).stateBeforeLost).toBe('paused');
    expect(a.update('vm-1', { state: 'running' }).stateBeforeLost).toBeUndefined();
  });

  it('events never carry the password; the API record does', () => {
    const a = new VmRegistry(new VmJournal(tempDir()));
    const vm = record(a);
    expect(toApiVm(vm)).toHaveProperty('credentials.password', 'secret-vm-1');
    expect(toApiVm(vm, false)).not.toHaveProperty('credentials');
  });

  it('ids sort by their number; workloads are checked and get a gentle default rate', () => {
    expect(['vm-10', 'vm-2', 'vm-1'].sort(compareIds)).toEqual(['vm-1', 'vm-2', 'vm-10']);
    expect(workloadWireOf(undefined)).toEqual({ kind: 'idle' });
    expect(workloadWireOf({ kind: 'hotset', hotsetPages: 64 })).toEqual({ kind: 'hotset', seed: 1, rate: 2000, params: { hotsetPages: 64 } });
    expect(() => workloadWireOf({ kind: 'bitcoin' })).toThrow(/workload.kind must be one of/);
    expect(() => workloadWireOf({ kind: 'uniform', rate: 'fast' })).toThrow(/workload.rate/);
  });
});
