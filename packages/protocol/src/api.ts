/**
 * The coordinator's public API: the resources the HTTP JSON API under `/api/v1` returns, the
 * request bodies it accepts, and its routes. The `ferry` CLI, the console and (later) the
 * dashboard speak only this; the coordinator implements it.
 *
 * Conventions
 * - Every request carries `Authorization: Bearer <cluster token>`; without it: 401.
 * - Bodies and replies are JSON. Times are ISO-8601 strings; sizes are bytes (`memoryBytes`);
 *   request bodies also accept size strings (`16GiB`, `512MiB`, `1.5G`; see api-size.ts).
 * - Errors: a non-2xx status with `{ error: { code, message } }` (ApiErrorBody, api-errors.ts).
 * - Lists (`GET /hosts`, `/vms`, `/images`, `/migrations`, `/events`) reply with a bare JSON array.
 * - The WebSocket `/api` carries the live event stream (api-ws.ts).
 *
 * Image / instance / VM (the lecture's distinction): an Image is durable and never changed by VM
 * execution; an instance is an image bound to run-time configuration (hostname, IP, access rules,
 * credentials); a VM is the running thing on a host. `Vm` below is the instance record together
 * with the state of the VM that runs it.
 */

/** Prefix of every HTTP API route. */
export const API_PREFIX = '/api/v1';
/** Path of the console's WebSocket (events and migration progress). */
export const API_WS_PATH = '/api';
/** Default coordinator URL for a local cluster. */
export const DEFAULT_COORDINATOR_URL = 'http://127.0.0.1:7070';
/** The local cluster's state directory name, searched from cwd upward by the CLI. */
export const LOCAL_STATE_DIR = '.ferry';
/** File in LOCAL_STATE_DIR holding `LocalClusterFile` (`{ url, token }`), written by the cluster launcher. */
export const LOCAL_CLUSTER_FILE = 'cluster.json';

/** What `.ferry/cluster.json` holds: how to reach the local cluster's coordinator. */
export interface LocalClusterFile {
  readonly url: string;
  readonly token: string;
}

// ---------------------------------------------------------------------------------------------
// Hosts

/** Host states. `draining`: VMs are being migrated off; `maintenance`: drained, takes no VMs. */
export const HOST_STATES = ['up', 'down', 'draining', 'maintenance'] as const;
export type HostState = (typeof HOST_STATES)[number];

/** CPU, memory and disk amounts of a host (capacity or use). */
export interface ResourceAmounts {
  readonly cpus: number;
  readonly memoryBytes: number;
  readonly diskBytes: number;
}

/** A hypervisor host (an agent) as the coordinator sees it. */
export interface Host {
  readonly id: string;
  readonly state: HostState;
  /** Where peers reach its migration port, `host:port`. */
  readonly address: string;
  readonly capacity: ResourceAmounts;
  readonly used: ResourceAmounts;
  /** Number of VMs placed on it (any state but deleted). */
  readonly vms: number;
  readonly lastHeartbeatAt: string;
}

/** Progress of a host drain (reply of drain, drain/cancel). */
export interface HostDrain {
  readonly host: string;
  readonly state: 'running' | 'completed' | 'cancelled' | 'failed';
  readonly vmsTotal: number;
  readonly vmsMoved: number;
  /** Ids of the migrations the drain started. */
  readonly migrations: readonly string[];
  readonly error?: ApiErrorInfo;
}

// ---------------------------------------------------------------------------------------------
// Placement plans

/**
 * Cluster-wide plans of the scheduler. `consolidation`: empty as many hosts as possible with as
 * few migrations as possible (Power-Aware Best-Fit Decreasing); `rebalance`: narrow the spread of
 * load (dominant-resource share) between up hosts.
 */
export const PLACEMENT_PLAN_KINDS = ['consolidation', 'rebalance'] as const;
export type PlacementPlanKind = (typeof PLACEMENT_PLAN_KINDS)[number];

/** One step of a plan: live-migrate `vm` from host `from` to host `to`, sending `costBytes` (its memory). */
export interface PlannedMigration {
  readonly vm: string;
  readonly from: string;
  readonly to: string;
  readonly costBytes: number;
}

