import { memoryDigest, PAGE_SIZE_BYTES, pageOffset } from '@ferry/memory';
import {
  MIGRATION_CLOSE_CODE,
  MIGRATION_PROTOCOL_VERSION,
  PAGE_ENCODING,
  PageFrameBuilder,
  type Channel,
  type DestinationMessage,
  type DigestAlgorithm,
  type MigrationVmSummary,
  type RoundStats,
  type SourceMessage,
} from '@ferry/protocol';
import {
  InvalidTransitionError,
  MigrationAbortedError,
  MigrationCancelledError,
  MigrationChannelClosedError,
  MigrationError,
  MigrationRemoteError,
  MigrationTimeoutError,
  SourceVmError,
  errorCodeOf,
} from './errors.ts';
import { PageSumTracker, isZeroPageAt } from './page-sum.ts';
import { resolveSenderPolicy, type MigrationSenderPolicy } from './policy.ts';
import { TokenBucket } from './rate-limiter.ts';
import { wallClockMs, type SourceVm } from './source-vm.ts';

/** Named states of a sender (see the state diagram in @ferry/protocol migration-protocol.ts). */
export type SenderState = 'created' | 'handshaking' | 'precopying' | 'stopping' | 'awaiting-ready' | 'committing' | 'activating' | 'completed' | 'failed' | 'cancelled';

/**
 * Why pre-copy stopped. `converged`: the estimate is within maxDowntimeMs and the residual no longer
 * halves (or is under 1 ms of copying). When the switch-over alone costs maxDowntimeMs or more, the
 * target cannot be met: then it is enough that the pages left would copy within it (without a
 * `roundRateLimit`, which has its own stop rule).
 */
export type StopReason = 'converged' | 'max-rounds' | 'no-progress' | 'rate-limit';

/** What the commit point decided. */
export type CommitDecision = 'commit' | 'abort';

/** Passed to the commit hook once the destination reported ready. */
export interface CommitRequest {
  readonly migrationId: string;
  readonly digest: string;
  readonly pausedAtMs: number;
}

/** One round's account: the API's RoundStats plus engine detail. */
export interface SenderRoundStats extends RoundStats {
  /** True for the stop-and-copy round (VM paused). */
  readonly final: boolean;
  readonly durationMs: number;
  /** Pages sent as the zero encoding (no data). */
  readonly zeroPagesSent: number;
  /** Pages skipped because they were dirtied again during this round (sent next round). */
  readonly pagesRedirtied: number;
  /** The page-data rate limit of this round (bytes/s) when the policy has a `roundRateLimit`. */
  readonly rateLimitBytesPerSec?: number;
  /** Pages sent in this round, by index, only when `recordPages` was set (tests). */
  readonly pages?: readonly number[];
}

/** The final account of a completed migration. Times are milliseconds. */
export interface MigrationSenderReport {
  readonly migrationId: string;
  readonly totalMs: number;
  /** Handshake: hello to hello-accepted. */
  readonly setupMs: number;
  /** Source pause to destination resume (destination's timestamp); undefined if `activated` never came. */
  readonly downtimeMs: number | undefined;
  readonly pausedAtMs: number;
  readonly resumedAtMs: number | undefined;
  /** Pre-copy rounds plus the final round. */
  readonly rounds: number;
  readonly roundStats: readonly SenderRoundStats[];
  readonly stopReason: StopReason;
  /** Every byte of every frame and control message handed to the channel. */
  readonly bytesOnWire: number;
  readonly vmBytes: number;
  /** Page bytes sent as raw pages (counts re-sent pages each time). */
  readonly pageBytesSent: number;
  /** Zero or never-written pages not sent in round 1 (the destination starts zeroed). */
  readonly zeroPagesSkipped: number;
  readonly digestAlgorithm: DigestAlgorithm;
  readonly digest: string;
  readonly digestVerified: boolean;
  /** Throttle in force when the VM was paused (reset to 0 afterwards). */
  readonly finalThrottlePercent: number;
  /** Switch-over cost used in the estimate: the policy's measured `switchoverMs`, else two handshake round trips (plus a full digest). */
  readonly switchoverMs: number;
  /**
   * The switch-over cost this migration measured: downtime less the final round's bytes at the
   * estimate's bandwidth (and less a full digest's estimate), so the estimate with it would have
   * predicted this downtime. Feed it to
   * later migrations as policy `switchoverMs`. Undefined when activation was not confirmed.
   */
  readonly switchoverMeasuredMs: number | undefined;
}

