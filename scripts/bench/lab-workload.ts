// The lab's guest workload for VMs booted inside agent processes (loaded by path as a `module`
// workload): on its first attach each vCPU fills `params.fill` of its pages with data (a booted
// guest's memory is not zero), then it runs the built-in workload `params.inner`
// (0 idle, 1 uniform, 2 hotset, 3 scan) unchanged. Register 7 records that the fill is done, so a
// migrated or restored vCPU does not fill again. Deterministic: the fill depends only on the page.
import { BUILTIN_WORKLOADS, vcpuPage, vcpuPageCount, type Workload } from '../../packages/vm/src/workloads.ts';

/** Index of each built-in in `params.inner`. */
export const LAB_INNER_KINDS = ['idle', 'uniform', 'hotset', 'scan'] as const;

const FILLED_REGISTER = 7;

export const workload: Workload = {
  name: 'lab',
  create(ctx) {
    const kind = LAB_INNER_KINDS[ctx.params['inner'] ?? 0] ?? 'idle';
    const regs = ctx.registers;
    if (regs[FILLED_REGISTER] === 0) {
      const count = Math.floor(vcpuPageCount(ctx) * Math.min(1, Math.max(0, ctx.params['fill'] ?? 0)));
      const words = new Int32Array(ctx.bytes.buffer, ctx.bytes.byteOffset, Math.floor(ctx.bytes.byteLength / 4)); // not `>> 2`: 4 GiB overflows 32 bits
      for (let i = 0; i < count; i++) {
        const page = vcpuPage(ctx, i);
        const base = page * 1024;
        words.fill(0x5a5a5a5a ^ page, base, base + 1024);
        words[base] = page;
        ctx.markDirty(page);
      }
      regs[FILLED_REGISTER] = 1;
    }
    return BUILTIN_WORKLOADS[kind].create(ctx);
  },
};
