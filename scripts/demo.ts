// `pnpm demo`: boots a VM from a workload, lets it run, takes a live snapshot, suspends it to a
// file, resumes it from that file as another host would, and tells what happened with figures.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryDigest } from '@ferry/memory';
import { CpuPool, Vm } from '@ferry/vm';

const MiB = 1024 * 1024;
const say = (line = ''): void => void process.stdout.write(line + '\n');
const ms = (v: number): string => `${v.toFixed(1)} ms`;
const mib = (v: number): string => `${(v / MiB).toFixed(1)} MiB`;
const count = (v: number): string => Math.round(v).toLocaleString('en-US');
const sleep = (t: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, t));

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-demo-'));
  const pool = new CpuPool({ pcpus: 2 });
  try {
    const vm = Vm.create(
      {
        id: 'vm-demo',
        name: 'demo',
        vcpus: 2,
        memoryBytes: 64 * MiB,
        workload: { kind: 'hotset', seed: 42, rate: 200_000, params: { hotsetPages: 2048, hotPercent: 90 } },
      },
      pool,
    );
    say(`Ferry demo: one VM on a pool of ${pool.pcpus} pCPU worker threads`);
    say(`  ${vm.id}: ${vm.spec.vcpus} vCPUs, ${mib(vm.spec.memoryBytes)} guest memory (${count(vm.memory.pageCount)} pages), workload hotset`);
    say(`  (200,000 page writes/s, 90% of them into a hot set of 2,048 pages), NIC ${vm.devices.nic.mac}`);
    say();

    let t = performance.now();
    await vm.start();
    say(`booted in ${ms(performance.now() - t)} (worker threads load the workload); running for 1 s...`);
    await sleep(1000);
    await vm.pause();
    const info = vm.guestInfo();
    say(`paused after ${count(vm.totalSteps())} steps; ${count(vm.dirtyLog.count())} pages dirty, ${count(vm.dirtyLog.countEverWritten())} ever written`);
    if (info) say(`  the guest's own view: heartbeat stamped, ${count(info.steps)} steps, largest gap between steps ${ms(info.maxGapMs)}`);
    await vm.resume();
    say();

    await sleep(300);
    const snap = await vm.snapshot(join(dir, 'demo-live.vmss'));
    say(`live snapshot while running: ${snap.rounds.length} copy rounds (${snap.rounds.map((r) => count(r.pages)).join(', ')} pages),`);
    say(`  then a pause of ${ms(snap.pauseMs)} for the last ${count(snap.finalPages)} pages; ${count(snap.storedPages)} pages stored in ${ms(snap.durationMs)}`);
    say();

    await sleep(300);
    const path = join(dir, 'demo.vmss');
    const suspended = await vm.suspend(path);
    const onDisk = await stat(path);
    say(`suspended to ${path} in ${ms(suspended.durationMs)}`);
    say(`  file: ${mib(suspended.fileBytes)} logical, ${mib(onDisk.blocks * 512)} on disk (sparse: ${count(suspended.storedPages)} non-zero pages stored)`);
    say(`  memory digest ${suspended.memoryDigest}; the VM now holds no guest memory (state ${vm.state})`);
    const stepsAtSuspend = vm.totalSteps();
    say();

    await sleep(200);
    t = performance.now();
    const resumed = await Vm.resumeFrom(path, pool);
    say(`resumed from the file as a new process would, in ${ms(performance.now() - t)} (state ${resumed.state})`);
    await sleep(500);
    await resumed.pause();
    const after = resumed.guestInfo();
    say(`  ran on: ${count(stepsAtSuspend)} steps at suspend, ${count(resumed.totalSteps())} now`);
    if (after) say(`  the guest saw a gap of ${ms(after.maxGapMs)} between two steps: the suspend-resume downtime, seen from inside`);
    say(`  memory digest now ${memoryDigest(resumed.memory)} (it moved on)`);
    await resumed.stop();
    await resumed.delete();
    await vm.delete();
    say();
    say('done: created → running ⇄ paused → suspended → running → stopped → deleted');
  } finally {
    await pool.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
