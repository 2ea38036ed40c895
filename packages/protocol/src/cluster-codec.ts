/**
 * Validators and codecs for the agent ↔ coordinator messages in cluster-messages.ts, built on the
 * generic codec (codec.ts): the size is capped before unpacking, the `type` must be a variant of
 * the direction's union, and each validator builds a fresh object from checked fields (unknown
 * fields dropped). Adding a variant to a union without a validator here is a type error.
 */
import { createMessageCodec, field, type MessageValidators, type RawMessage } from './codec.ts';
import { MessageInvalidError } from './errors.ts';
import type { MessageCodec } from './channel.ts';
import {
  MIGRATION_OUTCOMES,
  VM_HOST_ACTIONS,
  type AgentToCoordinatorMessage,
  type CoordinatorToAgentMessage,
  type ErrorInfoWire,
  type GuestConfigWire,
  type HostCapacity,
  type MigrationPolicyWire,
  type MigrationReportWire,
  type MigrationRoundWire,
  type VmReport,
  type VmSpecWire,
  type WorkloadWire,
  type WwsSampleWire,
} from './cluster-messages.ts';
import { RATE_LIMIT_KINDS, type MigrationRateLimit, type WwsPrediction } from './api.ts';

/** Largest agent ↔ coordinator control message, bytes. */
export const CLUSTER_MAX_MESSAGE_BYTES = 1024 * 1024;
/** Most VMs one agent may report in one message. */
export const CLUSTER_MAX_VMS_PER_REPORT = 4096;

const id = (raw: RawMessage, key: string): string => field.string(raw, key, { nonEmpty: true, maxLength: 256 });

/** An id that names a file in an agent's data dir: letters, digits, `.`, `_`, `-`, not starting with `.`. */
function fileId(raw: RawMessage, key: string): string {
  const v = field.string(raw, key, { nonEmpty: true, maxLength: 128 });
  if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(v)) throw new MessageInvalidError(`${String(raw['type'])}: ${key} must be letters, digits, '.', '_' or '-'`, { field: key });
  return v;
}

function capacity(raw: RawMessage): HostCapacity {
  const c = field.map(raw, 'capacity');
  return { cpus: field.integer(c, 'cpus'), memoryBytes: field.integer(c, 'memoryBytes'), diskBytes: field.integer(c, 'diskBytes') };
}

/** Most writable-working-set samples in one request. */
export const CLUSTER_MAX_WWS_SAMPLES = 1000;

const has = (raw: RawMessage, key: string): boolean => raw[key] !== undefined && raw[key] !== null;

function mapList(raw: RawMessage, key: string, maxItems: number): RawMessage[] {
  const v = raw[key];
  if (!Array.isArray(v) || v.length > maxItems) {
    throw new MessageInvalidError(`${String(raw['type'])}: ${key} must be a list of at most ${maxItems}`, { field: key });
  }
  return v.map((item: unknown) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item) || item instanceof Uint8Array) throw new MessageInvalidError(`${key}[] must be maps`, { field: key });
    return item as RawMessage;
  });
}

function workload(raw: RawMessage, key: string): WorkloadWire {
  const w = field.map(raw, key);
  let params: Record<string, number> | undefined;
  if (has(w, 'params')) {
    const p = field.map(w, 'params');
    const keys = Object.keys(p);
    if (keys.length > 64) throw new MessageInvalidError('workload.params: at most 64 entries', { field: 'params' });
    params = {};
    for (const k of keys) params[k.slice(0, 64)] = field.number(p, k);
  }
  return {
    kind: field.string(w, 'kind', { nonEmpty: true, maxLength: 64 }),
    ...(has(w, 'seed') ? { seed: field.integer(w, 'seed', 0, 0xffffffff) } : {}),
    ...(has(w, 'rate') ? { rate: field.number(w, 'rate', 0) } : {}),
    ...(has(w, 'modulePath') ? { modulePath: field.string(w, 'modulePath', { maxLength: 4096 }) } : {}),
    ...(params ? { params } : {}),
  };
}

function vmReport(o: RawMessage): VmReport {
  return {
    vmId: id(o, 'vmId'),
    state: id(o, 'state'),
    memoryBytes: field.integer(o, 'memoryBytes'),
    cpus: field.integer(o, 'cpus'),
    ...(has(o, 'name') ? { name: field.string(o, 'name', { maxLength: 256 }) } : {}),
    ...(has(o, 'image') ? { image: id(o, 'image') } : {}),
    ...(has(o, 'workload') ? { workload: workload(o, 'workload') } : {}),
    ...(has(o, 'migrationId') ? { migrationId: id(o, 'migrationId') } : {}),
    ...(has(o, 'totalSteps') ? { totalSteps: field.integer(o, 'totalSteps') } : {}),
  };
}

