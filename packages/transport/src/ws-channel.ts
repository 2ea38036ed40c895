/**
 * A `Channel` over one ws WebSocket: control messages and binary page frames multiplexed on one
 * connection. Every Ferry message is a binary ws message whose first byte is its kind
 * (`WIRE_KIND`): 1 = control message (the codec's bytes follow), 2 = page frame (the frame's parts
 * follow). Why a kind byte and not text-vs-binary: control messages are msgpack, not UTF-8, so
 * sending them as text would need JSON or base64 (slower, bigger) or skipping UTF-8 validation
 * (lying about the opcode). One byte is free, and on the sending side it is its own ws fragment,
 * so the page-frame parts (views of guest memory) are never copied into a new buffer.
 *
 * Bounds: ws `maxPayload` caps a whole message before it is allocated (ws closes with 1009);
 * control messages have a smaller cap (`maxControlBytes`, closes with CONTROL_TOO_LARGE); any
 * byte that is not a valid message closes with BAD_MESSAGE. Backpressure: `bufferedBytes` is ws
 * `bufferedAmount`; `drained()` waits for the socket's `drain` until it is under `lowWaterBytes`,
 * and also yields with setImmediate every `yieldEveryBytes` sent so a fast kernel cannot starve the
 * event loop. A send past `maxBufferedBytes` (a peer that stopped reading while the sender ignored
 * `drained()`) closes with BUFFER_OVERFLOW and throws.
 */
import type { WebSocket } from 'ws';
import type { Channel, ChannelCloseInfo, MessageCodec } from '@ferry/protocol';
import { FERRY_CLOSE } from './close-codes.ts';
import { ChannelClosedError, ChannelOverflowError, InvalidTransportOptionError } from './errors.ts';
import { FrameSplitter } from './frame-splitter.ts';
import { readIntoReusedBuffer } from './socket-read-buffer.ts';

/** The first byte of every Ferry ws message. 0 is invalid. */
export const WIRE_KIND = { CONTROL: 1, FRAME: 2 } as const;

/** Default cap of one ws message (page frame plus kind byte): 16 MiB + 64 KiB of headers. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024 + 64 * 1024;
/** Default cap of one control message: 1 MiB. */
export const DEFAULT_MAX_CONTROL_BYTES = 1024 * 1024;

/** Options of a WsChannel; every field has a default. */
export interface WsChannelOptions<TIn, TOut> {
  /** Encodes outgoing and validates incoming control messages. */
  readonly codec: MessageCodec<TIn, TOut>;
  /** Cap of one incoming control message. Default 1 MiB. */
  readonly maxControlBytes?: number;
  /** `drained()` waits while bufferedBytes is above this. Default 4 MiB. */
  readonly lowWaterBytes?: number;
  /** Senders should wait on `drained()` once bufferedBytes passes this (see `needsDrain`). Default 16 MiB. */
  readonly highWaterBytes?: number;
  /** A send beyond this closes the channel with BUFFER_OVERFLOW. Default 256 MiB. */
  readonly maxBufferedBytes?: number;
  /** `drained()` yields a macrotask at least once per this many bytes sent. Default 16 MiB. */
  readonly yieldEveryBytes?: number;
  /** Ping every `intervalMs`; no pong within `timeoutMs` terminates with HEARTBEAT_TIMEOUT. Off by default. */
  readonly heartbeat?: { readonly intervalMs: number; readonly timeoutMs: number };
  /** Messages that arrive before `onMessage` is registered are held, up to this many. Default 1024. */
  readonly maxEarlyMessages?: number;
  /** How `sendFrame` writes: `raw` (one hand-built ws frame, corked writev; default) or `fragments` (one ws fragment per part). */
  readonly frameMode?: 'raw' | 'fragments';
  /** Set by the creator of a client socket whose `generateMask` returns zeros (no masking cost, raw frames allowed). */
  readonly zeroMask?: boolean;
  /**
   * Server side: take zero-masked page frames out of the socket's bytes before ws reassembles them
   * (FrameSplitter): no allocation per frame. Everything else still goes through ws. Default true.
   */
  readonly takeFrames?: boolean;
  /**
   * Server side, with takeFrames: read the socket into one reused buffer of this many bytes instead
   * of a fresh one per read (see readIntoReusedBuffer); 0 keeps Node's. Default 256 KiB.
   */
  readonly readBufferBytes?: number;
}

