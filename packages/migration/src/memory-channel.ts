import { joinFrameParts, type Channel, type ChannelCloseInfo, type MessageCodec } from '@ferry/protocol';

/** Options of an in-memory channel pair. */
export interface MemoryChannelOptions {
  /** drained() resolves once a side's buffered bytes fall to this. Default 1 MiB. */
  readonly lowWaterBytes?: number;
  /** Bytes delivered per event-loop turn in each direction (models link speed per turn). Default 4 MiB. */
  readonly bytesPerTurn?: number;
  /** A sender that ignores backpressure past this is cut off: close 4009, like the ws transport. Default 64 MiB. */
  readonly maxBufferedBytes?: number;
}

/** Thrown by send()/sendFrame() on a closed in-memory channel. */
export class MemoryChannelClosedError extends Error {
  readonly code = 'FERRY_ERR_CHANNEL_CLOSED';
  constructor() {
    super('channel is closed');
    this.name = 'MemoryChannelClosedError';
  }
}

type Item = { kind: 'message' | 'frame'; bytes: Uint8Array } | { kind: 'close'; code: number; reason: string };

/**
 * One end of an in-memory pipe. Messages go through the real codecs (encode here, validated decode
 * on the other side); frames are copied at sendFrame (like a socket write) and delivered later, on
 * a macrotask, in order, with bounded bytes per turn; `bufferedBytes` counts what the peer has not
 * consumed yet. Test-only hooks inject raw bytes and cut the link.
 */
export class MemoryChannel<TMessage, TOut = TMessage> implements Channel<TMessage, TOut> {
  peer!: MemoryChannel<TOut, TMessage>;
  private readonly codec: MessageCodec<TMessage, TOut>;
  private readonly lowWaterBytes: number;
  private readonly bytesPerTurn: number;
  private readonly maxBufferedBytes: number;
  private queue: Item[] = [];
  private queuedBytes = 0;
  private scheduled = false;
  private isClosed = false;
  private messageHandler: ((m: TMessage) => void) | undefined;
  private frameHandler: ((f: Uint8Array) => void) | undefined;
  private closeHandlers: ((info: ChannelCloseInfo) => void)[] = [];
  private drainWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private closeInfo: ChannelCloseInfo | undefined;

  constructor(codec: MessageCodec<TMessage, TOut>, options: MemoryChannelOptions = {}) {
    this.codec = codec;
    this.lowWaterBytes = options.lowWaterBytes ?? 1024 * 1024;
    this.bytesPerTurn = options.bytesPerTurn ?? 4 * 1024 * 1024;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 64 * 1024 * 1024;
  }

  get bufferedBytes(): number {
    return this.queuedBytes;
  }
  get closed(): boolean {
    return this.isClosed;
  }

  send(message: TOut): void {
    if (this.isClosed) throw new MemoryChannelClosedError();
    this.enqueue({ kind: 'message', bytes: this.codec.encode(message) });
  }

  sendFrame(parts: readonly Uint8Array[]): void {
    if (this.isClosed) throw new MemoryChannelClosedError();
    this.enqueue({ kind: 'frame', bytes: joinFrameParts(parts) });
  }

  /** Test hook: delivers `bytes` to the peer as a control message, undecoded (hostile input). */
  sendRawMessage(bytes: Uint8Array): void {
    this.enqueue({ kind: 'message', bytes: bytes.slice() });
  }

  /** Test hook: delivers `bytes` to the peer as a binary frame, as is. */
  sendRawFrame(bytes: Uint8Array): void {
    this.enqueue({ kind: 'frame', bytes: bytes.slice() });
  }

