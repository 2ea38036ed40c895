import { PAGES_PER_WORD } from '@ferry/memory';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CpuPool } from './cpu-pool.ts';
import { testSpec, waitFor } from './test-support.ts';
import { Vm } from './vm.ts';
import { WwsBusyError, WwsOptionsError, dirtiedWithinMs, isSamplingDirtyLog, predictPrecopy, sampleWritableWorkingSet, type WwsSampling } from './wws.ts';

let pool: CpuPool;
beforeAll(() => {
  pool = new CpuPool({ pcpus: 1 });
});
afterAll(async () => {
  await pool.close();
});

/** A synthetic trace: sample i dirties the pages `pagesOf(i)`. */
function trace(pageCount: number, samples: number, intervalMs: number, pagesOf: (i: number) => Iterable<number>): WwsSampling {
  const words = Math.ceil(pageCount / PAGES_PER_WORD);
  const union = new Set<number>();
  const bitmaps: Int32Array[] = [];
  const out = [];
  for (let i = 0; i < samples; i++) {
    const b = new Int32Array(words);
    let n = 0;
    for (const p of pagesOf(i)) {
      if ((b[p >>> 5]! & (1 << (p & 31))) === 0) n++;
      b[p >>> 5] = b[p >>> 5]! | (1 << (p & 31));
      union.add(p);
    }
    bitmaps.push(b);
    out.push({ atMs: (i + 1) * intervalMs, intervalMs, dirtyPages: n, dirtyRatePagesPerSec: (n / intervalMs) * 1000 });
  }
  return { vm: 'synthetic', samples: out, wwsPages: union.size, wwsBytes: union.size * 4096, memoryBytes: pageCount * 4096, pageCount, intervalMs, durationMs: samples * intervalMs, bitmaps };
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

describe('sampleWritableWorkingSet', () => {
  it('finds a hot set as the working set, leaves the log a superset, and refuses a second sampler', async () => {
    const hotsetPages = 32;
    const vm = Vm.create(testSpec({ id: 'vm-wws', memoryBytes: 4 << 20, workload: { kind: 'hotset', seed: 5, rate: 20_000, params: { hotsetPages, hotPercent: 100 } } }), pool);
    await vm.start();
    try {
      await waitFor(() => vm.totalSteps() > 200, 'guest progress');
      const running = sampleWritableWorkingSet(vm, { samples: 6, intervalMs: 20 });
      expect(isSamplingDirtyLog(vm.dirtyLog)).toBe(true);
      await expect(sampleWritableWorkingSet(vm, { samples: 1 })).rejects.toBeInstanceOf(WwsBusyError);
      const s = await running;
      expect(isSamplingDirtyLog(vm.dirtyLog)).toBe(false);
      expect(s.samples).toHaveLength(6);
      expect(s.bitmaps).toHaveLength(6);
      // Pages 2.. hold the hot set; page 0 is the heartbeat page: nothing else is written.
      expect(s.wwsPages).toBeGreaterThan(1);
      expect(s.wwsPages).toBeLessThanOrEqual(hotsetPages + 1);
      for (const x of s.samples) {
        expect(x.dirtyPages).toBeLessThanOrEqual(s.wwsPages);
        expect(x.intervalMs).toBeGreaterThan(0);
      }
      expect(s.durationMs).toBeGreaterThanOrEqual(6 * 20 * 0.9);
      // Every page sampled is dirty again afterwards (a later migration misses nothing).
      for (const b of s.bitmaps) {
        for (let w = 0; w < b.length; w++) {
          for (let bit = 0; bit < 32; bit++) if (b[w]! & (1 << bit)) expect(vm.dirtyLog.isDirty(w * 32 + bit)).toBe(true);
        }
      }
    } finally {
      await vm.stop();
    }
  });

  it('refuses bad options', async () => {
    const vm = Vm.create(testSpec({ id: 'vm-wws-opts' }), pool);
    await expect(sampleWritableWorkingSet(vm, { samples: 0 })).rejects.toBeInstanceOf(WwsOptionsError);
    await expect(sampleWritableWorkingSet(vm, { intervalMs: 0 })).rejects.toBeInstanceOf(WwsOptionsError);
    expect(isSamplingDirtyLog(vm.dirtyLog)).toBe(false);
  });
});

describe('predictPrecopy over a trace', () => {
  it('a hot set rewritten every interval saturates: windows of many samples dirty the hot set, not more', () => {
    const s = trace(10_000, 10, 50, () => range(100, 1100)); // 1000 hot pages every 50 ms
    expect(dirtiedWithinMs(s, 50)).toBe(1000);
    expect(dirtiedWithinMs(s, 200)).toBe(1000);
    expect(dirtiedWithinMs(s, 5_000)).toBe(1000); // beyond the trace: no growth
    const small = dirtiedWithinMs(s, 5);
    expect(small).toBeGreaterThan(0);
    expect(small).toBeLessThan(1000);
  });

  it('predicts the downtime of a hot set as the hot set at the bandwidth, and idle as near zero', () => {
    const hot = trace(10_000, 10, 50, () => range(100, 1100));
    const bw = 100 * 4096 * 1000; // 100 pages per ms
    const p = predictPrecopy(hot, { bandwidthBytesPerSec: bw, maxDowntimeMs: 300 });
    expect(p.rounds[0]!.pagesSent).toBe(10_000);
    expect(p.finalPages).toBeLessThanOrEqual(1000);
    expect(p.downtimeMs).toBeCloseTo(p.finalPages / 100, 6);
    expect(p.stopReason).toBe('converged');
    const idle = predictPrecopy(trace(10_000, 10, 50, () => []), { bandwidthBytesPerSec: bw });
    expect(idle.rounds).toHaveLength(1);
    expect(idle.downtimeMs).toBe(0);
  });

  it('a scan dirtying faster than the link never converges and reports its large downtime', () => {
    // 2000 fresh pages per 10 ms = 200 pages/ms against a 100 pages/ms link.
    const scan = trace(100_000, 20, 10, (i) => range(i * 2000, (i + 1) * 2000));
    const p = predictPrecopy(scan, { bandwidthBytesPerSec: 100 * 4096 * 1000, maxDowntimeMs: 50, maxRounds: 10 });
    expect(p.stopReason).not.toBe('converged');
    expect(p.downtimeMs).toBeGreaterThan(50);
    expect(() => predictPrecopy(scan, { bandwidthBytesPerSec: 0 })).toThrow(WwsOptionsError);
  });
});
