// `pnpm bench memory [--json] [--quick]`: dirty-logging overhead, dirty-log harvest, the page
// digest options (the numbers behind @ferry/memory's choice of xxh64), suspend and resume against
// raw file I/O of the same bytes (same run), and the resident memory of an agent-like process
// hosting the guest. --quick uses 128 MiB instead of 1 GiB.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { crc32 } from 'node:zlib';
import { mkdtemp, open, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { DirtyLog, GuestMemory, isZeroPage, memoryDigest, PAGE_SIZE_BYTES, pageDigest } from '@ferry/memory';
import { CpuPool, RESERVED_PAGES, RegisterBlock, uniformWorkload, Vm } from '@ferry/vm';
import type { WorkloadContext } from '@ferry/vm';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const IO_CHUNK_BYTES = 8 * MiB;

interface Result {
  guestBytes: number;
  dirtyLogOverhead: number;
  storesPerSecLogged: number;
  storesPerSecUnlogged: number;
  harvestSparseMs: number;
  harvestDenseMs: number;
  harvestPages: number;
  /** The page digest @ferry/memory uses (pageDigest), picked from pageDigestGBps. */
  pageDigest: 'xxh64';
  /** One 4 KiB page per call, GB/s, for each option measured. */
  pageDigestGBps: Record<PageDigestOption, number>;
  /** memoryDigest (xxh64 streamed 4 MiB at a time over all of memory), GB/s. */
  memoryDigestGBps: number;
  /** isZeroPage on zero pages, GB/s, and on non-zero pages, pages/s. */
  zeroCheckGBps: number;
  zeroCheckNonZeroPagesPerSec: number;
  /** The alternative measured beside it: a Buffer view of the page `.equals()` a zero page (memcmp), zero pages, GB/s. */
  zeroCheckBufferEqualsGBps: number;
  rawWriteMs: number;
  suspendMs: number;
  suspendVsRaw: number;
  rawReadMs: number;
  resumeMs: number;
  resumeVsRaw: number;
  rssBytes: number;
  rssVsGuest: number;
}

type PageDigestOption = 'xxh64' | 'xxh3' | 'crc32' | 'sha1' | 'sha256';

// A full GC before each timed step, so that freeing the previous step's gigabyte (munmap of a
// released SharedArrayBuffer) is not charged to whichever step happens to trigger the collection.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Store rate of the uniform workload's program with the dirty log on and off, alternated, same memory. */
function measureLoggingOverhead(): { on: number; off: number } {
  const memory = GuestMemory.ofBytes(64 * MiB);
  memory.bytes.fill(1); // touch: no zero-page faults inside the timing
  const log = new DirtyLog(memory.pageCount);
  const words = new Int32Array(log.buffer);
  const make = (logged: boolean) => {
    const regs = RegisterBlock.boot(1, 5).workloadRegisters(0);
    const ctx: WorkloadContext = {
      bytes: memory.bytes,
      pageCount: memory.pageCount,
      firstPage: RESERVED_PAGES,
      vcpuIndex: 0,
      vcpuCount: 1,
      registers: regs,
      params: {},
      markDirty: logged ? (page) => void Atomics.or(words, page >>> 5, 1 << (page & 31)) : () => {},
    };
    return uniformWorkload.create(ctx);
  };
  const programs = { on: make(true), off: make(false) };
  const rates: { on: number[]; off: number[] } = { on: [], off: [] };
  for (let rep = 0; rep < 14; rep++) {
    const which = rep % 2 === 0 ? 'on' : 'off';
    const program = programs[which];
    const steps = 400_000;
    const t = performance.now();
    for (let i = 0; i < steps; i++) program.step();
    const elapsed = performance.now() - t;
    if (rep >= 2) rates[which].push((steps / elapsed) * 1000);
    log.clear();
  }
  return { on: median(rates.on), off: median(rates.off) };
}

function measureHarvest(pages: number): { sparseMs: number; denseMs: number } {
  const log = new DirtyLog(pages);
  const sparse: number[] = [];
  for (let rep = 0; rep < 200; rep++) {
    for (let i = 0; i < 64; i++) log.mark((i * 4099 + rep * 7) % pages);
    const t = performance.now();
    log.harvest();
    sparse.push(performance.now() - t);
  }
  const dense: number[] = [];
  for (let rep = 0; rep < 7; rep++) {
    for (let p = 0; p < pages; p++) log.mark(p);
    const t = performance.now();
    log.harvest();
    dense.push(performance.now() - t);
  }
  return { sparseMs: median(sparse), denseMs: median(dense) };
}

/**
 * Page digest options, one 4 KiB page per call as the migration hot path calls them, over 64 MiB
 * of random pages (touched first), median of 5 passes each: xxh64 (@node-rs/xxhash, what
 * pageDigest uses), xxh3-64 of the same package, zlib's crc32 (32 bits: too few for
 * reference-by-hash), sha1 and sha256. Also the whole-memory digest and the zero-page check.
 */
function measureDigests(): Pick<Result, 'pageDigestGBps' | 'memoryDigestGBps' | 'zeroCheckGBps' | 'zeroCheckNonZeroPagesPerSec' | 'zeroCheckBufferEqualsGBps'> {
  const memory = GuestMemory.ofBytes(64 * MiB);
  for (let off = 0; off < memory.byteLength; off += 65536) crypto.getRandomValues(memory.bytes.subarray(off, off + 65536));
  const pages = Array.from({ length: memory.pageCount }, (_, p) => memory.page(p));
  // @node-rs/xxhash is a dependency of @ferry/memory, not of the scripts: resolve it from there.
  const xxhash = createRequire(fileURLToPath(new URL('../../packages/memory/package.json', import.meta.url)))('@node-rs/xxhash') as {
    xxh3: { xxh64(input: Uint8Array): bigint };
  };
  const options: Record<PageDigestOption, (page: Uint8Array) => unknown> = {
    xxh64: pageDigest,
    xxh3: (page) => xxhash.xxh3.xxh64(page),
    crc32: (page) => crc32(page),
    sha1: (page) => createHash('sha1').update(page).digest(),
    sha256: (page) => createHash('sha256').update(page).digest(),
  };
  const rate = (run: () => void, bytes: number): number => {
    const passes: number[] = [];
    for (let rep = 0; rep < 5; rep++) {
      const t = performance.now();
      run();
      passes.push(bytes / ((performance.now() - t) / 1000) / 1e9);
    }
    return median(passes);
  };
  const pageDigestGBps = {} as Record<PageDigestOption, number>;
  for (const [name, digest] of Object.entries(options) as [PageDigestOption, (page: Uint8Array) => unknown][]) {
    pageDigestGBps[name] = rate(() => {
      for (const page of pages) digest(page);
    }, memory.byteLength);
  }
  const memoryDigestGBps = rate(() => void memoryDigest(memory), memory.byteLength);
  const nonZeroGBps = rate(() => {
    for (const page of pages) if (isZeroPage(page)) throw new Error('a random page read as zero');
  }, memory.byteLength);
  memory.bytes.fill(0);
  const zeroCheckGBps = rate(() => {
    for (const page of pages) if (!isZeroPage(page)) throw new Error('a zero page read as non-zero');
  }, memory.byteLength);
  const zero = Buffer.alloc(PAGE_SIZE_BYTES);
  const zeroCheckBufferEqualsGBps = rate(() => {
    for (const page of pages) if (!Buffer.from(page.buffer, page.byteOffset, PAGE_SIZE_BYTES).equals(zero)) throw new Error('a zero page read as non-zero');
  }, memory.byteLength);
  return { pageDigestGBps, memoryDigestGBps, zeroCheckGBps, zeroCheckNonZeroPagesPerSec: (nonZeroGBps * 1e9) / PAGE_SIZE_BYTES, zeroCheckBufferEqualsGBps };
}

async function rawWrite(path: string, bytes: Uint8Array): Promise<number> {
  const t = performance.now();
  const fh = await open(path, 'w');
  for (let off = 0; off < bytes.byteLength; off += IO_CHUNK_BYTES) await fh.write(bytes, off, Math.min(IO_CHUNK_BYTES, bytes.byteLength - off), off);
  await fh.sync();
  await fh.close();
  return performance.now() - t;
}

async function rawRead(path: string, byteLength: number): Promise<number> {
  const t = performance.now();
  const into = new Uint8Array(new SharedArrayBuffer(byteLength));
  const fh = await open(path, 'r');
  for (let off = 0; off < byteLength; off += IO_CHUNK_BYTES) await fh.read(into, off, Math.min(IO_CHUNK_BYTES, byteLength - off), off);
  await fh.close();
  return performance.now() - t;
}

/** Boots a VM of `bytes` whose scan workload writes every page (dense: the worst case for suspend). */
async function denseVm(pool: CpuPool, bytes: number, id: string): Promise<Vm> {
  const vm = Vm.create({ id, name: id, vcpus: 2, memoryBytes: bytes, workload: { kind: 'scan', seed: 1 } }, pool);
  await vm.start();
  while (vm.totalSteps() < vm.memory.pageCount) await new Promise((resolve) => setTimeout(resolve, 20));
  await vm.pause();
  return vm;
}

/**
 * Suspend and resume of a dense VM of `bytes`, each right after the raw I/O it is compared with
 * (raw write + fsync, then suspend; raw read, then resume), `reps` times. A ratio is the median of
 * the per-rep ratios: on a shared, noisy machine a pair measured back to back sees the same load,
 * where a best-of or median of each side alone can pair a quiet raw run with a busy VM run. The
 * times are the medians of each side.
 */
async function measureSuspendResume(bytes: number, reps: number): Promise<Pick<Result, 'rawWriteMs' | 'suspendMs' | 'rawReadMs' | 'resumeMs' | 'suspendVsRaw' | 'resumeVsRaw'>> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-bench-memory-'));
  const pool = new CpuPool({ pcpus: 2 });
  const times = { rawWriteMs: [] as number[], suspendMs: [] as number[], rawReadMs: [] as number[], resumeMs: [] as number[] };
  try {
    let vm = await denseVm(pool, bytes, 'vm-bench');
    for (let rep = 0; rep < reps; rep++) {
      const raw = join(dir, 'raw.bin');
      const file = join(dir, `vm-${rep}.vmss`);
      gc();
      times.rawWriteMs.push(await rawWrite(raw, vm.memory.bytes));
      gc();
      let t = performance.now();
      await vm.suspend(file);
      times.suspendMs.push(performance.now() - t);
      gc();
      times.rawReadMs.push(await rawRead(raw, bytes));
      gc();
      t = performance.now();
      vm = await Vm.resumeFrom(file, pool, { paused: true });
      times.resumeMs.push(performance.now() - t);
      await unlink(raw);
      await unlink(file);
    }
    await vm.stop();
  } finally {
    await pool.close();
    await rm(dir, { recursive: true, force: true });
  }
  const ratios = (a: number[], b: number[]): number => median(a.map((v, i) => v / b[i]!));
  return {
    rawWriteMs: median(times.rawWriteMs),
    suspendMs: median(times.suspendMs),
    rawReadMs: median(times.rawReadMs),
    resumeMs: median(times.resumeMs),
    suspendVsRaw: ratios(times.suspendMs, times.rawWriteMs),
    resumeVsRaw: ratios(times.resumeMs, times.rawReadMs),
  };
}

