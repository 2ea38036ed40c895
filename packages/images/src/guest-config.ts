import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { PAGE_SIZE_BYTES, type GuestMemory } from '@ferry/memory';
import { GuestConfigError } from './errors.ts';

// The run-time configuration of an instance, written by the hypervisor into guest page 1 when the
// VM is provisioned (the lecture: "configures parameters (IP address, access rules, ...) at
// run/boot time"). Page 0 belongs to the vm package's guest-info; pages >= 2 hold image content.
//
// Record layout in page 1, little-endian:
//   0  u32  magic 'FCFG' (0x47464346)
//   4  u16  version (GUEST_CONFIG_VERSION)
//   6  u16  reserved, 0
//   8  u32  payload length in bytes (at most PAGE_SIZE_BYTES - 16)
//  12  u32  crc32 of the payload
//  16  ...  payload: UTF-8 JSON of GuestConfigRecord
// The guest never holds the login password: only a salted scrypt hash of it.

/** Guest page holding the run-time configuration record. */
export const GUEST_CONFIG_PAGE = 1;
/** First guest page an image's content may occupy (0: guest-info, 1: run-time config). */
export const IMAGE_FIRST_PAGE = 2;
/** Version of the record layout this code writes. */
export const GUEST_CONFIG_VERSION = 1;
/** Record versions readGuestConfig accepts. */
export const GUEST_CONFIG_VERSIONS_ACCEPTED: readonly number[] = [1];
const MAGIC = 0x47464346;
const HEADER_BYTES = 16;
const SCRYPT_N = 1024;
const SCRYPT_KEY_BYTES = 32;

/** One inbound access rule: traffic the guest's firewall admits. `port` absent: every port (or ICMP). */
export interface AccessRule {
  readonly protocol: 'tcp' | 'udp' | 'icmp';
  readonly port?: number;
  /** Source network, e.g. `0.0.0.0/0` or `10.0.0.0/24`. */
  readonly cidr: string;
}

/** What the caller (the agent, told by the coordinator) configures. `password` is plain text and is hashed before it enters the guest. */
export interface GuestConfig {
  readonly instanceId: string;
  readonly imageId: string;
  readonly hostname: string;
  readonly ip: string;
  readonly accessRules: readonly AccessRule[];
  readonly user: string;
  readonly password: string;
}

/** What page 1 holds: the config with the password replaced by `credentialHash`. */
export interface GuestConfigRecord extends Omit<GuestConfig, 'password'> {
  readonly version: number;
  /** `scrypt$N$<salt base64>$<key base64>`. */
  readonly credentialHash: string;
}

/** Options of writeGuestConfig. `salt` (16 bytes) makes the record deterministic, for reproducible guests; default random. */
export interface WriteGuestConfigOptions {
  readonly salt?: Uint8Array;
}

/** A salted scrypt hash of a password, in the `scrypt$N$salt$key` form stored in guests. */
export function hashCredential(password: string, salt: Uint8Array = randomBytes(16)): string {
  const key = scryptSync(password, salt, SCRYPT_KEY_BYTES, { N: SCRYPT_N });
  return `scrypt$${SCRYPT_N}$${Buffer.from(salt).toString('base64')}$${key.toString('base64')}`;
}

/** Whether `password` matches a hash made by hashCredential. Constant time in the key comparison. */
export function verifyCredential(credentialHash: string, password: string): boolean {
  const parts = credentialHash.split('$');
  if (parts.length !== 4 || parts[0] !== 'scrypt') return false;
  const n = Number(parts[1]);
  if (!Number.isInteger(n) || n < 2 || n > 1 << 20) return false;
  const salt = Buffer.from(parts[2]!, 'base64');
  const expected = Buffer.from(parts[3]!, 'base64');
  if (expected.length !== SCRYPT_KEY_BYTES) return false;
  const key = scryptSync(password, salt, SCRYPT_KEY_BYTES, { N: n });
  return timingSafeEqual(key, expected);
}

