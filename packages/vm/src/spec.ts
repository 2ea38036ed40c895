import { PAGE_SIZE_BYTES, MAX_GUEST_PAGES } from '@ferry/memory';
import { InvalidVmSpecError } from './errors.ts';
import { RESERVED_PAGES, MAX_VCPUS } from './layout.ts';

/** The built-in workloads. `module` loads a user workload from `WorkloadSpec.modulePath`. */
export const WORKLOAD_KINDS = ['idle', 'uniform', 'hotset', 'scan', 'module'] as const;
/** One of WORKLOAD_KINDS. */
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];

/** What the guest runs. Every field but `kind` has a default. */
export interface WorkloadSpec {
  readonly kind: WorkloadKind;
  /** Seed of every vCPU's RNG (vCPU k gets a stream derived from seed and k). Default 1. */
  readonly seed?: number;
  /**
   * Steps per second of the whole VM (a step of a writing workload is one page write), split
   * evenly over the vCPUs. 0 = as fast as the pool allows. Default 0 (idle: its own 10 steps/s).
   */
  readonly rate?: number;
  /** Absolute path (or file: URL) of a workload module; required for kind `module`. */
  readonly modulePath?: string;
  /** Numeric knobs read by the workload, e.g. `hotsetPages`, `hotPercent`, `bytesPerWrite`. */
  readonly params?: Readonly<Record<string, number>>;
}

/** Everything that defines a VM. Stored in snapshot files; JSON-safe. */
export interface VmSpec {
  readonly id: string;
  readonly name: string;
  /** vCPUs, 1..MAX_VCPUS. Sets the VM's share of the pool: one time slice per vCPU per round. */
  readonly vcpus: number;
  /** Guest memory in bytes: a multiple of 4096, at least RESERVED_PAGES + 1 pages. */
  readonly memoryBytes: number;
  readonly workload: WorkloadSpec;
  /** Whether the guest stamps its heartbeat into page 0 (not deterministic). Default true. */
  readonly heartbeat?: boolean;
  /** Each vCPU stops after exactly this many steps (stays running, idle). Default: no limit. */
  readonly stepLimit?: number;
}

/** A spec with every default filled in, as a Vm holds it. */
export interface NormalizedVmSpec extends VmSpec {
  readonly workload: Required<Omit<WorkloadSpec, 'modulePath'>> & { readonly modulePath?: string };
  readonly heartbeat: boolean;
}

/** Checks a spec and fills in defaults. Throws InvalidVmSpecError naming the bad field. */
export function normalizeSpec(spec: VmSpec): NormalizedVmSpec {
  if (typeof spec !== 'object' || spec === null) throw new InvalidVmSpecError('spec', 'must be an object');
  if (typeof spec.id !== 'string' || spec.id.length === 0 || spec.id.length > 128) throw new InvalidVmSpecError('id', 'must be a string of 1..128 characters');
  if (typeof spec.name !== 'string' || spec.name.length > 256) throw new InvalidVmSpecError('name', 'must be a string of at most 256 characters');
  if (!Number.isInteger(spec.vcpus) || spec.vcpus < 1 || spec.vcpus > MAX_VCPUS) throw new InvalidVmSpecError('vcpus', `must be an integer from 1 to ${MAX_VCPUS}, got ${spec.vcpus}`);
  const pages = spec.memoryBytes / PAGE_SIZE_BYTES;
  if (!Number.isInteger(pages) || pages <= RESERVED_PAGES || pages > MAX_GUEST_PAGES) {
    throw new InvalidVmSpecError('memoryBytes', `must be a multiple of ${PAGE_SIZE_BYTES} between ${(RESERVED_PAGES + 1) * PAGE_SIZE_BYTES} and ${MAX_GUEST_PAGES * PAGE_SIZE_BYTES}, got ${spec.memoryBytes}`);
  }
  const w = spec.workload;
  if (typeof w !== 'object' || w === null || !WORKLOAD_KINDS.includes(w.kind)) throw new InvalidVmSpecError('workload.kind', `must be one of ${WORKLOAD_KINDS.join(', ')}`);
  const seed = w.seed ?? 1;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new InvalidVmSpecError('workload.seed', 'must be an integer from 0 to 2^32-1');
  const rate = w.rate ?? 0;
  if (!Number.isFinite(rate) || rate < 0) throw new InvalidVmSpecError('workload.rate', 'must be a finite number ≥ 0');
  if (w.kind === 'module' && (typeof w.modulePath !== 'string' || w.modulePath.length === 0)) throw new InvalidVmSpecError('workload.modulePath', 'is required for kind module');
  const params: Record<string, number> = {};
  for (const [k, v] of Object.entries(w.params ?? {})) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new InvalidVmSpecError(`workload.params.${k}`, 'must be a finite number');
    params[k] = v;
  }
  if (spec.heartbeat !== undefined && typeof spec.heartbeat !== 'boolean') throw new InvalidVmSpecError('heartbeat', 'must be a boolean');
  if (spec.stepLimit !== undefined && (!Number.isSafeInteger(spec.stepLimit) || spec.stepLimit < 0)) throw new InvalidVmSpecError('stepLimit', 'must be a non-negative integer');
  const workload = { kind: w.kind, seed, rate, params, ...(w.modulePath !== undefined ? { modulePath: w.modulePath } : {}) };
  return {
    id: spec.id,
    name: spec.name,
    vcpus: spec.vcpus,
    memoryBytes: spec.memoryBytes,
    workload,
    heartbeat: spec.heartbeat ?? true,
    ...(spec.stepLimit !== undefined ? { stepLimit: spec.stepLimit } : {}),
  };
}

/** The spec as UTF-8 JSON (the form stored in snapshot files). */
export function encodeSpec(spec: VmSpec): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(spec));
}

/** Parses and checks a spec stored by encodeSpec. Throws InvalidVmSpecError. */
export function decodeSpec(bytes: Uint8Array): NormalizedVmSpec {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new InvalidVmSpecError('spec', `is not JSON: ${(err as Error).message}`);
  }
  return normalizeSpec(parsed as VmSpec);
}