/**
 * A plan (reply of `GET /api/v1/placement/consolidation|rebalance`): migrations in execution
 * order; up hosts holding a VM and the load spread (max − min dominant share over up hosts, 0–1)
 * before and after; hosts the plan empties (consolidation only); total bytes to send. Computing a
 * plan changes nothing. Only running, paused and suspended VMs move; others stay where they are.
 */
export interface PlacementPlan {
  readonly kind: PlacementPlanKind;
  readonly migrations: readonly PlannedMigration[];
  readonly hostsBefore: number;
  readonly hostsAfter: number;
  readonly hostsEmptied: readonly string[];
  readonly spreadBefore: number;
  readonly spreadAfter: number;
  readonly costBytes: number;
}

/**
 * Outcome of applying a plan (reply of `POST /api/v1/placement/consolidation|rebalance/apply`):
 * the plan computed at that moment, the migrations started (ids, in order), how many steps moved
 * their VM, and `failed` with the error of the first step that failed (later steps not started).
 */
export interface PlacementPlanRun {
  readonly plan: PlacementPlan;
  readonly state: 'completed' | 'failed';
  readonly migrations: readonly string[];
  readonly vmsMoved: number;
  readonly error?: ApiErrorInfo;
}

// ---------------------------------------------------------------------------------------------
// Images

/** A virtual appliance in the image library. Durable: VM execution never changes it. */
export interface Image {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  /** Guest memory the appliance is built for (its minimum memory). */
  readonly memoryBytes: number;
  /** Disk it needs (its minimum disk). */
  readonly diskBytes: number;
  /** Non-zero pages in the image. */
  readonly pages: number;
  /** Pages stored for this image alone (in no other image of the library). */
  readonly uniquePages: number;
  /** Pages it shares with at least one other image (stored once). */
  readonly sharedPages: number;
}

/** Body of `POST /api/v1/images`: capture a VM's memory as a new (user-made) appliance. */
export interface ImageCaptureRequest {
  readonly vm: string;
  readonly name: string;
  readonly description?: string;
}

// ---------------------------------------------------------------------------------------------
// VMs (instances)

/** VM states. `suspended`: memory saved to a file on its host; `lost`: its host went down. */
export const VM_STATES = ['provisioning', 'running', 'paused', 'suspended', 'stopped', 'migrating', 'lost', 'deleted'] as const;
export type VmState = (typeof VM_STATES)[number];

/**
 * Placement group policies (the scheduler's names). Hard rules (filters): `affinity` keeps members
 * on one host, `anti-affinity` on distinct hosts; a request that cannot keep them is refused.
 * Soft rules (weights): `soft-affinity` prefers a host holding a member, `soft-anti-affinity`
 * prefers hosts holding fewer members; they never refuse a request.
 */
export const GROUP_POLICIES = ['affinity', 'anti-affinity', 'soft-affinity', 'soft-anti-affinity'] as const;
export type GroupPolicy = (typeof GROUP_POLICIES)[number];

/** A placement group membership. */
export interface PlacementGroupRef {
  readonly name: string;
  readonly policy: GroupPolicy;
}

/** A workload running in the guest: `kind` (idle, uniform, hotset, scan, kv, or a plugged module) and its parameters. */
export interface WorkloadSpec {
  readonly kind: string;
  readonly [param: string]: unknown;
}

/** Login credentials of an instance. The coordinator keeps the password; the guest holds only its hash. */
export interface Credentials {
  readonly user: string;
  readonly password: string;
}

/** An instance and the state of the VM that runs it. */
export interface Vm {
  readonly id: string;
  readonly name: string;
  /** Host it is placed on; null before placement. */
  readonly host: string | null;
  readonly ip: string;
  readonly state: VmState;
  /** Image id it was provisioned from. */
  readonly image: string;
  readonly cpus: number;
  readonly memoryBytes: number;
  readonly diskBytes: number;
  readonly workload: WorkloadSpec;
  readonly group?: PlacementGroupRef;
  readonly credentials: Credentials;
  readonly createdAt: string;
}

/**
 * Body of `POST /api/v1/vms`, the EC2-style request. `memory` and `disk` are bytes or size
 * strings. `host` pins the VM to a host (skips placement, still checks capacity).
 */
export interface RunRequest {
  readonly image: string;
  readonly cpus: number;
  readonly memory: number | string;
  readonly disk: number | string;
  readonly name?: string;
  readonly group?: PlacementGroupRef;
  readonly workload?: WorkloadSpec;
  readonly host?: string;
}