/** Child mode: an agent-like process (a CPU pool, one VM of `bytes`, every page written) reports its RSS. */
async function rssChild(bytes: number): Promise<void> {
  const pool = new CpuPool({ pcpus: 2 });
  const vm = await denseVm(pool, bytes, 'vm-rss');
  await vm.resume();
  await new Promise((resolve) => setTimeout(resolve, 300));
  const rssBytes = process.memoryUsage().rss;
  await vm.stop();
  await pool.close();
  process.stdout.write(JSON.stringify({ rssBytes }) + '\n');
}

function measureRssInChild(bytes: number): Promise<number> {
  const main = fileURLToPath(new URL('./main.ts', import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, main, 'memory', '--rss-child', String(bytes)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0) return reject(new Error(`rss child exited ${code}: ${out}`));
      resolve((JSON.parse(line) as { rssBytes: number }).rssBytes);
    });
  });
}

export async function main(args: string[]): Promise<void> {
  const childAt = args.indexOf('--rss-child');
  if (childAt >= 0) return rssChild(Number(args[childAt + 1]));
  const quick = args.includes('--quick');
  const json = args.includes('--json');
  const guestBytes = quick ? 128 * MiB : GiB;
  const log = (line: string): void => void (json ? undefined : process.stderr.write(line + '\n'));

  log(`measuring dirty-log overhead...`);
  const overhead = measureLoggingOverhead();
  log(`measuring harvest of a 1 GiB log...`);
  const harvestPages = GiB / PAGE_SIZE_BYTES;
  const harvest = measureHarvest(harvestPages);
  log(`measuring page digest options...`);
  const digests = measureDigests();
  log(`measuring resident memory of a process hosting ${guestBytes / MiB} MiB...`);
  const rssBytes = await measureRssInChild(guestBytes);
  log(`measuring suspend/resume of ${guestBytes / MiB} MiB against raw I/O...`);
  const io = await measureSuspendResume(guestBytes, 5);

  const result: Result = {
    guestBytes,
    dirtyLogOverhead: overhead.off / overhead.on - 1,
    storesPerSecLogged: Math.round(overhead.on),
    storesPerSecUnlogged: Math.round(overhead.off),
    harvestSparseMs: harvest.sparseMs,
    harvestDenseMs: harvest.denseMs,
    harvestPages,
    pageDigest: 'xxh64',
    ...digests,
    ...io,
    rssBytes,
    rssVsGuest: rssBytes / guestBytes,
  };
  if (json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  const f = (v: number, d = 2): string => v.toFixed(d);
  const rows: [string, string, string][] = [
    ['dirty-log overhead (uniform stores, on vs off)', `${f(result.dirtyLogOverhead * 100, 1)} %`, '≤ 15 %'],
    ['  stores/s logged / unlogged', `${(overhead.on / 1e6).toFixed(1)} M / ${(overhead.off / 1e6).toFixed(1)} M`, ''],
    [`harvest sparse (64 of ${harvestPages} pages)`, `${f(result.harvestSparseMs, 4)} ms`, '≪ 1 ms'],
    [`harvest dense (all ${harvestPages} pages)`, `${f(result.harvestDenseMs)} ms`, ''],
    ...(Object.entries(result.pageDigestGBps) as [PageDigestOption, number][]).map(([name, gbps]): [string, string, string] => [
      `page digest ${name}, one 4 KiB page per call${name === result.pageDigest ? ' (used)' : ''}`,
      `${f(gbps)} GB/s`,
      name === result.pageDigest ? 'fastest 64-bit' : '',
    ]),
    ['memory digest (xxh64, streamed)', `${f(result.memoryDigestGBps)} GB/s`, ''],
    ['zero-page check (isZeroPage): zero / non-zero pages', `${f(result.zeroCheckGBps)} GB/s / ${(result.zeroCheckNonZeroPagesPerSec / 1e6).toFixed(1)} M pages/s`, ''],
    ['zero-page check, Buffer equals a zero page (zero pages)', `${f(result.zeroCheckBufferEqualsGBps)} GB/s`, ''],
    [`raw write + fsync of ${guestBytes / MiB} MiB`, `${f(result.rawWriteMs, 0)} ms`, ''],
    ['suspend (dense memory)', `${f(result.suspendMs, 0)} ms  (${f(result.suspendVsRaw)}× raw, paired)`, '≤ 1.5× raw'],
    [`raw read of ${guestBytes / MiB} MiB`, `${f(result.rawReadMs, 0)} ms`, ''],
    ['resume (read + digest check)', `${f(result.resumeMs, 0)} ms  (${f(result.resumeVsRaw)}× raw, paired)`, '≤ 1.5× raw'],
    [`RSS hosting ${guestBytes / MiB} MiB guest`, `${f(rssBytes / MiB, 0)} MiB  (${f(result.rssVsGuest, 3)}× guest)`, '≤ 1.15× guest'],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  process.stdout.write(`${'measure'.padEnd(w0)}  ${'value'.padEnd(w1)}  target\n`);
  for (const [a, b, c] of rows) process.stdout.write(`${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}\n`);
}