/** A finished, committed migration: the source VM must now be released. */
export interface CompletedMigration {
  readonly state: 'completed';
  readonly report: MigrationSenderReport;
}

/** Events a sender emits. */
export interface MigrationSenderEvents {
  state: (change: { readonly from: SenderState; readonly to: SenderState }) => void;
  round: (stats: SenderRoundStats) => void;
}

/** Construction options of a MigrationSender. */
export interface MigrationSenderOptions {
  readonly migrationId: string;
  /** One-time token the destination issued (through the coordinator) for this migration. */
  readonly token: string;
  readonly vm: SourceVm;
  /** vmId and cpus for the hello; memoryBytes is taken from the VM's memory. */
  readonly vmInfo: { readonly vmId: string; readonly cpus: number };
  /** Sent in the hello for the destination to prepare with while pages arrive (see HelloMessage.prelude). */
  readonly prelude?: Uint8Array;
  readonly channel: Channel<DestinationMessage, SourceMessage>;
  readonly policy?: Partial<MigrationSenderPolicy>;
  /** The single commit point (the agent routes it to the coordinator). Default: always commit. */
  readonly commit?: (request: CommitRequest) => Promise<CommitDecision> | CommitDecision;
  /** Clock; default `performance.timeOrigin + performance.now()`. */
  readonly now?: () => number;
  /** Record the page indices sent in each round in the round stats (tests only: costs memory). */
  readonly recordPages?: boolean;
}

const YIELD_EVERY_BYTES = 16 * 1024 * 1024;
const MIN_BANDWIDTH_SAMPLE_BYTES = 4 * 1024 * 1024;
const ASSUMED_BANDWIDTH_BYTES_PER_SEC = 1e9;
const CANCELLABLE: readonly SenderState[] = ['handshaking', 'precopying', 'stopping', 'awaiting-ready'];

/**
 * Sends one VM by iterative pre-copy, stop-and-copy and commitment over a Channel. Use once:
 * `await sender.run()` resolves with a CompletedMigration (release the source VM) or rejects with a
 * MigrationError after the source VM has been resumed and un-throttled (it stays the owner).
 */
export class MigrationSender {
  readonly migrationId: string;
  /** The source VM; dropped (undefined) once run() settled, so this object no longer keeps guest memory alive. */
  private sourceVm: SourceVm | undefined;
  private readonly channel: Channel<DestinationMessage, SourceMessage>;
  private readonly policy: MigrationSenderPolicy;
  private readonly commitHook: (request: CommitRequest) => Promise<CommitDecision> | CommitDecision;
  private readonly now: () => number;
  private readonly token: string;
  private readonly summary: MigrationVmSummary;
  private readonly recordPages: boolean;
  private readonly prelude: Uint8Array | undefined;
  private readonly listeners: { [K in keyof MigrationSenderEvents]: MigrationSenderEvents[K][] } = { state: [], round: [] };
  private words: Int32Array;
  private builder: PageFrameBuilder;
  private tracker: PageSumTracker | undefined;
  private bucket: TokenBucket;

  private current: SenderState = 'created';
  private failure: MigrationError | undefined;
  private failNow: (err: MigrationError) => void = () => {};
  private readonly failed: Promise<never>;
  private inbox: DestinationMessage[] = [];
  private waiter: ((m: DestinationMessage) => void) | undefined;
  private pauseStarted: Promise<void> | undefined;
  private throttlePercent = 0;
  private bytesOnWire = 0;
  private pageBytesSent = 0;
  private zeroPagesSkipped = 0;
  private sinceYieldBytes = 0;
  private bandwidth = ASSUMED_BANDWIDTH_BYTES_PER_SEC;
  private rttMs = 1;
  private readonly roundList: SenderRoundStats[] = [];

