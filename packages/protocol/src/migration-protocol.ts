/**
 * The live-migration protocol between a source agent (sender) and a destination agent (receiver)
 * over one Channel: msgpack control messages (this file) and binary page frames (page-frame.ts).
 * Requests are imperative (`activate`), replies past tense (`activated`).
 *
 * ```mermaid
 * sequenceDiagram
 *   participant S as source (MigrationSender)
 *   participant D as destination (MigrationReceiver)
 *   participant C as coordinator (commit point, via the agents)
 *   S->>D: hello (protocolVersion, migrationId, token, vm, pageCount, prelude?)
 *   D-->>S: hello-accepted (protocolVersion) | hello-refused (code, versionsAccepted)
 *   loop pre-copy round k = 1..n (vCPUs running)
 *     S->>D: start-round (k)
 *     S->>D: page frames (round k: all non-zero pages for k = 1, then pages dirtied in round k-1)
 *     S->>D: end-round (k, pagesSent, bytesSent)
 *     D-->>S: round-applied (k): every page of round k is in guest memory
 *   end
 *   Note over S: decides to stop only on an empty pipe (round k applied)
 *   Note over S: pause vCPUs (downtime starts)
 *   S->>D: start-round (n+1, final) · page frames (last dirty pages) · end-round
 *   S->>D: transfer-state (registers, devices, pausedAtMs)
 *   S->>D: verify-memory (algorithm, digest)
 *   D-->>S: ready (digest) | error (FERRY_ERR_MIGRATION_DIGEST)
 *   S->>C: commit? (hook; D's agent asks C too, at the same moment, outside this stream)
 *   C-->>S: committed | aborted (C tells D's agent as well)
 *   alt committed
 *     Note over D: resume VM on C's word (receiver.commit()) or on activate, whichever is first (downtime ends)
 *     S->>D: activate
 *     D-->>S: activated (resumedAtMs; may arrive before S sends activate)
 *     Note over S: release source VM
 *   else aborted, or any failure before commit
 *     S->>D: cancel (code, reason)
 *     Note over S: resume source VM, it stays the owner
 *   end
 * ```
 *
 * Sender states (MigrationSender):
 * ```mermaid
 * stateDiagram-v2
 *   [*] --> created
 *   created --> handshaking: run()
 *   handshaking --> precopying: hello-accepted
 *   precopying --> precopying: end of round k, keep going
 *   precopying --> stopping: stop condition met (pause)
 *   stopping --> awaiting-ready: state + digest sent
 *   awaiting-ready --> committing: ready
 *   committing --> activating: commit hook says commit
 *   activating --> completed: activated (or timeout: completed, unconfirmed)
 *   handshaking --> failed: refused, channel closed, error
 *   precopying --> failed
 *   stopping --> failed
 *   awaiting-ready --> failed
 *   committing --> failed: commit hook says abort
 *   created --> cancelled: cancel()
 *   handshaking --> cancelled: cancel()
 *   precopying --> cancelled: cancel()
 *   stopping --> cancelled: cancel()
 *   awaiting-ready --> cancelled: cancel()
 *   completed --> [*]
 *   failed --> [*]: source resumed
 *   cancelled --> [*]: source resumed
 * ```
 *
 * Receiver states (MigrationReceiver):
 * ```mermaid
 * stateDiagram-v2
 *   [*] --> awaiting-hello
 *   awaiting-hello --> receiving: valid hello, authorized (memory allocated here, not before)
 *   receiving --> receiving: start-round, frames, end-round
 *   receiving --> verifying: transfer-state
 *   verifying --> ready: verify-memory, digest equal (sends ready)
 *   ready --> activated: activate, or commit() by the agent on the coordinator's word (VM handed over, resumed; sends activated)
 *   awaiting-hello --> failed: bad version, token, garbage, frame before hello
 *   receiving --> failed: bad frame, cancel, channel closed
 *   verifying --> failed: digest mismatch
 *   ready --> failed: cancel, channel closed (partial VM discarded)
 *   activated --> [*]
 *   failed --> [*]: nothing kept
 * ```
 */