  drained(): Promise<void> {
    if (this.isClosed) return Promise.reject(new MemoryChannelClosedError());
    if (this.queuedBytes <= this.lowWaterBytes) return Promise.resolve();
    return new Promise((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  onMessage(handler: (message: TMessage) => void): void {
    this.messageHandler = handler;
  }
  onFrame(handler: (frame: Uint8Array) => void): void {
    this.frameHandler = handler;
  }
  onClose(handler: (info: ChannelCloseInfo) => void): void {
    this.closeHandlers.push(handler);
  }

  /** Closes after what is queued is delivered (a clean close); the peer sees `local: false`. */
  close(code = 1000, reason = ''): void {
    if (this.isClosed) return;
    this.markClosed({ code, reason, local: true });
    this.queue.push({ kind: 'close', code, reason });
    this.schedule();
  }

  /** Test hook: the link dies now. Nothing queued is delivered; both sides see 1006. */
  cut(): void {
    for (const side of [this, this.peer] as MemoryChannel<unknown, unknown>[]) {
      side.queue = [];
      side.queuedBytes = 0;
      if (!side.isClosed) side.markClosed({ code: 1006, reason: 'connection cut', local: false });
    }
  }

  private enqueue(item: Item): void {
    if (item.kind !== 'close') this.queuedBytes += item.bytes.byteLength;
    if (this.queuedBytes > this.maxBufferedBytes) {
      this.queue = [];
      this.queuedBytes = 0;
      this.close(4009, 'FERRY_ERR_BUFFER_OVERFLOW');
      return;
    }
    this.queue.push(item);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.deliver());
  }

  private deliver(): void {
    this.scheduled = false;
    let budget = this.bytesPerTurn;
    while (this.queue.length > 0 && budget > 0) {
      const item = this.queue.shift()!;
      if (item.kind === 'close') {
        this.queue = [];
        this.peer.markClosed({ code: item.code, reason: item.reason, local: false });
        return;
      }
      this.queuedBytes -= item.bytes.byteLength;
      budget -= item.bytes.byteLength;
      if (!this.peer.isClosed) this.peer.receive(item);
      if (this.queuedBytes <= this.lowWaterBytes) this.wakeDrainers();
    }
    if (this.queue.length > 0) this.schedule();
  }

  private receive(item: { kind: 'message' | 'frame'; bytes: Uint8Array }): void {
    if (item.kind === 'frame') {
      if (this.frameHandler) this.frameHandler(item.bytes);
      else this.closeBoth(4003, 'FERRY_ERR_UNEXPECTED_FRAME');
      return;
    }
    let message: TMessage;
    try {
      message = this.codec.decode(item.bytes);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      this.closeBoth(4001, typeof code === 'string' ? code : 'FERRY_ERR_MESSAGE_INVALID');
      return;
    }
    this.messageHandler?.(message);
  }

  /** What a transport does on hostile input: close with the code, both sides notified. */
  private closeBoth(code: number, reason: string): void {
    this.close(code, reason);
    this.peer.queue = [];
    this.peer.queuedBytes = 0;
  }

  private wakeDrainers(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w.resolve();
  }

  private markClosed(info: ChannelCloseInfo): void {
    if (this.isClosed && this.closeInfo) return;
    this.isClosed = true;
    this.closeInfo = info;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w.reject(new MemoryChannelClosedError());
    setImmediate(() => {
      for (const h of this.closeHandlers) h(info);
    });
  }
}

/**
 * Two connected in-memory channels: `a` decodes with `codecA` (and encodes what `b` decodes with
 * `codecB`), and vice versa. For tests and benchmarks of protocol state machines without sockets.
 */
export function createMemoryChannelPair<TA, TB>(
  codecA: MessageCodec<TA, TB>,
  codecB: MessageCodec<TB, TA>,
  options: MemoryChannelOptions = {},
): { a: MemoryChannel<TA, TB>; b: MemoryChannel<TB, TA> } {
  const a = new MemoryChannel<TA, TB>(codecA, options);
  const b = new MemoryChannel<TB, TA>(codecB, options);
  a.peer = b;
  b.peer = a;
  return { a, b };
}
