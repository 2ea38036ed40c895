import WebSocket from 'ws';
import { API_WS_PATH, ApiError, type ApiEvent, type ApiEventFilter, type ApiServerMessage } from '@ferry/protocol';
import { ConnectionError } from './errors.ts';

/** Options of ApiClient. `timeoutMs` bounds each HTTP request (default 30 s). */
export interface ApiClientOptions {
  readonly url: string;
  readonly token: string | undefined;
  readonly timeoutMs?: number;
  /** Appended to the message when the coordinator cannot be reached (how to start or find one). */
  readonly unreachableHint?: string;
}

/** A live event subscription on the coordinator's `/api` WebSocket. */
export interface EventSubscription {
  /** Seq of the newest event when the subscription became active. */
  readonly lastSeq: number;
  /** Closes the socket. Idempotent. */
  close(): void;
  /** Resolves when the socket closes (by close() or by the server). */
  readonly closed: Promise<void>;
}

/** Options of ApiClient.subscribe. */
export interface SubscribeOptions {
  readonly since?: number;
  readonly filter?: ApiEventFilter;
  readonly onEvent: (event: ApiEvent) => void;
}

/**
 * A thin client of the coordinator's HTTP API (`/api/v1`) and `/api` WebSocket. Every request
 * carries the bearer token; non-2xx replies become ApiError with the server's code; transport
 * failures become ConnectionError.
 */
export class ApiClient {
  readonly url: string;
  /** The bearer token sent with every request (the cluster token; the agents' probe path takes it too). */
  readonly token: string | undefined;
  private readonly timeoutMs: number;
  private readonly unreachableHint: string | undefined;

  constructor(options: ApiClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.unreachableHint = options.unreachableHint;
  }

  /** GET `path` (with an optional query) and parse the JSON reply. */
  get<T>(path: string, query?: Readonly<Record<string, string | number | undefined>>): Promise<T> {
    let full = path;
    if (query) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
      const qs = params.toString();
      if (qs) full += `?${qs}`;
    }
    return this.request<T>('GET', full);
  }

  /** POST a JSON body (default `{}`) to `path`. */
  post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  /** DELETE `path`. */
  delete<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token !== undefined) headers['authorization'] = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(this.url + path, { method, headers, body: body === undefined ? null : JSON.stringify(body), signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const detail = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new ConnectionError(this.url, this.unreachableHint ? `${detail}; ${this.unreachableHint}` : detail, { cause: err });
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      if (res.ok) throw new ApiError('FERRY_ERR_BAD_REPLY', `${method} ${path}: reply is not JSON`, { status: res.status });
      parsed = undefined;
    }
    if (!res.ok) {
      const error = ApiError.fromBody(parsed, res.status);
      if (error.code === 'FERRY_ERR_INTERNAL' && parsed === undefined) {
        throw new ApiError(res.status === 401 ? 'FERRY_ERR_UNAUTHORIZED' : 'FERRY_ERR_INTERNAL', `${method} ${path}: HTTP ${res.status}${text ? ` ${text.slice(0, 200)}` : ''}`, { status: res.status });
      }
      throw error;
    }
    return parsed as T;
  }

  /**
   * Opens the `/api` WebSocket and subscribes to events. Resolves once the server confirms the
   * subscription (its `lastSeq` tells where live events start); rejects if it cannot connect.
   */
  subscribe(options: SubscribeOptions): Promise<EventSubscription> {
    const wsUrl = `${this.url.replace(/^http/, 'ws')}${API_WS_PATH}`;
    const headers: Record<string, string> = {};
    if (this.token !== undefined) headers['authorization'] = `Bearer ${this.token}`;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl, { headers, handshakeTimeout: this.timeoutMs, maxPayload: 16 * 1024 * 1024 });
      let settled = false;
      const closed = new Promise<void>((done) => ws.once('close', () => done()));
      ws.once('unexpected-response', (_req, res) => {
        settled = true;
        reject(res.statusCode === 401 ? new ApiError('FERRY_ERR_UNAUTHORIZED', `${wsUrl}: token refused`, { status: 401 }) : new ConnectionError(this.url, `WebSocket upgrade refused with HTTP ${res.statusCode}`));
        ws.terminate();
      });
      ws.once('error', (err) => {
        if (settled) return;
        settled = true;
        reject(new ConnectionError(this.url, (err as NodeJS.ErrnoException).code ?? err.message, { cause: err }));
      });
      ws.once('open', () => {
        ws.send(JSON.stringify({ type: 'subscribe', ...(options.since !== undefined ? { since: options.since } : {}), ...(options.filter ? { filter: options.filter } : {}) }));
      });
      ws.on('message', (data, isBinary) => {
        if (isBinary) return;
        let msg: ApiServerMessage;
        try {
          msg = JSON.parse(data.toString()) as ApiServerMessage;
        } catch {
          return;
        }
        if (msg.type === 'subscribed' && !settled) {
          settled = true;
          resolve({ lastSeq: msg.lastSeq, close: () => ws.close(), closed });
        } else if (msg.type === 'event') {
          options.onEvent(msg.event);
        } else if (msg.type === 'error' && !settled) {
          settled = true;
          reject(new ApiError(msg.error.code, msg.error.message));
          ws.close();
        }
      });
      ws.once('close', () => {
        if (!settled) {
          settled = true;
          reject(new ConnectionError(this.url, 'WebSocket closed before the subscription was confirmed'));
        }
      });
    });
  }
}
