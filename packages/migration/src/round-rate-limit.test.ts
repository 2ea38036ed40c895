import { afterEach, describe, expect, it } from 'vitest';
import { MigrationOptionsError } from './errors.ts';
import { xenRateLimit } from './round-rate-limit.ts';
import type { SenderRoundStats } from './sender.ts';
import { FakeVm } from './test-utils/fake-vm.ts';
import { createHarness } from './test-utils/harness.ts';

const MBIT = 1e6 / 8; // bytes per second in one Mbit/s

function round(n: number, dirtyPages: number, durationMs: number, final = false): SenderRoundStats {
  return {
    round: n,
    final,
    durationMs,
    pagesSent: 0,
    bytesSent: 0,
    dirtyPages,
    dirtyRatePagesPerSec: dirtyPages / (durationMs / 1000),
    bandwidthBytesPerSec: 0,
    expectedDowntimeMs: 0,
    throttlePercent: 0,
    pagesLeft: dirtyPages,
    zeroPagesSent: 0,
    pagesRedirtied: 0,
  };
}

describe('xenRateLimit (Clark et al. 2005, dynamic rate limiting)', () => {
  const xen = xenRateLimit();

  it('starts at 100 Mbit/s and runs stop-and-copy at the 500 Mbit/s cap', () => {
    expect(xen.rateForRound(1, false, [])).toBe(Math.floor(100 * MBIT));
    expect(xen.rateForRound(4, true, [round(1, 10, 100), round(2, 10, 100), round(3, 10, 100)])).toBe(Math.floor(500 * MBIT));
  });

  it('raises each next round to the measured dirty rate plus 50 Mbit/s, capped at 500 Mbit/s', () => {
    // 3052 pages in 1 s = 100 Mbit/s of dirtying (3052 × 4096 × 8 ≈ 100.0e6) → 150 Mbit/s next.
    const r1 = round(1, 3052, 1000);
    expect(xen.rateForRound(2, false, [r1]) / MBIT).toBeCloseTo((3052 * 4096 * 8) / 1e6 + 50, 3);
    // Dirtying at 600 Mbit/s: capped.
    const hot = round(2, Math.round((600 * MBIT) / 4096), 1000);
    expect(xen.rateForRound(3, false, [r1, hot])).toBe(Math.floor(500 * MBIT));
  });

  it('stops pre-copy when the dirty rate needs more than the cap, or under 256 KiB remain', () => {
    expect(xen.stopAfter!([round(1, Math.round((460 * MBIT) / 4096), 1000)])).toBe(true); // 460 + 50 > 500
    expect(xen.stopAfter!([round(1, Math.round((400 * MBIT) / 4096), 1000)])).toBe(false);
    expect(xen.stopAfter!([round(1, 63, 1000)])).toBe(true); // 252 KiB left
    expect(xen.stopAfter!([round(1, 64, 1000)])).toBe(false);
    expect(xen.stopAfter!([])).toBe(false);
  });

  it('refuses non-positive or inverted rates', () => {
    expect(() => xenRateLimit({ startBitsPerSec: 0 })).toThrow(MigrationOptionsError);
    expect(() => xenRateLimit({ startBitsPerSec: 600e6, maxBitsPerSec: 500e6 })).toThrow(MigrationOptionsError);
    expect(() => xenRateLimit({ stepBitsPerSec: Number.NaN })).toThrow(MigrationOptionsError);
  });
});

describe('sender roundRateLimit hook', () => {
  const vms: FakeVm[] = [];
  afterEach(async () => {
    for (const vm of vms.splice(0)) await vm.stop();
  });

  it('each round runs at the rate the policy chose from the previous round, and the stream keeps to it', async () => {
    // Scaled up 4× so the test is quick: 400 → dirty + 200, cap 2000 Mbit/s (50 → 250 MB/s).
    const options = { startBitsPerSec: 400e6, stepBitsPerSec: 200e6, maxBitsPerSec: 2000e6 };
    const vm = new FakeVm({ pageCount: 4096, writablePages: 512, writesPerSec: 20_000, fillFraction: 1, seed: 5 });
    vms.push(vm);
    vm.start();
    const h = createHarness({ vm, policy: { roundRateLimit: xenRateLimit(options), maxDowntimeMs: 5 } });
    const [done, activated] = await Promise.all([h.sender.run(), h.receiver.done]);
    expect(Buffer.compare(Buffer.from(activated.memory.bytes), Buffer.from(vm.memory.bytes))).toBe(0);
    const stats = done.report.roundStats;
    expect(stats[0]!.rateLimitBytesPerSec).toBe(50e6);
    for (let i = 1; i < stats.length; i++) {
      const s = stats[i]!;
      const prev = stats[i - 1]!;
      const expected = s.final ? 250e6 : Math.min(250e6, prev.dirtyRatePagesPerSec * 4096 + 25e6);
      expect(s.rateLimitBytesPerSec).toBe(Math.floor(expected));
    }
    // Round 1 (16 MiB at 50 MB/s, 2.5 MB burst): at least ~270 ms, so its bandwidth stays near the limit.
    expect(stats[0]!.durationMs).toBeGreaterThan(250);
    expect(stats[0]!.bandwidthBytesPerSec).toBeLessThan(50e6 * 1.3);
    expect(['converged', 'rate-limit', 'max-rounds', 'no-progress']).toContain(done.report.stopReason);
  });

  it('without the hook rounds carry no rate limit (existing behaviour unchanged)', async () => {
    const vm = new FakeVm({ pageCount: 256, fillFraction: 1 });
    vms.push(vm);
    const h = createHarness({ vm });
    const [done] = await Promise.all([h.sender.run(), h.receiver.done]);
    expect(done.report.roundStats.every((s) => s.rateLimitBytesPerSec === undefined)).toBe(true);
  });
});