function vms(raw: RawMessage): VmReport[] {
  return mapList(raw, 'vms', CLUSTER_MAX_VMS_PER_REPORT).map(vmReport);
}

function spec(raw: RawMessage): VmSpecWire {
  const s = field.map(raw, 'spec');
  return {
    id: id(s, 'id'),
    name: field.string(s, 'name', { maxLength: 256 }),
    vcpus: field.integer(s, 'vcpus', 1, 64),
    memoryBytes: field.integer(s, 'memoryBytes', 1),
    workload: workload(s, 'workload'),
    ...(has(s, 'heartbeat') ? { heartbeat: field.boolean(s, 'heartbeat') } : {}),
    ...(has(s, 'stepLimit') ? { stepLimit: field.integer(s, 'stepLimit') } : {}),
  };
}

function guestConfig(raw: RawMessage): GuestConfigWire {
  const c = field.map(raw, 'config');
  const accessRules = mapList(c, 'accessRules', 256).map((o) => ({
    protocol: field.oneOf(o, 'protocol', ['tcp', 'udp', 'icmp'] as const),
    ...(has(o, 'port') ? { port: field.integer(o, 'port', 0, 65535) } : {}),
    cidr: field.string(o, 'cidr', { nonEmpty: true, maxLength: 64 }),
  }));
  return {
    instanceId: id(c, 'instanceId'),
    hostname: field.string(c, 'hostname', { maxLength: 256 }),
    ip: field.string(c, 'ip', { maxLength: 64 }),
    accessRules,
    user: field.string(c, 'user', { maxLength: 256 }),
    password: field.string(c, 'password', { maxLength: 1024 }),
  };
}

function policy(raw: RawMessage): MigrationPolicyWire {
  const p = field.map(raw, 'policy');
  const base = {
    maxDowntimeMs: field.number(p, 'maxDowntimeMs', 0),
    maxRounds: field.integer(p, 'maxRounds', 1, 10_000),
    bandwidthLimit: field.number(p, 'bandwidthLimit', 0),
    autoConverge: field.boolean(p, 'autoConverge'),
  };
  return has(p, 'rateLimit') ? { ...base, rateLimit: rateLimit(p) } : base;
}

/** A policy's rate limit: every field present, rates of at least 1 byte/s, the first round's not above the cap. */
function rateLimit(raw: RawMessage): MigrationRateLimit {
  const l = field.map(raw, 'rateLimit');
  const limit: MigrationRateLimit = {
    kind: field.oneOf(l, 'kind', RATE_LIMIT_KINDS),
    startBytesPerSec: field.integer(l, 'startBytesPerSec', 1),
    stepBytesPerSec: field.integer(l, 'stepBytesPerSec', 1),
    maxBytesPerSec: field.integer(l, 'maxBytesPerSec', 1),
    stopBelowBytes: field.integer(l, 'stopBelowBytes', 0),
  };
  if (limit.startBytesPerSec > limit.maxBytesPerSec) throw new MessageInvalidError('rateLimit.startBytesPerSec must not exceed maxBytesPerSec', { field: 'startBytesPerSec' });
  return limit;
}

function round(raw: RawMessage): MigrationRoundWire {
  const r = field.map(raw, 'round');
  return {
    round: field.integer(r, 'round'),
    pagesSent: field.integer(r, 'pagesSent'),
    bytesSent: field.integer(r, 'bytesSent'),
    dirtyPages: field.integer(r, 'dirtyPages'),
    dirtyRatePagesPerSec: field.number(r, 'dirtyRatePagesPerSec', 0),
    bandwidthBytesPerSec: field.number(r, 'bandwidthBytesPerSec', 0),
    expectedDowntimeMs: field.number(r, 'expectedDowntimeMs', 0),
    throttlePercent: field.number(r, 'throttlePercent', 0, 100),
    pagesLeft: field.integer(r, 'pagesLeft'),
    final: field.boolean(r, 'final'),
    durationMs: field.number(r, 'durationMs', 0),
    zeroPagesSent: field.integer(r, 'zeroPagesSent'),
    ...(has(r, 'endedAtMs') ? { endedAtMs: field.number(r, 'endedAtMs', 0) } : {}),
  };
}

