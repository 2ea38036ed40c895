/**
 * Errors of the migration engine: one class per condition, a stable `code`, readonly context.
 * A failure that reaches the peer travels as its code (an `error` or `cancel` message, and the
 * channel close reason).
 */
import { FerryError } from '@ferry/protocol';

/** Base class: stable `code`, `migrationId` when known, optional `cause`. */
export class MigrationError extends FerryError {
  readonly migrationId: string | undefined;
  constructor(code: string, message: string, options: { migrationId?: string; cause?: unknown } = {}) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.migrationId = options.migrationId;
  }
}

/** A transition asked for in a state that does not allow it; nothing was changed. */
export class InvalidTransitionError extends MigrationError {
  readonly from: string;
  readonly action: string;
  constructor(action: string, from: string, migrationId?: string) {
    super('FERRY_ERR_MIGRATION_INVALID_TRANSITION', `cannot ${action} a migration that is ${from}`, { migrationId });
    this.from = from;
    this.action = action;
  }
}

/** Options or policy values out of range, found at construction. */
export class MigrationOptionsError extends MigrationError {
  readonly option: string;
  constructor(option: string, message: string) {
    super('FERRY_ERR_MIGRATION_OPTIONS', `${option}: ${message}`);
    this.option = option;
  }
}

/** The hello's token does not match the one issued for this migration (or was used already). */
export class MigrationTokenError extends MigrationError {
  constructor(migrationId: string) {
    super('FERRY_ERR_MIGRATION_TOKEN', 'migration token is wrong or already used', { migrationId });
  }
}

/** The hello names a migration this receiver does not expect. */
export class UnknownMigrationError extends MigrationError {
  constructor(migrationId: string) {
    super('FERRY_ERR_MIGRATION_UNKNOWN', `no migration ${JSON.stringify(migrationId.slice(0, 64))} is expected here`, { migrationId });
  }
}

/** The announced VM does not fit what was reserved (page count, size). */
export class MigrationSizeError extends MigrationError {
  constructor(message: string, migrationId?: string) {
    super('FERRY_ERR_MIGRATION_SIZE', message, { migrationId });
  }
}

/** A message or frame that is valid on its own but not legal in the current state (frame before hello, …). */
export class UnexpectedMessageError extends MigrationError {
  readonly state: string;
  readonly received: string;
  constructor(received: string, state: string, migrationId?: string) {
    super('FERRY_ERR_MIGRATION_UNEXPECTED', `${received} is not legal while ${state}`, { migrationId });
    this.state = state;
    this.received = received;
  }
}

/** The peer refused the hello or reported an error; `remoteCode` is its code. */
export class MigrationRemoteError extends MigrationError {
  readonly remoteCode: string;
  constructor(remoteCode: string, message: string, migrationId?: string) {
    super(remoteCode, `peer reported ${remoteCode}: ${message}`, { migrationId });
    this.remoteCode = remoteCode;
  }
}

/** The channel closed before the migration finished; `closeCode` and `reason` as the channel gave them. */
export class MigrationChannelClosedError extends MigrationError {
  readonly closeCode: number;
  readonly reason: string;
  constructor(closeCode: number, reason: string, migrationId?: string) {
    super('FERRY_ERR_MIGRATION_CHANNEL_CLOSED', `channel closed (${closeCode}${reason ? ` ${reason}` : ''})`, { migrationId });
    this.closeCode = closeCode;
    this.reason = reason;
  }
}

/** Guest memory on the destination does not match the source's digest. */
export class MigrationDigestError extends MigrationError {
  readonly expected: string;
  readonly actual: string;
  constructor(expected: string, actual: string, migrationId?: string) {
    super('FERRY_ERR_MIGRATION_DIGEST', `memory digest ${actual} does not match the source's ${expected}`, { migrationId });
    this.expected = expected;
    this.actual = actual;
  }
}

/** The migration was cancelled before commit; the VM stays on the source. */
export class MigrationCancelledError extends MigrationError {
  readonly reason: string;
  constructor(reason: string, migrationId?: string) {
    super('FERRY_ERR_MIGRATION_CANCELLED', `migration cancelled: ${reason}`, { migrationId });
    this.reason = reason;
  }
}

/** The commit point decided to abort (or the commit hook failed); the VM stays on the source. */
export class MigrationAbortedError extends MigrationError {
  constructor(reason: string, migrationId?: string, cause?: unknown) {
    super('FERRY_ERR_MIGRATION_ABORTED', `migration aborted at commit: ${reason}`, { migrationId, cause });
  }
}

/** A step took longer than its limit (handshake, ready, activated). */
export class MigrationTimeoutError extends MigrationError {
  readonly waitingFor: string;
  readonly timeoutMs: number;
  constructor(waitingFor: string, timeoutMs: number, migrationId?: string) {
    super('FERRY_ERR_MIGRATION_TIMEOUT', `no ${waitingFor} within ${timeoutMs} ms`, { migrationId });
    this.waitingFor = waitingFor;
    this.timeoutMs = timeoutMs;
  }
}

/** The source VM failed to pause, resume or capture its state. */
export class SourceVmError extends MigrationError {
  constructor(step: string, migrationId: string | undefined, cause: unknown) {
    super('FERRY_ERR_MIGRATION_SOURCE_VM', `source VM failed to ${step}`, { migrationId, cause });
  }
}

/** The error's stable code: `code` of Ferry errors, else FERRY_ERR_INTERNAL. */
export function errorCodeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('FERRY_ERR_') ? code : 'FERRY_ERR_INTERNAL';
}