const KIND_FRAME_BYTE = new Uint8Array([WIRE_KIND.FRAME]);
/** readBufferBytes default: past 64 KiB the size changed nothing measurable (64 KiB–4 MiB, 1 GiB migrations). */
const DEFAULT_READ_BUFFER_BYTES = 256 * 1024;

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

/**
 * Wraps a ws WebSocket (CONNECTING or OPEN) as a Channel. Construct it right after
 * `new WebSocket()` / on the server's `connection` event so no message is missed; messages that
 * arrive before handlers are registered are held (bounded).
 */
export class WsChannel<TIn, TOut = TIn> implements Channel<TIn, TOut> {
  readonly ws: WebSocket;
  private readonly codec: MessageCodec<TIn, TOut>;
  private readonly maxControlBytes: number;
  private readonly lowWaterBytes: number;
  readonly highWaterBytes: number;
  private readonly maxBufferedBytes: number;
  private readonly yieldEveryBytes: number;
  private readonly maxEarlyMessages: number;
  private readonly frameMode: 'raw' | 'fragments';
  private readonly zeroMask: boolean;
  private readonly isServer: boolean;
  private messageHandler: ((m: TIn) => void) | undefined;
  private frameHandler: ((f: Uint8Array) => void) | undefined;
  private readonly closeHandlers: ((info: ChannelCloseInfo) => void)[] = [];
  private early: Buffer[] = [];
  private closeInfo: ChannelCloseInfo | undefined;
  private localClose: { code: number; reason: string } | undefined;
  private waiters: Waiter[] = [];
  private drainArmed = false;
  /** Whether this server channel reads its socket into one reused buffer (readBufferBytes; false where Node lacks the internals). */
  private readsReuseBuffer = false;
  private bytesSinceYield = 0;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private lastPongAtMs = Date.now();
  /** Bytes sent through this channel (kind bytes included). */
  sentBytes = 0;
  /** Bytes received (whole ws messages). */
  receivedBytes = 0;

