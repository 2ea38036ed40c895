import { timingSafeEqual } from 'node:crypto';
import { GuestMemory, memoryDigest, PAGE_SIZE_BYTES, pageOffset } from '@ferry/memory';
import {
  DEFAULT_MAX_PAGE_FRAME_BYTES,
  MIGRATION_CLOSE_CODE,
  MIGRATION_MAX_PAGE_COUNT,
  MIGRATION_PROTOCOL_VERSION,
  MIGRATION_PROTOCOL_VERSIONS_ACCEPTED,
  PAGE_ENCODING,
  ProtocolError,
  ProtocolVersionError,
  readPageFrame,
  type Channel,
  type DestinationMessage,
  type HelloMessage,
  type MigrationVmSummary,
  type PageEncoding,
  type SourceMessage,
} from '@ferry/protocol';
import {
  InvalidTransitionError,
  MigrationCancelledError,
  MigrationChannelClosedError,
  MigrationDigestError,
  MigrationError,
  MigrationRemoteError,
  MigrationSizeError,
  MigrationTokenError,
  UnexpectedMessageError,
  UnknownMigrationError,
  errorCodeOf,
} from './errors.ts';
import { PageSumTracker, isZeroPageAt } from './page-sum.ts';
import { wallClockMs, type ReceivedVm } from './source-vm.ts';

/** Named states of a receiver (see the state diagram in @ferry/protocol migration-protocol.ts). */
export type ReceiverState = 'awaiting-hello' | 'authorizing' | 'receiving' | 'verifying' | 'ready' | 'activating' | 'activated' | 'failed';

/** Counts a receiver keeps. */
export interface ReceiverStats {
  rounds: number;
  framesReceived: number;
  rawPagesReceived: number;
  zeroPagesReceived: number;
  bytesReceived: number;
}

/** A migration that arrived and was activated here. */
export interface ActivatedMigration extends ReceivedVm {
  readonly state: 'activated';
  readonly migrationId: string;
  readonly vm: MigrationVmSummary;
  readonly pausedAtMs: number;
  readonly resumedAtMs: number;
  readonly digest: string;
  readonly stats: Readonly<ReceiverStats>;
}

/** Construction options of a MigrationReceiver. */
export interface MigrationReceiverOptions {
  readonly channel: Channel<SourceMessage, DestinationMessage>;
  /**
   * Admits or refuses a hello (version already checked): throw a MigrationError (MigrationTokenError,
   * UnknownMigrationError, MigrationSizeError) to refuse. The agent checks and consumes the one-time
   * token here (see `expectToken`). Memory is allocated only after this returns.
   */
  readonly authorize: (hello: HelloMessage) => void | Promise<void>;
  /**
   * Called on `activate` from the source or on commit() (the coordinator committed): build the VM
   * from memory, registers and devices and resume it. Return when its vCPUs were released (epoch
   * ms, the receiver's clock) if known: the downtime ends there. Otherwise the receiver stamps the
   * time this returns, which can be late by however long the releasing thread was then descheduled
   * (often by the very vCPU thread it woke, on a machine with few cores).
   */
  readonly activate?: (vm: ReceivedVm) => void | { readonly resumedAtMs?: number } | Promise<void | { readonly resumedAtMs?: number }>;
  /**
   * Called the moment `ready` is sent, with the verified digest: the agent tells the commit point
   * itself, so the decision can come straight back here (commit()) instead of through the source.
   */
  readonly announceReady?: (digest: string) => void;
  /**
   * Called once memory, registers and devices are verified and `ready` was sent, before the commit
   * point decides: may build the VM paused (Vm.restore, vCPUs placed parked) so that `activate`
   * only has to resume it. It must not run the VM or make it visible. `activate` waits for it to
   * settle; a failure here is no migration failure (activate then does the whole job). If the
   * migration fails instead, the agent discards what it prepared.
   */
  readonly prepare?: (vm: ReceivedVm) => void | Promise<void>;
  /** Largest VM accepted, in pages. Default MIGRATION_MAX_PAGE_COUNT (64 GiB). */
  readonly maxPageCount?: number;
  /** Largest page frame accepted. Default DEFAULT_MAX_PAGE_FRAME_BYTES (4 MiB of pages + table). */
  readonly maxFrameBytes?: number;
  /** Clock; default `performance.timeOrigin + performance.now()`. */
  readonly now?: () => number;
  /**
   * Called at the start of round 1 with the fresh memory and the source's page map (the pages
   * round 1 may send; see StartRoundMessage.pageMap); what it returns is stopped once the last
   * round is in (or the migration fails). The agent passes @ferry/memory's startPrefault so page
   * faults on the fresh memory run on another thread, not inside round 1's copy.
   */
  readonly prefault?: (memory: GuestMemory, pages: Uint8Array) => { stop(): unknown };
  /** Allocates the incoming VM's memory (zeroed, exactly `pageCount` pages). Default `new GuestMemory(pageCount)`; the agent reuses pooled memory. */
  readonly allocateMemory?: (pageCount: number) => GuestMemory | Promise<GuestMemory>;
}

