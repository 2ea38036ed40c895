import { join } from 'node:path';
import { memoryDigest, readSnapshotFile } from '@ferry/memory';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CpuPool } from './cpu-pool.ts';
import { RegisterBlock } from './registers.ts';
import { firstDifferentPage, sleep, tempDir, testSpec, waitFor } from './test-support.ts';
import { Vm } from './vm.ts';

let pool: CpuPool;
let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  pool = new CpuPool({ pcpus: 2 });
  ({ dir, cleanup } = await tempDir('ferry-dirty-'));
});
afterAll(async () => {
  await pool.close();
  await cleanup();
});

/** One harvest-then-copy round, as a pre-copy migration does it. */
function copyDirty(vm: Vm, shadow: Uint8Array): number {
  const pages = vm.dirtyLog.harvest();
  for (const p of pages) shadow.set(vm.memory.page(p), p * 4096);
  return pages.length;
}

describe('dirty log', () => {
  it('never misses a page: harvest-and-copy rounds while vCPUs write, plus a final harvest after pause, equal memory', async () => {
    // Small memory and fast writers so pages are rewritten while being copied.
    const vm = Vm.create(testSpec({ id: 'vm-dirty', vcpus: 2, memoryBytes: 512 * 1024, workload: { kind: 'hotset', seed: 3, params: { hotsetPages: 16, bytesPerWrite: 64 } } }), pool);
    const shadow = new Uint8Array(vm.memory.byteLength);
    await vm.start();
    let copied = 0;
    for (let cycle = 0; cycle < 5; cycle++) {
      // Rounds until the guest has made real progress (however loaded the machine is).
      const start = vm.totalSteps();
      const deadline = performance.now() + 10_000;
      for (let round = 0; round < 60 || (vm.totalSteps() - start < 2000 && performance.now() < deadline); round++) {
        copied += copyDirty(vm, shadow);
        await new Promise((resolve) => setImmediate(resolve));
      }
      await vm.pause();
      copyDirty(vm, shadow);
      expect(firstDifferentPage(shadow, vm.memory.bytes)).toBe(-1);
      await vm.resume(); // the log stays valid across pause/resume: the shadow keeps following
    }
    await vm.pause();
    copyDirty(vm, shadow);
    expect(firstDifferentPage(shadow, vm.memory.bytes)).toBe(-1);
    // Not vacuous: the rounds copied the 16-page hot set more than once (a starved guest on a
    // loaded machine dirties fewer pages between harvests, so no larger count is promised).
    expect(copied).toBeGreaterThan(16);
    await vm.stop();
  });

  it('pause and resume leave dirty bits alone', async () => {
    const vm = Vm.create(testSpec({ id: 'vm-keep', memoryBytes: 256 * 1024, workload: { kind: 'uniform', rate: 5000 } }), pool);
    await vm.start();
    await waitFor(() => vm.totalSteps() > 20, 'steps');
    await vm.pause();
    const before = vm.dirtyLog.count();
    expect(before).toBeGreaterThan(0);
    await vm.resume();
    await vm.pause();
    expect(vm.dirtyLog.count()).toBeGreaterThanOrEqual(before);
    await vm.stop();
  });
});

describe('live snapshot', () => {
  it('is consistent with memory at its pause, and reports rounds and the pause', async () => {
    const vm = Vm.create(testSpec({ id: 'vm-live', vcpus: 2, memoryBytes: 8 << 20, workload: { kind: 'uniform', seed: 5 } }), pool);
    await vm.start();
    await waitFor(() => vm.totalSteps() > 20_000, 'steps');
    const path = join(dir, 'live.vmss');
    const report = await vm.snapshot(path, { verify: true, maxRounds: 4 });
    expect(vm.state).toBe('running');
    expect(report.verified).toBe(true);
    expect(report.rounds.length).toBeGreaterThanOrEqual(1);
    expect(report.rounds[0]!.pages).toBeGreaterThan(100);
    expect(report.pauseMs).toBeGreaterThan(0);
    expect(report.pauseMs).toBeLessThan(5000);
    const loaded = await readSnapshotFile(path);
    expect(loaded.memoryDigest).toBe(report.memoryDigest);
    const regs = RegisterBlock.decode(loaded.registers, 2);
    expect(regs.totalSteps()).toBeGreaterThan(0);
    expect(regs.totalSteps()).toBeLessThanOrEqual(vm.totalSteps());
    await vm.stop();
  });

  it('a clone of a live snapshot continues byte-identically to the original', async () => {
    const spec = testSpec({ id: 'vm-orig', vcpus: 2, memoryBytes: 2 << 20, workload: { kind: 'uniform', seed: 9, rate: 20_000 }, heartbeat: false, stepLimit: 4000 });
    const vm = Vm.create(spec, pool);
    await vm.start();
    await sleep(80);
    const path = join(dir, 'mid.vmss');
    await vm.snapshot(path, { stopBelowPages: 8 });
    const clone = await Vm.clone(path, { id: 'vm-clone', name: 'clone' }, pool);
    expect(clone.id).toBe('vm-clone');
    expect(clone.spec.name).toBe('clone');
    expect(clone.devices.nic.mac).not.toBe(vm.devices.nic.mac);
    await Promise.all([vm.whenStepLimitReached(), clone.whenStepLimitReached()]);
    await vm.pause();
    await clone.pause();
    expect(firstDifferentPage(clone.memory.bytes, vm.memory.bytes)).toBe(-1);
    expect(memoryDigest(clone.memory)).toBe(memoryDigest(vm.memory));
    await vm.stop();
    await clone.stop();
  });

  it('leaves every dirty bit it harvested set again', async () => {
    const vm = Vm.create(testSpec({ id: 'vm-bits', memoryBytes: 256 * 1024, workload: { kind: 'uniform', rate: 3000 } }), pool);
    await vm.start();
    await waitFor(() => vm.totalSteps() > 20, 'steps');
    await vm.pause();
    const before = [...vm.dirtyLog.harvest()];
    for (const p of before) vm.dirtyLog.mark(p);
    await vm.snapshot(join(dir, 'bits.vmss'));
    expect([...vm.dirtyLog.harvest()]).toEqual(before);
    await vm.stop();
  });
});
