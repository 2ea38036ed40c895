import { FerryError } from '@ferry/protocol';

/** Base class of every error this package throws: a stable `code` and structured context. */
export class TransportError extends FerryError {}

/** A send, or a wait for drain, on a channel that is closed. */
export class ChannelClosedError extends TransportError {
  readonly closeCode: number;
  readonly reason: string;
  constructor(closeCode: number, reason: string) {
    super('FERRY_ERR_CHANNEL_CLOSED', `channel closed (${closeCode}${reason ? `: ${reason}` : ''})`);
    this.closeCode = closeCode;
    this.reason = reason;
  }
}

/** A send that would push the buffered bytes past the channel's hard cap (the peer stopped reading). */
export class ChannelOverflowError extends TransportError {
  readonly bufferedBytes: number;
  readonly maxBufferedBytes: number;
  constructor(bufferedBytes: number, maxBufferedBytes: number) {
    super('FERRY_ERR_CHANNEL_OVERFLOW', `send buffer ${bufferedBytes} bytes is over the cap of ${maxBufferedBytes}`);
    this.bufferedBytes = bufferedBytes;
    this.maxBufferedBytes = maxBufferedBytes;
  }
}

/** An option outside its allowed range, found at construction. */
export class InvalidTransportOptionError extends TransportError {
  readonly option: string;
  constructor(option: string, message: string) {
    super('FERRY_ERR_TRANSPORT_OPTION', `${option}: ${message}`);
    this.option = option;
  }
}

/** A connection attempt that failed: refused, unauthorized (HTTP 401), or timed out. */
export class ConnectError extends TransportError {
  readonly url: string;
  /** HTTP status when the server answered the upgrade with an error. */
  readonly statusCode: number | undefined;
  constructor(url: string, message: string, statusCode?: number, options?: { cause?: unknown }) {
    super(statusCode === 401 ? 'FERRY_ERR_UNAUTHORIZED' : 'FERRY_ERR_CONNECT', `${redactUrl(url)}: ${message}`, options);
    this.url = redactUrl(url);
    this.statusCode = statusCode;
  }
}

/** Drops a `token` query parameter so URLs can be logged. */
export function redactUrl(url: string): string {
  return url.replace(/([?&]token=)[^&]*/g, '$1***');
}