/**
 * Receives one VM over a Channel. Attaches to the channel at construction; `done` resolves with the
 * activated VM, or rejects with a MigrationError (or a ProtocolError for hostile input) after the
 * partial VM was dropped and the channel closed with the error code as reason.
 */
export class MigrationReceiver {
  /** Settles when the migration is activated here or has failed. */
  readonly done: Promise<ActivatedMigration>;
  private readonly channel: Channel<SourceMessage, DestinationMessage>;
  private readonly options: MigrationReceiverOptions;
  private readonly now: () => number;
  private readonly maxFrameBytes: number;
  private current: ReceiverState = 'awaiting-hello';
  private resolve!: (m: ActivatedMigration) => void;
  private reject!: (err: Error) => void;
  private hello: HelloMessage | undefined;
  private memory: GuestMemory | undefined;
  private words: Int32Array | undefined;
  private tracker: PageSumTracker | undefined;
  /** Bit p (word p >> 5, bit p & 31) set where page p holds non-zero data now: handed over as is (ReceivedVm.writtenPageMap). */
  private nonZero: Int32Array | undefined;
  private round = 0;
  private roundOpen = false;
  private finalRound = false;
  private roundPages = 0;
  private roundBytes = 0;
  private vmState: { registers: Uint8Array; devices: Uint8Array; pausedAtMs: number } | undefined;
  private digest = '';
  private readonly stats: ReceiverStats = { rounds: 0, framesReceived: 0, rawPagesReceived: 0, zeroPagesReceived: 0, bytesReceived: 0 };
  private readonly visitRun = (first: number, count: number, encoding: PageEncoding, dataOffset: number): void => this.applyRun(first, count, encoding, dataOffset);
  private frame: Uint8Array = new Uint8Array(0);
  private prepared: Promise<void> | undefined;
  private received: ReceivedVm | undefined;
  private prefaulting: { stop(): unknown } | undefined;

  constructor(options: MigrationReceiverOptions) {
    this.options = options;
    this.channel = options.channel;
    this.now = options.now ?? wallClockMs;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_PAGE_FRAME_BYTES;
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.done.catch(() => {});
    this.channel.onMessage((m) => this.guarded(() => this.onMessage(m)));
    this.channel.onFrame((f) => this.guarded(() => this.onFrame(f)));
    this.channel.onClose((info) => {
      if (this.current === 'activating' || this.current === 'activated' || this.current === 'failed') return;
      // Reasons carrying a Ferry code (a hostile message refused by the transport) keep it.
      const err = info.reason.startsWith('FERRY_ERR_')
        ? new MigrationError(info.reason.split(':')[0]!, `channel closed (${info.code}) by ${info.local ? 'this side' : 'the peer'}: ${info.reason}`, { migrationId: this.hello?.migrationId })
        : new MigrationChannelClosedError(info.code, info.reason, this.hello?.migrationId);
      this.fail(err, false);
    });
  }

  /** The current state. */
  get state(): ReceiverState {
    return this.current;
  }

  /** Whether guest memory for the incoming VM is allocated now (only between an accepted hello and the end). */
  get hasMemory(): boolean {
    return this.memory !== undefined;
  }

  /** Stats so far (live object; read only). */
  get receiverStats(): Readonly<ReceiverStats> {
    return this.stats;
  }