  /** Validates options (MigrationOptionsError) and attaches to the channel; nothing is sent until run(). */
  constructor(options: MigrationSenderOptions) {
    this.migrationId = options.migrationId;
    this.sourceVm = options.vm;
    this.channel = options.channel;
    this.policy = resolveSenderPolicy(options.policy);
    this.commitHook = options.commit ?? (() => 'commit');
    this.now = options.now ?? wallClockMs;
    this.token = options.token;
    this.recordPages = options.recordPages ?? false;
    this.prelude = options.prelude;
    const memory = this.vm.memory;
    this.summary = { vmId: options.vmInfo.vmId, cpus: options.vmInfo.cpus, memoryBytes: memory.byteLength };
    this.words = new Int32Array(memory.buffer);
    this.builder = new PageFrameBuilder(memory.bytes);
    this.tracker = this.policy.verify === 'incremental' ? new PageSumTracker(memory.pageCount) : undefined;
    this.bucket = new TokenBucket(this.policy.bandwidthLimit, this.now);
    this.failed = new Promise<never>((_, reject) => {
      this.failNow = reject;
    });
    this.failed.catch(() => {});
    this.channel.onMessage((m) => this.onMessage(m));
    this.channel.onFrame(() => this.fail(new MigrationRemoteError('FERRY_ERR_MIGRATION_UNEXPECTED', 'destination sent a page frame')));
    this.channel.onClose((info) => this.fail(new MigrationChannelClosedError(info.code, info.reason, this.migrationId)));
  }

  /** The current state. */
  get state(): SenderState {
    return this.current;
  }

  /** The rounds so far (live, read only). */
  get rounds(): readonly SenderRoundStats[] {
    return this.roundList;
  }

  /** Registers an event handler. */
  on<K extends keyof MigrationSenderEvents>(event: K, handler: MigrationSenderEvents[K]): this {
    this.listeners[event].push(handler);
    return this;
  }

  /**
   * Cancels the migration. Legal before commitment (created, handshaking, precopying, stopping,
   * awaiting-ready): the source VM is resumed and run() rejects with MigrationCancelledError.
   * Throws InvalidTransitionError once the commit point is being asked or has answered.
   */
  cancel(reason = 'cancelled by request'): void {
    if (this.current === 'created') {
      this.move('cancelled');
      this.failure = new MigrationCancelledError(reason, this.migrationId);
      this.channel.close(MIGRATION_CLOSE_CODE.aborted, 'FERRY_ERR_MIGRATION_CANCELLED');
      return;
    }
    if (!CANCELLABLE.includes(this.current)) throw new InvalidTransitionError('cancel', this.current, this.migrationId);
    this.fail(new MigrationCancelledError(reason, this.migrationId));
  }

  /**
   * Runs the migration to the end. Legal once, in `created`. When it settles the sender drops every
   * reference to the source VM and its memory (the channel may keep this object alive a while).
   */
  async run(): Promise<CompletedMigration> {
    if (this.current !== 'created') throw new InvalidTransitionError('run', this.current, this.migrationId);
    try {
      return await this.runOnce();
    } finally {
      this.sourceVm = undefined;
      this.words = new Int32Array(0);
      this.builder = new PageFrameBuilder(new Uint8Array(0));
      this.tracker = undefined;
    }
  }

  /** The source VM while run() is in progress. */
  private get vm(): SourceVm {
    if (!this.sourceVm) throw new InvalidTransitionError('use the source VM', this.current, this.migrationId);
    return this.sourceVm;
  }

