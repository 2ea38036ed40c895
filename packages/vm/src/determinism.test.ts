import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { memoryDigest } from '@ferry/memory';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CpuPool } from './cpu-pool.ts';
import type { VmSpec, WorkloadSpec } from './spec.ts';
import { firstDifferentPage, sleep, tempDir, waitFor } from './test-support.ts';
import { Vm } from './vm.ts';
import { InvalidTransitionError } from './errors.ts';
import { GuestMemory } from '@ferry/memory';

let pool: CpuPool;
let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  pool = new CpuPool({ pcpus: 2 });
  ({ dir, cleanup } = await tempDir('ferry-determinism-'));
});
afterAll(async () => {
  await pool.close();
  await cleanup();
});

const STEPS = 4000;
const stripePath = fileURLToPath(new URL('./fixtures/stripe-workload.ts', import.meta.url));

function spec(id: string, workload: WorkloadSpec): VmSpec {
  // ~0.4 s per run: long enough to interrupt in the middle.
  return { id, name: id, vcpus: 3, memoryBytes: 2 << 20, workload: { seed: 11, rate: 30_000, ...workload }, heartbeat: false, stepLimit: STEPS };
}

async function runStraight(s: VmSpec): Promise<{ memory: Uint8Array; registers: Uint8Array }> {
  const vm = Vm.create(s, pool);
  await vm.start();
  await vm.whenStepLimitReached();
  await vm.pause();
  const out = { memory: vm.memory.bytes.slice(), registers: vm.captureState().registers };
  await vm.stop();
  return out;
}

async function runInterrupted(s: VmSpec, file: string): Promise<{ memory: Uint8Array; registers: Uint8Array; stepsAtPause: number; stepsAtSuspend: number }> {
  const vm = Vm.create(s, pool);
  await vm.start();
  await waitFor(() => vm.totalSteps() > 300, 'steps');
  await vm.pause();
  const stepsAtPause = vm.totalSteps();
  await sleep(20);
  await vm.resume();
  await sleep(60);
  await vm.suspend(file);
  const stepsAtSuspend = vm.totalSteps();
  // Resume from the file as another process would: a new Vm object, memory read from disk.
  const resumed = await Vm.resumeFrom(file, pool);
  await resumed.whenStepLimitReached();
  await resumed.pause();
  const out = { memory: resumed.memory.bytes.slice(), registers: resumed.captureState().registers, stepsAtPause, stepsAtSuspend };
  await resumed.stop();
  await vm.delete();
  return out;
}

describe('determinism: a VM paused, suspended and resumed mid-run ends byte-identical to a straight run', () => {
  const cases: [string, WorkloadSpec][] = [
    ['uniform', { kind: 'uniform' }],
    ['hotset', { kind: 'hotset', params: { hotsetPages: 60, hotPercent: 80 } }],
    ['scan', { kind: 'scan', params: { bytesPerWrite: 512 } }],
    ['idle', { kind: 'idle' }],
    ['module (stripe)', { kind: 'module', modulePath: stripePath }],
  ];
  for (const [name, workload] of cases) {
    it(`${name} workload, 3 vCPUs`, async () => {
      const straight = await runStraight(spec(`straight-${name}`, workload));
      const interrupted = await runInterrupted(spec(`cut-${name}`, workload), join(dir, `${name.replace(/\W/g, '')}.vmss`));
      // The interruptions really happened in the middle of the run.
      expect(interrupted.stepsAtPause).toBeGreaterThan(0);
      expect(interrupted.stepsAtSuspend).toBeLessThan(3 * STEPS);
      expect(firstDifferentPage(interrupted.memory, straight.memory)).toBe(-1);
      expect(Buffer.from(interrupted.registers).equals(Buffer.from(straight.registers))).toBe(true);
      if (name !== 'idle') expect(straight.memory.some((b) => b !== 0)).toBe(true);
    });
  }
});

describe('determinism of a migration destination (Vm.incoming)', () => {
  it('vCPUs placed before their state arrived run on from the loaded state, even a workload that reads its registers in create', async () => {
    const s = spec('vm-incoming', { kind: 'module', modulePath: fileURLToPath(new URL('./fixtures/cursor-workload.ts', import.meta.url)) });
    const straight = await runStraight(s);
    const source = Vm.create(s, pool);
    await source.start();
    await waitFor(() => source.totalSteps() > 300, 'steps');
    await source.pause();
    const memory = new GuestMemory(source.memory.pageCount);
    memory.bytes.set(source.memory.bytes);
    const state = source.captureState();
    const stepsAtPause = source.totalSteps();
    await source.stop();

    const vm = Vm.incoming(s, memory, pool);
    await expect(vm.resume()).rejects.toBeInstanceOf(InvalidTransitionError); // no state yet
    expect(() => vm.captureState()).toThrow(InvalidTransitionError);
    await vm.prepareResume(); // placed, parked
    await sleep(30);
    expect(vm.totalSteps()).toBe(0); // the placeholder registers: nothing ran
    vm.loadState(state);
    expect(() => vm.loadState(state)).toThrow(InvalidTransitionError);
    expect(vm.totalSteps()).toBe(stepsAtPause);
    await vm.resume();
    await vm.whenStepLimitReached();
    await vm.pause();
    expect(stepsAtPause).toBeLessThan(3 * STEPS);
    expect(firstDifferentPage(vm.memory.bytes, straight.memory)).toBe(-1);
    expect(Buffer.from(vm.captureState().registers).equals(Buffer.from(straight.registers))).toBe(true);
    await vm.stop();
  });
});

describe('determinism across processes', () => {
  it('a VM suspended here and resumed in another process ends byte-identical to a straight run', async () => {
    const s = spec('vm-xproc', { kind: 'hotset' });
    const straight = await runStraight(s);
    const vm = Vm.create(s, pool);
    await vm.start();
    await sleep(80);
    const file = join(dir, 'xproc.vmss');
    await vm.suspend(file);
    expect(vm.totalSteps()).toBeLessThan(3 * STEPS);
    const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    const child = fileURLToPath(new URL('./fixtures/resume-child.ts', import.meta.url));
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', tsxLoader, child, file], { timeout: 30_000 });
    const out = JSON.parse(stdout.trim().split('\n').pop()!) as { digest: string; steps: number; pid: number };
    expect(out.pid).not.toBe(process.pid);
    expect(out.steps).toBe(3 * STEPS);
    const expected = new GuestMemory(straight.memory.byteLength / 4096);
    expected.bytes.set(straight.memory);
    expect(out.digest).toBe(memoryDigest(expected));
    await vm.delete();
  });
});
