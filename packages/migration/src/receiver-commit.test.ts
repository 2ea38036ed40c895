import { describe, expect, it } from 'vitest';
import type { GuestMemory } from '@ferry/memory';
import { InvalidTransitionError } from './errors.ts';
import { FakeVm } from './test-utils/fake-vm.ts';
import { createHarness } from './test-utils/harness.ts';

describe('receiver commit() on the commit point\'s word', () => {
  it('activates at once, before the source has its decision; the source\'s later activate is ignored and it completes', async () => {
    const vm = new FakeVm({ pageCount: 128, fillFraction: 1 });
    const order: string[] = [];
    let releaseSource!: () => void;
    let announced: string | undefined;
    const h = createHarness(
      {
        vm,
        // The source's own way to the decision is slow: the destination must not wait for it.
        commit: async () => {
          order.push('source asks');
          await new Promise<void>((r) => (releaseSource = r));
          order.push('source decided');
          return 'commit' as const;
        },
      },
      {
        announceReady: (digest) => {
          announced = digest;
          order.push('destination announces');
          setTimeout(() => h.receiver.commit(), 5); // the coordinator answers the destination directly
        },
        activate: () => void order.push('destination activates'),
      },
    );
    const run = h.sender.run();
    const arrived = await h.receiver.done;
    expect(order).toEqual(['destination announces', 'source asks', 'destination activates']);
    expect(announced).toBe(arrived.digest);
    h.receiver.commit(); // a second word changes nothing
    releaseSource();
    const done = await run;
    expect(order.at(-1)).toBe('source decided');
    expect(done.report.downtimeMs).toBeGreaterThanOrEqual(0);
    expect(done.report.resumedAtMs).toBe(arrived.resumedAtMs);
    expect(Buffer.compare(arrived.memory.bytes, vm.memory.bytes)).toBe(0);
  });

  it('takes the resume time activate reports (when the vCPUs were released), not when it returned', async () => {
    const vm = new FakeVm({ pageCount: 64, fillFraction: 0.5 });
    let released = 0;
    const h = createHarness(
      { vm },
      {
        activate: async () => {
          released = performance.timeOrigin + performance.now();
          await new Promise((r) => setTimeout(r, 30)); // the releasing thread descheduled a while
          return { resumedAtMs: released };
        },
      },
    );
    const [done, arrived] = await Promise.all([h.sender.run(), h.receiver.done]);
    expect(arrived.resumedAtMs).toBe(released);
    expect(done.report.resumedAtMs).toBe(released);
    expect(done.report.downtimeMs).toBe(released - done.report.pausedAtMs);
  });

  it('is refused before ready, changing nothing; the migration then completes normally', async () => {
    const vm = new FakeVm({ pageCount: 64, fillFraction: 0.5 });
    const h = createHarness({ vm });
    expect(() => h.receiver.commit()).toThrow(InvalidTransitionError);
    expect(h.receiver.state).toBe('awaiting-hello');
    await Promise.all([h.sender.run(), h.receiver.done]);
  });

  it('starts the prefault hook in round 1 with the source\'s page map and stops it once the last round is in', async () => {
    const vm = new FakeVm({ pageCount: 64, fillFraction: 0.5 });
    const events: string[] = [];
    let given: GuestMemory | undefined;
    let map: Uint8Array | undefined;
    const h = createHarness(
      { vm },
      {
        prefault: (memory, pages) => {
          given = memory;
          map = pages;
          events.push(`start ${memory.pageCount} in round ${h.receiver.receiverStats.rounds + 1}`);
          return { stop: () => events.push(`stop in ${h.receiver.state}`) };
        },
      },
    );
    const [, arrived] = await Promise.all([h.sender.run(), h.receiver.done]);
    expect(events).toEqual(['start 64 in round 1', 'stop in receiving']);
    expect(given).toBe(arrived.memory);
    // The map is the source's "ever written" pages: exactly what round 1 could send.
    for (let p = 0; p < 64; p++) expect(((map![p >> 3]! >> (p & 7)) & 1) === 1, `page ${p}`).toBe(vm.dirtyLog.isEverWritten(p));
    expect(map!.some((b) => b !== 0)).toBe(true);
  });
});