  /**
   * The commit point decided `commit` and told this side directly: activate now, without waiting
   * for the source's `activate` (which is then ignored). Saves the source's hop from the downtime.
   * Legal in `ready`; a no-op once activating or activated (whichever word came first).
   */
  commit(): void {
    if (this.current === 'activating' || this.current === 'activated') return;
    if (this.current !== 'ready') throw new InvalidTransitionError('commit', this.current);
    this.guarded(() => this.onActivate());
  }

  /** Abandons the migration from this side (agent shutdown, reservation expired). Legal before `activating`. */
  abort(code = 'FERRY_ERR_MIGRATION_CANCELLED', reason = 'destination aborted'): void {
    if (this.current === 'activating' || this.current === 'activated' || this.current === 'failed') throw new InvalidTransitionError('abort', this.current);
    this.fail(new MigrationError(code, reason, { migrationId: this.hello?.migrationId }), true);
  }

  private guarded(step: () => void | Promise<void>): void {
    try {
      const r = step();
      if (r) r.catch((err: unknown) => this.fail(err, true));
    } catch (err) {
      this.fail(err, true);
    }
  }

  private onMessage(m: SourceMessage): void | Promise<void> {
    if (this.current === 'failed' || this.current === 'activated') return;
    switch (m.type) {
      case 'hello':
        return this.onHello(m);
      case 'start-round':
        if (this.current !== 'receiving' || this.roundOpen || this.finalRound || m.round !== this.round + 1) throw this.unexpected(`start-round ${m.round}`);
        if (m.pageMap) {
          if (m.round !== 1 || m.final || m.pageMap.byteLength !== Math.ceil(this.memory!.pageCount / 8)) throw this.unexpected(`a page map of ${m.pageMap.byteLength} bytes in round ${m.round}`);
          this.prefaulting = this.options.prefault?.(this.memory!, m.pageMap);
        }
        this.round = m.round;
        this.finalRound = m.final;
        this.roundOpen = true;
        this.roundPages = 0;
        this.roundBytes = 0;
        return;
      case 'end-round':
        if (this.current !== 'receiving' || !this.roundOpen || m.round !== this.round) throw this.unexpected(`end-round ${m.round}`);
        if (m.pagesSent !== this.roundPages || m.bytesSent !== this.roundBytes) {
          throw new MigrationError('FERRY_ERR_MIGRATION_ROUND', `round ${m.round}: sender says ${m.pagesSent} pages / ${m.bytesSent} bytes, received ${this.roundPages} / ${this.roundBytes}`, { migrationId: this.hello?.migrationId });
        }
        this.roundOpen = false;
        this.stats.rounds = m.round;
        // Messages are handled in order, so every frame of this round is applied by now.
        if (!this.finalRound) this.channel.send({ type: 'round-applied', round: m.round });
        return;
      case 'transfer-state':
        if (this.current !== 'receiving' || this.roundOpen || !this.finalRound) throw this.unexpected('transfer-state');
        this.vmState = { registers: m.registers, devices: m.devices, pausedAtMs: m.pausedAtMs };
        this.stopPrefault(); // every page is in: what is not resident now stays zero
        this.current = 'verifying';
        return;
      case 'verify-memory': {
        if (this.current !== 'verifying') throw this.unexpected('verify-memory');
        const actual = m.algorithm === 'page-sum' ? this.tracker!.digest() : memoryDigest(this.memory!);
        if (actual !== m.digest) throw new MigrationDigestError(m.digest, actual, this.hello?.migrationId);
        this.digest = actual;
        this.current = 'ready';
        this.channel.send({ type: 'ready', digest: actual });
        this.options.announceReady?.(actual);
        const prepare = this.options.prepare;
        if (prepare) {
          const received = this.receivedVm();
          // After this turn of the event loop, so that `ready` is on its way first.
          this.prepared = new Promise<void>((resolve) => setImmediate(resolve)).then(() => (this.current === 'ready' || this.current === 'activating' ? prepare(received) : undefined)).catch(() => {});
        }
        return;
      }
      case 'activate':
        if (this.current === 'activating') return; // activated on the commit point's word already (commit())
        if (this.current !== 'ready') throw this.unexpected('activate');
        return this.onActivate();
      case 'cancel':
        this.fail(new MigrationCancelledError(`${m.code}: ${m.reason}`, this.hello?.migrationId), false);
        return;
      case 'error':
        this.fail(new MigrationRemoteError(m.code, m.message, this.hello?.migrationId), false);
        return;
    }
  }

