/**
 * Generic msgpack codec for control-message families: a discriminated union on `type` with one
 * validator per variant. `decodeMessage` caps the size before unpacking, unpacks, checks that the
 * value is a map with a known `type`, and lets that variant's validator build a fresh object from
 * checked fields (unknown fields are dropped). Every message family (migration, and others in their
 * own files) defines a `MessageValidators` table and gets a codec from `createMessageCodec`.
 */
import { Packr } from 'msgpackr';
import type { MessageCodec } from './channel.ts';
import { MessageInvalidError, MessageTooLargeError } from './errors.ts';

/** A decoded msgpack map whose fields are not checked yet. */
export type RawMessage = Readonly<Record<string, unknown>>;

/** One validator per `type` of the union `T`: builds the variant from a raw map or throws MessageInvalidError. */
export type MessageValidators<T extends { readonly type: string }> = {
  readonly [K in T['type']]: (raw: RawMessage) => Extract<T, { readonly type: K }>;
};

/** Largest string a field reader accepts unless told otherwise. */
export const DEFAULT_MAX_STRING_LENGTH = 4096;

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

/** Packs a control message (plain msgpack map, no records extension). */
export function encodeMessage(message: object): Uint8Array {
  return packr.pack(message);
}

/**
 * Decodes and validates one message of the union whose validators are given. Throws
 * MessageTooLargeError when `bytes` exceed `maxBytes` (checked first), MessageInvalidError otherwise.
 */
export function decodeMessage<T extends { readonly type: string }>(
  bytes: Uint8Array,
  validators: MessageValidators<T>,
  maxBytes: number,
): T {
  if (bytes.byteLength > maxBytes) throw new MessageTooLargeError(bytes.byteLength, maxBytes);
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (cause) {
    throw new MessageInvalidError('not a msgpack message', { cause });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw new MessageInvalidError('message must be a map');
  }
  const raw = value as RawMessage;
  const type = raw['type'];
  if (typeof type !== 'string') throw new MessageInvalidError('message type must be a string', { field: 'type' });
  if (!Object.hasOwn(validators, type)) {
    throw new MessageInvalidError(`unknown message type "${type.slice(0, 64)}" (expected one of ${Object.keys(validators).join(', ')})`, {
      messageType: type.slice(0, 64),
      field: 'type',
    });
  }
  const validate = (validators as Record<string, (raw: RawMessage) => T>)[type]!;
  return validate(raw);
}

/** A MessageCodec that decodes `TIn` with `validators` (size-capped) and encodes `TOut` as msgpack. */
export function createMessageCodec<TIn extends { readonly type: string }, TOut extends { readonly type: string } = TIn>(
  validators: MessageValidators<TIn>,
  maxBytes: number,
): MessageCodec<TIn, TOut> {
  return {
    encode: (message) => encodeMessage(message),
    decode: (bytes) => decodeMessage(bytes, validators, maxBytes),
  };
}

function invalid(raw: RawMessage, field: string, what: string): never {
  const type = typeof raw['type'] === 'string' ? (raw['type'] as string) : undefined;
  throw new MessageInvalidError(`${type ?? 'message'}: ${field} ${what}`, { messageType: type, field });
}

/** Field readers for validators: each returns the checked value or throws MessageInvalidError naming the field. */
export const field = {
  /** A string of at most `maxLength` characters (default 4096); `nonEmpty` refuses ''. */
  string(raw: RawMessage, key: string, options: { maxLength?: number; nonEmpty?: boolean } = {}): string {
    const v = raw[key];
    const max = options.maxLength ?? DEFAULT_MAX_STRING_LENGTH;
    if (typeof v !== 'string' || v.length > max) invalid(raw, key, `must be a string of at most ${max} characters`);
    if (options.nonEmpty && v.length === 0) invalid(raw, key, 'must not be empty');
    return v;
  },
  /** An integer from `min` (default 0) to `max` (default 2^53-1). */
  integer(raw: RawMessage, key: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const v = raw[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) invalid(raw, key, `must be an integer from ${min} to ${max}`);
    return v;
  },
  /** A finite number from `min` to `max` (fractions allowed: timestamps, rates). */
  number(raw: RawMessage, key: string, min = -Number.MAX_VALUE, max = Number.MAX_VALUE): number {
    const v = raw[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) invalid(raw, key, `must be a finite number from ${min} to ${max}`);
    return v;
  },
  /** true or false. */
  boolean(raw: RawMessage, key: string): boolean {
    const v = raw[key];
    if (typeof v !== 'boolean') invalid(raw, key, 'must be true or false');
    return v;
  },
  /** Binary of at most `maxBytes` bytes (msgpack bin). */
  bytes(raw: RawMessage, key: string, maxBytes: number): Uint8Array {
    const v = raw[key];
    if (!(v instanceof Uint8Array) || v.byteLength > maxBytes) invalid(raw, key, `must be binary of at most ${maxBytes} bytes`);
    return v;
  },
  /** One of the strings in `allowed`. */
  oneOf<const A extends readonly string[]>(raw: RawMessage, key: string, allowed: A): A[number] {
    const v = raw[key];
    if (typeof v !== 'string' || !allowed.includes(v)) invalid(raw, key, `must be one of ${allowed.join(', ')}`);
    return v as A[number];
  },
  /** A nested map, to read with the other readers. */
  map(raw: RawMessage, key: string): RawMessage {
    const v = raw[key];
    if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) invalid(raw, key, 'must be a map');
    return v as RawMessage;
  },
  /** A list of at most `maxItems` integers from `min` to `max`. */
  integerList(raw: RawMessage, key: string, maxItems: number, min = 0, max = Number.MAX_SAFE_INTEGER): number[] {
    const v = raw[key];
    if (!Array.isArray(v) || v.length > maxItems) invalid(raw, key, `must be a list of at most ${maxItems} integers`);
    for (const x of v) {
      if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min || x > max) invalid(raw, key, `must hold integers from ${min} to ${max}`);
    }
    return [...(v as number[])];
  },
} as const;