  private async runOnce(): Promise<CompletedMigration> {
    const startMs = this.now();
    let pausedAtMs = 0;
    try {
      this.move('handshaking');
      this.send({ type: 'hello', protocolVersion: MIGRATION_PROTOCOL_VERSION, migrationId: this.migrationId, token: this.token, vm: this.summary, pageCount: this.vm.memory.pageCount, ...(this.prelude ? { prelude: this.prelude } : {}) });
      await this.expect('hello-accepted', this.policy.handshakeTimeoutMs);
      const setupMs = this.now() - startMs;
      this.rttMs = Math.max(0.05, setupMs);

      this.move('precopying');
      const stopReason = await this.precopy();

      this.move('stopping');
      const finalThrottlePercent = this.throttlePercent;
      pausedAtMs = this.now();
      this.pauseStarted = this.vm.pause();
      await this.guard(this.pauseStarted.catch((cause: unknown) => Promise.reject(new SourceVmError('pause', this.migrationId, cause))));
      await this.sendRound(this.roundList.length + 1, true);
      let state;
      try {
        state = this.vm.captureState();
      } catch (cause) {
        throw new SourceVmError('capture its state', this.migrationId, cause);
      }
      this.send({ type: 'transfer-state', registers: state.registers, devices: state.devices, pausedAtMs });
      const algorithm: DigestAlgorithm = this.tracker ? 'page-sum' : 'xxh64';
      const digest = this.tracker ? this.tracker.digest() : memoryDigest(this.vm.memory);
      this.send({ type: 'verify-memory', algorithm, digest });

      this.move('awaiting-ready');
      await this.expect('ready', this.policy.readyTimeoutMs);

      this.move('committing');
      let decision: CommitDecision;
      try {
        decision = await this.commitHook({ migrationId: this.migrationId, digest, pausedAtMs });
      } catch (cause) {
        throw new MigrationAbortedError('commit hook failed', this.migrationId, cause);
      }
      if (decision !== 'commit') throw new MigrationAbortedError('the commit point decided to abort', this.migrationId);

      // Committed: from here on the destination owns the VM; never resume the source.
      this.move('activating');
      let resumedAtMs: number | undefined;
      try {
        this.channel.send({ type: 'activate' });
        resumedAtMs = (await this.expect('activated', this.policy.activateTimeoutMs)).resumedAtMs;
      } catch {
        resumedAtMs = undefined; // committed anyway; the report says activation was not confirmed
      }
      try {
        this.setThrottle(0);
        this.channel.close(MIGRATION_CLOSE_CODE.done, 'done');
      } catch {
        // committed: a failing throttle reset or close changes nothing
      }
      this.move('completed');
      const downtimeMs = resumedAtMs === undefined ? undefined : resumedAtMs - pausedAtMs;
      // What the estimate adds on top of `switchoverMs`: the final round's copy and a full digest.
      const finalCopyMs = ((this.roundList.at(-1)?.bytesSent ?? 0) / this.bandwidth) * 1000 + this.fullDigestMs();
      return {
        state: 'completed',
        report: {
          migrationId: this.migrationId,
          totalMs: (resumedAtMs ?? this.now()) - startMs,
          setupMs,
          downtimeMs,
          pausedAtMs,
          resumedAtMs,
          rounds: this.roundList.length,
          roundStats: this.roundList,
          stopReason,
          bytesOnWire: this.bytesOnWire,
          vmBytes: this.vm.memory.byteLength,
          pageBytesSent: this.pageBytesSent,
          zeroPagesSkipped: this.zeroPagesSkipped,
          digestAlgorithm: algorithm,
          digest,
          digestVerified: true,
          finalThrottlePercent,
          switchoverMs: this.switchoverMs(),
          switchoverMeasuredMs: downtimeMs === undefined ? undefined : Math.max(0, downtimeMs - finalCopyMs),
        },
      };
    } catch (err) {
      if ((this.current as SenderState) === 'activating' || (this.current as SenderState) === 'completed') throw err; // committed: never resume the source
      const error = err instanceof MigrationError ? err : new MigrationError(errorCodeOf(err), String((err as Error)?.message ?? err), { migrationId: this.migrationId, cause: err });
      await this.rollBack(this.failure ?? error);
      throw this.failure ?? error;
    }
  }

  // ----- pre-copy ----------------------------------------------------------------------------

