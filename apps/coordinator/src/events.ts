/**
 * The coordinator's event stream: every state change is an ApiEvent (api.ts) with a kebab-case
 * `type`, a sequence number and a time. Subscribers (the `/api` WebSocket, modules) get them live;
 * the last `capacity` events are kept for `since` replays and `GET /api/v1/events`.
 */
import type { ApiEvent, ApiEventType } from '@ferry/protocol';

/** Which VM, host and migration an event concerns. */
export interface EventRefs {
  readonly vm?: string;
  readonly host?: string;
  readonly migration?: string;
}

/** A bounded, in-order event bus. */
export class EventBus {
  private readonly ring: ApiEvent[] = [];
  private readonly listeners = new Set<(e: ApiEvent) => void>();
  private seq = 0;
  private readonly capacity: number;

  /** Keeps the last `capacity` events (default 1000). */
  constructor(capacity = 1000) {
    this.capacity = capacity;
  }

  /** The seq of the newest event (0 if none). */
  get lastSeq(): number {
    return this.seq;
  }

  /** Records and delivers an event; returns it. A throwing listener does not stop the others. */
  emit(type: ApiEventType, refs: EventRefs = {}, data: object = {}): ApiEvent {
    const event: ApiEvent = { seq: ++this.seq, at: new Date().toISOString(), type, ...refs, data: data as Record<string, unknown> };
    this.ring.push(event);
    if (this.ring.length > this.capacity) this.ring.shift();
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        /* a subscriber's bug must not break the coordinator */
      }
    }
    return event;
  }

  /** Subscribes; returns the unsubscribe function. */
  subscribe(listener: (e: ApiEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Kept events with seq > `since`, oldest first, at most `limit`. */
  since(since = 0, limit = this.capacity): ApiEvent[] {
    return this.ring.filter((e) => e.seq > since).slice(0, limit);
  }
}
