/**
 * Client side: open a WebSocket with a bearer token and wrap it in a WsChannel before the
 * handshake completes (so frames that arrive with the 101 response are not lost).
 */
import { WebSocket } from 'ws';
import type { MessageCodec } from '@ferry/protocol';
import { WsChannel, DEFAULT_MAX_PAYLOAD_BYTES, type WsChannelOptions } from './ws-channel.ts';
import { ConnectError } from './errors.ts';

/** A `generateMask` for ws that returns the zero mask: frames go out unmasked in effect (no XOR pass). */
export function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

/** Options of openWsChannel. */
export interface OpenWsChannelOptions<TIn, TOut> extends WsChannelOptions<TIn, TOut> {
  readonly codec: MessageCodec<TIn, TOut>;
  /** Sent as `Authorization: Bearer <token>`. */
  readonly token?: string;
  /** Cap of one incoming ws message; default DEFAULT_MAX_PAYLOAD_BYTES. */
  readonly maxPayloadBytes?: number;
  /** Give up on the handshake after this; default 5000 ms. */
  readonly handshakeTimeoutMs?: number;
  /** Use the zero mask for client→server frames (fast bulk upload; Ferry's own peers only). Default false. */
  readonly zeroMask?: boolean;
}

/** Connects to `url` and resolves with an open WsChannel; rejects with ConnectError (statusCode 401 when the token is refused). */
export function openWsChannel<TIn, TOut = TIn>(url: string, options: OpenWsChannelOptions<TIn, TOut>): Promise<WsChannel<TIn, TOut>> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (options.token !== undefined) headers['authorization'] = `Bearer ${options.token}`;
    const ws = new WebSocket(url, {
      headers,
      maxPayload: options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
      perMessageDeflate: false,
      handshakeTimeout: options.handshakeTimeoutMs ?? 5000,
      ...(options.zeroMask ? { generateMask: zeroMask } : {}),
    });
    // Listeners go on at once: the channel holds anything that arrives with the 101.
    const channel = new WsChannel<TIn, TOut>(ws, options);
    let settled = false;
    ws.once('unexpected-response', (_req, res) => {
      settled = true;
      ws.terminate();
      reject(new ConnectError(url, `upgrade refused with HTTP ${res.statusCode}`, res.statusCode));
    });
    ws.once('open', () => {
      settled = true;
      resolve(channel);
    });
    ws.once('error', (err) => {
      if (settled) return;
      settled = true;
      reject(new ConnectError(url, err.message, undefined, { cause: err }));
    });
    ws.once('close', () => {
      if (settled) return;
      settled = true;
      reject(new ConnectError(url, 'closed during the handshake'));
    });
  });
}