  private async onHello(hello: HelloMessage): Promise<void> {
    if (this.current !== 'awaiting-hello') throw this.unexpected('hello');
    this.current = 'authorizing';
    try {
      if (!MIGRATION_PROTOCOL_VERSIONS_ACCEPTED.includes(hello.protocolVersion)) throw new ProtocolVersionError(hello.protocolVersion, MIGRATION_PROTOCOL_VERSIONS_ACCEPTED);
      const maxPages = this.options.maxPageCount ?? MIGRATION_MAX_PAGE_COUNT;
      if (hello.pageCount > maxPages) throw new MigrationSizeError(`VM of ${hello.pageCount} pages exceeds the ${maxPages}-page limit`, hello.migrationId);
      if (hello.vm.memoryBytes !== hello.pageCount * PAGE_SIZE_BYTES) throw new MigrationSizeError(`memoryBytes ${hello.vm.memoryBytes} is not ${hello.pageCount} pages`, hello.migrationId);
      await this.options.authorize(hello);
    } catch (err) {
      if (this.current !== 'authorizing') return;
      const code = errorCodeOf(err);
      this.current = 'failed';
      if (!this.channel.closed) {
        this.channel.send({ type: 'hello-refused', code, message: String((err as Error).message).slice(0, 1000), versionsAccepted: MIGRATION_PROTOCOL_VERSIONS_ACCEPTED });
        this.channel.close(err instanceof ProtocolVersionError ? MIGRATION_CLOSE_CODE.version : MIGRATION_CLOSE_CODE.refused, code);
      }
      this.reject(err as Error);
      return;
    }
    if (this.current !== 'authorizing') return; // closed or cancelled while authorizing: nothing allocated
    const memory = (await this.options.allocateMemory?.(hello.pageCount)) ?? new GuestMemory(hello.pageCount);
    if (this.current !== 'authorizing') return; // closed or cancelled meanwhile: drop it
    if (memory.pageCount !== hello.pageCount) throw new MigrationSizeError(`allocated ${memory.pageCount} pages for ${hello.pageCount}`, hello.migrationId);
    this.hello = hello;
    this.memory = memory;
    this.words = new Int32Array(this.memory.buffer);
    this.tracker = new PageSumTracker(hello.pageCount);
    this.nonZero = new Int32Array(Math.ceil(hello.pageCount / 32));
    this.current = 'receiving';
    this.channel.send({ type: 'hello-accepted', protocolVersion: MIGRATION_PROTOCOL_VERSION });
  }

  private onFrame(frame: Uint8Array): void {
    if (this.current === 'failed' || this.current === 'activated') return;
    if (this.current !== 'receiving' || !this.roundOpen) throw this.unexpected('page frame');
    this.frame = frame;
    const summary = readPageFrame(frame, this.memory!.pageCount, this.visitRun, this.maxFrameBytes);
    this.frame = new Uint8Array(0);
    if (summary.round !== this.round) throw this.unexpected(`page frame of round ${summary.round}`);
    this.stats.framesReceived++;
    this.stats.bytesReceived += frame.byteLength;
    this.roundPages += summary.rawPages + summary.zeroPages;
    this.roundBytes += frame.byteLength;
  }

  /** Copies one checked run from the current frame into guest memory and updates the digest. */
  private applyRun(first: number, count: number, encoding: PageEncoding, dataOffset: number): void {
    const memory = this.memory!;
    const tracker = this.tracker!;
    const start = pageOffset(first);
    const end = start + count * PAGE_SIZE_BYTES;
    if (encoding === PAGE_ENCODING.raw) {
      memory.writePages(first, this.frame.subarray(dataOffset, dataOffset + (end - start)));
      const words = this.words!;
      const nonZero = this.nonZero!;
      for (let p = first; p < first + count; p++) {
        const zero = isZeroPageAt(words, p);
        tracker.update(p, memory.bytes.subarray(pageOffset(p), pageOffset(p + 1)), zero);
        if (zero) nonZero[p >>> 5] = nonZero[p >>> 5]! & ~(1 << (p & 31));
        else nonZero[p >>> 5] = nonZero[p >>> 5]! | (1 << (p & 31));
      }
      this.stats.rawPagesReceived += count;
    } else {
      memory.bytes.fill(0, start, end);
      for (let p = first; p < first + count; p++) tracker.setZero(p);
      const nonZero = this.nonZero!;
      for (let p = first; p < first + count; p++) nonZero[p >>> 5] = nonZero[p >>> 5]! & ~(1 << (p & 31));
      this.stats.zeroPagesReceived += count;
    }
  }

