/**
 * The one seam between the engine packages and the network. The migration sender and receiver
 * speak through a Channel; `packages/transport` implements it over a WebSocket, tests implement it
 * with an in-memory pipe. Like NATS.js's Transport: the core knows nothing about sockets.
 *
 * Two kinds of message cross a channel: control messages (typed objects, msgpack on the wire) and
 * binary page frames (many pages a frame; see the page-frame codec). A frame is handed over as a
 * list of parts so contiguous runs of guest pages can be sent as views, without a copy.
 *
 * `TMessage` is what arrives (onMessage), `TOut` what is sent; they default to the same union.
 * (Refined by the transport engineer: the second parameter lets asymmetric protocols such as
 * agent ↔ coordinator type each direction.)
 */
export interface Channel<TMessage, TOut = TMessage> {
  /** Queues a control message. Throws ChannelClosedError once closed. */
  send(message: TOut): void;
  /** Queues one binary frame made of `parts` in order. Parts may alias guest memory: they are sent before the next await point returns. */
  sendFrame(parts: readonly Uint8Array[]): void;
  /** Bytes queued and not yet handed to the kernel. Senders keep this under a bound. */
  readonly bufferedBytes: number;
  /** Resolves when `bufferedBytes` falls below the channel's low-water mark (at once if it already is); rejects if the channel closes first. */
  drained(): Promise<void>;
  /** Registers the handler for control messages (validated by the transport before delivery). */
  onMessage(handler: (message: TMessage) => void): void;
  /** Registers the handler for binary frames. The bytes are valid only during the call. */
  onFrame(handler: (frame: Uint8Array) => void): void;
  /** Registers the handler called once when the channel closes, by either side or by failure. */
  onClose(handler: (info: ChannelCloseInfo) => void): void;
  /** Closes the channel with a reason code; idempotent. */
  close(code?: number, reason?: string): void;
  /** Whether the channel is closed. */
  readonly closed: boolean;
}

/** Why a channel closed. `code` follows WebSocket close codes (1000 normal, 4xxx Ferry's own). */
export interface ChannelCloseInfo {
  readonly code: number;
  readonly reason: string;
  /** True when this side called close(). */
  readonly local: boolean;
}

/**
 * Turns control messages into bytes and back. `decode` validates: it throws on bytes that are not
 * exactly one well-formed message of the union (the transport then closes the channel with
 * FERRY_CLOSE_BAD_MESSAGE). Never trusts a length or a field it has not checked.
 */
export interface MessageCodec<TMessage, TOut = TMessage> {
  encode(message: TOut): Uint8Array;
  decode(bytes: Uint8Array): TMessage;
}
