import { describe, expect, it } from 'vitest';
import type { ReceivedVm } from './source-vm.ts';
import { FakeVm } from './test-utils/fake-vm.ts';
import { createHarness } from './test-utils/harness.ts';

describe('receiver prepare hook', () => {
  it('runs after ready and before the commit decides; activate waits for it to settle', async () => {
    const vm = new FakeVm({ pageCount: 128, fillFraction: 1 });
    const order: string[] = [];
    let releasePrepare!: () => void;
    let prepared: ReceivedVm | undefined;
    const h = createHarness(
      {
        vm,
        commit: async () => {
          order.push('commit');
          await new Promise((r) => setTimeout(r, 20));
          return 'commit' as const;
        },
      },
      {
        prepare: async (received) => {
          order.push('prepare');
          prepared = received;
          await new Promise<void>((r) => (releasePrepare = r));
          order.push('prepared');
        },
        activate: () => {
          order.push('activate');
        },
      },
    );
    h.sender.on('state', ({ to }) => {
      if (to === 'committing') order.push('ready'); // the sender got ready
    });
    const run = h.sender.run();
    await new Promise((r) => setTimeout(r, 60));
    expect(order).toEqual(['ready', 'commit', 'prepare']); // activate is held back by the unsettled prepare
    releasePrepare();
    const [, arrived] = await Promise.all([run, h.receiver.done]);
    expect(order).toEqual(['ready', 'commit', 'prepare', 'prepared', 'activate']);
    expect(prepared!.memory).toBe(arrived.memory);
    expect(Buffer.compare(arrived.memory.bytes, vm.memory.bytes)).toBe(0);
  });

  it('a failing prepare is no migration failure: activate still runs', async () => {
    const vm = new FakeVm({ pageCount: 64, fillFraction: 0.5 });
    let activated = false;
    const h = createHarness({ vm }, { prepare: () => Promise.reject(new Error('no pool')), activate: () => void (activated = true) });
    await Promise.all([h.sender.run(), h.receiver.done]);
    expect(activated).toBe(true);
  });

  it('is never called when the migration fails before ready (digest refused)', async () => {
    const vm = new FakeVm({ pageCount: 64, fillFraction: 1 });
    let calls = 0;
    const h = createHarness({ vm, policy: { verify: 'full' } }, { prepare: () => void calls++ });
    h.sender.on('round', (s) => {
      if (s.round === 1) vm.memory.bytes[5 * 4096] = vm.memory.bytes[5 * 4096]! ^ 0xff; // a write the dirty log missed
    });
    await expect(h.sender.run()).rejects.toMatchObject({ code: 'FERRY_ERR_MIGRATION_DIGEST' });
    await new Promise((r) => setImmediate(r));
    expect(calls).toBe(0);
  });
  it('hands over the pages that hold non-zero data (writtenPageMap), exactly', async () => {
    const vm = new FakeVm({ pageCount: 256, fillFraction: 0.3 });
    vm.memory.bytes.fill(0, 7 * 4096, 8 * 4096); // written once, zero again: not a written page
    vm.dirtyLog.markEverWritten([7]);
    let given: Uint8Array | undefined;
    const h = createHarness({ vm }, { prepare: (received) => void (given = received.writtenPageMap) });
    await Promise.all([h.sender.run(), h.receiver.done]);
    const words = new Int32Array(vm.memory.buffer);
    const expected: number[] = [];
    for (let p = 0; p < 256; p++) if (words.subarray(p * 1024, (p + 1) * 1024).some((w) => w !== 0)) expected.push(p);
    expect(expected.length).toBeGreaterThan(10);
    expect(given!.byteLength).toBe(256 / 8);
    expect(Array.from({ length: 256 }, (_, p) => p).filter((p) => (given![p >> 3]! & (1 << (p & 7))) !== 0)).toEqual(expected);
  });
});