  /** What activation hands over (built once: the same object for prepare and activate). */
  private receivedVm(): ReceivedVm {
    if (this.received) return this.received;
    // A view, no pass over the pages: this runs inside the downtime, in code too cold to be optimised.
    const writtenPageMap = new Uint8Array(this.nonZero!.buffer, 0, Math.ceil(this.memory!.pageCount / 8));
    this.received = { memory: this.memory!, registers: this.vmState!.registers, devices: this.vmState!.devices, writtenPageMap };
    return this.received;
  }

  private async onActivate(): Promise<void> {
    this.current = 'activating';
    const received = this.receivedVm();
    let resumedAtMs: number | undefined;
    try {
      await this.prepared;
      resumedAtMs = (await this.options.activate?.(received))?.resumedAtMs;
    } catch (err) {
      // Committed already: report the failure to the source and the agent; the coordinator decides.
      this.current = 'failed';
      const code = errorCodeOf(err);
      if (!this.channel.closed) {
        this.channel.send({ type: 'error', code, message: String((err as Error).message).slice(0, 1000) });
        this.channel.close(MIGRATION_CLOSE_CODE.aborted, code);
      }
      this.reject(err as Error);
      return;
    }
    resumedAtMs ??= this.now();
    this.current = 'activated';
    if (!this.channel.closed) this.channel.send({ type: 'activated', resumedAtMs });
    this.resolve({
      state: 'activated',
      migrationId: this.hello!.migrationId,
      vm: this.hello!.vm,
      memory: received.memory,
      registers: received.registers,
      devices: received.devices,
      pausedAtMs: this.vmState!.pausedAtMs,
      resumedAtMs,
      digest: this.digest,
      stats: { ...this.stats },
    });
  }

  private stopPrefault(): void {
    this.prefaulting?.stop();
    this.prefaulting = undefined;
  }

  private unexpected(what: string): UnexpectedMessageError {
    return new UnexpectedMessageError(what, this.current, this.hello?.migrationId);
  }

  /** Drops the partial VM, tells the peer (when `tellPeer`), closes with the error code, rejects `done`. */
  private fail(err: unknown, tellPeer: boolean): void {
    if (this.current === 'failed' || this.current === 'activated') return;
    this.current = 'failed';
    this.stopPrefault();
    this.memory = undefined;
    this.words = undefined;
    this.tracker = undefined;
    this.nonZero = undefined;
    this.received = undefined;
    this.frame = new Uint8Array(0);
    const code = errorCodeOf(err);
    if (!this.channel.closed) {
      if (tellPeer) {
        try {
          this.channel.send({ type: 'error', code, message: String((err as Error)?.message ?? err).slice(0, 1000) });
        } catch {
          // closing anyway
        }
      }
      const closeCode = err instanceof ProtocolError || err instanceof UnexpectedMessageError ? MIGRATION_CLOSE_CODE.protocolError : MIGRATION_CLOSE_CODE.aborted;
      this.channel.close(closeCode, code);
    }
    this.reject(err instanceof Error ? err : new MigrationError(code, String(err)));
  }
}

/**
 * An `authorize` hook for one expected migration: refuses another migration id
 * (UnknownMigrationError) or a token that differs, compared in constant time (MigrationTokenError).
 * The agent must also make the token one-time: forget it once a hello used it.
 */
export function expectToken(migrationId: string, token: string): (hello: HelloMessage) => void {
  const expected = Buffer.from(token, 'utf8');
  return (hello) => {
    if (hello.migrationId !== migrationId) throw new UnknownMigrationError(hello.migrationId);
    const given = Buffer.from(hello.token, 'utf8');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new MigrationTokenError(hello.migrationId);
  };
}
