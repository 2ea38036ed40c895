/**
 * Validators and codecs for the agent ↔ coordinator messages in cluster-messages.ts, built on the
 * generic codec (codec.ts): the size is capped before unpacking, the `type` must be a variant of
 * the direction's union, and each validator builds a fresh object from checked fields (unknown
 * fields dropped). Adding a variant to a union without a validator here is a type error.
 */
import { createMessageCodec, field, type MessageValidators, type RawMessage } from './codec.ts';
import { MessageInvalidError } from './errors.ts';
import type { MessageCodec } from './channel.ts';
import type { AgentToCoordinatorMessage, CoordinatorToAgentMessage, HostCapacity, VmReport } from './cluster-messages.ts';

/** Largest agent ↔ coordinator control message, bytes. */
export const CLUSTER_MAX_MESSAGE_BYTES = 1024 * 1024;
/** Most VMs one agent may report in one message. */
export const CLUSTER_MAX_VMS_PER_REPORT = 4096;

const id = (raw: RawMessage, key: string): string => field.string(raw, key, { nonEmpty: true, maxLength: 256 });

function capacity(raw: RawMessage): HostCapacity {
  const c = field.map(raw, 'capacity');
  return { cpus: field.integer(c, 'cpus'), memoryBytes: field.integer(c, 'memoryBytes'), diskBytes: field.integer(c, 'diskBytes') };
}

function vms(raw: RawMessage): VmReport[] {
  const v = raw['vms'];
  if (!Array.isArray(v) || v.length > CLUSTER_MAX_VMS_PER_REPORT) {
    throw new MessageInvalidError(`${String(raw['type'])}: vms must be a list of at most ${CLUSTER_MAX_VMS_PER_REPORT}`, { field: 'vms' });
  }
  return v.map((item: unknown) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new MessageInvalidError('vms[] must be maps', { field: 'vms' });
    const o = item as RawMessage;
    return { vmId: id(o, 'vmId'), state: id(o, 'state'), memoryBytes: field.integer(o, 'memoryBytes'), cpus: field.integer(o, 'cpus') };
  });
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
