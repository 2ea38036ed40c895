/**
 * Control messages between a host agent and the coordinator, over the agent's outbound `/agent`
 * WebSocket. msgpack on the wire (see cluster-codec.ts), a discriminated union on `type`,
 * validated where bytes enter. Requests are imperative (`reserve-migration`), replies past tense
 * (`migration-reserved`); a request carries a `requestId` its reply echoes.
 *
 * ```mermaid
 * sequenceDiagram
 *   participant A as agent
 *   participant C as coordinator
 *   A->>C: register (hostId, capacity, migrationAddress, vms)
 *   C-->>A: registered (heartbeatIntervalMs) | register-refused (code, message)
 *   loop every heartbeatIntervalMs
 *     A->>C: heartbeat (seq, vms)
 *   end
 *   C->>A: reserve-migration (requestId, migrationId, vmId, memoryBytes, ttlMs)
 *   A-->>C: migration-reserved (requestId, token, migrationAddress) | request-failed (code, message)
 *   C->>A: release-reservation (migrationId)
 * ```
 * VM operations (coordinator → agent requests, each answered by a past-tense reply or
 * `request-failed`):
 * ```
 *   vm-create ──► vm-created        vm-action ──► vm-updated        vm-snapshot ──► snapshot-taken
 *   vm-clone  ──► vm-created        vm-wws    ──► wws-sampled       vm-digest   ──► vm-digested
 *   vm-capture ──► vm-captured (the agent uploads the image file to PUT /api/v1/images/:id/file first)
 * ```
 * Agent notifications: `vm-state-changed` (a VM changed state on its own, e.g. a migration in or
 * out, a vCPU fault).
 *
 * Live migration orchestration (the coordinator is the single commit point):
 * ```mermaid
 * sequenceDiagram
 *   participant C as coordinator
 *   participant S as source agent
 *   participant D as destination agent
 *   C->>D: reserve-migration
 *   D-->>C: migration-reserved (token, migrationAddress)
 *   C->>S: migration-start (migrationId, vmId, destination address, token, policy)
 *   S-->>C: migration-accepted | request-failed
 *   S->>D: (peer to peer, /migrate) hello … page frames … ready
 *   S->>C: migration-progress (one per round)
 *   S->>C: migration-stopping (pre-copy over: the VM pauses, stop-and-copy starts)
 *   D->>C: migration-ready (it verified the digest and sent ready to S)
 *   S->>C: migration-ready (S heard ready; whichever comes first is decided, the other re-answered)
 *   Note over C: records the owner switch (persisted) — THE commit point
 *   C->>D: migration-decision (commit: D activates at once; the downtime skips the source's hops)
 *   C->>S: migration-decision (commit | abort)
 *   S->>D: activate   (commit; ignored when D already activated)
 *   D->>C: migration-finished (role destination, completed)
 *   S->>C: migration-finished (role source, completed | failed | cancelled, report, error)
 * ```
 * `migration-cancel` asks the source to abandon a migration before commitment. A source that
 * loses its coordinator link while awaiting the decision keeps waiting (the VM paused) until the
 * link is back and a decision arrives, or the decision timeout passes (then it aborts and resumes
 * locally). After a reconnect the source re-sends `migration-ready`, so a restarted coordinator
 * can answer from its journal.
 */
import type { MigrationPolicy, RoundStats, WwsPrediction } from './api.ts';

/** Version of the agent ↔ coordinator protocol sent in `register`. */
export const CLUSTER_PROTOCOL_VERSION = 1;
/** Versions a coordinator accepts in `register`. */
export const CLUSTER_PROTOCOL_VERSIONS_ACCEPTED: readonly number[] = [1];

/** What a host offers: the coordinator places VMs within it. */
export interface HostCapacity {
  readonly cpus: number;
  readonly memoryBytes: number;
  readonly diskBytes: number;
}

/** A guest workload on the wire (packages/vm WorkloadSpec): `kind` idle|uniform|hotset|scan|module. */
export interface WorkloadWire {
  readonly kind: string;
  readonly seed?: number;
  /** Page writes per second for the whole VM; 0 = as fast as possible. */
  readonly rate?: number;
  readonly modulePath?: string;
  readonly params?: Readonly<Record<string, number>>;
}