/** A RunRequest after validation (validateRunRequest): sizes in bytes, memory a whole number of pages. */
export interface RunSpec {
  readonly image: string;
  readonly cpus: number;
  readonly memoryBytes: number;
  readonly diskBytes: number;
  readonly name?: string;
  readonly group?: PlacementGroupRef;
  readonly workload?: WorkloadSpec;
  readonly host?: string;
}

/** VM actions, each `POST /api/v1/vms/:id/<action>`. */
export const VM_ACTIONS = ['start', 'stop', 'suspend', 'resume', 'snapshot', 'clone', 'migrate'] as const;
export type VmAction = (typeof VM_ACTIONS)[number];

/** Body of start and resume: `host` starts/resumes on another host (default: where it was). */
export interface VmPlaceRequest {
  readonly host?: string;
}

/** Body of stop: `force` skips the guest's clean shutdown. */
export interface VmStopRequest {
  readonly force?: boolean;
}

/** Body of snapshot. */
export interface VmSnapshotRequest {
  readonly name?: string;
}

/** Body of clone: the new instance's name and optional host. */
export interface VmCloneRequest {
  readonly name?: string;
  readonly host?: string;
}

/** A saved snapshot of a VM's memory and device state (reply of snapshot). */
export interface VmSnapshot {
  readonly id: string;
  readonly vm: string;
  readonly name: string;
  readonly host: string;
  readonly memoryBytes: number;
  readonly createdAt: string;
}

/** One writable-working-set sample: pages dirtied during `intervalMs`. */
export interface WwsSample {
  readonly atMs: number;
  readonly intervalMs: number;
  readonly dirtyPages: number;
  readonly dirtyRatePagesPerSec: number;
}

/** Reply of `GET /api/v1/vms/:id/wws?samples=N&intervalMs=M[&bandwidth=RATE&maxDowntimeMs=MS]` (defaults 20 × 50 ms): writable working set sampling, with a pre-copy prediction when a bandwidth is given. */
export interface WwsReport {
  readonly vm: string;
  readonly samples: readonly WwsSample[];
  /** Distinct pages dirtied over all samples: the writable working set estimate. */
  readonly wwsPages: number;
  readonly wwsBytes: number;
  readonly memoryBytes: number;
  /** With a bandwidth asked: pre-copy simulated over this trace with Ferry's stop rule (the paper's use of the WWS). */
  readonly prediction?: WwsPrediction;
}

/** What pre-copy would do at a bandwidth, predicted from a WWS trace (round 1 sends all of memory). */
export interface WwsPrediction {
  readonly bandwidthBytesPerSec: number;
  readonly maxDowntimeMs: number;
  readonly rounds: number;
  /** Pages copied while paused. */
  readonly finalPages: number;
  readonly downtimeMs: number;
  readonly totalMs: number;
  readonly stopReason: 'converged' | 'max-rounds' | 'no-progress';
}

// ---------------------------------------------------------------------------------------------
// Migrations

/** Migration states, in order; completed, failed and cancelled are final. */
export const MIGRATION_STATES = ['reserving', 'precopy', 'stop-and-copy', 'committing', 'completed', 'failed', 'cancelled'] as const;
export type MigrationState = (typeof MIGRATION_STATES)[number];
/** The final migration states. */
export const FINAL_MIGRATION_STATES: readonly MigrationState[] = ['completed', 'failed', 'cancelled'];

/** Rate-limiting schemes a migration's page stream can follow (`MigrationPolicy.rateLimit.kind`). */
export const RATE_LIMIT_KINDS = ['xen'] as const;
export type RateLimitKind = (typeof RATE_LIMIT_KINDS)[number];

/**
 * Xen's dynamic rate limiting (Clark et al., NSDI 2005, section 5.1), in bytes per second like
 * every API rate: round 1 runs at `startBytesPerSec`; each next round at the previous round's
 * measured dirty rate plus `stepBytesPerSec`, capped at `maxBytesPerSec`; the stop-and-copy round
 * at the cap. Pre-copy stops when the dirty rate would need more than the cap, or when fewer than
 * `stopBelowBytes` remain dirty (then `maxDowntimeMs` and `maxRounds` still apply too).
 */
