/**
 * Errors of the wire protocol: one class per condition, each with a stable `code`. Over the wire an
 * error travels as its code (in an `error` message or as a channel close reason), so codes never
 * change meaning once released.
 *
 * | code | class | when |
 * |---|---|---|
 * | FERRY_ERR_MESSAGE_TOO_LARGE | MessageTooLargeError | control message over the size cap, refused before decoding |
 * | FERRY_ERR_MESSAGE_INVALID | MessageInvalidError | not msgpack, not a map, unknown `type`, or a field of the wrong kind |
 * | FERRY_ERR_MIGRATION_VERSION | ProtocolVersionError | hello with a protocol version this side does not accept |
 * | FERRY_ERR_FRAME_TOO_LARGE | FrameTooLargeError | binary frame over the size cap, refused before reading it |
 * | FERRY_ERR_FRAME_INVALID | FrameInvalidError | bad magic, kind 0 or unknown kind, reserved bits set, lengths that disagree |
 * | FERRY_ERR_FRAME_TRUNCATED | FrameTruncatedError | frame shorter than its header or run table says |
 * | FERRY_ERR_FRAME_PAGE_RANGE | FramePageRangeError | a run of pages outside the VM's page count |
 * | FERRY_ERR_FRAME_ENCODING | FrameEncodingError | page encoding 0, unknown, or reserved and not implemented (hash reference, delta) |
 */

import { FerryError } from './ferry-error.ts';

/** Base class: a stable `code`, a short message, optional `cause`. */
export class ProtocolError extends FerryError {}

/** A control message over the size cap; refused before any decoding. */
export class MessageTooLargeError extends ProtocolError {
  readonly byteLength: number;
  readonly maxBytes: number;
  constructor(byteLength: number, maxBytes: number) {
    super('FERRY_ERR_MESSAGE_TOO_LARGE', `message of ${byteLength} bytes exceeds the ${maxBytes}-byte limit`);
    this.byteLength = byteLength;
    this.maxBytes = maxBytes;
  }
}

/** Bytes that are not exactly one valid message of the expected union. */
export class MessageInvalidError extends ProtocolError {
  /** The `type` field when it could be read. */
  readonly messageType: string | undefined;
  /** The offending field, when one is to blame. */
  readonly field: string | undefined;
  constructor(message: string, context: { messageType?: string; field?: string; cause?: unknown } = {}) {
    super('FERRY_ERR_MESSAGE_INVALID', message, context.cause === undefined ? undefined : { cause: context.cause });
    this.messageType = context.messageType;
    this.field = context.field;
  }
}

/** A peer speaking a protocol version this side does not accept. */
export class ProtocolVersionError extends ProtocolError {
  readonly version: number;
  readonly accepted: readonly number[];
  constructor(version: number, accepted: readonly number[]) {
    super('FERRY_ERR_MIGRATION_VERSION', `protocol version ${version} is not accepted (accepted: ${accepted.join(', ')})`);
    this.version = version;
    this.accepted = accepted;
  }
}

/** A binary frame over the size cap; refused before reading it. */
export class FrameTooLargeError extends ProtocolError {
  readonly byteLength: number;
  readonly maxBytes: number;
  constructor(byteLength: number, maxBytes: number) {
    super('FERRY_ERR_FRAME_TOO_LARGE', `frame of ${byteLength} bytes exceeds the ${maxBytes}-byte limit`);
    this.byteLength = byteLength;
    this.maxBytes = maxBytes;
  }
}

/** A frame whose header or run table is malformed (magic, kind, reserved fields, lengths). */
export class FrameInvalidError extends ProtocolError {
  constructor(message: string) {
    super('FERRY_ERR_FRAME_INVALID', message);
  }
}

/** A frame shorter than its header or run table says it is. */
export class FrameTruncatedError extends ProtocolError {
  readonly byteLength: number;
  readonly expectedBytes: number;
  constructor(byteLength: number, expectedBytes: number) {
    super('FERRY_ERR_FRAME_TRUNCATED', `frame of ${byteLength} bytes is truncated: header says ${expectedBytes}`);
    this.byteLength = byteLength;
    this.expectedBytes = expectedBytes;
  }
}

/** A run of pages that does not lie inside the VM. */
export class FramePageRangeError extends ProtocolError {
  readonly firstPage: number;
  readonly pageCount: number;
  readonly vmPageCount: number;
  constructor(firstPage: number, pageCount: number, vmPageCount: number) {
    super('FERRY_ERR_FRAME_PAGE_RANGE', `pages ${firstPage}..${firstPage + pageCount - 1} lie outside a VM of ${vmPageCount} pages`);
    this.firstPage = firstPage;
    this.pageCount = pageCount;
    this.vmPageCount = vmPageCount;
  }
}

/** A page encoding that is invalid (0), unknown, or reserved and not implemented yet. */
export class FrameEncodingError extends ProtocolError {
  readonly encoding: number;
  constructor(encoding: number, why: string) {
    super('FERRY_ERR_FRAME_ENCODING', `page encoding ${encoding} ${why}`);
    this.encoding = encoding;
  }
}