/** Everything that defines a VM (packages/vm VmSpec) on the wire. */
export interface VmSpecWire {
  readonly id: string;
  readonly name: string;
  readonly vcpus: number;
  readonly memoryBytes: number;
  readonly workload: WorkloadWire;
  /** Whether the guest stamps its heartbeat into page 0 (not deterministic). Default true. */
  readonly heartbeat?: boolean;
  /** Each vCPU stops after exactly this many steps. Default: no limit. */
  readonly stepLimit?: number;
}

/** A firewall rule of an instance (@ferry/images AccessRule). */
export interface AccessRuleWire {
  readonly protocol: 'tcp' | 'udp' | 'icmp';
  readonly port?: number;
  /** Source network, e.g. `0.0.0.0/0`. */
  readonly cidr: string;
}

/** Run-time configuration an agent writes into the guest's config page (@ferry/images GuestConfig without imageId). */
export interface GuestConfigWire {
  readonly instanceId: string;
  readonly hostname: string;
  readonly ip: string;
  readonly accessRules: readonly AccessRuleWire[];
  readonly user: string;
  readonly password: string;
}

/**
 * One VM an agent runs, as reported in `register`, `heartbeat` and VM replies. The optional
 * fields let a restarted coordinator rebuild what an agent runs.
 */
export interface VmReport {
  readonly vmId: string;
  /**
   * VM state as packages/vm names it: `created`, `running`, `paused`, `suspended`, `stopped`,
   * `deleted`. A VM an outgoing migration holds keeps its state and carries `migrationId`; an
   * incoming VM is not reported until it is activated.
   */
  readonly state: string;
  readonly memoryBytes: number;
  readonly cpus: number;
  readonly name?: string;
  /** Image it was provisioned from, if any. */
  readonly image?: string;
  readonly workload?: WorkloadWire;
  /** The migration that holds it now, if any. */
  readonly migrationId?: string;
  /** Guest steps executed so far (all vCPUs). */
  readonly totalSteps?: number;
}

/** Policy of one migration on the wire: the API's MigrationPolicy as validated (`bandwidthLimit` bytes/s, 0 = unlimited; `rateLimit` absent = none). */
export type MigrationPolicyWire = MigrationPolicy;

/** One pre-copy round (the API's RoundStats plus engine detail). */
export interface MigrationRoundWire extends RoundStats {
  /** True for the stop-and-copy round. */
  readonly final: boolean;
  readonly durationMs: number;
  readonly zeroPagesSent: number;
  /** When the round ended on the source's clock (epoch ms, `performance.timeOrigin + performance.now()`); the coordinator's timeline uses it over the message's arrival, which the source's busy event loop delays. Optional. */
  readonly endedAtMs?: number;
}

/** The source's final account of a migration (engine MigrationSenderReport without per-round detail). */
export interface MigrationReportWire {
  readonly migrationId: string;
  readonly totalMs: number;
  readonly setupMs: number;
  /** Source pause to destination resume; -1 when the destination never confirmed activation. */
  readonly downtimeMs: number;
  readonly pausedAtMs: number;
  readonly rounds: number;
  readonly stopReason: string;
  readonly bytesOnWire: number;
  readonly vmBytes: number;
  readonly pageBytesSent: number;
  readonly zeroPagesSkipped: number;
  readonly digestAlgorithm: string;
  readonly digest: string;
  readonly digestVerified: boolean;
  readonly finalThrottlePercent: number;
  /** The switch-over cost the downtime estimate used (measured on earlier migrations to this destination, or guessed). */
  readonly switchoverMs: number;
  /** The switch-over cost this migration measured (downtime less the final round's copy); -1 when the downtime is unknown. */
  readonly switchoverMeasuredMs: number;
}

/** An error carried in a message. */
export interface ErrorInfoWire {
  readonly code: string;
  readonly message: string;
}

/** agent → coordinator: first message on every connection (also after a reconnect). */
export interface RegisterMessage {
  readonly type: 'register';
  readonly protocolVersion: number;
  readonly hostId: string;
  readonly capacity: HostCapacity;
  /** `ws://host:port` where this agent accepts migration streams. */
  readonly migrationAddress: string;
  readonly vms: readonly VmReport[];
}