export interface XenRateLimit {
  readonly kind: 'xen';
  readonly startBytesPerSec: number;
  readonly stepBytesPerSec: number;
  readonly maxBytesPerSec: number;
  readonly stopBelowBytes: number;
}

/** A per-round rate limit of a migration (one scheme so far: Xen's). */
export type MigrationRateLimit = XenRateLimit;

/** The paper's figures: 100 Mbit/s first round, +50 Mbit/s over the dirty rate, 500 Mbit/s cap, stop below 256 KiB dirty. */
export const DEFAULT_XEN_RATE_LIMIT: XenRateLimit = Object.freeze({
  kind: 'xen',
  startBytesPerSec: 100e6 / 8,
  stepBytesPerSec: 50e6 / 8,
  maxBytesPerSec: 500e6 / 8,
  stopBelowBytes: 256 * 1024,
});

/**
 * Stop conditions and limits of one migration. `bandwidthLimit` is bytes per second, 0 = unlimited.
 * `rateLimit`, when present, sets the rate round by round instead (and `bandwidthLimit` is 0):
 * absent = no per-round limit (the default).
 */
export interface MigrationPolicy {
  readonly maxDowntimeMs: number;
  readonly maxRounds: number;
  readonly bandwidthLimit: number;
  readonly autoConverge: boolean;
  readonly rateLimit?: MigrationRateLimit;
}

/** Policy used for fields a request leaves out. */
export const DEFAULT_MIGRATION_POLICY: MigrationPolicy = Object.freeze({
  maxDowntimeMs: 300,
  maxRounds: 30,
  bandwidthLimit: 0,
  autoConverge: false,
});

/** What one pre-copy round did, and the stop decision's inputs after it. */
export interface RoundStats {
  readonly round: number;
  readonly pagesSent: number;
  readonly bytesSent: number;
  readonly dirtyPages: number;
  readonly dirtyRatePagesPerSec: number;
  readonly bandwidthBytesPerSec: number;
  readonly expectedDowntimeMs: number;
  readonly throttlePercent: number;
  readonly pagesLeft: number;
}

/** The final account of a migration (field names are fixed: `ferry migrate --json` prints it). */
export interface MigrationReport {
  readonly id: string;
  readonly vm: string;
  readonly from: string;
  readonly to: string;
  readonly state: MigrationState;
  /** Pause on the source to resume on the destination. */
  readonly downtimeMs: number;
  readonly totalMs: number;
  /** Reservation and connection setup before round 1. */
  readonly setupMs: number;
  readonly rounds: number;
  readonly bytesOnWire: number;
  readonly vmBytes: number;
  readonly zeroPagesSkipped: number;
  readonly digestVerified: boolean;
}

/** One round in a MigrationTimeline: `endMs` when it ended on the source's clock (when the source reports it; else when its progress reached the coordinator), `startMs` that minus the round's duration as the source measured it. */
export interface TimelineRound {
  readonly round: number;
  /** The stop-and-copy round (the VM is paused while it runs). */
  readonly final: boolean;
  readonly startMs: number;
  readonly endMs: number;
}

/**
 * When each step of a migration happened, in ms since its `startedAt`: round ends on the source's
 * clock (hosts' clocks are assumed in sync, as on one machine or under NTP), every other step
 * stamped by the coordinator as the agent's message arrived (so it includes one message latency). Fields
 * appear as the steps happen. The phases of the Xen paper's timeline follow from it:
 * setup `[0, rounds[0].startMs]`, pre-copy round k `[startMs, endMs]` of each non-final round,
 * stop-and-copy `[final round's startMs, readyMs]` (the source pauses as it begins; the destination
 * verifies the digest before ready), commitment `[readyMs, committedMs]` (the owner switch is
 * recorded), activation `[committedMs, activatedMs]` (the destination resumes the VM).
 */
export interface MigrationTimeline {
  /** The destination reserved room and issued the stream token. */
  readonly reservedMs?: number;
  readonly rounds: readonly TimelineRound[];
  /** The source reported `migration-ready`: everything sent and verified, the VM paused on the source. */
  readonly readyMs?: number;
  /** The owner switch was recorded and the commit decision sent. */
  readonly committedMs?: number;
  /** The destination reported the VM running there. */
  readonly activatedMs?: number;
  /** The migration reached its final state. */
  readonly finishedMs?: number;
}

