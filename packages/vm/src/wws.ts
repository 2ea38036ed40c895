import { PAGE_SIZE_BYTES, PAGES_PER_WORD, popcount32 } from '@ferry/memory';
import type { DirtyLog } from '@ferry/memory';
import type { WwsReport, WwsSample } from '@ferry/protocol';
import { VmError } from './errors.ts';

/**
 * Writable-working-set sampling (Clark et al. 2005, section 4): harvest a running VM's dirty log
 * every `intervalMs` without migrating, count the pages each interval dirtied, and keep each
 * interval's page set so that pre-copy can be simulated over the trace (`predictPrecopy`).
 *
 * Only one consumer may harvest a dirty log at a time: never sample a VM that is migrating or
 * taking a snapshot (the caller, an agent, checks that; `isSamplingDirtyLog` tells it a sampling
 * is in progress). A second sampling of the same log is refused (WwsBusyError). At the end every
 * bit the sampler harvested is set again, so the log is left a superset of what it was.
 */

/** What the sampler needs of a VM (a Vm has both). */
export interface WwsSource {
  readonly id: string;
  readonly dirtyLog: DirtyLog;
}

/** Options of sampleWritableWorkingSet. */
export interface WwsOptions {
  /** Number of intervals. Default 20. */
  readonly samples?: number;
  /** Interval between harvests. Default 50 ms (the paper's figure). */
  readonly intervalMs?: number;
  /** Aborts the sampling early; what was sampled so far is returned. */
  readonly signal?: AbortSignal;
  /** Clock in ms; default performance.timeOrigin + performance.now(). */
  readonly now?: () => number;
}

/** A finished sampling: the API's WwsReport plus each interval's page set for prediction. */
export interface WwsSampling extends WwsReport {
  readonly pageCount: number;
  /** Mean requested interval (ms). */
  readonly intervalMs: number;
  /** Sampled time in ms (sum of the measured intervals). */
  readonly durationMs: number;
  /** One dirty bitmap per sample (32 pages a word), same order as `samples`. */
  readonly bitmaps: readonly Int32Array[];
}

/** Sampling a dirty log that is already being sampled. */
export class WwsBusyError extends VmError {
  readonly vmId: string;
  constructor(vmId: string) {
    super('FERRY_ERR_VM_WWS_BUSY', `vm ${vmId}: its dirty log is already being sampled`);
    this.vmId = vmId;
  }
}

/** Bad sampling or prediction options. */
export class WwsOptionsError extends VmError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('FERRY_ERR_VM_WWS_OPTIONS', `${field} ${message}`);
    this.field = field;
  }
}

const sampling = new WeakSet<DirtyLog>();

/** Whether a WWS sampling is harvesting `log` right now (an agent must not start a migration then). */
export function isSamplingDirtyLog(log: DirtyLog): boolean {
  return sampling.has(log);
}

const wallClockMs = (): number => performance.timeOrigin + performance.now();

/**
 * Samples the VM's writable working set: `samples` harvests `intervalMs` apart (after one harvest
 * that discards what was dirty before). Legal while the VM runs and nothing else harvests its log.
 */
