// In-process migration benchmark: page-frame encode/decode rates per frame size, and whole
// migrations through the in-memory channel (real codecs, real frame copies, one thread for both
// ends plus a vCPU worker). Run: `npx tsx packages/migration/bench/inprocess.ts [--json] [--quick]`.
import { GuestMemory, PAGE_SIZE_BYTES } from '@ferry/memory';
import { PAGE_ENCODING, PageFrameBuilder, joinFrameParts, readPageFrame } from '@ferry/protocol';
import { FakeVm } from '../src/test-utils/fake-vm.ts';
import { createHarness } from '../src/test-utils/harness.ts';
import type { MigrationSenderPolicy } from '../src/policy.ts';

const MiB = 1024 * 1024;
const args = process.argv.slice(2);
const json = args.includes('--json');
const quick = args.includes('--quick');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function frameRates(frameBytes: number): { encodeGBps: number; joinGBps: number; decodeGBps: number } {
  const vmBytes = (quick ? 64 : 256) * MiB;
  const memory = GuestMemory.ofBytes(vmBytes);
  memory.bytes.fill(0x5a);
  const target = GuestMemory.ofBytes(vmBytes);
  target.bytes.fill(1); // touch the pages before measuring copies
  const builder = new PageFrameBuilder(memory.bytes);
  const pagesPerFrame = frameBytes / PAGE_SIZE_BYTES;
  const frames: Uint8Array[][] = [];
  let t = performance.now();
  for (let p = 0; p < memory.pageCount; p++) {
    // every other page: worst case for runs (one run per page), like a scattered dirty set
    builder.add(p, PAGE_ENCODING.raw);
    if (builder.pageCount === pagesPerFrame) frames.push(builder.take(1)!);
  }
  const encodeMs = performance.now() - t;
  t = performance.now();
  const joined = frames.map((parts) => joinFrameParts(parts));
  const joinMs = performance.now() - t;
  t = performance.now();
  for (const frame of joined) {
    readPageFrame(frame, target.pageCount, (first, count, _enc, offset) => {
      target.bytes.set(frame.subarray(offset, offset + count * PAGE_SIZE_BYTES), first * PAGE_SIZE_BYTES);
    }, 8 * MiB);
  }
  const decodeMs = performance.now() - t;
  return { encodeGBps: vmBytes / encodeMs / 1e6, joinGBps: vmBytes / joinMs / 1e6, decodeGBps: vmBytes / decodeMs / 1e6 };
}

async function migrateOnce(name: string, vmBytes: number, workload: { writablePages?: number; writesPerSec: number; fill: number } | undefined, policy: Partial<MigrationSenderPolicy>, fill = 1) {
  const pageCount = vmBytes / PAGE_SIZE_BYTES;
  const vm = new FakeVm({ pageCount, fillFraction: workload?.fill ?? fill, writablePages: workload?.writablePages, writesPerSec: workload?.writesPerSec ?? 0, seed: 11 });
  if (workload) vm.start();
  await new Promise((r) => setTimeout(r, 50));
  const h = createHarness({ vm, policy });
  const [done] = await Promise.all([h.sender.run(), h.receiver.done]);
  await vm.stop();
  const r = done.report;
  return {
    name,
    vmBytes,
    totalMs: r.totalMs,
    downtimeMs: r.downtimeMs ?? NaN,
    rounds: r.rounds,
    bytesOnWire: r.bytesOnWire,
    bandwidthBytesPerSec: r.roundStats[0]!.bandwidthBytesPerSec,
    round1Ms: r.roundStats[0]!.durationMs,
    zeroPagesSkipped: r.zeroPagesSkipped,
    verify: r.digestAlgorithm,
  };
}

const frameSizes = [64 * 1024, 256 * 1024, MiB, 4 * MiB];
const frames = frameSizes.map((size) => ({ frameBytes: size, ...frameRates(size) }));

const vmBytes = (quick ? 64 : 256) * MiB;
const runs = quick ? 2 : 5;
const cases: Awaited<ReturnType<typeof migrateOnce>>[][] = [];
for (const frameBytes of [256 * 1024, MiB]) {
  for (const verify of ['incremental', 'full'] as const) {
    const rs = [];
    for (let i = 0; i < runs; i++) rs.push(await migrateOnce(`idle-full ${frameBytes / 1024}K ${verify}`, vmBytes, undefined, { frameBytes, verify }));
    cases.push(rs);
  }
}
{
  const rs = [];
  for (let i = 0; i < runs; i++) rs.push(await migrateOnce('idle-zero', vmBytes, undefined, {}, 0));
  cases.push(rs.map((r) => r));
}
{
  const rs = [];
  for (let i = 0; i < runs; i++) rs.push(await migrateOnce('hotset 32MiB 10k w/s', vmBytes, { writablePages: (32 * MiB) / PAGE_SIZE_BYTES, writesPerSec: 10_000, fill: 1 }, {}));
  cases.push(rs);
}

const summary = cases.map((rs) => ({
  name: rs[0]!.name,
  vmBytes: rs[0]!.vmBytes,
  runs: rs.length,
  bandwidthGBps: median(rs.map((r) => r.bandwidthBytesPerSec)) / 1e9,
  totalMs: { median: median(rs.map((r) => r.totalMs)), max: Math.max(...rs.map((r) => r.totalMs)) },
  downtimesMs: rs.map((r) => Number(r.downtimeMs.toFixed(2))),
  downtimeMs: { median: median(rs.map((r) => r.downtimeMs)), max: Math.max(...rs.map((r) => r.downtimeMs)) },
  rounds: median(rs.map((r) => r.rounds)),
  bytesOnWire: median(rs.map((r) => r.bytesOnWire)),
}));

if (json) {
  process.stdout.write(JSON.stringify({ frames, cases: summary }) + '\n');
} else {
  console.log('page frames of contiguous pages: encode = build parts (views), join = copy parts into one buffer (what a socket write costs), decode = validate + copy into guest memory');
  console.table(frames.map((f) => ({ frame: `${f.frameBytes / 1024} KiB`, 'encode GB/s': f.encodeGBps.toFixed(1), 'join (copy) GB/s': f.joinGBps.toFixed(2), 'decode+copy GB/s': f.decodeGBps.toFixed(2) })));
  console.log(`in-process migrations through the in-memory channel, ${vmBytes / MiB} MiB VM, ${runs} runs each (medians)`);
  console.table(
    summary.map((s) => ({
      case: s.name,
      'GB/s': s.bandwidthGBps.toFixed(2),
      'total ms': s.totalMs.median.toFixed(1),
      'downtime ms (med/max)': `${s.downtimeMs.median.toFixed(2)} / ${s.downtimeMs.max.toFixed(2)}`,
      rounds: s.rounds,
      'wire/VM': (s.bytesOnWire / s.vmBytes).toFixed(3),
      'downtimes ms': s.downtimesMs.join(' '),
    })),
  );
}
