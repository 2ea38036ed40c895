import { afterEach, describe, expect, it } from 'vitest';
import { FakeVm } from './test-utils/fake-vm.ts';
import { createHarness } from './test-utils/harness.ts';

// Guest pages at and beyond 2 GiB have byte offsets past 32 bits: a `page << 12` there wraps
// negative. Memory is allocated lazily, so a 2 GiB guest that only writes its top pages is cheap.
const FIRST_PAGE_PAST_2_GIB = 524_288;

const vms: FakeVm[] = [];
afterEach(async () => {
  for (const vm of vms.splice(0)) await vm.stop();
});

describe('guests larger than 2 GiB', () => {
  it('pages beyond 2 GiB migrate intact while being written', async () => {
    const vm = new FakeVm({ pageCount: FIRST_PAGE_PAST_2_GIB + 64, firstPage: FIRST_PAGE_PAST_2_GIB, writablePages: 64, mode: 'uniform', writesPerSec: 2000, fillFraction: 0 });
    vms.push(vm);
    vm.start();
    const startedAt = Date.now();
    while (vm.writes < 100 && Date.now() - startedAt < 5000) await new Promise((r) => setTimeout(r, 5));
    const h = createHarness({ vm, policy: { maxDowntimeMs: 50 } });
    const [done, activated] = await Promise.all([h.sender.run(), h.receiver.done]);
    expect(done.report.digestVerified).toBe(true);
    expect(vm.memory.pages(FIRST_PAGE_PAST_2_GIB, 64).some((b) => b !== 0)).toBe(true);
    expect(Buffer.compare(activated.memory.pages(FIRST_PAGE_PAST_2_GIB, 64), vm.memory.pages(FIRST_PAGE_PAST_2_GIB, 64))).toBe(0);
  });
});