import { createMessageCodec, field, type MessageValidators, type RawMessage } from './codec.ts';
import type { MessageCodec } from './channel.ts';
import { MessageInvalidError } from './errors.ts';

/** Version of the migration protocol a sender puts in `hello`. */
export const MIGRATION_PROTOCOL_VERSION = 3;
/**
 * Versions a receiver accepts in `hello`. Version 2 added `round-applied`; version 3 the page map
 * of round 1 and activation on the coordinator's word (the source's `activate` may come after
 * `activated`). Older senders would not expect either, so only 3 is accepted.
 */
export const MIGRATION_PROTOCOL_VERSIONS_ACCEPTED: readonly number[] = [3];

/** Largest control message on a migration channel: the device state dominates. */
export const MIGRATION_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** Largest register block in transfer-state. */
export const MIGRATION_MAX_REGISTER_BYTES = 64 * 1024;
/** Largest `prelude` in hello. */
export const MIGRATION_MAX_PRELUDE_BYTES = 64 * 1024;
/** Largest device state blob in transfer-state. */
export const MIGRATION_MAX_DEVICE_BYTES = MIGRATION_MAX_MESSAGE_BYTES - MIGRATION_MAX_REGISTER_BYTES - 4096;
/** Most pages a hello may announce (64 GiB, same as @ferry/memory's MAX_GUEST_PAGES). */
export const MIGRATION_MAX_PAGE_COUNT = 16 * 1024 * 1024;

/**
 * Close codes a migration channel closes with; the close reason is the FERRY_ERR_* code. Same
 * numbers as @ferry/transport's FERRY_CLOSE (which this package cannot import).
 */
export const MIGRATION_CLOSE_CODE = {
  /** Normal end after `activated`. (FERRY_CLOSE.NORMAL) */
  done: 1000,
  /** Hostile or malformed input: bad message, frame, message out of order. (FERRY_CLOSE.BAD_MESSAGE) */
  protocolError: 4001,
  /** Hello with a version this side does not accept. (FERRY_CLOSE.PROTOCOL_VERSION) */
  version: 4004,
  /** Refused at hello: token, migration id, size. (FERRY_CLOSE.REFUSED) */
  refused: 4005,
  /** Cancelled, aborted at commit, or failed on either side (digest, VM error). (FERRY_CLOSE.MIGRATION_ABORTED) */
  aborted: 4010,
} as const;

/** How the final memory digest is computed (see the migration package for what each proves). */
export const DIGEST_ALGORITHMS = ['page-sum', 'xxh64'] as const;
export type DigestAlgorithm = (typeof DIGEST_ALGORITHMS)[number];

/** What the receiver learns about the VM in hello. */
export interface MigrationVmSummary {
  readonly vmId: string;
  readonly cpus: number;
  readonly memoryBytes: number;
}

// ----- source → destination ------------------------------------------------------------------

/** First message: who, with which token, how big. Legal only as the first message. */
export interface HelloMessage {
  readonly type: 'hello';
  readonly protocolVersion: number;
  readonly migrationId: string;
  /** The one-time token the destination issued for this migration (via the coordinator). */
  readonly token: string;
  readonly vm: MigrationVmSummary;
  readonly pageCount: number;
  /**
   * Opaque bytes the destination may prepare with while pages arrive (the agents send the VM's
   * spec, so the destination places its vCPUs during round 1, not inside the downtime). Only a
   * hint: transfer-state carries everything again, and a receiver may ignore it.
   */
  readonly prelude?: Uint8Array;
}

/** Pages of round `round` follow (round 1 = full copy; the last round is sent with the VM paused). */
export interface StartRoundMessage {
  readonly type: 'start-round';
  readonly round: number;
  /** True for the stop-and-copy round. */
  readonly final: boolean;
  /**
   * Round 1 only: the pages this round may send (the source's "ever written" map), page p = bit
   * (p & 7) of byte p >> 3, exactly ceil(pageCount / 8) bytes. The receiver pre-faults those pages
   * and no others; a mostly-zero VM costs it nothing.
   */
  readonly pageMap?: Uint8Array;
}