function report(raw: RawMessage): MigrationReportWire {
  const r = field.map(raw, 'report');
  return {
    migrationId: id(r, 'migrationId'),
    totalMs: field.number(r, 'totalMs', 0),
    setupMs: field.number(r, 'setupMs', 0),
    downtimeMs: field.number(r, 'downtimeMs', -1),
    pausedAtMs: field.number(r, 'pausedAtMs', 0),
    rounds: field.integer(r, 'rounds'),
    stopReason: field.string(r, 'stopReason', { maxLength: 64 }),
    bytesOnWire: field.integer(r, 'bytesOnWire'),
    vmBytes: field.integer(r, 'vmBytes'),
    pageBytesSent: field.integer(r, 'pageBytesSent'),
    zeroPagesSkipped: field.integer(r, 'zeroPagesSkipped'),
    digestAlgorithm: field.string(r, 'digestAlgorithm', { maxLength: 64 }),
    digest: field.string(r, 'digest', { maxLength: 256 }),
    digestVerified: field.boolean(r, 'digestVerified'),
    finalThrottlePercent: field.number(r, 'finalThrottlePercent', 0, 100),
    switchoverMs: field.number(r, 'switchoverMs', 0),
    switchoverMeasuredMs: field.number(r, 'switchoverMeasuredMs', -1),
  };
}

function errorInfo(raw: RawMessage): ErrorInfoWire {
  const e = field.map(raw, 'error');
  return { code: id(e, 'code'), message: field.string(e, 'message') };
}

function wwsSamples(raw: RawMessage): WwsSampleWire[] {
  return mapList(raw, 'samples', CLUSTER_MAX_WWS_SAMPLES).map((o) => ({
    atMs: field.number(o, 'atMs', 0),
    intervalMs: field.number(o, 'intervalMs', 0),
    dirtyPages: field.integer(o, 'dirtyPages'),
    dirtyRatePagesPerSec: field.number(o, 'dirtyRatePagesPerSec', 0),
  }));
}

function wwsPrediction(o: RawMessage): WwsPrediction {
  return {
    bandwidthBytesPerSec: field.number(o, 'bandwidthBytesPerSec', 0),
    maxDowntimeMs: field.number(o, 'maxDowntimeMs', 0),
    rounds: field.integer(o, 'rounds'),
    finalPages: field.integer(o, 'finalPages'),
    downtimeMs: field.number(o, 'downtimeMs', 0),
    totalMs: field.number(o, 'totalMs', 0),
    stopReason: field.oneOf(o, 'stopReason', ['converged', 'max-rounds', 'no-progress'] as const),
  };
}

