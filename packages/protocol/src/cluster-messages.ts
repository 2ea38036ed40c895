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
 * Later phases add VM lifecycle and migration orchestration messages to these unions; keep one
 * named type per variant and add a validator to cluster-codec.ts.
 */

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

/** One VM an agent runs, as reported in `register` and `heartbeat`. */
export interface VmReport {
  readonly vmId: string;
  /** VM state name as the VM host module reports it (e.g. `running`, `paused`). */
  readonly state: string;
  readonly memoryBytes: number;
  readonly cpus: number;
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

/** Every message an agent sends to the coordinator. */
export type AgentToCoordinatorMessage =
  | RegisterMessage
  | HeartbeatMessage
  | MigrationReservedMessage
  | RequestFailedMessage;

/** Every message the coordinator sends to an agent. */
export type CoordinatorToAgentMessage =
  | RegisteredMessage
  | RegisterRefusedMessage
  | ReserveMigrationMessage
  | ReleaseReservationMessage
  | RequestFailedMessage;