  private async precopy(): Promise<StopReason> {
    this.vm.dirtyLog.clear(); // harvest and discard: round 1 sends everything, round 2 what round 1 saw dirtied
    let residualIn = this.vm.memory.pageCount;
    let best = Infinity;
    let stale = 0;
    for (let round = 1; ; round++) {
      const stats = await this.sendRound(round, false);
      const dirty = stats.dirtyPages;
      const residualMs = stats.expectedDowntimeMs - this.switchoverMs();
      // When the switch-over alone costs the target or more, no round can bring the estimate under
      // it: once the pages left would copy within the target, iterating on only resends pages.
      // (Not with a per-round rate limit such as Xen's, which owns the stop decision.)
      const unreachable = this.switchoverMs() >= this.policy.maxDowntimeMs && this.policy.roundRateLimit === undefined;
      const withinTarget = stats.expectedDowntimeMs <= this.policy.maxDowntimeMs || (unreachable && residualMs <= this.policy.maxDowntimeMs);
      const converged = withinTarget && (dirty * 2 > residualIn || residualMs < 1);
      if (converged) return 'converged';
      if (round >= this.policy.maxRounds) return 'max-rounds';
      if (this.policy.roundRateLimit?.stopAfter?.(this.roundList)) return 'rate-limit';
      if (dirty < best) {
        best = dirty;
        stale = 0;
      } else if (this.policy.autoConverge && this.throttlePercent < 99) {
        // Still throttling harder each round: the ramp is the progress. Counting these rounds let a
        // scan that stays at every page dirty until 99% give up the moment it got there.
        stale = 0;
      } else if (++stale >= this.policy.noProgressRounds) {
        return 'no-progress';
      }
      residualIn = dirty;
    }
  }

  /** Sends one round: all pages (round 1), the harvested dirty pages (later rounds and the final one). */
  private async sendRound(round: number, final: boolean): Promise<SenderRoundStats> {
    const { dirtyLog, memory } = this.vm;
    const startMs = this.now();
    // Round 1 walks the pages ever written (the rest are zero on both sides) and tells the
    // destination which they are, so it pre-faults those and no others. Later rounds send what the
    // dirty log harvested.
    const first = round === 1 && !final;
    const pages = first ? dirtyLog.everWrittenPages() : dirtyLog.harvest();
    if (first) this.zeroPagesSkipped += memory.pageCount - pages.length;
    const record: number[] | undefined = this.recordPages ? [] : undefined;
    const rateLimit = this.policy.roundRateLimit ? this.roundRate(round, final) : undefined;
    this.send(first ? { type: 'start-round', round, final, pageMap: dirtyLog.everWrittenBitmap() } : { type: 'start-round', round, final });
    const peek = !final;
    let pagesSent = 0;
    let bytesSent = 0;
    let zeroPagesSent = 0;
    let pagesRedirtied = 0;
    for (let i = 0; i < pages.length; i++) {
      const p = pages[i]!;
      if (peek && dirtyLog.isDirty(p)) {
        pagesRedirtied++; // dirtied again during this round: the next round sends it
        continue;
      }
      const zero = isZeroPageAt(this.words, p);
      if (zero) {
        if (first) {
          this.zeroPagesSkipped++;
          continue;
        }
        this.builder.add(p, PAGE_ENCODING.zero);
        this.tracker?.setZero(p);
        zeroPagesSent++;
      } else {
        this.builder.add(p, PAGE_ENCODING.raw);
        this.tracker?.update(p, memory.bytes.subarray(pageOffset(p), pageOffset(p + 1)), false);
      }
      record?.push(p);
      pagesSent++;
      if (this.builder.dataBytes >= this.policy.frameBytes || this.builder.full) bytesSent += await this.flush(round);
    }
    bytesSent += await this.flush(round);
    this.send({ type: 'end-round', round, pagesSent, bytesSent });
    // Pre-copy rounds end when the destination has applied them, not when the bytes left: the
    // bandwidth is then end to end, and the pause never starts with earlier rounds in flight.
    if (!final) {
      const applied = await this.expect('round-applied', this.policy.readyTimeoutMs);
      if (applied.round !== round) throw new MigrationRemoteError('FERRY_ERR_MIGRATION_UNEXPECTED', `round-applied ${applied.round} during round ${round}`, this.migrationId);
    }
    const durationMs = Math.max(0.001, this.now() - startMs);
    // A short round can beat the limit on the bucket's burst; the stop-and-copy cannot, so the
    // downtime estimate never assumes more than the limit.
    if (bytesSent >= MIN_BANDWIDTH_SAMPLE_BYTES) this.bandwidth = bytesSent / (durationMs / 1000);
    if (this.bucket.rate > 0) this.bandwidth = Math.min(this.bandwidth, this.bucket.rate);
    const dirtyPages = final ? 0 : dirtyLog.count();
    if (!final && this.policy.autoConverge && round > 1 && dirtyPages * PAGE_SIZE_BYTES > bytesSent / 2) {
      this.setThrottle(this.throttlePercent === 0 ? 20 : Math.min(99, this.throttlePercent + 10));
    }
    const stats: SenderRoundStats = {
      round,
      final,
      durationMs,
      pagesSent,
      bytesSent,
      dirtyPages,
      dirtyRatePagesPerSec: dirtyPages / (durationMs / 1000),
      bandwidthBytesPerSec: this.bandwidth,
      expectedDowntimeMs: ((dirtyPages * PAGE_SIZE_BYTES) / this.bandwidth) * 1000 + this.switchoverMs(),
      throttlePercent: this.throttlePercent,
      pagesLeft: dirtyPages,
      zeroPagesSent,
      pagesRedirtied,
      ...(rateLimit !== undefined ? { rateLimitBytesPerSec: rateLimit } : {}),
      ...(record ? { pages: record } : {}),
    };
    this.roundList.push(stats);
    for (const h of this.listeners.round) h(stats);
    return stats;
  }

