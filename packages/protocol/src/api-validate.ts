import {
  DEFAULT_MIGRATION_POLICY,
  DEFAULT_XEN_RATE_LIMIT,
  GROUP_POLICIES,
  RATE_LIMIT_KINDS,
  type ImageCaptureRequest,
  type MigrateSpec,
  type MigrationPolicy,
  type MigrationRateLimit,
  type PlacementGroupRef,
  type RunSpec,
  type VmCloneRequest,
  type VmPlaceRequest,
  type VmSnapshotRequest,
  type VmStopRequest,
  type WorkloadSpec,
} from './api.ts';
import { ApiValidationError } from './api-errors.ts';
import { parseRate, parseSize } from './api-size.ts';

// Validators for every request body the API accepts. Bodies come from outside the process, so each
// validator checks every field, rejects unknown ones, and returns a fresh normalised object; on
// the first problem it throws ApiValidationError (400) naming the field.

/** Guest page size the API rounds memory up to (same as @ferry/memory's PAGE_SIZE_BYTES). */
const PAGE_BYTES = 4096;
/** Longest name or id accepted in a request. */
export const MAX_NAME_LENGTH = 63;
/** Most vCPUs one VM may ask for. */
export const MAX_VM_CPUS = 64;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

type Obj = Record<string, unknown>;

function object(body: unknown, field: string): Obj {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw new ApiValidationError(field, `${field} must be a JSON object`);
  return body as Obj;
}

function onlyKeys(o: Obj, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(o)) {
    if (!allowed.includes(key)) throw new ApiValidationError(key, `${where}: unknown field "${key}" (allowed: ${allowed.join(', ')})`);
  }
}

/** A name or id: 1–63 characters of letters, digits, `.`, `_`, `-`, starting with a letter or digit. */
export function validateName(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_NAME_LENGTH || !NAME_PATTERN.test(value)) {
    throw new ApiValidationError(field, `${field} must be 1-${MAX_NAME_LENGTH} letters, digits, '.', '_' or '-', got ${JSON.stringify(value)}`);
  }
  return value;
}

function optionalName(value: unknown, field: string): string | undefined {
  return value === undefined ? undefined : validateName(value, field);
}