/** agent → coordinator: liveness plus the current VM list. */
export interface HeartbeatMessage {
  readonly type: 'heartbeat';
  readonly seq: number;
  readonly vms: readonly VmReport[];
}

/** agent → coordinator: reply to `reserve-migration`; the source agent dials `migrationAddress` with `token`. */
export interface MigrationReservedMessage {
  readonly type: 'migration-reserved';
  readonly requestId: string;
  readonly migrationId: string;
  readonly token: string;
  readonly migrationAddress: string;
  readonly expiresAtMs: number;
}

/** Either side: a request could not be carried out. `code` is a stable FERRY_ERR_* code. */
export interface RequestFailedMessage {
  readonly type: 'request-failed';
  readonly requestId: string;
  readonly code: string;
  readonly message: string;
}

/** coordinator → agent: registration accepted. */
export interface RegisteredMessage {
  readonly type: 'registered';
  readonly hostId: string;
  readonly heartbeatIntervalMs: number;
}

/** coordinator → agent: registration refused (protocol version not accepted); the connection then closes. A second register for a live host id replaces the older link (REPLACED), since an agent that reconnects may be seen before its old link times out. */
export interface RegisterRefusedMessage {
  readonly type: 'register-refused';
  readonly code: string;
  readonly message: string;
}

/** coordinator → agent (destination): reserve memory for an incoming migration and issue a one-time token. */
export interface ReserveMigrationMessage {
  readonly type: 'reserve-migration';
  readonly requestId: string;
  readonly migrationId: string;
  readonly vmId: string;
  readonly memoryBytes: number;
  readonly cpus: number;
  /** How long the token and reservation live if no stream arrives. */
  readonly ttlMs: number;
}

/** coordinator → agent: drop a reservation (migration cancelled or done); idempotent. */
export interface ReleaseReservationMessage {
  readonly type: 'release-reservation';
  readonly migrationId: string;
}

// ---------------------------------------------------------------------------------------------
// VM operations: coordinator → agent requests

/** coordinator → agent: create a VM (`Vm.create`), copy `image` into its memory with `config`, and start it when `start`. Reply `vm-created`. */
export interface VmCreateMessage {
  readonly type: 'vm-create';
  readonly requestId: string;
  readonly spec: VmSpecWire;
  /** Image id in the agent's image library; absent: zeroed memory. */
  readonly image?: string;
  /** Run-time configuration written into the guest (needs `image`). */
  readonly config?: GuestConfigWire;
  readonly start: boolean;
}

/** Lifecycle actions of `vm-action`. `resume` resumes a paused or a suspended VM on this host. */
export const VM_HOST_ACTIONS = ['start', 'stop', 'pause', 'resume', 'suspend', 'delete'] as const;
export type VmHostAction = (typeof VM_HOST_ACTIONS)[number];

/** coordinator → agent: a lifecycle action on a VM this agent runs. Reply `vm-updated` (after delete: state `deleted`). */
export interface VmActionMessage {
  readonly type: 'vm-action';
  readonly requestId: string;
  readonly vmId: string;
  readonly action: VmHostAction;
}

/** coordinator → agent: live snapshot of a VM to a file in the agent's data dir named by `snapshotId`. Reply `snapshot-taken`. */
export interface VmSnapshotMessage {
  readonly type: 'vm-snapshot';
  readonly requestId: string;
  readonly vmId: string;
  readonly snapshotId: string;
}

/** coordinator → agent: a new VM from a snapshot this agent holds. Reply `vm-created`. */
export interface VmCloneMessage {
  readonly type: 'vm-clone';
  readonly requestId: string;
  readonly snapshotId: string;
  readonly newVmId: string;
  readonly name: string;
  readonly start: boolean;
}

/** coordinator → agent: sample a VM's writable working set (dirty pages per interval) without migrating. Reply `wws-sampled`. Refused during a migration. */
export interface VmWwsMessage {
  readonly type: 'vm-wws';
  readonly requestId: string;
  readonly vmId: string;
  readonly samples: number;
  readonly intervalMs: number;
  /** Also predict pre-copy at this bandwidth (bytes/s) over the trace. */
  readonly predictAt?: { readonly bandwidthBytesPerSec: number; readonly maxDowntimeMs: number };
}