/** Round `round` is complete; the counts let the receiver check it saw every page. */
export interface EndRoundMessage {
  readonly type: 'end-round';
  readonly round: number;
  readonly pagesSent: number;
  readonly bytesSent: number;
}

/** The paused VM's register block and device state; legal after the final round. */
export interface TransferStateMessage {
  readonly type: 'transfer-state';
  readonly registers: Uint8Array;
  readonly devices: Uint8Array;
  /** Source clock (`performance.timeOrigin + performance.now()`) at pause. */
  readonly pausedAtMs: number;
}

/** Check guest memory against this digest before reporting ready. */
export interface VerifyMemoryMessage {
  readonly type: 'verify-memory';
  readonly algorithm: DigestAlgorithm;
  /** 16 hex digits. */
  readonly digest: string;
}

/** The coordinator committed the switch: resume the VM here. Legal only after `ready`. */
export interface ActivateMessage {
  readonly type: 'activate';
}

/** Abandon the migration before commit; the source keeps the VM. */
export interface CancelMessage {
  readonly type: 'cancel';
  readonly code: string;
  readonly reason: string;
}

// ----- destination → source ------------------------------------------------------------------

/** Hello accepted; memory is reserved and zeroed. */
export interface HelloAcceptedMessage {
  readonly type: 'hello-accepted';
  readonly protocolVersion: number;
}

/** Hello refused (version, token, migration id, size); the channel closes next. */
export interface HelloRefusedMessage {
  readonly type: 'hello-refused';
  readonly code: string;
  readonly message: string;
  readonly versionsAccepted: readonly number[];
}

/** Digest verified; the VM can be activated here. */
export interface ReadyMessage {
  readonly type: 'ready';
  readonly digest: string;
}

/** The VM runs here now. `resumedAtMs` is the destination clock when it resumed. */
export interface ActivatedMessage {
  readonly type: 'activated';
  readonly resumedAtMs: number;
}

/** Either side: the migration failed with `code`; the channel closes next. */
export interface MigrationErrorMessage {
  readonly type: 'error';
  readonly code: string;
  readonly message: string;
}

/** Every message a sender sends. */
export type SourceMessage =
  | HelloMessage
  | StartRoundMessage
  | EndRoundMessage
  | TransferStateMessage
  | VerifyMemoryMessage
  | ActivateMessage
  | CancelMessage
  | MigrationErrorMessage;

/** Every message a receiver sends. */
/**
 * Pre-copy round `round` is applied: every page the sender sent in it is in guest memory. The
 * sender waits for it before ending a round, so its bandwidth is measured end to end and it never
 * pauses the VM while earlier rounds are still in flight (that backlog would count as downtime).
 */
export interface RoundAppliedMessage {
  readonly type: 'round-applied';
  readonly round: number;
}

export type DestinationMessage = HelloAcceptedMessage | HelloRefusedMessage | RoundAppliedMessage | ReadyMessage | ActivatedMessage | MigrationErrorMessage;

const ID_MAX = 128;
const CODE_MAX = 64;
const TEXT_MAX = 1024;
const DIGEST_PATTERN = /^[0-9a-f]{16}$/;

function digest(raw: RawMessage): string {
  const v = field.string(raw, 'digest', { maxLength: 16 });
  if (!DIGEST_PATTERN.test(v)) throw new MessageInvalidError(`${String(raw['type'])}: digest must be 16 lowercase hex digits`, { messageType: String(raw['type']), field: 'digest' });
  return v;
}

function errorMessage(raw: RawMessage): MigrationErrorMessage {
  return { type: 'error', code: field.string(raw, 'code', { maxLength: CODE_MAX, nonEmpty: true }), message: field.string(raw, 'message', { maxLength: TEXT_MAX }) };
}

