import { PAGE_BYTES as PAGE_SIZE_BYTES } from './layout.ts';
import type { WorkloadKind } from './spec.ts';

/**
 * What a workload program gets for one vCPU. A program must be deterministic: everything it
 * remembers between steps lives in `registers` (saved in snapshots and migrated), and what it
 * stores depends only on the registers, never on the clock, on other vCPUs' pages, or on
 * module-level variables.
 */
export interface WorkloadContext {
  /** All of guest memory. Write only pages in this vCPU's page set (see vcpuPageCount/vcpuPage). */
  readonly bytes: Uint8Array;
  readonly pageCount: number;
  /** First page a workload may write: RESERVED_PAGES (pages 0 and 1 belong to the hypervisor and images). */
  readonly firstPage: number;
  readonly vcpuIndex: number;
  readonly vcpuCount: number;
  /** This vCPU's 8 workload registers: [0] RNG state (xorshift32, never 0), [1] cursor, [2..7] free. */
  readonly registers: Int32Array;
  /** Numeric knobs from WorkloadSpec.params. */
  readonly params: Readonly<Record<string, number>>;
  /** Marks `page` dirty. Call after every store to the page, never before. */
  markDirty(page: number): void;
}

/** One vCPU's program: `step()` executes exactly one step (a writing workload: one page write). */
export interface WorkloadProgram {
  step(): void;
}

/**
 * A workload: the built-ins below, or a user module loaded by path whose default export (or export
 * named `workload`) is one of these. `create` runs in the pCPU worker each time the vCPU is
 * attached (boot, resume, restore; a migration's destination: at its first run, once the registers
 * have arrived): it must read its state from `ctx.registers`, not reset it.
 */
export interface Workload {
  readonly name: string;
  /** Steps per second when the spec's rate is 0; omit to run as fast as the pool allows. */
  readonly defaultRate?: number;
  create(ctx: WorkloadContext): WorkloadProgram;
}

/** Number of pages in vCPU `ctx.vcpuIndex`'s disjoint page set: pages p ≥ firstPage with (p - firstPage) % vcpus == k. */
export function vcpuPageCount(ctx: WorkloadContext): number {
  const usable = ctx.pageCount - ctx.firstPage;
  return Math.max(0, Math.ceil((usable - ctx.vcpuIndex) / ctx.vcpuCount));
}

/** The guest page of index `i` (0 ≤ i < vcpuPageCount) in this vCPU's page set. */
export function vcpuPage(ctx: WorkloadContext, i: number): number {
  return ctx.firstPage + ctx.vcpuIndex + i * ctx.vcpuCount;
}

/** Advances the RNG in registers[0] (xorshift32) and returns the new state as an unsigned 32-bit number. */
export function nextRandom(registers: Int32Array): number {
  let x = registers[0]!;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  registers[0] = x;
  return x >>> 0;
}

/** Stores `bytesPerWrite` bytes of a value derived from `r` at an offset derived from `r`, then marks the page. */
function writePage(ctx: WorkloadContext, page: number, r: number, bytesPerWrite: number): void {
  const slots = PAGE_SIZE_BYTES / bytesPerWrite;
  const start = page * PAGE_SIZE_BYTES + ((r >>> 8) % slots) * bytesPerWrite;
  ctx.bytes.fill((r & 0xff) | 1, start, start + bytesPerWrite);
  ctx.markDirty(page);
}

function bytesPerWriteOf(ctx: WorkloadContext, fallback: number): number {
  const b = ctx.params.bytesPerWrite ?? fallback;
  if (!(b >= 1 && b <= PAGE_SIZE_BYTES && PAGE_SIZE_BYTES % b === 0)) throw new Error(`bytesPerWrite must divide ${PAGE_SIZE_BYTES}, got ${b}`);
  return b;
}

/** Does nothing each step; 10 steps/s unless the spec sets a rate. */
export const idleWorkload: Workload = {
  name: 'idle',
  defaultRate: 10,
  create: () => ({ step() {} }),
};

/** Each step writes one page chosen uniformly from the vCPU's page set. Params: bytesPerWrite (256). */
export const uniformWorkload: Workload = {
  name: 'uniform',
  create(ctx) {
    const count = vcpuPageCount(ctx);
    const bytesPerWrite = bytesPerWriteOf(ctx, 256);
    const regs = ctx.registers;
    return {
      step() {
        const r = nextRandom(regs);
        if (count > 0) writePage(ctx, vcpuPage(ctx, nextRandom(regs) % count), r, bytesPerWrite);
      },
    };
  },
};

/**
 * A skewed writable working set: `hotPercent` (90) of the writes go to the first `hotsetPages`
 * pages of the VM's workload pages (default a tenth of memory, split over the vCPUs), the rest
 * uniformly anywhere. Params: hotsetPages, hotPercent, bytesPerWrite (256).
 */
export const hotsetWorkload: Workload = {
  name: 'hotset',
  create(ctx) {
    const count = vcpuPageCount(ctx);
    const hotTotal = ctx.params.hotsetPages ?? Math.max(1, Math.floor((ctx.pageCount - ctx.firstPage) / 10));
    const hot = Math.max(1, Math.min(count, Math.ceil(hotTotal / ctx.vcpuCount)));
    const hotPercent = ctx.params.hotPercent ?? 90;
    const bytesPerWrite = bytesPerWriteOf(ctx, 256);
    const regs = ctx.registers;
    return {
      step() {
        const r = nextRandom(regs);
        if (count === 0) return;
        const i = r % 100 < hotPercent ? nextRandom(regs) % hot : nextRandom(regs) % count;
        writePage(ctx, vcpuPage(ctx, i), r, bytesPerWrite);
      },
    };
  },
};

/** Sequential page writes through the vCPU's whole page set, wrapping (cursor in registers[1]). Params: bytesPerWrite (4096). */
export const scanWorkload: Workload = {
  name: 'scan',
  create(ctx) {
    const count = vcpuPageCount(ctx);
    const bytesPerWrite = bytesPerWriteOf(ctx, PAGE_SIZE_BYTES);
    const regs = ctx.registers;
    return {
      step() {
        const r = nextRandom(regs);
        if (count === 0) return;
        const i = regs[1]! >>> 0;
        regs[1] = i + 1 >= count ? 0 : i + 1;
        writePage(ctx, vcpuPage(ctx, i), r, bytesPerWrite);
      },
    };
  },
};

/** The built-in workloads by kind. */
export const BUILTIN_WORKLOADS: Readonly<Record<Exclude<WorkloadKind, 'module'>, Workload>> = {
  idle: idleWorkload,
  uniform: uniformWorkload,
  hotset: hotsetWorkload,
  scan: scanWorkload,
};

/** Whether `value` has the shape of a Workload. */
export function isWorkload(value: unknown): value is Workload {
  return typeof value === 'object' && value !== null && typeof (value as Workload).name === 'string' && typeof (value as Workload).create === 'function';
}