function checkConfig(config: GuestConfig): void {
  for (const field of ['instanceId', 'imageId', 'hostname', 'ip', 'user'] as const) {
    const v = config[field];
    if (typeof v !== 'string' || v.length === 0 || v.length > 253) throw new GuestConfigError(`${field} must be a non-empty string of at most 253 characters`);
  }
  if (typeof config.password !== 'string' || config.password.length === 0) throw new GuestConfigError('password must be a non-empty string');
  if (!/^(\d{1,3})(\.\d{1,3}){3}$/.test(config.ip)) throw new GuestConfigError(`ip must be a dotted IPv4 address, got "${config.ip}"`);
  for (const rule of config.accessRules) {
    if (!['tcp', 'udp', 'icmp'].includes(rule.protocol)) throw new GuestConfigError(`access rule protocol must be tcp, udp or icmp, got "${rule.protocol}"`);
    if (rule.port !== undefined && (!Number.isInteger(rule.port) || rule.port < 1 || rule.port > 65535)) throw new GuestConfigError(`access rule port must be 1-65535, got ${rule.port}`);
    if (!/^(\d{1,3})(\.\d{1,3}){3}\/\d{1,2}$/.test(rule.cidr)) throw new GuestConfigError(`access rule cidr must look like 10.0.0.0/24, got "${rule.cidr}"`);
  }
}

/**
 * Writes the run-time configuration record into page 1 of `memory` (zeroing the rest of the page)
 * and returns the record written. The caller marks page 1 written in its dirty log. Throws
 * GuestConfigError when a field is malformed or the record does not fit one page.
 */
export function writeGuestConfig(memory: GuestMemory, config: GuestConfig, options: WriteGuestConfigOptions = {}): GuestConfigRecord {
  checkConfig(config);
  const record: GuestConfigRecord = {
    version: GUEST_CONFIG_VERSION,
    instanceId: config.instanceId,
    imageId: config.imageId,
    hostname: config.hostname,
    ip: config.ip,
    accessRules: config.accessRules.map((r) => (r.port === undefined ? { protocol: r.protocol, cidr: r.cidr } : { protocol: r.protocol, port: r.port, cidr: r.cidr })),
    user: config.user,
    credentialHash: hashCredential(config.password, options.salt),
  };
  const payload = Buffer.from(JSON.stringify(record), 'utf8');
  if (payload.length > PAGE_SIZE_BYTES - HEADER_BYTES) {
    throw new GuestConfigError(`run-time configuration of ${payload.length} bytes does not fit page ${GUEST_CONFIG_PAGE} (max ${PAGE_SIZE_BYTES - HEADER_BYTES})`);
  }
  const page = memory.page(GUEST_CONFIG_PAGE);
  page.fill(0);
  const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE_BYTES);
  view.setUint32(0, MAGIC, true);
  view.setUint16(4, GUEST_CONFIG_VERSION, true);
  view.setUint32(8, payload.length, true);
  view.setUint32(12, crc32(payload), true);
  page.set(payload, HEADER_BYTES);
  return record;
}

/**
 * Reads the run-time configuration record from page 1. Throws GuestConfigError when there is no
 * record (bad magic), its version is not accepted, its length is out of range or its checksum fails.
 */
export function readGuestConfig(memory: GuestMemory): GuestConfigRecord {
  const page = memory.page(GUEST_CONFIG_PAGE);
  const view = new DataView(page.buffer, page.byteOffset, PAGE_SIZE_BYTES);
  if (view.getUint32(0, true) !== MAGIC) throw new GuestConfigError(`page ${GUEST_CONFIG_PAGE} holds no run-time configuration record`);
  const version = view.getUint16(4, true);
  if (!GUEST_CONFIG_VERSIONS_ACCEPTED.includes(version)) throw new GuestConfigError(`run-time configuration version ${version} is not accepted (accepted: ${GUEST_CONFIG_VERSIONS_ACCEPTED.join(', ')})`);
  const length = view.getUint32(8, true);
  if (length === 0 || length > PAGE_SIZE_BYTES - HEADER_BYTES) throw new GuestConfigError(`run-time configuration length ${length} is out of range`);
  const payload = Buffer.from(page.slice(HEADER_BYTES, HEADER_BYTES + length));
  if (crc32(payload) !== view.getUint32(12, true)) throw new GuestConfigError('run-time configuration checksum does not match');
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    throw new GuestConfigError(`run-time configuration is not valid JSON: ${(err as Error).message}`);
  }
  const r = value as Partial<GuestConfigRecord>;
  if (typeof r !== 'object' || r === null || typeof r.hostname !== 'string' || typeof r.ip !== 'string' || typeof r.user !== 'string' || typeof r.credentialHash !== 'string' || !Array.isArray(r.accessRules)) {
    throw new GuestConfigError('run-time configuration record is missing fields');
  }
  return r as GuestConfigRecord;
}