/** coordinator → agent: digest of a VM's whole memory (tests, benchmarks). Reply `vm-digested`. */
export interface VmDigestMessage {
  readonly type: 'vm-digest';
  readonly requestId: string;
  readonly vmId: string;
}

/**
 * coordinator → agent: capture a VM's memory (pages 2 on) as image `imageId` (EC2 CreateImage).
 * The agent pauses a running VM for the capture and resumes it, then uploads the image file to
 * the coordinator (`PUT /api/v1/images/:id/file`, cluster bearer token), which imports it into
 * its catalog; only then it replies `vm-captured`. Refused while the VM migrates or is busy.
 */
export interface VmCaptureMessage {
  readonly type: 'vm-capture';
  readonly requestId: string;
  readonly vmId: string;
  readonly imageId: string;
  readonly name: string;
  readonly description: string;
}

// ---------------------------------------------------------------------------------------------
// VM operations: agent → coordinator replies and notifications

/** The figures of a captured image as the capturing agent saw them (the catalog's Image is the reference). */
export interface CapturedImageWire {
  readonly id: string;
  readonly name: string;
  readonly memoryBytes: number;
  readonly diskBytes: number;
  /** Non-zero pages in the image. */
  readonly pages: number;
}

/** agent → coordinator: reply to `vm-capture`, sent after the coordinator accepted the upload. */
export interface VmCapturedMessage {
  readonly type: 'vm-captured';
  readonly requestId: string;
  readonly vmId: string;
  readonly image: CapturedImageWire;
  /** How long the VM was paused for the capture (0 if it was paused already). */
  readonly pauseMs: number;
  /** Bytes of the image file uploaded. */
  readonly fileBytes: number;
}

/** agent → coordinator: reply to `vm-create` and `vm-clone`. */
export interface VmCreatedMessage {
  readonly type: 'vm-created';
  readonly requestId: string;
  readonly vm: VmReport;
  /** Pages copied from the image (0 without one). */
  readonly imagePages: number;
}

/** agent → coordinator: reply to `vm-action`: the VM after the action. */
export interface VmUpdatedMessage {
  readonly type: 'vm-updated';
  readonly requestId: string;
  readonly vm: VmReport;
}

/** agent → coordinator: reply to `vm-snapshot`. */
export interface SnapshotTakenMessage {
  readonly type: 'snapshot-taken';
  readonly requestId: string;
  readonly vmId: string;
  readonly snapshotId: string;
  readonly memoryBytes: number;
  readonly fileBytes: number;
  readonly durationMs: number;
  readonly pauseMs: number;
}

/** One writable-working-set sample. */
export interface WwsSampleWire {
  readonly atMs: number;
  readonly intervalMs: number;
  readonly dirtyPages: number;
  readonly dirtyRatePagesPerSec: number;
}

/** agent → coordinator: reply to `vm-wws`. */
export interface WwsSampledMessage {
  readonly type: 'wws-sampled';
  readonly requestId: string;
  readonly vmId: string;
  readonly samples: readonly WwsSampleWire[];
  /** Distinct pages dirtied over all samples. */
  readonly wwsPages: number;
  readonly memoryBytes: number;
  /** When `predictAt` was asked. */
  readonly prediction?: WwsPrediction;
}

/**
 * agent → coordinator: reply to `vm-digest`: xxh64 hex of all guest memory (packages/memory
 * memoryDigest). `totalSteps` is read before the memory is hashed: a running VM's digest covers at
 * least those steps (maybe more), so one taken at the step limit is the VM's final memory.
 */
export interface VmDigestedMessage {
  readonly type: 'vm-digested';
  readonly requestId: string;
  readonly vmId: string;
  readonly digest: string;
  readonly state: string;
  readonly totalSteps: number;
}

/** agent → coordinator: a VM changed state outside a request (migration in/out, fault, step limit). */
export interface VmStateChangedMessage {
  readonly type: 'vm-state-changed';
  readonly vm: VmReport;
  readonly reason: string;
}

// ---------------------------------------------------------------------------------------------
// Live migration orchestration