/** One validator per agent → coordinator message. */
export const AGENT_TO_COORDINATOR_VALIDATORS: MessageValidators<AgentToCoordinatorMessage> = {
  register: (raw) => ({
    type: 'register',
    protocolVersion: field.integer(raw, 'protocolVersion'),
    hostId: id(raw, 'hostId'),
    capacity: capacity(raw),
    migrationAddress: field.string(raw, 'migrationAddress', { maxLength: 1024 }),
    vms: vms(raw),
  }),
  heartbeat: (raw) => ({ type: 'heartbeat', seq: field.integer(raw, 'seq'), vms: vms(raw) }),
  'migration-reserved': (raw) => ({
    type: 'migration-reserved',
    requestId: id(raw, 'requestId'),
    migrationId: id(raw, 'migrationId'),
    token: id(raw, 'token'),
    migrationAddress: field.string(raw, 'migrationAddress', { nonEmpty: true, maxLength: 1024 }),
    expiresAtMs: field.integer(raw, 'expiresAtMs'),
  }),
  'request-failed': (raw) => ({ type: 'request-failed', requestId: id(raw, 'requestId'), code: id(raw, 'code'), message: field.string(raw, 'message') }),
  'vm-created': (raw) => ({ type: 'vm-created', requestId: id(raw, 'requestId'), vm: vmReport(field.map(raw, 'vm')), imagePages: field.integer(raw, 'imagePages') }),
  'vm-updated': (raw) => ({ type: 'vm-updated', requestId: id(raw, 'requestId'), vm: vmReport(field.map(raw, 'vm')) }),
  'snapshot-taken': (raw) => ({
    type: 'snapshot-taken',
    requestId: id(raw, 'requestId'),
    vmId: id(raw, 'vmId'),
    snapshotId: id(raw, 'snapshotId'),
    memoryBytes: field.integer(raw, 'memoryBytes'),
    fileBytes: field.integer(raw, 'fileBytes'),
    durationMs: field.number(raw, 'durationMs', 0),
    pauseMs: field.number(raw, 'pauseMs', 0),
  }),
  'wws-sampled': (raw) => ({
    type: 'wws-sampled',
    requestId: id(raw, 'requestId'),
    vmId: id(raw, 'vmId'),
    samples: wwsSamples(raw),
    wwsPages: field.integer(raw, 'wwsPages'),
    memoryBytes: field.integer(raw, 'memoryBytes'),
    ...(has(raw, 'prediction') ? { prediction: wwsPrediction(field.map(raw, 'prediction')) } : {}),
  }),
  'vm-digested': (raw) => ({
    type: 'vm-digested',
    requestId: id(raw, 'requestId'),
    vmId: id(raw, 'vmId'),
    digest: field.string(raw, 'digest', { nonEmpty: true, maxLength: 256 }),
    state: id(raw, 'state'),
    totalSteps: field.integer(raw, 'totalSteps'),
  }),
  'vm-captured': (raw) => {
    const image = field.map(raw, 'image');
    return {
      type: 'vm-captured',
      requestId: id(raw, 'requestId'),
      vmId: id(raw, 'vmId'),
      image: {
        id: fileId(image, 'id'),
        name: field.string(image, 'name', { maxLength: 256 }),
        memoryBytes: field.integer(image, 'memoryBytes'),
        diskBytes: field.integer(image, 'diskBytes'),
        pages: field.integer(image, 'pages'),
      },
      pauseMs: field.number(raw, 'pauseMs', 0),
      fileBytes: field.integer(raw, 'fileBytes'),
    };
  },
  'vm-state-changed': (raw) => ({ type: 'vm-state-changed', vm: vmReport(field.map(raw, 'vm')), reason: field.string(raw, 'reason') }),
  'migration-accepted': (raw) => ({ type: 'migration-accepted', requestId: id(raw, 'requestId'), migrationId: id(raw, 'migrationId') }),
  'migration-progress': (raw) => ({ type: 'migration-progress', migrationId: id(raw, 'migrationId'), round: round(raw) }),
  'migration-stopping': (raw) => ({ type: 'migration-stopping', migrationId: id(raw, 'migrationId'), rounds: field.integer(raw, 'rounds', 0, 0xffffffff), pagesLeft: field.integer(raw, 'pagesLeft', 0, 0xffffffff) }),
  'migration-ready': (raw) => ({ type: 'migration-ready', migrationId: id(raw, 'migrationId'), vmId: id(raw, 'vmId'), digest: field.string(raw, 'digest', { maxLength: 256 }) }),
  'migration-finished': (raw) => ({
    type: 'migration-finished',
    migrationId: id(raw, 'migrationId'),
    vmId: id(raw, 'vmId'),
    role: field.oneOf(raw, 'role', ['source', 'destination'] as const),
    outcome: field.oneOf(raw, 'outcome', MIGRATION_OUTCOMES),
    ...(has(raw, 'report') ? { report: report(raw) } : {}),
    ...(has(raw, 'error') ? { error: errorInfo(raw) } : {}),
    ...(has(raw, 'vm') ? { vm: vmReport(field.map(raw, 'vm')) } : {}),
  }),
};

