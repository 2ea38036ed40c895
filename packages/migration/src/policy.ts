import { DEFAULT_MIGRATION_POLICY, type MigrationPolicy } from '@ferry/protocol';
import { MigrationOptionsError } from './errors.ts';
import type { RoundRateLimit } from './round-rate-limit.ts';

/** How the final memory digest is checked. See `MigrationSenderPolicy.verify`. */
export type VerifyMode = 'incremental' | 'full';

/**
 * Per-migration policy of a sender. The four fields of the API's MigrationPolicy plus engine knobs.
 * Every field has a default (DEFAULT_SENDER_POLICY); pass only what you change.
 */
export interface MigrationSenderPolicy extends MigrationPolicy {
  /**
   * Stop-and-copy once the estimated downtime (residual bytes ÷ measured bandwidth + measured
   * switch-over cost) is under this, and iterating no longer halves the residual. Default 300 ms,
   * QEMU's default and the API's: a ceiling, not a target; the halving rule keeps iterating while
   * rounds still pay off, which is what brings a hot-set VM to single-digit milliseconds.
   */
  readonly maxDowntimeMs: number;
  /** Stop-and-copy after this many pre-copy rounds whatever the estimate. Default 30. */
  readonly maxRounds: number;
  /** Page-data bytes per second on the channel; 0 = unlimited (default). Token bucket of 50 ms burst. */
  readonly bandwidthLimit: number;
  /** Throttle the source vCPUs (20%, then +10% per round, up to 99%) while dirtying outpaces sending. Default false. */
  readonly autoConverge: boolean;
  /**
   * `incremental` (default): an order-independent sum of per-page xxh64 terms kept up to date as
   * pages are sent and received; costs nothing inside the pause. It proves every page the sender
   * meant to send arrived intact at the right index; it cannot catch a write the dirty log missed.
   * `full`: xxh64 over all of guest memory on both sides while paused; also catches dirty-log
   * misses, at ~0.1 s per GiB per side inside the downtime.
   */
  readonly verify: VerifyMode;
  /** Target page-data bytes per frame. Default 1 MiB (measured: 256 KiB–1 MiB are within noise, see bench). */
  readonly frameBytes: number;
  /** Wait on `channel.drained()` whenever more than this is buffered. Default 8 MiB. */
  readonly maxBufferedBytes: number;
  /** Stop-and-copy when the residual has not improved for this many rounds (and throttling cannot help). Default 5. */
  readonly noProgressRounds: number;
  /** Limits on the peer's replies. Defaults 10 s, 60 s, 10 s. */
  readonly handshakeTimeoutMs: number;
  readonly readyTimeoutMs: number;
  readonly activateTimeoutMs: number;
  /**
   * Optional per-round rate (e.g. `xenRateLimit()`, Xen's dynamic rate limiting): when set, it
   * replaces `bandwidthLimit` and is asked for a rate before every round, and may stop pre-copy.
   * Default none.
   */
  readonly roundRateLimit?: RoundRateLimit;
  /**
   * The fixed cost of the switch-over (pause to resume, less the final round's page copy) as
   * measured on earlier migrations (MigrationSenderReport.switchoverMeasuredMs), used in the
   * downtime estimate. Default none: the sender then guesses two handshake round trips, which
   * misses what the pause also pays for (state transfer, digest check, the commit point, resuming
   * on the destination) and counts the destination's allocation when it is slow.
   */
  readonly switchoverMs?: number;
}

/** Defaults of every sender policy field. */
export const DEFAULT_SENDER_POLICY: MigrationSenderPolicy = Object.freeze({
  ...DEFAULT_MIGRATION_POLICY,
  verify: 'incremental',
  frameBytes: 1024 * 1024,
  maxBufferedBytes: 8 * 1024 * 1024,
  noProgressRounds: 5,
  handshakeTimeoutMs: 10_000,
  readyTimeoutMs: 60_000,
  activateTimeoutMs: 10_000,
});

function int(value: number, name: string, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) throw new MigrationOptionsError(name, `must be an integer from ${min} to ${max}, got ${value}`);
}

/** The full policy from defaults and `given`; throws MigrationOptionsError naming the first bad field. */
export function resolveSenderPolicy(given: Partial<MigrationSenderPolicy> = {}): MigrationSenderPolicy {
  const p: MigrationSenderPolicy = { ...DEFAULT_SENDER_POLICY, ...given };
  if (!(p.maxDowntimeMs > 0 && Number.isFinite(p.maxDowntimeMs))) throw new MigrationOptionsError('maxDowntimeMs', `must be a positive number, got ${p.maxDowntimeMs}`);
  int(p.maxRounds, 'maxRounds', 1, 10_000);
  int(p.bandwidthLimit, 'bandwidthLimit', 0, Number.MAX_SAFE_INTEGER);
  if (typeof p.autoConverge !== 'boolean') throw new MigrationOptionsError('autoConverge', 'must be true or false');
  if (p.verify !== 'incremental' && p.verify !== 'full') throw new MigrationOptionsError('verify', `must be incremental or full, got ${String(p.verify)}`);
  int(p.frameBytes, 'frameBytes', 4096, 4 * 1024 * 1024);
  int(p.maxBufferedBytes, 'maxBufferedBytes', 4096, 1024 * 1024 * 1024);
  int(p.noProgressRounds, 'noProgressRounds', 1, 10_000);
  int(p.handshakeTimeoutMs, 'handshakeTimeoutMs', 1, 3_600_000);
  int(p.readyTimeoutMs, 'readyTimeoutMs', 1, 3_600_000);
  int(p.activateTimeoutMs, 'activateTimeoutMs', 1, 3_600_000);
  if (p.switchoverMs !== undefined && !(p.switchoverMs >= 0 && Number.isFinite(p.switchoverMs))) throw new MigrationOptionsError('switchoverMs', `must be a non-negative number, got ${p.switchoverMs}`);
  if (p.roundRateLimit !== undefined && typeof p.roundRateLimit?.rateForRound !== 'function') throw new MigrationOptionsError('roundRateLimit', 'must have a rateForRound function');
  return Object.freeze(p);
}
