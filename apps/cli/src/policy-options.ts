import { InvalidArgumentError, type Command } from 'commander';
import { RATE_LIMIT_KINDS, type MigrationRateLimitRequest, type RateLimitKind } from '@ferry/protocol';
import { UsageError } from './errors.ts';

// The migration policy's rate-limit flags, shared by `ferry migrate` and `ferry bench` (and so the
// console): `--rate-limit xen` asks for Xen's dynamic rate limiting with the paper's figures
// (100 Mbit/s first round, then the measured dirty rate + 50 Mbit/s, capped at 500 Mbit/s; the
// stop-and-copy round at the cap); `--rate-start`, `--rate-step`, `--rate-max` change them.

/** The rate-limit flags as commander parses them. */
export interface RateLimitFlags {
  readonly rateLimit?: RateLimitKind;
  readonly rateStart?: string;
  readonly rateStep?: string;
  readonly rateMax?: string;
}

function rateLimitKind(value: string): RateLimitKind {
  if (!RATE_LIMIT_KINDS.includes(value as RateLimitKind)) throw new InvalidArgumentError(`one of ${RATE_LIMIT_KINDS.join(', ')}.`);
  return value as RateLimitKind;
}

/** Adds `--rate-limit <kind>` and its `--rate-start/--rate-step/--rate-max <rate>` to `command`. */
export function addRateLimitOptions(command: Command): Command {
  return command
    .option('--rate-limit <kind>', "per-round rate limit instead of --bandwidth: xen (Xen's dynamic rate limiting: 100Mbit/s first, then the dirty rate + 50Mbit/s, up to 500Mbit/s)", rateLimitKind)
    .option('--rate-start <rate>', 'with --rate-limit: rate of round 1 (100Mbit/s, 12MiB/s)')
    .option('--rate-step <rate>', 'with --rate-limit: added to the measured dirty rate each round')
    .option('--rate-max <rate>', 'with --rate-limit: cap of every round, and the stop-and-copy rate');
}

/** The request's `rateLimit` from the flags (undefined without --rate-limit); a UsageError when a rate flag comes without it. */
export function rateLimitRequest(o: RateLimitFlags): MigrationRateLimitRequest | undefined {
  const rates = {
    ...(o.rateStart !== undefined ? { startBytesPerSec: o.rateStart } : {}),
    ...(o.rateStep !== undefined ? { stepBytesPerSec: o.rateStep } : {}),
    ...(o.rateMax !== undefined ? { maxBytesPerSec: o.rateMax } : {}),
  };
  if (o.rateLimit === undefined) {
    if (Object.keys(rates).length > 0) throw new UsageError('--rate-start, --rate-step and --rate-max need --rate-limit xen');
    return undefined;
  }
  return Object.keys(rates).length === 0 ? o.rateLimit : { kind: o.rateLimit, ...rates };
}