export async function sampleWritableWorkingSet(vm: WwsSource, options: WwsOptions = {}): Promise<WwsSampling> {
  const samples = options.samples ?? 20;
  const intervalMs = options.intervalMs ?? 50;
  if (!Number.isInteger(samples) || samples < 1 || samples > 100_000) throw new WwsOptionsError('samples', `must be an integer from 1 to 100000, got ${samples}`);
  if (!(intervalMs >= 1 && intervalMs <= 3_600_000)) throw new WwsOptionsError('intervalMs', `must be from 1 to 3600000, got ${intervalMs}`);
  const log = vm.dirtyLog;
  if (sampling.has(log)) throw new WwsBusyError(vm.id);
  sampling.add(log);
  const now = options.now ?? wallClockMs;
  const words = Math.ceil(log.pageCount / PAGES_PER_WORD);
  const taken = new Int32Array(words);
  const take = (into?: Int32Array): number => {
    const pages = log.harvest();
    for (let i = 0; i < pages.length; i++) {
      const p = pages[i]!;
      const bit = 1 << (p & 31);
      taken[p >>> 5] = taken[p >>> 5]! | bit;
      if (into) into[p >>> 5] = into[p >>> 5]! | bit;
    }
    return pages.length;
  };
  const union = new Int32Array(words);
  const out: WwsSample[] = [];
  const bitmaps: Int32Array[] = [];
  let durationMs = 0;
  try {
    take();
    let last = now();
    for (let i = 0; i < samples && !options.signal?.aborted; i++) {
      const due = last + intervalMs;
      await sleepUntil(due, now, options.signal);
      const bitmap = new Int32Array(words);
      const dirtyPages = take(bitmap);
      const at = now();
      const elapsed = Math.max(0.001, at - last);
      last = at;
      durationMs += elapsed;
      for (let w = 0; w < words; w++) union[w] = union[w]! | bitmap[w]!;
      bitmaps.push(bitmap);
      out.push({ atMs: at, intervalMs: elapsed, dirtyPages, dirtyRatePagesPerSec: dirtyPages / (elapsed / 1000) });
    }
  } finally {
    // Leave the log a superset of what it was: set again every bit this sampling took.
    for (let w = 0; w < words; w++) {
      let v = taken[w]!;
      while (v !== 0) {
        const low = v & -v;
        log.mark((w << 5) + (31 - Math.clz32(low)));
        v ^= low;
      }
    }
    sampling.delete(log);
  }
  const wwsPages = countBits(union);
  return { vm: vm.id, samples: out, wwsPages, wwsBytes: wwsPages * PAGE_SIZE_BYTES, memoryBytes: log.pageCount * PAGE_SIZE_BYTES, pageCount: log.pageCount, intervalMs, durationMs, bitmaps };
}

async function sleepUntil(dueMs: number, now: () => number, signal: AbortSignal | undefined): Promise<void> {
  const waitMs = dueMs - now();
  if (waitMs <= 0 || signal?.aborted) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, waitMs);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

function countBits(words: Int32Array): number {
  let n = 0;
  for (let w = 0; w < words.length; w++) if (words[w] !== 0) n += popcount32(words[w]!);
  return n;
}

// ----- prediction -------------------------------------------------------------------------------

/** Options of predictPrecopy. The stop rule is the Ferry sender's (see @ferry/migration policy). */
export interface PredictOptions {
  /** Link bandwidth for page data, bytes/s. */
  readonly bandwidthBytesPerSec: number;
  /** Bytes round 1 sends. Default: the whole of memory (pass the VM's non-zero bytes when known). */
  readonly firstRoundBytes?: number;
  /** Downtime ceiling of the stop rule. Default 300 ms. */
  readonly maxDowntimeMs?: number;
  /** Default 30. */
  readonly maxRounds?: number;
  /** Fixed switch-over cost added to the last round's copy time. Default 0. */
  readonly switchoverMs?: number;
}

/** One simulated pre-copy round. */
export interface PredictedRound {
  readonly round: number;
  readonly pagesSent: number;
  readonly durationMs: number;
  /** Pages the trace says the guest dirtied during this round. */
  readonly pagesDirtied: number;
}

/** Pre-copy simulated over a WWS trace, as the paper's figure 4 does. */
export interface PrecopyPrediction {
  readonly bandwidthBytesPerSec: number;
  readonly rounds: readonly PredictedRound[];
  /** Pages copied while paused. */
  readonly finalPages: number;
  /** finalPages at the bandwidth, plus switchoverMs. */
  readonly downtimeMs: number;
  readonly totalMs: number;
  readonly stopReason: 'converged' | 'max-rounds' | 'no-progress';
}

/**
 * Distinct pages the guest dirties in a window of `windowMs`, from the trace: for windows of whole
 * samples, the mean over every start position of the union of consecutive samples (interpolated
 * between whole counts); below one interval, a uniform-writes model fitted to the trace
 * (W·(1 − e^(−r·t/W)), W the working set, r from the mean per-sample count: saturates for a hot
 * set, linear for spread writes); beyond the trace, the union's growth over its second half,
 * extrapolated linearly and capped at the VM size.
 */