/** Validators of every source → destination message (what a receiver decodes). */
export const SOURCE_MESSAGE_VALIDATORS: MessageValidators<SourceMessage> = {
  hello: (raw) => {
    const vm = field.map(raw, 'vm');
    return {
      type: 'hello',
      // A version of any size is read, so that a newer sender gets a version refusal, not "invalid".
      protocolVersion: field.integer(raw, 'protocolVersion'),
      migrationId: field.string(raw, 'migrationId', { maxLength: ID_MAX, nonEmpty: true }),
      token: field.string(raw, 'token', { maxLength: ID_MAX * 2, nonEmpty: true }),
      vm: {
        vmId: field.string({ type: 'hello', ...vm }, 'vmId', { maxLength: ID_MAX, nonEmpty: true }),
        cpus: field.integer({ type: 'hello', ...vm }, 'cpus', 1, 1024),
        memoryBytes: field.integer({ type: 'hello', ...vm }, 'memoryBytes', 1),
      },
      pageCount: field.integer(raw, 'pageCount', 1, MIGRATION_MAX_PAGE_COUNT),
      ...(raw['prelude'] === undefined ? {} : { prelude: field.bytes(raw, 'prelude', MIGRATION_MAX_PRELUDE_BYTES) }),
    };
  },
  'start-round': (raw) => ({
    type: 'start-round',
    round: field.integer(raw, 'round', 1, 0xffffffff),
    final: field.boolean(raw, 'final'),
    ...(raw['pageMap'] === undefined ? {} : { pageMap: field.bytes(raw, 'pageMap', MIGRATION_MAX_PAGE_COUNT / 8) }),
  }),
  'end-round': (raw) => ({
    type: 'end-round',
    round: field.integer(raw, 'round', 1, 0xffffffff),
    pagesSent: field.integer(raw, 'pagesSent'),
    bytesSent: field.integer(raw, 'bytesSent'),
  }),
  'transfer-state': (raw) => ({
    type: 'transfer-state',
    registers: field.bytes(raw, 'registers', MIGRATION_MAX_REGISTER_BYTES),
    devices: field.bytes(raw, 'devices', MIGRATION_MAX_DEVICE_BYTES),
    pausedAtMs: field.number(raw, 'pausedAtMs', 0),
  }),
  'verify-memory': (raw) => ({ type: 'verify-memory', algorithm: field.oneOf(raw, 'algorithm', DIGEST_ALGORITHMS), digest: digest(raw) }),
  activate: () => ({ type: 'activate' }),
  cancel: (raw) => ({ type: 'cancel', code: field.string(raw, 'code', { maxLength: CODE_MAX, nonEmpty: true }), reason: field.string(raw, 'reason', { maxLength: TEXT_MAX }) }),
  error: errorMessage,
};

/** Validators of every destination → source message (what a sender decodes). */
export const DESTINATION_MESSAGE_VALIDATORS: MessageValidators<DestinationMessage> = {
  'hello-accepted': (raw) => ({ type: 'hello-accepted', protocolVersion: field.integer(raw, 'protocolVersion') }),
  'round-applied': (raw) => ({ type: 'round-applied', round: field.integer(raw, 'round', 1) }),
  'hello-refused': (raw) => ({
    type: 'hello-refused',
    code: field.string(raw, 'code', { maxLength: CODE_MAX, nonEmpty: true }),
    message: field.string(raw, 'message', { maxLength: TEXT_MAX }),
    versionsAccepted: field.integerList(raw, 'versionsAccepted', 64),
  }),
  ready: (raw) => ({ type: 'ready', digest: digest(raw) }),
  activated: (raw) => ({ type: 'activated', resumedAtMs: field.number(raw, 'resumedAtMs', 0) }),
  error: errorMessage,
};

/** The receiver's codec: decodes source messages (size-capped, validated), encodes destination messages. */
export const migrationReceiverCodec: MessageCodec<SourceMessage, DestinationMessage> = createMessageCodec<SourceMessage, DestinationMessage>(
  SOURCE_MESSAGE_VALIDATORS,
  MIGRATION_MAX_MESSAGE_BYTES,
);

/** The sender's codec: decodes destination messages (size-capped, validated), encodes source messages. */
export const migrationSenderCodec: MessageCodec<DestinationMessage, SourceMessage> = createMessageCodec<DestinationMessage, SourceMessage>(
  DESTINATION_MESSAGE_VALIDATORS,
  64 * 1024,
);
