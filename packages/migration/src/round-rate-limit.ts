import { PAGE_SIZE_BYTES } from '@ferry/memory';
import { MigrationOptionsError } from './errors.ts';
import type { SenderRoundStats } from './sender.ts';

/**
 * A page-stream rate chosen round by round (the sender's `roundRateLimit` policy hook). When set it
 * replaces `bandwidthLimit`: before each round the sender asks `rateForRound` and refills its token
 * bucket at that rate. `previous` holds the stats of every round already sent, oldest first.
 */
export interface RoundRateLimit {
  /** Page-data bytes per second for `round` (`final` = stop-and-copy); 0 = unlimited. */
  rateForRound(round: number, final: boolean, previous: readonly SenderRoundStats[]): number;
  /** Whether pre-copy should stop after the last round in `previous` (stop reason `rate-limit`). Optional. */
  stopAfter?(previous: readonly SenderRoundStats[]): boolean;
}

/** Parameters of Xen's dynamic rate limiting, in bits per second (as the paper gives them). */
export interface XenRateLimitOptions {
  /** Rate of the first round. Default 100 Mbit/s. */
  readonly startBitsPerSec?: number;
  /** Added to the previous round's measured dirty rate to get the next round's rate. Default 50 Mbit/s. */
  readonly stepBitsPerSec?: number;
  /** Cap of every pre-copy round, and the rate of the stop-and-copy round. Default 500 Mbit/s. */
  readonly maxBitsPerSec?: number;
  /** Stop pre-copy once fewer than this many bytes are dirty. Default 256 KiB (the paper's figure). */
  readonly stopBelowBytes?: number;
}

/** The paper's figures: 100 Mbit/s start, +50 Mbit/s over the dirty rate, 500 Mbit/s cap, stop below 256 KiB. */
export const XEN_RATE_LIMIT_DEFAULTS: Required<XenRateLimitOptions> = Object.freeze({
  startBitsPerSec: 100e6,
  stepBitsPerSec: 50e6,
  maxBitsPerSec: 500e6,
  stopBelowBytes: 256 * 1024,
});

/**
 * Xen's dynamic rate limiting (Clark et al., NSDI 2005, section 5.1): the first round runs at
 * `startBitsPerSec`; each next round at the previous round's measured dirtying rate plus
 * `stepBitsPerSec`, capped at `maxBitsPerSec`; the stop-and-copy round at the cap. Pre-copy stops
 * (reason `rate-limit`) when the dirtying rate would need more than the cap, or when fewer than
 * `stopBelowBytes` remain dirty. Throws MigrationOptionsError on a non-positive or inverted rate.
 */
export function xenRateLimit(options: XenRateLimitOptions = {}): RoundRateLimit {
  const o = { ...XEN_RATE_LIMIT_DEFAULTS, ...options };
  for (const key of ['startBitsPerSec', 'stepBitsPerSec', 'maxBitsPerSec'] as const) {
    if (!(o[key] > 0 && Number.isFinite(o[key]))) throw new MigrationOptionsError(`roundRateLimit.${key}`, `must be a positive number, got ${o[key]}`);
  }
  if (o.startBitsPerSec > o.maxBitsPerSec) throw new MigrationOptionsError('roundRateLimit.startBitsPerSec', `must not exceed maxBitsPerSec (${o.maxBitsPerSec})`);
  if (!(o.stopBelowBytes >= 0)) throw new MigrationOptionsError('roundRateLimit.stopBelowBytes', `must be ≥ 0, got ${o.stopBelowBytes}`);
  const maxBytes = o.maxBitsPerSec / 8;
  /** The rate the next round would need: the last round's dirty rate plus the step (uncapped), bytes/s. */
  const wanted = (last: SenderRoundStats): number => last.dirtyRatePagesPerSec * PAGE_SIZE_BYTES + o.stepBitsPerSec / 8;
  return {
    rateForRound(round, final, previous) {
      if (final) return Math.floor(maxBytes);
      const last = previous.at(-1);
      if (round === 1 || !last) return Math.floor(o.startBitsPerSec / 8);
      return Math.floor(Math.min(maxBytes, wanted(last)));
    },
    stopAfter(previous) {
      const last = previous.at(-1);
      if (!last || last.final) return false;
      return wanted(last) > maxBytes || last.dirtyPages * PAGE_SIZE_BYTES < o.stopBelowBytes;
    },
  };
}