  constructor(ws: WebSocket, options: WsChannelOptions<TIn, TOut>) {
    this.ws = ws;
    this.codec = options.codec;
    this.maxControlBytes = positive('maxControlBytes', options.maxControlBytes ?? DEFAULT_MAX_CONTROL_BYTES);
    this.lowWaterBytes = positive('lowWaterBytes', options.lowWaterBytes ?? 4 * 1024 * 1024);
    this.highWaterBytes = positive('highWaterBytes', options.highWaterBytes ?? 16 * 1024 * 1024);
    this.maxBufferedBytes = positive('maxBufferedBytes', options.maxBufferedBytes ?? 256 * 1024 * 1024);
    this.yieldEveryBytes = positive('yieldEveryBytes', options.yieldEveryBytes ?? 16 * 1024 * 1024);
    this.maxEarlyMessages = positive('maxEarlyMessages', options.maxEarlyMessages ?? 1024);
    if (this.lowWaterBytes > this.highWaterBytes) throw new InvalidTransportOptionError('lowWaterBytes', 'must not exceed highWaterBytes');
    if (this.highWaterBytes > this.maxBufferedBytes) throw new InvalidTransportOptionError('highWaterBytes', 'must not exceed maxBufferedBytes');
    this.frameMode = options.frameMode ?? 'raw';
    this.zeroMask = options.zeroMask ?? false;
    this.isServer = (ws as unknown as { _isServer?: boolean })._isServer === true;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data, isBinary) => this.receive(data as Buffer, isBinary));
    const readBufferBytes = options.readBufferBytes ?? DEFAULT_READ_BUFFER_BYTES;
    if (!Number.isSafeInteger(readBufferBytes) || readBufferBytes < 0) throw new InvalidTransportOptionError('readBufferBytes', `must be a whole number of bytes, 0 or more, got ${readBufferBytes}`);
    if (this.isServer && (options.takeFrames ?? true)) this.takeFramesFromSocket(readBufferBytes);
    ws.on('close', (code, reason) => this.finish(code, reason.toString()));
    ws.on('error', () => {
      /* 'close' follows every 'error' in ws; the code (1006, 1009, …) says what happened. */
    });
    ws.on('pong', () => {
      this.lastPongAtMs = Date.now();
    });
    if (options.heartbeat) this.startHeartbeat(options.heartbeat.intervalMs, options.heartbeat.timeoutMs);
  }

  /** True when the socket is read into one reused buffer (see `readBufferBytes`); false on clients, with takeFrames off, or where Node lacks the internals. */
  get reusesReadBuffer(): boolean {
    return this.readsReuseBuffer;
  }

  get bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  /** True when a bulk sender should await `drained()` before sending more. */
  get needsDrain(): boolean {
    return this.ws.bufferedAmount > this.highWaterBytes || this.bytesSinceYield >= this.yieldEveryBytes;
  }

  get closed(): boolean {
    return this.closeInfo !== undefined || this.localClose !== undefined || this.ws.readyState > 1;
  }

  send(message: TOut): void {
    const bytes = this.codec.encode(message);
    const out = Buffer.allocUnsafe(bytes.byteLength + 1);
    out[0] = WIRE_KIND.CONTROL;
    out.set(bytes, 1);
    this.checkSendable(out.byteLength);
    this.ws.send(out, { binary: true, compress: false });
    this.account(out.byteLength);
  }

  /**
   * Sends one page frame made of `parts`, without copying them. Default mode `raw`: when the
   * frames need no masking (server side, or a client created with a zero mask) the ws frame header
   * is written by hand and the header, kind byte and parts go to the socket in one corked writev,
   * so the receiver gets one unfragmented ws frame (ws then copies it once, not twice). Otherwise
   * (masked client, or `frameMode: 'fragments'`) each part is its own ws fragment.
   */
  sendFrame(parts: readonly Uint8Array[]): void {
    let total = 1;
    for (const p of parts) total += p.byteLength;
    this.checkSendable(total);
    const socket = this.rawSocket();
    if (socket) {
      socket.cork();
      socket.write(frameHeader(total, !this.isServer));
      socket.write(KIND_FRAME_BYTE);
      for (const p of parts) socket.write(p);
      socket.uncork();
    } else {
      const last = parts.length - 1;
      this.ws.send(KIND_FRAME_BYTE, { binary: true, fin: last < 0, compress: false });
      for (let i = 0; i <= last; i++) {
        this.ws.send(parts[i]!, { binary: true, fin: i === last, compress: false });
      }
    }
    this.account(total);
  }

  private rawSocket(): import('node:net').Socket | undefined {
    if (this.frameMode !== 'raw') return undefined;
    if (!this.isServer && !this.zeroMask) return undefined;
    return (this.ws as unknown as { _socket?: import('node:net').Socket })._socket;
  }

  drained(): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError());
    if (this.ws.bufferedAmount <= this.lowWaterBytes && this.bytesSinceYield < this.yieldEveryBytes) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.armDrain();
    });
  }

  /** Registers the control-message handler; messages held until now are replayed in a microtask, so register onFrame in the same tick. */
  onMessage(handler: (message: TIn) => void): void {
    this.messageHandler = handler;
    queueMicrotask(() => this.replayEarly());
  }

  onFrame(handler: (frame: Uint8Array) => void): void {
    this.frameHandler = handler;
  }

  onClose(handler: (info: ChannelCloseInfo) => void): void {
    if (this.closeInfo) {
      const info = this.closeInfo;
      queueMicrotask(() => handler(info));
      return;
    }
    this.closeHandlers.push(handler);
  }

  close(code: number = FERRY_CLOSE.NORMAL, reason = ''): void {
    if (this.closeInfo || this.localClose) return;
    this.localClose = { code, reason };
    // Codes ws refuses to send (1006, 4008 is fine) are reported locally and the socket terminated.
    if (code === FERRY_CLOSE.ABNORMAL || code === FERRY_CLOSE.HEARTBEAT_TIMEOUT || this.ws.readyState === 0) {
      this.ws.terminate();
    } else {
      this.ws.close(code, reason.slice(0, 120));
      // A peer that never answers the close frame must not keep us open.
      setTimeout(() => this.ws.terminate(), 2000).unref();
    }
  }

  private checkSendable(bytes: number): void {
    if (this.closed) throw this.closedError();
    const buffered = this.ws.bufferedAmount;
    if (buffered + bytes > this.maxBufferedBytes) {
      this.close(FERRY_CLOSE.BUFFER_OVERFLOW, 'send buffer over its cap');
      throw new ChannelOverflowError(buffered + bytes, this.maxBufferedBytes);
    }
  }

  private account(bytes: number): void {
    this.sentBytes += bytes;
    this.bytesSinceYield += bytes;
  }

  private closedError(): ChannelClosedError {
    const info = this.closeInfo ?? this.localClose ?? { code: FERRY_CLOSE.ABNORMAL, reason: '' };
    return new ChannelClosedError(info.code, info.reason);
  }

  private armDrain(): void {
    if (this.drainArmed) return;
    this.drainArmed = true;
    const check = (): void => {
      if (this.closed) return;
      if (this.ws.bufferedAmount <= this.lowWaterBytes) {
        // Yield one macrotask (setImmediate) so timers and I/O run, then release the waiters.
        setImmediate(() => {
          this.drainArmed = false;
          this.bytesSinceYield = 0;
          const ws = this.waiters;
          this.waiters = [];
          for (const w of ws) w.resolve();
        });
        return;
      }
      const socket = (this.ws as unknown as { _socket?: NodeJS.EventEmitter })._socket;
      if (socket) socket.once('drain', check);
      else setTimeout(check, 1);
    };
    check();
  }

  private receive(data: Buffer, isBinary: boolean): void {
    if (this.closed) return;
    this.receivedBytes += data.byteLength;
    if (!isBinary) {
      this.close(FERRY_CLOSE.BAD_MESSAGE, 'text messages are not part of the protocol');
      return;
    }
    const kind = data[0];
    if (kind === WIRE_KIND.CONTROL) {
      if (data.byteLength - 1 > this.maxControlBytes) {
        this.close(FERRY_CLOSE.CONTROL_TOO_LARGE, `control message over ${this.maxControlBytes} bytes`);
        return;
      }
      if (!this.messageHandler) return this.hold(data);
      this.deliverControl(data);
    } else if (kind === WIRE_KIND.FRAME) {
      // Held until onMessage is registered, so frames never overtake the control messages before them.
      if (!this.messageHandler) return this.hold(data);
      this.receiveFrame(data.subarray(1));
    } else {
      this.close(FERRY_CLOSE.BAD_MESSAGE, `unknown message kind ${kind ?? 'none'}`);
    }
  }

  private deliverControl(data: Buffer): void {
    let message: TIn;
    try {
      message = this.codec.decode(data.subarray(1));
    } catch (err) {
      this.close(FERRY_CLOSE.BAD_MESSAGE, err instanceof Error ? err.message : 'invalid control message');
      return;
    }
    this.messageHandler!(message);
  }

  /** Hands a page frame (after its kind byte) to the frame handler, once onMessage is registered. */
  private receiveFrame(frame: Buffer): void {
    if (!this.frameHandler) {
      this.close(FERRY_CLOSE.UNEXPECTED_FRAME, 'no page frames expected here');
      return;
    }
    this.frameHandler(frame);
  }

  /**
   * Puts a FrameSplitter between the socket and ws's receiver (server side). Only when ws is
   * configured so its receiver handles every write before `write` returns (synchronous events, no
   * extensions): then a frame taken out can never overtake a message ws still holds. Otherwise, or
   * if ws's internals are not the ones this was written against, ws keeps the whole stream.
   */
  private takeFramesFromSocket(readBufferBytes: number): void {
    const internals = this.ws as unknown as {
      _socket?: import('node:net').Socket;
      _receiver?: import('node:stream').Writable & { _allowSynchronousEvents?: boolean; _maxPayload?: number };
      _extensions?: Record<string, unknown>;
    };
    const socket = internals._socket;
    const receiver = internals._receiver;
    const wsOnData = socket?.listeners('data').find((f) => f.name === 'socketOnData');
    if (!socket || !receiver || !wsOnData || receiver._allowSynchronousEvents !== true || Object.keys(internals._extensions ?? {}).length > 0) return;
    const splitter = new FrameSplitter(
      {
        forward: (bytes) => {
          // ws may keep a chunk until the rest of its frame comes: never a view of the reused buffer.
          if (!receiver.write(this.readsReuseBuffer ? Buffer.from(bytes) : bytes)) socket.pause(); // what ws's own listener does; its receiver resumes the socket on drain
        },
        frame: (frame) => {
          if (this.closed) return;
          this.receivedBytes += frame.byteLength + 1;
          if (this.messageHandler) return this.receiveFrame(frame);
          // Held: copy it out of the splitter's reused buffer, kind byte first as ws delivers it.
          const data = Buffer.allocUnsafe(frame.byteLength + 1);
          data[0] = WIRE_KIND.FRAME;
          frame.copy(data, 1);
          this.hold(data);
        },
      },
      { kindByte: WIRE_KIND.FRAME, maxPayloadBytes: receiver._maxPayload || DEFAULT_MAX_PAYLOAD_BYTES },
    );
    socket.removeListener('data', wsOnData as (chunk: Buffer) => void);
    socket.on('data', (chunk: Buffer) => splitter.push(chunk));
    if (readBufferBytes > 0) this.readsReuseBuffer = readIntoReusedBuffer(socket, readBufferBytes, (chunk) => splitter.push(chunk));
  }

  private hold(data: Buffer): void {
    if (this.early.length >= this.maxEarlyMessages) {
      this.close(FERRY_CLOSE.BUFFER_OVERFLOW, 'too many messages before a handler was registered');
      return;
    }
    this.early.push(data);
  }

  private replayEarly(): void {
    if (this.early.length === 0 || !this.messageHandler) return;
    const held = this.early;
    this.early = [];
    for (const data of held) {
      if (this.closed) return;
      if (data[0] === WIRE_KIND.CONTROL) this.deliverControl(data);
      else this.receiveFrame(data.subarray(1));
    }
  }

  private startHeartbeat(intervalMs: number, timeoutMs: number): void {
    positive('heartbeat.intervalMs', intervalMs);
    positive('heartbeat.timeoutMs', timeoutMs);
    this.lastPongAtMs = Date.now();
    this.heartbeatTimer = setInterval(() => {
      if (this.ws.readyState !== 1) return;
      if (Date.now() - this.lastPongAtMs > timeoutMs) {
        this.close(FERRY_CLOSE.HEARTBEAT_TIMEOUT, `no pong for ${timeoutMs} ms`);
        return;
      }
      this.ws.ping();
    }, intervalMs);
    this.heartbeatTimer.unref();
  }

  private finish(code: number, reason: string): void {
    if (this.closeInfo) return;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    const info: ChannelCloseInfo = this.localClose
      ? { code: this.localClose.code, reason: this.localClose.reason, local: true }
      : { code, reason, local: false };
    this.closeInfo = info;
    this.early = [];
    const err = this.closedError();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(err);
    for (const h of this.closeHandlers.splice(0)) h(info);
  }
}

/** A ws frame header (FIN, binary opcode) for a payload of `length` bytes; masked with a zero key when `masked`. */
function frameHeader(length: number, masked: boolean): Buffer {
  const maskBit = masked ? 0x80 : 0;
  const maskBytes = masked ? 4 : 0;
  let header: Buffer;
  if (length < 126) {
    header = Buffer.alloc(2 + maskBytes);
    header[1] = maskBit | length;
  } else if (length < 65536) {
    header = Buffer.alloc(4 + maskBytes);
    header[1] = maskBit | 126;
    header.writeUInt16BE(length, 2);
  } else {
    header = Buffer.alloc(10 + maskBytes);
    header[1] = maskBit | 127;
    header.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    header.writeUInt32BE(length >>> 0, 6);
  }
  header[0] = 0x82;
  return header;
}

function positive(option: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new InvalidTransportOptionError(option, `must be a positive number, got ${value}`);
  return value;
}