/** One validator per coordinator → agent message. */
export const COORDINATOR_TO_AGENT_VALIDATORS: MessageValidators<CoordinatorToAgentMessage> = {
  registered: (raw) => ({ type: 'registered', hostId: id(raw, 'hostId'), heartbeatIntervalMs: field.integer(raw, 'heartbeatIntervalMs', 1) }),
  'register-refused': (raw) => ({ type: 'register-refused', code: id(raw, 'code'), message: field.string(raw, 'message') }),
  'reserve-migration': (raw) => ({
    type: 'reserve-migration',
    requestId: id(raw, 'requestId'),
    migrationId: id(raw, 'migrationId'),
    vmId: id(raw, 'vmId'),
    memoryBytes: field.integer(raw, 'memoryBytes'),
    cpus: field.integer(raw, 'cpus'),
    ttlMs: field.integer(raw, 'ttlMs', 1),
  }),
  'release-reservation': (raw) => ({ type: 'release-reservation', migrationId: id(raw, 'migrationId') }),
  'request-failed': (raw) => ({ type: 'request-failed', requestId: id(raw, 'requestId'), code: id(raw, 'code'), message: field.string(raw, 'message') }),
  'vm-create': (raw) => ({
    type: 'vm-create',
    requestId: id(raw, 'requestId'),
    spec: spec(raw),
    ...(has(raw, 'image') ? { image: id(raw, 'image') } : {}),
    ...(has(raw, 'config') ? { config: guestConfig(raw) } : {}),
    start: field.boolean(raw, 'start'),
  }),
  'vm-action': (raw) => ({ type: 'vm-action', requestId: id(raw, 'requestId'), vmId: id(raw, 'vmId'), action: field.oneOf(raw, 'action', VM_HOST_ACTIONS) }),
  'vm-snapshot': (raw) => ({ type: 'vm-snapshot', requestId: id(raw, 'requestId'), vmId: id(raw, 'vmId'), snapshotId: fileId(raw, 'snapshotId') }),
  'vm-clone': (raw) => ({
    type: 'vm-clone',
    requestId: id(raw, 'requestId'),
    snapshotId: fileId(raw, 'snapshotId'),
    newVmId: id(raw, 'newVmId'),
    name: field.string(raw, 'name', { maxLength: 256 }),
    start: field.boolean(raw, 'start'),
  }),
  'vm-wws': (raw) => ({
    type: 'vm-wws',
    requestId: id(raw, 'requestId'),
    vmId: id(raw, 'vmId'),
    samples: field.integer(raw, 'samples', 1, CLUSTER_MAX_WWS_SAMPLES),
    intervalMs: field.integer(raw, 'intervalMs', 1, 60_000),
    ...(has(raw, 'predictAt')
      ? (() => {
          const p = field.map(raw, 'predictAt');
          return { predictAt: { bandwidthBytesPerSec: field.number(p, 'bandwidthBytesPerSec', 1), maxDowntimeMs: field.number(p, 'maxDowntimeMs', 1, 600_000) } };
        })()
      : {}),
  }),
  'vm-digest': (raw) => ({ type: 'vm-digest', requestId: id(raw, 'requestId'), vmId: id(raw, 'vmId') }),
  'vm-capture': (raw) => ({
    type: 'vm-capture',
    requestId: id(raw, 'requestId'),
    vmId: id(raw, 'vmId'),
    imageId: fileId(raw, 'imageId'),
    name: field.string(raw, 'name', { nonEmpty: true, maxLength: 256 }),
    description: field.string(raw, 'description', { maxLength: 1024 }),
  }),
  'migration-start': (raw) => ({
    type: 'migration-start',
    requestId: id(raw, 'requestId'),
    migrationId: id(raw, 'migrationId'),
    vmId: id(raw, 'vmId'),
    destinationHostId: id(raw, 'destinationHostId'),
    address: field.string(raw, 'address', { nonEmpty: true, maxLength: 1024 }),
    token: id(raw, 'token'),
    policy: policy(raw),
    decisionTimeoutMs: field.integer(raw, 'decisionTimeoutMs', 1),
  }),
  'migration-decision': (raw) => ({ type: 'migration-decision', migrationId: id(raw, 'migrationId'), decision: field.oneOf(raw, 'decision', ['commit', 'abort'] as const) }),
  'migration-cancel': (raw) => ({ type: 'migration-cancel', migrationId: id(raw, 'migrationId'), reason: field.string(raw, 'reason') }),
};

/** The coordinator's codec: decodes agent → coordinator, encodes coordinator → agent. */
export const coordinatorClusterCodec: MessageCodec<AgentToCoordinatorMessage, CoordinatorToAgentMessage> = createMessageCodec<
  AgentToCoordinatorMessage,
  CoordinatorToAgentMessage
>(AGENT_TO_COORDINATOR_VALIDATORS, CLUSTER_MAX_MESSAGE_BYTES);

/** The agent's codec: decodes coordinator → agent, encodes agent → coordinator. */
export const agentClusterCodec: MessageCodec<CoordinatorToAgentMessage, AgentToCoordinatorMessage> = createMessageCodec<
  CoordinatorToAgentMessage,
  AgentToCoordinatorMessage
>(COORDINATOR_TO_AGENT_VALIDATORS, CLUSTER_MAX_MESSAGE_BYTES);