  /** Sends the frame being built (if any), with rate limit, backpressure and periodic yields. Returns its bytes. */
  private async flush(round: number): Promise<number> {
    const bytes = this.builder.frameBytes;
    const dataBytes = this.builder.dataBytes;
    const parts = this.builder.take(round);
    if (!parts) return 0;
    const waitMs = this.bucket.take(bytes);
    if (waitMs > 0) await this.guard(new Promise((r) => setTimeout(r, waitMs)));
    if (this.failure) throw this.failure;
    if (this.channel.closed) throw new MigrationChannelClosedError(1006, 'closed before send', this.migrationId);
    this.channel.sendFrame(parts);
    this.bytesOnWire += bytes;
    this.pageBytesSent += dataBytes;
    this.sinceYieldBytes += bytes;
    if (this.channel.bufferedBytes > this.policy.maxBufferedBytes) await this.guard(this.channel.drained());
    if (this.sinceYieldBytes >= YIELD_EVERY_BYTES) {
      this.sinceYieldBytes = 0;
      await this.guard(new Promise((r) => setImmediate(r)));
    }
    if (this.failure) throw this.failure;
    return bytes;
  }

  /** Asks the policy's roundRateLimit for this round's rate and refills the token bucket at it. */
  private roundRate(round: number, final: boolean): number {
    const asked = this.policy.roundRateLimit!.rateForRound(round, final, this.roundList);
    const rate = Number.isFinite(asked) && asked > 0 ? Math.floor(asked) : 0;
    this.bucket = new TokenBucket(rate, this.now);
    return rate;
  }

  /** Fixed cost of the switch-over: as measured before (policy), else two handshake round trips; plus a full digest when asked. */
  private switchoverMs(): number {
    return (this.policy.switchoverMs ?? 2 * this.rttMs) + this.fullDigestMs();
  }

  /** The estimated cost of `verify: 'full'` inside the pause (both ends hash all memory), else 0. */
  private fullDigestMs(): number {
    return this.policy.verify === 'full' ? (this.vm.memory.byteLength / 8e9) * 1000 * 2 : 0;
  }