export function dirtiedWithinMs(s: WwsSampling, windowMs: number): number {
  const n = s.bitmaps.length;
  if (n === 0 || windowMs <= 0) return 0;
  const stepMs = s.durationMs / n;
  const k = windowMs / stepMs;
  if (k < 1) {
    const d1 = mean(s.samples.map((x) => x.dirtyPages));
    const w = s.wwsPages;
    if (d1 <= 0) return 0;
    if (d1 >= w * 0.999) return d1 * k;
    const rate = -w * Math.log(1 - d1 / w); // page writes per interval that would dirty d1 distinct pages of w
    return w * (1 - Math.exp((-rate * k) / w));
  }
  if (k > n) {
    const full = s.wwsPages;
    const halfWidth = Math.max(1, Math.floor(n / 2));
    const growthPerSample = n > halfWidth ? Math.max(0, (full - meanWindowUnion(s.bitmaps, halfWidth)) / (n - halfWidth)) : 0;
    return Math.min(s.pageCount, full + growthPerSample * (k - n));
  }
  const lo = Math.floor(k);
  const hi = Math.min(n, lo + 1);
  const a = meanWindowUnion(s.bitmaps, lo);
  if (hi === lo) return a;
  const b = meanWindowUnion(s.bitmaps, hi);
  return a + (b - a) * (k - lo);
}

/**
 * Simulates iterative pre-copy over the trace at a bandwidth: round 1 sends `firstRoundBytes`,
 * each next round the pages dirtied during the previous one, until the Ferry stop rule (estimated
 * downtime under maxDowntimeMs and the residual no longer halving), maxRounds, or five rounds
 * without progress. Returns the rounds and the predicted downtime.
 */
export function predictPrecopy(s: WwsSampling, options: PredictOptions): PrecopyPrediction {
  const bw = options.bandwidthBytesPerSec;
  if (!(bw > 0 && Number.isFinite(bw))) throw new WwsOptionsError('bandwidthBytesPerSec', `must be a positive number, got ${bw}`);
  const maxDowntimeMs = options.maxDowntimeMs ?? 300;
  const maxRounds = options.maxRounds ?? 30;
  const switchoverMs = options.switchoverMs ?? 0;
  const msFor = (pages: number): number => ((pages * PAGE_SIZE_BYTES) / bw) * 1000;
  const rounds: PredictedRound[] = [];
  let toSend = (options.firstRoundBytes ?? s.memoryBytes) / PAGE_SIZE_BYTES;
  let residualIn = s.pageCount;
  let best = Infinity;
  let stale = 0;
  let totalMs = 0;
  let stopReason: PrecopyPrediction['stopReason'] = 'max-rounds';
  for (let round = 1; ; round++) {
    const durationMs = msFor(toSend);
    const dirtied = Math.round(dirtiedWithinMs(s, durationMs));
    rounds.push({ round, pagesSent: Math.round(toSend), durationMs, pagesDirtied: dirtied });
    totalMs += durationMs;
    const expected = msFor(dirtied) + switchoverMs;
    if (expected <= maxDowntimeMs && (dirtied * 2 > residualIn || expected - switchoverMs < 1)) {
      stopReason = 'converged';
      break;
    }
    if (round >= maxRounds) break;
    if (dirtied < best) {
      best = dirtied;
      stale = 0;
    } else if (++stale >= 5) {
      stopReason = 'no-progress';
      break;
    }
    residualIn = dirtied;
    toSend = dirtied;
  }
  const finalPages = rounds.at(-1)!.pagesDirtied;
  const downtimeMs = msFor(finalPages) + switchoverMs;
  return { bandwidthBytesPerSec: bw, rounds, finalPages, downtimeMs, totalMs: totalMs + downtimeMs, stopReason };
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
}

/** Mean over start positions of the distinct pages in `width` consecutive samples. */
function meanWindowUnion(bitmaps: readonly Int32Array[], width: number): number {
  const n = bitmaps.length;
  if (width <= 0) return 0;
  if (width === 1) return mean(bitmaps.map(countBits));
  const words = bitmaps[0]!.length;
  const acc = new Int32Array(words);
  const starts = n - width + 1;
  // At most 16 evenly spread start positions: enough for a mean, bounded cost on big VMs.
  const step = Math.max(1, Math.floor(starts / 16));
  let total = 0;
  let count = 0;
  for (let start = 0; start < starts; start += step) {
    acc.fill(0);
    for (let i = start; i < start + width; i++) {
      const b = bitmaps[i]!;
      for (let w = 0; w < words; w++) if (b[w] !== 0) acc[w] = acc[w]! | b[w]!;
    }
    total += countBits(acc);
    count++;
  }
  return total / count;
}
