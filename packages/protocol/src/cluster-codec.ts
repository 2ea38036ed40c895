/**
 * msgpack codec and validators for the agent ↔ coordinator messages in cluster-messages.ts.
 * Decoding checks every field of the variant its `type` names and rejects unknown types, extra
 * nesting beyond the limits, and oversized strings and lists; it never trusts a length.
 */
import { Packr } from 'msgpackr';
import type { MessageCodec } from './channel.ts';
import {
  AGENT_TO_COORDINATOR_TYPES,
  COORDINATOR_TO_AGENT_TYPES,
  type AgentToCoordinatorMessage,
  type CoordinatorToAgentMessage,
  type HostCapacity,
  type VmReport,
} from './cluster-messages.ts';

/** Longest string field accepted in a cluster message. */
export const CLUSTER_MAX_STRING_LENGTH = 4096;
/** Most VMs one agent may report in one message. */
export const CLUSTER_MAX_VMS_PER_REPORT = 4096;

/** Bytes that are not a valid cluster message. Stable code FERRY_ERR_CLUSTER_MESSAGE. */
export class ClusterMessageInvalidError extends Error {
  readonly code = 'FERRY_ERR_CLUSTER_MESSAGE';
  /** The `type` field when it could be read. */
  readonly messageType: string | undefined;
  constructor(message: string, messageType?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClusterMessageInvalidError';
    this.messageType = messageType;
  }
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

type Obj = Record<string, unknown>;

function fail(type: string | undefined, what: string): never {
  throw new ClusterMessageInvalidError(type ? `${type}: ${what}` : what, type);
}

function str(o: Obj, key: string, type: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length > CLUSTER_MAX_STRING_LENGTH) fail(type, `${key} must be a string of at most ${CLUSTER_MAX_STRING_LENGTH} chars`);
  return v;
}

function nonEmpty(o: Obj, key: string, type: string): string {
  const v = str(o, key, type);
  if (v.length === 0) fail(type, `${key} must not be empty`);
  return v;
}

function uint(o: Obj, key: string, type: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(type, `${key} must be a non-negative integer`);
  return v;
}

function obj(v: unknown, what: string, type: string | undefined): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(type, `${what} must be a map`);
  return v as Obj;
}

function capacity(v: unknown, type: string): HostCapacity {
  const o = obj(v, 'capacity', type);
  return { cpus: uint(o, 'cpus', type), memoryBytes: uint(o, 'memoryBytes', type), diskBytes: uint(o, 'diskBytes', type) };
}

function vms(v: unknown, type: string): VmReport[] {
  if (!Array.isArray(v) || v.length > CLUSTER_MAX_VMS_PER_REPORT) fail(type, `vms must be a list of at most ${CLUSTER_MAX_VMS_PER_REPORT}`);
  return v.map((item) => {
    const o = obj(item, 'vms[]', type);
    return { vmId: nonEmpty(o, 'vmId', type), state: nonEmpty(o, 'state', type), memoryBytes: uint(o, 'memoryBytes', type), cpus: uint(o, 'cpus', type) };
  });
}

function unpackObject(bytes: Uint8Array): { o: Obj; type: string } {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (cause) {
    throw new ClusterMessageInvalidError('not msgpack', undefined, { cause });
  }
  const o = obj(value, 'message', undefined);
  const type = o['type'];
  if (typeof type !== 'string') fail(undefined, 'type must be a string');
  return { o, type };
}

/** Validates one agent → coordinator message; throws ClusterMessageInvalidError. */
export function validateAgentToCoordinator(o: Obj, type: string): AgentToCoordinatorMessage {
  switch (type) {
    case 'register':
      return {
        type,
        protocolVersion: uint(o, 'protocolVersion', type),
        hostId: nonEmpty(o, 'hostId', type),
        capacity: capacity(o['capacity'], type),
        migrationAddress: str(o, 'migrationAddress', type),
        vms: vms(o['vms'], type),
      };
    case 'heartbeat':
      return { type, seq: uint(o, 'seq', type), vms: vms(o['vms'], type) };
    case 'migration-reserved':
      return {
        type,
        requestId: nonEmpty(o, 'requestId', type),
        migrationId: nonEmpty(o, 'migrationId', type),
        token: nonEmpty(o, 'token', type),
        migrationAddress: nonEmpty(o, 'migrationAddress', type),
        expiresAtMs: uint(o, 'expiresAtMs', type),
      };
    case 'request-failed':
      return { type, requestId: nonEmpty(o, 'requestId', type), code: nonEmpty(o, 'code', type), message: str(o, 'message', type) };
    default:
      return fail(type, `unknown type (expected one of ${AGENT_TO_COORDINATOR_TYPES.join(', ')})`);
  }
}

/** Validates one coordinator → agent message; throws ClusterMessageInvalidError. */
export function validateCoordinatorToAgent(o: Obj, type: string): CoordinatorToAgentMessage {
  switch (type) {
    case 'registered':
      return { type, hostId: nonEmpty(o, 'hostId', type), heartbeatIntervalMs: uint(o, 'heartbeatIntervalMs', type) };
    case 'register-refused':
      return { type, code: nonEmpty(o, 'code', type), message: str(o, 'message', type) };
    case 'reserve-migration':
      return {
        type,
        requestId: nonEmpty(o, 'requestId', type),
        migrationId: nonEmpty(o, 'migrationId', type),
        vmId: nonEmpty(o, 'vmId', type),
        memoryBytes: uint(o, 'memoryBytes', type),
        cpus: uint(o, 'cpus', type),
        ttlMs: uint(o, 'ttlMs', type),
      };
    case 'release-reservation':
      return { type, migrationId: nonEmpty(o, 'migrationId', type) };
    case 'request-failed':
      return { type, requestId: nonEmpty(o, 'requestId', type), code: nonEmpty(o, 'code', type), message: str(o, 'message', type) };
    default:
      return fail(type, `unknown type (expected one of ${COORDINATOR_TO_AGENT_TYPES.join(', ')})`);
  }
}

/** The coordinator's codec: decodes agent → coordinator, encodes coordinator → agent. */
export const coordinatorClusterCodec: MessageCodec<AgentToCoordinatorMessage, CoordinatorToAgentMessage> = {
  encode: (m) => packr.pack(m),
  decode: (bytes) => {
    const { o, type } = unpackObject(bytes);
    return validateAgentToCoordinator(o, type);
  },
};

/** The agent's codec: decodes coordinator → agent, encodes agent → coordinator. */
export const agentClusterCodec: MessageCodec<CoordinatorToAgentMessage, AgentToCoordinatorMessage> = {
  encode: (m) => packr.pack(m),
  decode: (bytes) => {
    const { o, type } = unpackObject(bytes);
    return validateCoordinatorToAgent(o, type);
  },
};