  // ----- plumbing ----------------------------------------------------------------------------

  private move(to: SenderState): void {
    const from = this.current;
    this.current = to;
    for (const h of this.listeners.state) h({ from, to });
  }

  private setThrottle(percent: number): void {
    if (percent === this.throttlePercent) return;
    this.throttlePercent = percent;
    this.vm.setThrottle(percent);
  }

  private send(message: SourceMessage): void {
    if (this.failure) throw this.failure;
    if (this.channel.closed) throw new MigrationChannelClosedError(1006, 'closed before send', this.migrationId);
    this.channel.send(message);
    this.bytesOnWire += 64; // control messages are small; the state blobs are counted below
    if (message.type === 'transfer-state') this.bytesOnWire += message.registers.byteLength + message.devices.byteLength;
    if (message.type === 'start-round' && message.pageMap) this.bytesOnWire += message.pageMap.byteLength;
  }

  /** Resolves with `p`, or rejects as soon as the migration fails. */
  private guard<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.failed]);
  }

  private onMessage(message: DestinationMessage): void {
    if (message.type === 'error' || message.type === 'hello-refused') {
      this.fail(new MigrationRemoteError(message.code, message.message, this.migrationId));
      return;
    }
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w(message);
    } else if (this.inbox.length < 4) {
      this.inbox.push(message);
    } else {
      this.fail(new MigrationRemoteError('FERRY_ERR_MIGRATION_UNEXPECTED', 'destination sent unrequested messages', this.migrationId));
    }
  }

  /** The next message, which must be of `type`, within `timeoutMs`. */
  private async expect<K extends DestinationMessage['type']>(type: K, timeoutMs: number): Promise<Extract<DestinationMessage, { type: K }>> {
    let timer: NodeJS.Timeout | undefined;
    const next = this.inbox.length > 0 ? Promise.resolve(this.inbox.shift()!) : new Promise<DestinationMessage>((resolve) => (this.waiter = resolve));
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new MigrationTimeoutError(type, timeoutMs, this.migrationId)), timeoutMs);
    });
    try {
      const m = await Promise.race([next, timeout, this.failed]);
      if (m.type !== type) throw new MigrationRemoteError('FERRY_ERR_MIGRATION_UNEXPECTED', `expected ${type}, got ${m.type}`, this.migrationId);
      return m as Extract<DestinationMessage, { type: K }>;
    } finally {
      clearTimeout(timer);
      this.waiter = undefined;
    }
  }

  /** Records the first failure and wakes whatever the run is waiting on. */
  private fail(err: MigrationError): void {
    if (this.failure || this.current === 'completed' || this.current === 'activating') return;
    // While the commit point decides, nothing the destination does may resume the source: only the
    // decision does (the agent answers 'abort' when it learns the destination is gone).
    if (this.current === 'committing') return;
    this.failure = err;
    this.failNow(err);
  }

  /** Before commit: tell the peer, close, resume and un-throttle the source. */
  private async rollBack(err: MigrationError): Promise<void> {
    if (!this.failure) {
      this.failure = err;
      this.failNow(err);
    }
    if (!this.channel.closed) {
      const remote = err instanceof MigrationRemoteError || err instanceof MigrationChannelClosedError;
      if (!remote) {
        try {
          this.channel.send({ type: 'cancel', code: err.code, reason: err.message.slice(0, 1000) });
        } catch {
          // closing anyway
        }
      }
      this.channel.close(MIGRATION_CLOSE_CODE.aborted, err.code);
    }
    if (this.pauseStarted) {
      // Resume only what this migration paused: a pause that failed left the VM as it was.
      const paused = await this.pauseStarted.then(
        () => true,
        () => false,
      );
      if (paused) {
        try {
          await this.vm.resume();
        } catch {
          // the VM reports its own failure; the migration error stands
        }
      }
    }
    try {
      this.setThrottle(0);
    } catch {
      // the VM refuses a throttle change in its current state; nothing more to undo
    }
    this.move(err instanceof MigrationCancelledError ? 'cancelled' : 'failed');
  }
}
