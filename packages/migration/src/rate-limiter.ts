/**
 * A token bucket over bytes: `take(n)` returns how long to wait before sending `n` bytes so the
 * long-run rate stays at `bytesPerSec`, with bursts up to `burstBytes`. 0 bytes/s = unlimited.
 */
export class TokenBucket {
  private readonly bytesPerSec: number;
  private readonly burstBytes: number;
  private tokens: number;
  private lastMs: number;
  private readonly now: () => number;

  /** Starts full. `burstBytes` defaults to 50 ms worth of the rate (at least one 1 MiB frame). */
  constructor(bytesPerSec: number, now: () => number, burstBytes?: number) {
    this.bytesPerSec = bytesPerSec;
    this.burstBytes = burstBytes ?? Math.max(bytesPerSec / 20, 1024 * 1024);
    this.tokens = this.burstBytes;
    this.now = now;
    this.lastMs = now();
  }

  /** The long-run rate, bytes/s (0 = unlimited). */
  get rate(): number {
    return this.bytesPerSec;
  }

  /** Takes `bytes`; returns the milliseconds to wait before sending them (0 when unlimited or in budget). */
  take(bytes: number): number {
    if (this.bytesPerSec === 0) return 0;
    const t = this.now();
    this.tokens = Math.min(this.burstBytes, this.tokens + ((t - this.lastMs) / 1000) * this.bytesPerSec);
    this.lastMs = t;
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.bytesPerSec) * 1000;
  }
}
