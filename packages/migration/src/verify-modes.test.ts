import { describe, expect, it } from 'vitest';
import { FakeVm } from './test-utils/fake-vm.ts';
import { createHarness } from './test-utils/harness.ts';

/** A write the dirty log never hears of (a buggy vCPU): what each verify mode can and cannot see. */
function missedWriteAfterRound1(vm: FakeVm, h: ReturnType<typeof createHarness>): void {
  h.sender.on('round', (s) => {
    if (s.round === 1) vm.memory.bytes[5 * 4096 + 17] = vm.memory.bytes[5 * 4096 + 17]! ^ 0xff; // no dirtyLog.mark
  });
}

describe('verify modes', () => {
  it('full verification catches a write the dirty log missed: digest refused, source resumed', async () => {
    const vm = new FakeVm({ pageCount: 256, fillFraction: 1 });
    const h = createHarness({ vm, policy: { verify: 'full' } });
    missedWriteAfterRound1(vm, h);
    await expect(h.sender.run()).rejects.toMatchObject({ code: 'FERRY_ERR_MIGRATION_DIGEST' });
    await expect(h.receiver.done).rejects.toMatchObject({ code: 'FERRY_ERR_MIGRATION_DIGEST' });
    expect(vm.resumes).toBe(1);
    expect(h.activated).toBeUndefined();
  });

  it('incremental verification proves what was sent arrived, and (as documented) cannot see a missed write', async () => {
    const vm = new FakeVm({ pageCount: 256, fillFraction: 1 });
    const h = createHarness({ vm, policy: { verify: 'incremental' } });
    missedWriteAfterRound1(vm, h);
    const [, arrived] = await Promise.all([h.sender.run(), h.receiver.done]);
    expect(arrived.memory.bytes[5 * 4096 + 17]).not.toBe(vm.memory.bytes[5 * 4096 + 17]);
  });

  it('incremental verification refuses a page corrupted on the way', async () => {
    const vm = new FakeVm({ pageCount: 256, fillFraction: 1 });
    const h = createHarness({ vm, policy: { verify: 'incremental' } });
    const sendFrame = h.source.sendFrame.bind(h.source);
    let n = 0;
    h.source.sendFrame = (parts) => {
      const copy = parts.map((p) => p.slice());
      if (n++ === 0) copy[1]![100]! ^= 1; // flip a bit in the first page data
      sendFrame(copy);
    };
    await expect(h.sender.run()).rejects.toMatchObject({ code: 'FERRY_ERR_MIGRATION_DIGEST' });
    expect(vm.resumes).toBe(1);
  });
});