function integer(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ApiValidationError(field, `${field} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function boolean(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') throw new ApiValidationError(field, `${field} must be true or false, got ${JSON.stringify(value)}`);
  return value;
}

/** A placement group `{ name, policy }`, policy one of GROUP_POLICIES (affinity, anti-affinity, soft-affinity, soft-anti-affinity). */
export function validateGroup(value: unknown, field = 'group'): PlacementGroupRef {
  const o = object(value, field);
  onlyKeys(o, ['name', 'policy'], field);
  const name = validateName(o['name'], `${field}.name`);
  const policy = o['policy'];
  if (typeof policy !== 'string' || !(GROUP_POLICIES as readonly string[]).includes(policy)) {
    throw new ApiValidationError(`${field}.policy`, `${field}.policy must be one of ${GROUP_POLICIES.join(', ')}, got ${JSON.stringify(policy)}`);
  }
  return { name, policy: policy as PlacementGroupRef['policy'] };
}

/** A workload `{ kind, ...params }`: kind a name; params JSON values (kept as given). */
export function validateWorkload(value: unknown, field = 'workload'): WorkloadSpec {
  const o = object(value, field);
  const kind = validateName(o['kind'], `${field}.kind`);
  return { ...o, kind };
}

/**
 * The EC2-style `POST /api/v1/vms` body → RunSpec. Memory is rounded up to whole 4 KiB pages and
 * must be at least 64 KiB; disk may be 0; cpus 1–64. Does not check that the image exists or that
 * any host can hold the VM: that is the coordinator's job (FERRY_ERR_UNKNOWN_IMAGE, FERRY_ERR_NO_CAPACITY).
 */
export function validateRunRequest(body: unknown): RunSpec {
  const o = object(body, 'request');
  onlyKeys(o, ['image', 'cpus', 'memory', 'disk', 'name', 'group', 'workload', 'host'], 'run request');
  const image = validateName(o['image'], 'image');
  const cpus = integer(o['cpus'], 'cpus', 1, MAX_VM_CPUS);
  if (o['memory'] === undefined) throw new ApiValidationError('memory', 'memory is required (bytes or a size such as 512MiB)');
  if (o['disk'] === undefined) throw new ApiValidationError('disk', 'disk is required (bytes or a size such as 10GiB)');
  const memory = parseSize(o['memory'] as number | string, 'memory');
  const memoryBytes = Math.ceil(memory / PAGE_BYTES) * PAGE_BYTES;
  if (memoryBytes < 16 * PAGE_BYTES) throw new ApiValidationError('memory', `memory must be at least 64KiB, got ${memory} bytes`, 'FERRY_ERR_INVALID_SIZE');
  const diskBytes = parseSize(o['disk'] as number | string, 'disk');
  const spec: { -readonly [K in keyof RunSpec]: RunSpec[K] } = { image, cpus, memoryBytes, diskBytes };
  const name = optionalName(o['name'], 'name');
  if (name !== undefined) spec.name = name;
  if (o['group'] !== undefined) spec.group = validateGroup(o['group']);
  if (o['workload'] !== undefined) spec.workload = validateWorkload(o['workload']);
  const host = optionalName(o['host'], 'host');
  if (host !== undefined) spec.host = host;
  return spec;
}

/**
 * A (partial) migration policy → a full MigrationPolicy, DEFAULT_MIGRATION_POLICY filling the gaps.
 * `rateLimit` (absent by default) is `'xen'` or `{ kind: 'xen', ...fields to change }` with
 * DEFAULT_XEN_RATE_LIMIT filling the rest; it replaces `bandwidthLimit`, so a non-zero
 * `bandwidthLimit` beside it is refused.
 */
export function validateMigrationPolicy(value: unknown, field = 'policy'): MigrationPolicy {
  const o = object(value, field);
  onlyKeys(o, ['maxDowntimeMs', 'maxRounds', 'bandwidthLimit', 'autoConverge', 'rateLimit'], field);
  const policy: MigrationPolicy = {
    maxDowntimeMs: o['maxDowntimeMs'] === undefined ? DEFAULT_MIGRATION_POLICY.maxDowntimeMs : integer(o['maxDowntimeMs'], `${field}.maxDowntimeMs`, 1, 600_000),
    maxRounds: o['maxRounds'] === undefined ? DEFAULT_MIGRATION_POLICY.maxRounds : integer(o['maxRounds'], `${field}.maxRounds`, 1, 1000),
    bandwidthLimit:
      o['bandwidthLimit'] === undefined
        ? DEFAULT_MIGRATION_POLICY.bandwidthLimit
        : parseRate(o['bandwidthLimit'] as number | string, `${field}.bandwidthLimit`),
    autoConverge: o['autoConverge'] === undefined ? DEFAULT_MIGRATION_POLICY.autoConverge : boolean(o['autoConverge'], `${field}.autoConverge`),
  };
  if (o['rateLimit'] === undefined || o['rateLimit'] === null) return policy;
  if (policy.bandwidthLimit !== 0) throw new ApiValidationError(`${field}.rateLimit`, `${field}.rateLimit sets the rate round by round: leave bandwidthLimit out (or 0) beside it`);
  return { ...policy, rateLimit: validateRateLimit(o['rateLimit'], `${field}.rateLimit`) };
}

/** `'xen'` or `{ kind: 'xen', startBytesPerSec?, stepBytesPerSec?, maxBytesPerSec?, stopBelowBytes? }` (rates as numbers or rate strings) → a full MigrationRateLimit. */
export function validateRateLimit(value: unknown, field = 'rateLimit'): MigrationRateLimit {
  const o = typeof value === 'string' ? { kind: value } : object(value, field);
  if (!RATE_LIMIT_KINDS.includes(o['kind'] as never)) throw new ApiValidationError(`${field}.kind`, `${field}.kind must be one of ${RATE_LIMIT_KINDS.join(', ')}, got ${JSON.stringify(o['kind'])}`);
  onlyKeys(o, ['kind', 'startBytesPerSec', 'stepBytesPerSec', 'maxBytesPerSec', 'stopBelowBytes'], field);
  const d = DEFAULT_XEN_RATE_LIMIT;
  const rate = (key: 'startBytesPerSec' | 'stepBytesPerSec' | 'maxBytesPerSec'): number => {
    if (o[key] === undefined) return d[key];
    const v = parseRate(o[key] as number | string, `${field}.${key}`);
    if (v < 1) throw new ApiValidationError(`${field}.${key}`, `${field}.${key} must be at least 1 byte/s`, 'FERRY_ERR_INVALID_SIZE');
    return v;
  };
  const limit: MigrationRateLimit = {
    kind: 'xen',
    startBytesPerSec: rate('startBytesPerSec'),
    stepBytesPerSec: rate('stepBytesPerSec'),
    maxBytesPerSec: rate('maxBytesPerSec'),
    stopBelowBytes: o['stopBelowBytes'] === undefined ? d.stopBelowBytes : parseSize(o['stopBelowBytes'] as number | string, `${field}.stopBelowBytes`),
  };
  if (limit.startBytesPerSec > limit.maxBytesPerSec) throw new ApiValidationError(`${field}.startBytesPerSec`, `${field}.startBytesPerSec (${limit.startBytesPerSec}) must not exceed maxBytesPerSec (${limit.maxBytesPerSec})`);
  return limit;
}

/**
 * `POST /api/v1/migrations` body → MigrateSpec. For `POST /api/v1/vms/:id/migrate` pass the path's
 * id as `vmFromPath` (the body then must not name another VM).
 */
export function validateMigrateRequest(body: unknown, vmFromPath?: string): MigrateSpec {
  const o = object(body, 'request');
  onlyKeys(o, ['vm', 'to', 'policy'], 'migrate request');
  let vm: string;
  if (vmFromPath !== undefined) {
    vm = validateName(vmFromPath, 'vm');
    if (o['vm'] !== undefined && o['vm'] !== vm) throw new ApiValidationError('vm', `body names vm ${JSON.stringify(o['vm'])} but the path names ${vm}`);
  } else {
    vm = validateName(o['vm'], 'vm');
  }
  const to = optionalName(o['to'], 'to');
  const policy = validateMigrationPolicy(o['policy']);
  return to === undefined ? { vm, policy } : { vm, to, policy };
}

/** Body of start and resume (`{ host? }`). */
export function validatePlaceRequest(body: unknown): VmPlaceRequest {
  const o = object(body, 'request');
  onlyKeys(o, ['host'], 'request');
  const host = optionalName(o['host'], 'host');
  return host === undefined ? {} : { host };
}

/** Body of stop (`{ force? }`). */
export function validateStopRequest(body: unknown): VmStopRequest {
  const o = object(body, 'request');
  onlyKeys(o, ['force'], 'stop request');
  return o['force'] === undefined ? {} : { force: boolean(o['force'], 'force') };
}

/** Body of snapshot (`{ name? }`). */
export function validateSnapshotRequest(body: unknown): VmSnapshotRequest {
  const o = object(body, 'request');
  onlyKeys(o, ['name'], 'snapshot request');
  const name = optionalName(o['name'], 'name');
  return name === undefined ? {} : { name };
}

/** Body of clone (`{ name?, host? }`). */
export function validateCloneRequest(body: unknown): VmCloneRequest {
  const o = object(body, 'request');
  onlyKeys(o, ['name', 'host'], 'clone request');
  const name = optionalName(o['name'], 'name');
  const host = optionalName(o['host'], 'host');
  return { ...(name === undefined ? {} : { name }), ...(host === undefined ? {} : { host }) };
}

/** Body of `POST /api/v1/images` (`{ vm, name, description? }`). */
export function validateImageCaptureRequest(body: unknown): ImageCaptureRequest {
  const o = object(body, 'request');
  onlyKeys(o, ['vm', 'name', 'description'], 'image capture request');
  const vm = validateName(o['vm'], 'vm');
  const name = validateName(o['name'], 'name');
  const description = o['description'];
  if (description !== undefined && (typeof description !== 'string' || description.length > 500)) {
    throw new ApiValidationError('description', 'description must be a string of at most 500 characters');
  }
  return description === undefined ? { vm, name } : { vm, name, description };
}

/** The `since` query parameter of `GET /api/v1/events` (absent → 0). */
export function validateSinceParam(value: string | null | undefined): number {
  if (value === null || value === undefined || value === '') return 0;
  if (!/^[0-9]{1,15}$/.test(value)) throw new ApiValidationError('since', `since must be a non-negative integer event seq, got ${JSON.stringify(value)}`);
  return Number(value);
}
