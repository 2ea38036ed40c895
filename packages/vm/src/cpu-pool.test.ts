import { fileURLToPath } from 'node:url';
import { memoryDigest } from '@ferry/memory';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CpuPool } from './cpu-pool.ts';
import { VcpuFaultError, WorkloadLoadError } from './errors.ts';
import { readGuestInfo } from './guest-info.ts';
import { RESERVED_PAGES } from './layout.ts';
import { sleep, testSpec, waitFor } from './test-support.ts';
import { Vm } from './vm.ts';

let pool: CpuPool;
beforeAll(() => {
  pool = new CpuPool({ pcpus: 2 });
});
afterAll(async () => {
  await pool.close();
});

describe('CpuPool and vCPUs', () => {
  it('pause resolves only after every vCPU parked: no step and no store happens after it', async () => {
    const vm = Vm.create(testSpec({ id: 'vm-park', vcpus: 4, memoryBytes: 1 << 20 }), pool);
    await vm.start();
    await waitFor(() => vm.totalSteps() > 1000, 'steps');
    await vm.pause();
    const steps = vm.totalSteps();
    const digest = memoryDigest(vm.memory);
    await sleep(50);
    expect(vm.totalSteps()).toBe(steps);
    expect(memoryDigest(vm.memory)).toBe(digest);
    await vm.stop();
  });

  it('hosts hundreds of VMs on two pCPU threads', async () => {
    const vms = Array.from({ length: 200 }, (_, i) => Vm.create(testSpec({ id: `vm-many-${i}`, memoryBytes: 64 * 1024, workload: { kind: 'idle', rate: 200 } }), pool));
    await Promise.all(vms.map((vm) => vm.start()));
    expect(pool.vcpusPerPcpu().reduce((a, b) => a + b, 0)).toBe(200);
    expect(pool.vcpusPerPcpu()).toEqual([100, 100]);
    await waitFor(() => vms.every((vm) => vm.totalSteps() > 0), 'every VM to step');
    await Promise.all(vms.map((vm) => vm.pause()));
    await Promise.all(vms.map((vm) => vm.stop()));
    expect(pool.vcpusPerPcpu()).toEqual([0, 0]);
  });

  it('throttle slows a vCPU', async () => {
    const single = new CpuPool({ pcpus: 1 });
    try {
      // A rate-limited vCPU needs little CPU, so the comparison holds on a loaded machine too.
      const vm = Vm.create(testSpec({ id: 'vm-throttle', memoryBytes: 1 << 20, workload: { kind: 'uniform', rate: 20_000 } }), single);
      await vm.start();
      await sleep(50);
      let s0 = vm.totalSteps();
      let t0 = performance.now();
      await sleep(300);
      const fullRate = (vm.totalSteps() - s0) / (performance.now() - t0);
      vm.setThrottle(80);
      await sleep(20);
      s0 = vm.totalSteps();
      t0 = performance.now();
      await sleep(300);
      const throttledRate = (vm.totalSteps() - s0) / (performance.now() - t0);
      expect(throttledRate).toBeLessThan(fullRate * 0.5);
      expect(throttledRate).toBeGreaterThan(0);
      await vm.stop();
    } finally {
      await single.close();
    }
  });

  it("a VM's vCPU count sets its share of a pCPU", async () => {
    const single = new CpuPool({ pcpus: 1 });
    try {
      const two = Vm.create(testSpec({ id: 'vm-two', vcpus: 2, memoryBytes: 1 << 20 }), single);
      const one = Vm.create(testSpec({ id: 'vm-one', vcpus: 1, memoryBytes: 1 << 20 }), single);
      await Promise.all([two.start(), one.start()]);
      await sleep(300);
      await Promise.all([two.pause(), one.pause()]);
      expect(two.totalSteps()).toBeGreaterThan(one.totalSteps() * 1.3);
      await Promise.all([two.stop(), one.stop()]);
    } finally {
      await single.close();
    }
  });

  it('the guest stamps its heartbeat and sees a pause as a step gap; workloads never write pages 0 and 1', async () => {
    const vm = Vm.create(testSpec({ id: 'vm-hb', vcpus: 2, memoryBytes: 256 * 1024, workload: { kind: 'uniform', rate: 4000 } }), pool);
    await vm.start();
    // Each vCPU stamps its own slot: wait until both have run, not just the total.
    await waitFor(() => vm.vcpuSteps(0) > 5 && vm.vcpuSteps(1) > 5, 'steps on both vCPUs');
    await vm.pause();
    const first = readGuestInfo(vm.memory)!;
    expect(first.vcpus.length).toBe(2);
    expect(Math.abs(first.heartbeatMs - (performance.timeOrigin + performance.now()))).toBeLessThan(1000);
    expect(first.steps).toBe(vm.totalSteps());
    await sleep(150);
    const stepsAtPause = vm.totalSteps();
    await vm.resume();
    await waitFor(() => vm.totalSteps() > stepsAtPause + 10, 'steps after resume');
    await vm.pause();
    const after = readGuestInfo(vm.memory)!;
    expect(after.heartbeatMs).toBeGreaterThan(first.heartbeatMs);
    expect(after.maxGapMs).toBeGreaterThanOrEqual(140);
    expect(vm.memory.page(1).every((b) => b === 0)).toBe(true);
    const noHeartbeat = Vm.create(testSpec({ id: 'vm-nohb', memoryBytes: 256 * 1024, heartbeat: false, workload: { kind: 'scan' } }), pool);
    await noHeartbeat.start();
    await waitFor(() => noHeartbeat.totalSteps() > 10, 'steps');
    await noHeartbeat.pause();
    expect(noHeartbeat.memory.pages(0, RESERVED_PAGES).every((b) => b === 0)).toBe(true);
    expect(noHeartbeat.memory.page(RESERVED_PAGES).some((b) => b !== 0)).toBe(true);
    await Promise.all([vm.stop(), noHeartbeat.stop()]);
  });

  it('a workload module that throws faults its vCPU, which reports it and still acknowledges pause', async () => {
    const path = fileURLToPath(new URL('./fixtures/faulty-workload.ts', import.meta.url));
    const vm = Vm.create(testSpec({ id: 'vm-faulty', memoryBytes: 64 * 1024, workload: { kind: 'module', modulePath: path } }), pool);
    const faults: VcpuFaultError[] = [];
    vm.on('vcpu-faulted', (e) => faults.push(e));
    await vm.start();
    for (let i = 0; i < 100 && faults.length === 0; i++) await sleep(10);
    expect(faults[0]).toBeInstanceOf(VcpuFaultError);
    expect(faults[0]!.message).toContain('guest panic');
    await vm.pause();
    expect(vm.totalSteps()).toBe(99);
    await vm.stop();
  });

  it('a pCPU worker that dies faults every vCPU it ran, which still pause and stop; the pool starts it again for new vCPUs', async () => {
    const own = new CpuPool({ pcpus: 1 });
    try {
      const bystander = Vm.create(testSpec({ id: 'vm-bystander', memoryBytes: 64 * 1024, workload: { kind: 'idle', rate: 1000 } }), own);
      const faults: VcpuFaultError[] = [];
      bystander.on('vcpu-faulted', (e) => faults.push(e));
      await bystander.start();
      await waitFor(() => bystander.totalSteps() > 10, 'bystander steps');
      const path = fileURLToPath(new URL('./fixtures/faulty-workload.ts', import.meta.url));
      const killer = Vm.create(testSpec({ id: 'vm-killer', memoryBytes: 64 * 1024, workload: { kind: 'module', modulePath: path, params: { exitThreadAt: 50 } } }), own);
      killer.on('vcpu-faulted', (e) => faults.push(e));
      await killer.start();
      await waitFor(() => faults.length === 2, 'both VMs hear of the lost worker');
      expect(faults.map((f) => f.message).join(' ')).toMatch(/pCPU worker 0 exited with code 3/);
      await bystander.pause(); // parked by the pool, not by a worker that is gone
      const steps = bystander.totalSteps();
      await Promise.all([bystander.stop(), killer.stop()]);
      expect(own.vcpusPerPcpu()).toEqual([0]);
      const next = Vm.create(testSpec({ id: 'vm-next', memoryBytes: 64 * 1024, workload: { kind: 'idle', rate: 1000 } }), own);
      await next.start();
      await waitFor(() => next.totalSteps() > 10, 'a new VM steps on the restarted worker');
      await next.stop();
      expect(steps).toBeGreaterThan(10);
    } finally {
      await own.close();
    }
  });

  it("a workload whose create throws (bad params) is refused at start and the VM stays created", async () => {
    const vm = Vm.create(testSpec({ id: 'vm-bad-params', memoryBytes: 64 * 1024, workload: { kind: 'uniform', params: { bytesPerWrite: 3 } } }), pool);
    await expect(vm.start()).rejects.toThrow(/bytesPerWrite must divide 4096/);
    expect(vm.state).toBe('created');
    expect(pool.vcpusPerPcpu().reduce((a, b) => a + b, 0)).toBe(0);
  });

  it('a workload module that cannot be loaded is refused at start and the VM stays created', async () => {
    const vm = Vm.create(testSpec({ id: 'vm-missing', memoryBytes: 64 * 1024, workload: { kind: 'module', modulePath: '/nonexistent/workload.ts' } }), pool);
    await expect(vm.start()).rejects.toBeInstanceOf(WorkloadLoadError);
    expect(vm.state).toBe('created');
    expect(pool.vcpusPerPcpu().reduce((a, b) => a + b, 0)).toBe(0);
  });
});
