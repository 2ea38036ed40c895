import type { ApiErrorInfo, ApiEvent, ApiEventType } from './api.ts';
import { API_EVENT_TYPES } from './api.ts';
import { ApiValidationError } from './api-errors.ts';

/**
 * The console's live channel: WebSocket at `/api` (API_WS_PATH), JSON text frames.
 *
 * Authentication: `Authorization: Bearer <token>` on the upgrade request, or `?token=<token>` in
 * the URL (for browsers); otherwise the upgrade is refused with 401.
 *
 * ```
 * client                                server
 *   |  <-- hello { lastSeq }                |   at once after the upgrade
 *   |  subscribe { since?, filter? } -->    |
 *   |  <-- subscribed { lastSeq }           |
 *   |  <-- event { event } ...              |   every event with seq > since (backlog first), then live
 *   |  ping { id } -->   <-- pong { id }    |
 * ```
 *
 * Migration progress is events: migration-round-completed (data: RoundStats) per round, then
 * migration-completed (data: MigrationReport) or migration-failed / migration-cancelled. A
 * `since` of 0 or absent subscribes from now (no backlog); a later subscribe replaces the former.
 */

/** Restricts a subscription; every given field must match. */
export interface ApiEventFilter {
  readonly vm?: string;
  readonly host?: string;
  readonly migration?: string;
  readonly types?: readonly ApiEventType[];
}

/** Client → server: start (or replace) the event subscription. */
export interface ApiSubscribeMessage {
  readonly type: 'subscribe';
  /** Replay events with seq > since first (the server keeps a bounded backlog). */
  readonly since?: number;
  readonly filter?: ApiEventFilter;
}

/** Client → server: stop receiving events. */
export interface ApiUnsubscribeMessage {
  readonly type: 'unsubscribe';
}

/** Client → server: liveness check, answered by pong with the same id. */
export interface ApiPingMessage {
  readonly type: 'ping';
  readonly id: number;
}

/** Every message a client may send on `/api`. */
export type ApiClientMessage = ApiSubscribeMessage | ApiUnsubscribeMessage | ApiPingMessage;

/** Server → client, first message: the seq of the newest event so far (0 if none). */
export interface ApiHelloMessage {
  readonly type: 'hello';
  readonly lastSeq: number;
}

/** Server → client: the subscription is active; events after `lastSeq` will follow. */
export interface ApiSubscribedMessage {
  readonly type: 'subscribed';
  readonly lastSeq: number;
}

/** Server → client: one event. */
export interface ApiEventMessage {
  readonly type: 'event';
  readonly event: ApiEvent;
}

/** Server → client: answer to ping. */
export interface ApiPongMessage {
  readonly type: 'pong';
  readonly id: number;
}

/** Server → client: a client message was refused (the socket stays open). */
export interface ApiErrorMessage {
  readonly type: 'error';
  readonly error: ApiErrorInfo;
}

/** Every message the server sends on `/api`. */
export type ApiServerMessage = ApiHelloMessage | ApiSubscribedMessage | ApiEventMessage | ApiPongMessage | ApiErrorMessage;

/** Largest client message accepted, bytes. */
export const MAX_API_CLIENT_MESSAGE_BYTES = 16 * 1024;

/** Parses and validates one client text frame. Throws ApiValidationError on anything malformed. */
export function parseApiClientMessage(text: string): ApiClientMessage {
  if (text.length > MAX_API_CLIENT_MESSAGE_BYTES) throw new ApiValidationError('message', `message over ${MAX_API_CLIENT_MESSAGE_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ApiValidationError('message', 'message is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ApiValidationError('message', 'message must be a JSON object');
  const o = value as Record<string, unknown>;
  switch (o['type']) {
    case 'subscribe': {
      const since = o['since'];
      if (since !== undefined && (typeof since !== 'number' || !Number.isSafeInteger(since) || since < 0)) {
        throw new ApiValidationError('since', 'since must be a non-negative integer');
      }
      const filter = o['filter'] === undefined ? undefined : parseFilter(o['filter']);
      return { type: 'subscribe', ...(since === undefined ? {} : { since }), ...(filter === undefined ? {} : { filter }) };
    }
    case 'unsubscribe':
      return { type: 'unsubscribe' };
    case 'ping': {
      const id = o['id'];
      if (typeof id !== 'number' || !Number.isSafeInteger(id)) throw new ApiValidationError('id', 'ping id must be an integer');
      return { type: 'ping', id };
    }
    default:
      throw new ApiValidationError('type', `unknown message type ${JSON.stringify(o['type'])} (subscribe, unsubscribe, ping)`);
  }
}

function parseFilter(value: unknown): ApiEventFilter {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ApiValidationError('filter', 'filter must be an object');
  const o = value as Record<string, unknown>;
  const out: { vm?: string; host?: string; migration?: string; types?: ApiEventType[] } = {};
  for (const key of ['vm', 'host', 'migration'] as const) {
    const v = o[key];
    if (v === undefined) continue;
    if (typeof v !== 'string' || v.length === 0 || v.length > 128) throw new ApiValidationError(`filter.${key}`, `filter.${key} must be an id`);
    out[key] = v;
  }
  const types = o['types'];
  if (types !== undefined) {
    if (!Array.isArray(types) || !types.every((t) => (API_EVENT_TYPES as readonly unknown[]).includes(t))) {
      throw new ApiValidationError('filter.types', 'filter.types must be a list of event types');
    }
    out.types = types as ApiEventType[];
  }
  return out;
}

/** Whether `event` passes `filter` (no filter: every event). */
export function apiEventMatches(event: ApiEvent, filter: ApiEventFilter | undefined): boolean {
  if (!filter) return true;
  if (filter.vm !== undefined && event.vm !== filter.vm) return false;
  if (filter.host !== undefined && event.host !== filter.host) return false;
  if (filter.migration !== undefined && event.migration !== filter.migration) return false;
  if (filter.types !== undefined && !filter.types.includes(event.type)) return false;
  return true;
}
