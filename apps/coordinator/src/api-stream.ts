/**
 * The `/api` WebSocket (api-ws.ts): JSON text frames. `hello` at once, then `subscribe` replays
 * the kept events after `since` and streams new ones matching the filter; `ping` → `pong`. A bad
 * client message gets an `error` message and the socket stays open; a client that does not read
 * is cut off when its buffer passes the cap (it can resubscribe with `since`).
 */
import type { WebSocket } from 'ws';
import { apiEventMatches, parseApiClientMessage, type ApiEventFilter, type ApiServerMessage, MAX_API_CLIENT_MESSAGE_BYTES } from '@ferry/protocol';
import { FERRY_CLOSE } from '@ferry/transport';
import type { EventBus } from './events.ts';

/** Most bytes queued to one console before it is disconnected. */
export const API_STREAM_MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

/** Serves one `/api` socket until it closes. */
export function serveApiStream(ws: WebSocket, events: EventBus): void {
  let unsubscribe: (() => void) | undefined;
  let filter: ApiEventFilter | undefined;
  const send = (m: ApiServerMessage): void => {
    if (ws.readyState !== 1) return;
    if (ws.bufferedAmount > API_STREAM_MAX_BUFFERED_BYTES) {
      ws.close(FERRY_CLOSE.BUFFER_OVERFLOW, 'console not reading events');
      return;
    }
    ws.send(JSON.stringify(m));
  };
  ws.on('message', (data, isBinary) => {
    const bytes = data as Buffer;
    if (isBinary || bytes.byteLength > MAX_API_CLIENT_MESSAGE_BYTES) {
      send({ type: 'error', error: { code: 'FERRY_ERR_BAD_MESSAGE', message: 'expected a JSON text message of at most 16 KiB' } });
      return;
    }
    let message;
    try {
      message = parseApiClientMessage(bytes.toString('utf8'));
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'FERRY_ERR_BAD_MESSAGE';
      send({ type: 'error', error: { code, message: (err as Error).message } });
      return;
    }
    switch (message.type) {
      case 'ping':
        send({ type: 'pong', id: message.id });
        return;
      case 'unsubscribe':
        unsubscribe?.();
        unsubscribe = undefined;
        return;
      case 'subscribe': {
        unsubscribe?.();
        filter = message.filter;
        send({ type: 'subscribed', lastSeq: events.lastSeq });
        if (message.since) for (const e of events.since(message.since)) if (apiEventMatches(e, filter)) send({ type: 'event', event: e });
        unsubscribe = events.subscribe((e) => {
          if (apiEventMatches(e, filter)) send({ type: 'event', event: e });
        });
        return;
      }
    }
  });
  ws.on('close', () => unsubscribe?.());
  ws.on('error', () => {});
  send({ type: 'hello', lastSeq: events.lastSeq });
}
