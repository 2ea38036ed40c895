import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { GuestMemory, SNAPSHOT_HEADER_BYTES, SnapshotFileError } from '@ferry/memory';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CpuPool } from './cpu-pool.ts';
import { InvalidThrottleError, InvalidTransitionError, InvalidVmSpecError, MemoryReleasedError } from './errors.ts';
import { tempDir, testSpec, waitFor } from './test-support.ts';
import { Vm } from './vm.ts';
import type { VmState } from './vm.ts';
import type { VmStateChanged } from './vm-events.ts';

let pool: CpuPool;
let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  pool = new CpuPool({ pcpus: 1 });
  ({ dir, cleanup } = await tempDir('ferry-lifecycle-'));
});
afterAll(async () => {
  await pool.close();
  await cleanup();
});

type Action = 'start' | 'pause' | 'resume' | 'suspend' | 'resumeSuspended' | 'stop' | 'delete' | 'captureState' | 'snapshot';
const ALL: Action[] = ['start', 'pause', 'resume', 'suspend', 'resumeSuspended', 'stop', 'delete', 'captureState', 'snapshot'];
const LEGAL: Record<VmState, Action[]> = {
  created: ['start', 'stop', 'delete'],
  running: ['pause', 'suspend', 'stop', 'snapshot'],
  paused: ['resume', 'suspend', 'stop', 'captureState', 'snapshot'],
  suspended: ['resumeSuspended', 'stop', 'delete'],
  stopped: ['delete'],
  deleted: [],
};

let counter = 0;
async function vmIn(state: VmState): Promise<Vm> {
  const vm = Vm.create(testSpec({ id: `vm-${state}-${counter++}`, memoryBytes: 256 * 1024, workload: { kind: 'uniform', rate: 2000 } }), pool);
  if (state === 'created') return vm;
  await vm.start();
  await waitFor(() => vm.totalSteps() > 0, 'first step');
  if (state === 'paused') await vm.pause();
  if (state === 'suspended') await vm.suspend(join(dir, `${vm.id}.vmss`));
  if (state === 'stopped' || state === 'deleted') await vm.stop();
  if (state === 'deleted') await vm.delete();
  return vm;
}

async function attempt(vm: Vm, action: Action): Promise<unknown> {
  try {
    switch (action) {
      case 'suspend':
        await vm.suspend(join(dir, `${vm.id}-again.vmss`));
        break;
      case 'snapshot':
        await vm.snapshot(join(dir, `${vm.id}-snap.vmss`));
        break;
      case 'captureState':
        vm.captureState();
        break;
      default:
        await vm[action]();
    }
    return undefined;
  } catch (err) {
    return err;
  }
}