/** A migration, live or finished. */
export interface Migration {
  readonly id: string;
  readonly vm: string;
  readonly from: string;
  readonly to: string;
  readonly state: MigrationState;
  readonly policy: MigrationPolicy;
  readonly rounds: readonly RoundStats[];
  readonly report?: MigrationReport;
  readonly error?: ApiErrorInfo;
  readonly startedAt?: string;
  /** Step times relative to `startedAt` (absent in records from before it existed). */
  readonly timeline?: MigrationTimeline;
}

/** A rate limit as a request may give it: `'xen'` for the defaults, or the fields to change (rates as numbers or rate strings such as `100Mbit/s`). */
export type MigrationRateLimitRequest =
  | RateLimitKind
  | { readonly kind: RateLimitKind; readonly startBytesPerSec?: number | string; readonly stepBytesPerSec?: number | string; readonly maxBytesPerSec?: number | string; readonly stopBelowBytes?: number | string };

/** Policy fields a request may set; `bandwidthLimit` also accepts a rate string (`100MiB`, `1G/s`, `800Mbit/s`). */
export interface MigrationPolicyRequest {
  readonly maxDowntimeMs?: number;
  readonly maxRounds?: number;
  readonly bandwidthLimit?: number | string;
  readonly autoConverge?: boolean;
  /** A per-round rate limit (DEFAULT_XEN_RATE_LIMIT filling the gaps); cannot be combined with a non-zero `bandwidthLimit`. */
  readonly rateLimit?: MigrationRateLimitRequest;
}

/** Body of `POST /api/v1/migrations` (and, without `vm`, of `POST /api/v1/vms/:id/migrate`). `to` absent: the coordinator picks. */
export interface MigrateRequest {
  readonly vm: string;
  readonly to?: string;
  readonly policy?: MigrationPolicyRequest;
}

/** A MigrateRequest after validation: a full policy. */
export interface MigrateSpec {
  readonly vm: string;
  readonly to?: string;
  readonly policy: MigrationPolicy;
}

// ---------------------------------------------------------------------------------------------
// Events

/**
 * Event types (kebab-case). The first six are the lecture's EC2 request steps 1–6, emitted in
 * order for each `run`: request-received (1), placement-decided (2, 3), dispatched-to-host (3),
 * appliance-copied (4), vm-booted (4), credentials-issued (5); vm-provisioned is step 6 (the user
 * has the instance details).
 */
export const API_EVENT_TYPES = [
  'request-received',
  'placement-decided',
  'dispatched-to-host',
  'appliance-copied',
  'vm-booted',
  'credentials-issued',
  'vm-provisioned',
  'vm-provision-failed',
  'vm-started',
  'vm-stopped',
  'vm-suspended',
  'vm-resumed',
  'vm-snapshotted',
  'vm-cloned',
  'vm-deleted',
  'vm-lost',
  'vm-state-changed',
  'host-registered',
  'host-up',
  'host-down',
  'host-drain-started',
  'host-drain-completed',
  'host-drain-cancelled',
  'host-drain-failed',
  'host-undrained',
  'image-captured',
  'migration-started',
  'migration-reserved',
  'migration-round-completed',
  'migration-stop-and-copy',
  'migration-committed',
  'migration-completed',
  'migration-failed',
  'migration-cancelled',
] as const;
export type ApiEventType = (typeof API_EVENT_TYPES)[number];

/**
 * One entry of the coordinator's event stream; `seq` increases by one per event.
 * `data` by type: migration-round-completed → RoundStats; migration-completed → MigrationReport;
 * migration-failed / migration-cancelled → `{ error: ApiErrorInfo, report?: MigrationReport }`;
 * migration-started → Migration; vm-provisioned and other vm-* → Vm (credentials omitted);
 * host-* → Host or HostDrain; others: a small object describing the step.
 */
export interface ApiEvent {
  readonly seq: number;
  readonly at: string;
  readonly type: ApiEventType;
  readonly vm?: string;
  readonly host?: string;
  readonly migration?: string;
  readonly data: Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------
// Errors over the wire

/** The error object of every error reply and error message. */
export interface ApiErrorInfo {
  readonly code: string;
  readonly message: string;
}

/** Body of every non-2xx reply. */
export interface ApiErrorBody {
  readonly error: ApiErrorInfo;
}