/** coordinator → source agent: migrate `vmId` to the destination that reserved `migrationId` and issued `token`. Reply `migration-accepted`. A paused or suspended VM migrates too (it arrives running). */
export interface MigrationStartMessage {
  readonly type: 'migration-start';
  readonly requestId: string;
  readonly migrationId: string;
  readonly vmId: string;
  readonly destinationHostId: string;
  /** The destination's migration address (`ws://host:port/migrate`). */
  readonly address: string;
  readonly token: string;
  readonly policy: MigrationPolicyWire;
  /** How long the source waits for `migration-decision` after `migration-ready` before it aborts. */
  readonly decisionTimeoutMs: number;
}

/** source agent → coordinator: reply to `migration-start`: the migration runs. */
export interface MigrationAcceptedMessage {
  readonly type: 'migration-accepted';
  readonly requestId: string;
  readonly migrationId: string;
}

/** coordinator → source and destination agents: the commit point's answer to `migration-ready` (the destination activates on `commit`). */
export interface MigrationDecisionMessage {
  readonly type: 'migration-decision';
  readonly migrationId: string;
  readonly decision: 'commit' | 'abort';
}

/** coordinator → source agent: abandon a migration before commitment (the VM stays on the source). */
export interface MigrationCancelMessage {
  readonly type: 'migration-cancel';
  readonly migrationId: string;
  readonly reason: string;
}

/** source agent → coordinator: a round finished. */
export interface MigrationProgressMessage {
  readonly type: 'migration-progress';
  readonly migrationId: string;
  readonly round: MigrationRoundWire;
}

/** source agent → coordinator: pre-copy ended (why, after how many rounds); the VM is being paused and the final round goes out next. */
export interface MigrationStoppingMessage {
  readonly type: 'migration-stopping';
  readonly migrationId: string;
  /** Pre-copy rounds done. */
  readonly rounds: number;
  /** Pages dirty at the end of pre-copy: the final round's size, about. */
  readonly pagesLeft: number;
}

/** source or destination agent → coordinator: the destination verified everything; the VM is paused on the source; decide. The source re-sends it after a reconnect until decided. */
export interface MigrationReadyMessage {
  readonly type: 'migration-ready';
  readonly migrationId: string;
  readonly vmId: string;
  readonly digest: string;
}

/** Outcomes of a migration as one side saw it. */
export const MIGRATION_OUTCOMES = ['completed', 'failed', 'cancelled'] as const;
export type MigrationOutcome = (typeof MIGRATION_OUTCOMES)[number];

/**
 * agent → coordinator: a migration ended on this side. The source sends it with its report; the
 * destination sends it once the VM runs there (completed) or when it discarded the partial VM.
 */
export interface MigrationFinishedMessage {
  readonly type: 'migration-finished';
  readonly migrationId: string;
  readonly vmId: string;
  readonly role: 'source' | 'destination';
  readonly outcome: MigrationOutcome;
  readonly report?: MigrationReportWire;
  readonly error?: ErrorInfoWire;
  /** Where the VM runs now as far as this side knows, and its state. */
  readonly vm?: VmReport;
}

/** Every message an agent sends to the coordinator. */
export type AgentToCoordinatorMessage =
  | RegisterMessage
  | HeartbeatMessage
  | MigrationReservedMessage
  | RequestFailedMessage
  | VmCreatedMessage
  | VmUpdatedMessage
  | SnapshotTakenMessage
  | WwsSampledMessage
  | VmDigestedMessage
  | VmCapturedMessage
  | VmStateChangedMessage
  | MigrationAcceptedMessage
  | MigrationProgressMessage
  | MigrationStoppingMessage
  | MigrationReadyMessage
  | MigrationFinishedMessage;

/** Every message the coordinator sends to an agent. */
export type CoordinatorToAgentMessage =
  | RegisteredMessage
  | RegisterRefusedMessage
  | ReserveMigrationMessage
  | ReleaseReservationMessage
  | RequestFailedMessage
  | VmCreateMessage
  | VmActionMessage
  | VmSnapshotMessage
  | VmCloneMessage
  | VmWwsMessage
  | VmDigestMessage
  | VmCaptureMessage
  | MigrationStartMessage
  | MigrationDecisionMessage
  | MigrationCancelMessage;

/** Agent replies that answer a coordinator request (they carry its `requestId`). */
export type AgentReplyMessage = Extract<AgentToCoordinatorMessage, { readonly requestId: string }>;
