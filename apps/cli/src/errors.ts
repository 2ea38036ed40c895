import { ApiError } from '@ferry/protocol';

/** A command line the CLI refuses before contacting the coordinator (bad flag, missing argument, malformed size). */
export class UsageError extends ApiError {
  constructor(message: string, code = 'FERRY_ERR_USAGE') {
    super(code, message, { status: 400 });
  }
}

/** The coordinator could not be reached (refused, reset, timed out). */
export class ConnectionError extends ApiError {
  readonly url: string;
  constructor(url: string, detail: string, options?: { cause?: unknown }) {
    super('FERRY_ERR_CONNECTION', `cannot reach the coordinator at ${url}: ${detail}`, { status: 503, cause: options?.cause });
    this.url = url;
  }
}

/** Runs `fn`, marking an ApiError it throws as raised before contacting the server (exit status 2, like a UsageError). */
export function clientSide<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ApiError) Object.assign(err, { clientSide: true });
    throw err;
  }
}