describe('lifecycle', () => {
  for (const state of Object.keys(LEGAL) as VmState[]) {
    it(`illegal actions from ${state} throw InvalidTransitionError and change nothing`, async () => {
      for (const action of ALL.filter((a) => !LEGAL[state].includes(a))) {
        const vm = await vmIn(state);
        const steps = vm.totalSteps();
        const err = await attempt(vm, action);
        expect(err, `${action} from ${state}`).toBeInstanceOf(InvalidTransitionError);
        const e = err as InvalidTransitionError;
        expect(e.code).toBe('FERRY_ERR_VM_TRANSITION');
        expect(e.vmId).toBe(vm.id);
        expect(e.from).toBe(state);
        expect(vm.state).toBe(state);
        if (state !== 'running') expect(vm.totalSteps()).toBe(steps);
        if (vm.state === 'running' || vm.state === 'paused') await vm.stop();
      }
    });
  }

  it('legal actions move between the documented states and emit state-changed', async () => {
    const vm = Vm.create(testSpec({ id: 'vm-walk', memoryBytes: 256 * 1024 }), pool);
    const seen: VmStateChanged[] = [];
    vm.on('state-changed', (e) => seen.push(e));
    await vm.start();
    await vm.pause();
    await vm.resume();
    await vm.suspend(join(dir, 'walk.vmss'));
    await vm.resumeSuspended();
    await vm.stop();
    await vm.delete();
    expect(seen.map((e) => `${e.from}>${e.to}`)).toEqual(['created>running', 'running>paused', 'paused>running', 'running>suspended', 'suspended>running', 'running>stopped', 'stopped>deleted']);
    expect(seen.every((e) => e.vmId === 'vm-walk')).toBe(true);
  });

  it('a second action while one is in progress is refused', async () => {
    const vm = await vmIn('running');
    const first = vm.pause();
    const err = await attempt(vm, 'pause');
    expect(err).toBeInstanceOf(InvalidTransitionError);
    await first;
    expect(vm.state).toBe('paused');
    await vm.stop();
  });

  it('a suspended VM holds no guest memory', async () => {
    const vm = await vmIn('suspended');
    expect(() => vm.memory).toThrow(MemoryReleasedError);
    expect(() => vm.dirtyLog).toThrow(MemoryReleasedError);
    expect(vm.totalSteps()).toBeGreaterThan(0);
    await vm.delete();
  });

  it('a corrupted suspend file is refused on resume and the VM stays suspended', async () => {
    const vm = await vmIn('running');
    const path = join(dir, 'corrupt.vmss');
    await vm.suspend(path);
    const fh = await open(path, 'r+');
    await fh.write(Buffer.from([0xff, 0xfe]), 0, 2, SNAPSHOT_HEADER_BYTES + 64 * 4096 + 2); // inside the stored spec
    await fh.close();
    await expect(vm.resumeSuspended()).rejects.toBeInstanceOf(SnapshotFileError);
    expect(vm.state).toBe('suspended');
    expect(() => vm.memory).toThrow(MemoryReleasedError);
    await vm.delete();
  });

  it('bad specs and throttles are refused with typed errors', async () => {
    expect(() => Vm.create(testSpec({ vcpus: 0 }), pool)).toThrow(InvalidVmSpecError);
    expect(() => Vm.create(testSpec({ memoryBytes: 4096 * 2 }), pool)).toThrow(InvalidVmSpecError);
    expect(() => Vm.create(testSpec({ memoryBytes: 5000 }), pool)).toThrow(InvalidVmSpecError);
    expect(() => Vm.create(testSpec({ workload: { kind: 'module' } }), pool)).toThrow(InvalidVmSpecError);
    const vm = Vm.create(testSpec(), pool);
    expect(() => vm.setThrottle(100)).toThrow(InvalidThrottleError);
    expect(() => vm.setThrottle(-1)).toThrow(InvalidThrottleError);
    vm.setThrottle(50);
    expect(vm.throttle()).toBe(50);
  });
  it('prepareResume places a restored VM\'s vCPUs parked: no step runs until resume, which only unparks', async () => {
    const source = await vmIn('paused');
    const state = source.captureState();
    const copy = new GuestMemory(source.memory.pageCount);
    copy.bytes.set(source.memory.bytes);
    const steps = source.totalSteps();
    await source.stop();
    const vm = Vm.restore({ ...source.spec, id: `${source.id}-copy` }, copy, state, pool);
    await expect(Vm.create(testSpec({ id: 'vm-prep-created' }), pool).prepareResume()).rejects.toBeInstanceOf(InvalidTransitionError);
    await vm.prepareResume();
    await vm.prepareResume(); // placed already: nothing to do
    expect(vm.state).toBe('paused');
    expect(pool.vcpusPerPcpu().reduce((a, b) => a + b, 0)).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(vm.totalSteps()).toBe(steps);
    expect(vm.lastReleasedAtMs).toBeUndefined(); // placed, never released
    const before = performance.timeOrigin + performance.now();
    await vm.resume();
    const after = performance.timeOrigin + performance.now();
    expect(vm.lastReleasedAtMs).toBeGreaterThanOrEqual(before);
    expect(vm.lastReleasedAtMs).toBeLessThanOrEqual(after);
    await waitFor(() => vm.totalSteps() > steps, 'steps after resume');
    await vm.stop();
    expect(pool.vcpusPerPcpu().reduce((a, b) => a + b, 0)).toBe(0);
  });
});
