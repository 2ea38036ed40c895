/**
 * Keeps a client connection up: connect, hand the channel to `onConnected`, and when it closes
 * (or a connect fails) try again after an exponential backoff with jitter, reset after a
 * connection that stayed up. Used by the agent for its coordinator link.
 */
import type { ChannelCloseInfo } from '@ferry/protocol';
import type { WsChannel } from './ws-channel.ts';

/** Backoff: delay = min(maxMs, initialMs × factor^attempt) × (1 ± jitter/2). */
export interface BackoffOptions {
  /** Default 100 ms. */
  readonly initialMs?: number;
  /** Default 5000 ms. */
  readonly maxMs?: number;
  /** Default 2. */
  readonly factor?: number;
  /** Fraction of randomness, 0–1; default 0.3. */
  readonly jitter?: number;
}

/** The delay before retry number `attempt` (0-based). */
export function backoffDelayMs(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const initial = options.initialMs ?? 100;
  const max = options.maxMs ?? 5000;
  const factor = options.factor ?? 2;
  const jitter = options.jitter ?? 0.3;
  const base = Math.min(max, initial * factor ** Math.min(attempt, 30));
  return Math.max(0, Math.round(base * (1 + jitter * (random() - 0.5))));
}

/** Options of ReconnectingClient. */
export interface ReconnectingClientOptions<TIn, TOut> {
  /** Opens one connection (e.g. `() => openWsChannel(url, …)`). */
  connect(): Promise<WsChannel<TIn, TOut>>;
  /** Called with each new open channel. */
  onConnected(channel: WsChannel<TIn, TOut>): void;
  /** Called when a connection closes (before the retry is scheduled). */
  onDisconnected?(info: ChannelCloseInfo): void;
  /** Called when a connect attempt fails, with the delay before the next. */
  onRetry?(error: unknown, attempt: number, delayMs: number): void;
  readonly backoff?: BackoffOptions;
  /** Return false to stop retrying after this error (e.g. 401: a wrong token will not get better). Default: always retry. */
  shouldRetry?(error: unknown): boolean;
}

/** A client that reconnects with backoff until `stop()`. Starts at once. */
export class ReconnectingClient<TIn, TOut = TIn> {
  private readonly options: ReconnectingClientOptions<TIn, TOut>;
  private attempt = 0;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private current: WsChannel<TIn, TOut> | undefined;
  private failure: ((err: unknown) => void) | undefined;

  constructor(options: ReconnectingClientOptions<TIn, TOut>) {
    this.options = options;
    void this.tryConnect();
  }

  /** The open channel, if any. */
  get channel(): WsChannel<TIn, TOut> | undefined {
    return this.current && !this.current.closed ? this.current : undefined;
  }

  /** Called once when the client gives up (shouldRetry returned false). */
  onGiveUp(handler: (err: unknown) => void): void {
    this.failure = handler;
  }

  /** Stops reconnecting and closes the current channel with `code`. */
  stop(code = 1000, reason = 'stopping'): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.current?.close(code, reason);
  }

  private async tryConnect(): Promise<void> {
    if (this.stopped) return;
    let channel: WsChannel<TIn, TOut>;
    try {
      channel = await this.options.connect();
    } catch (err) {
      if (this.stopped) return;
      if (this.options.shouldRetry && !this.options.shouldRetry(err)) {
        this.stopped = true;
        this.failure?.(err);
        return;
      }
      this.schedule(err);
      return;
    }
    if (this.stopped) {
      channel.close(1000, 'stopping');
      return;
    }
    this.current = channel;
    const connectedAtMs = Date.now();
    channel.onClose((info) => {
      if (this.current === channel) this.current = undefined;
      this.options.onDisconnected?.(info);
      // A connection that stayed up for a while resets the backoff.
      if (Date.now() - connectedAtMs > 5000) this.attempt = 0;
      this.schedule(undefined);
    });
    this.options.onConnected(channel);
  }

  private schedule(err: unknown): void {
    if (this.stopped) return;
    const delayMs = backoffDelayMs(this.attempt, this.options.backoff);
    if (err !== undefined) this.options.onRetry?.(err, this.attempt, delayMs);
    this.attempt++;
    this.timer = setTimeout(() => void this.tryConnect(), delayMs);
  }
}
