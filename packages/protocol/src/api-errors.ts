import type { ApiErrorBody, ApiErrorInfo } from './api.ts';

/**
 * Error codes of the HTTP API and the HTTP status each is sent with. A server throws ApiError
 * (or maps its own typed errors to these codes); a client reads `{ error: { code, message } }`.
 */
export const API_ERROR_STATUS = {
  FERRY_ERR_BAD_REQUEST: 400,
  FERRY_ERR_INVALID_SIZE: 400,
  FERRY_ERR_UNAUTHORIZED: 401,
  FERRY_ERR_NOT_FOUND: 404,
  FERRY_ERR_UNKNOWN_IMAGE: 404,
  FERRY_ERR_UNKNOWN_VM: 404,
  FERRY_ERR_UNKNOWN_HOST: 404,
  FERRY_ERR_UNKNOWN_MIGRATION: 404,
  FERRY_ERR_METHOD_NOT_ALLOWED: 405,
  FERRY_ERR_INVALID_STATE: 409,
  FERRY_ERR_NO_CAPACITY: 409,
  FERRY_ERR_PLACEMENT: 409,
  FERRY_ERR_INTERNAL: 500,
  FERRY_ERR_HOST_UNAVAILABLE: 503,
  FERRY_ERR_TIMEOUT: 504,
} as const;

/** An API error code with a known status. Servers may send other FERRY_ERR_* codes with an explicit status. */
export type ApiErrorCode = keyof typeof API_ERROR_STATUS;

/** An error that crosses the API: a stable `code`, an HTTP `status`, a short message. */
export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, message: string, options?: { status?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = options?.status ?? apiErrorStatus(code);
  }

  /** The reply body: `{ error: { code, message } }`. */
  toBody(): ApiErrorBody {
    return { error: { code: this.code, message: this.message } };
  }

  /** An ApiError from a parsed error body (or anything else: then FERRY_ERR_INTERNAL). */
  static fromBody(body: unknown, status: number): ApiError {
    const info = apiErrorInfoOf(body);
    if (info) return new ApiError(info.code, info.message, { status });
    return new ApiError('FERRY_ERR_INTERNAL', `server replied ${status} without an error body`, { status });
  }
}

/** A request body or parameter that fails validation (400, or the given code). */
export class ApiValidationError extends ApiError {
  /** The offending field, dotted (`group.policy`). */
  readonly field: string;
  constructor(field: string, message: string, code: string = 'FERRY_ERR_BAD_REQUEST') {
    super(code, message);
    this.field = field;
  }
}

/** A size or rate string that cannot be read (`lots`, `-1G`, `12XB`). */
export class InvalidSizeError extends ApiValidationError {
  readonly input: string;
  constructor(field: string, input: string, reason: string) {
    super(field, `${field}: cannot read "${input}" as a size: ${reason} (examples: 16GiB, 512MiB, 1.5G, 4096)`, 'FERRY_ERR_INVALID_SIZE');
    this.input = input;
  }
}

/** The HTTP status for an error code: API_ERROR_STATUS, else 500. */
export function apiErrorStatus(code: string): number {
  const known = (API_ERROR_STATUS as Record<string, number>)[code];
  return known ?? 500;
}

/** The `{ code, message }` of an error body, or undefined when `body` is not one. */
export function apiErrorInfoOf(body: unknown): ApiErrorInfo | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const error = (body as { error?: unknown }).error;
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code !== 'string' || typeof message !== 'string') return undefined;
  return { code, message };
}
