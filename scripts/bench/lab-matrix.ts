// The downtime lab's matrix: VM sizes × workloads × policies, and the three sizes of it
// (`tiny` for the test suite, `quick` for `--quick`, `full` by default).
import { DEFAULT_XEN_RATE_LIMIT, type MigrationPolicy } from '@ferry/protocol';
import type { WorkloadSpec } from '@ferry/vm';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** A named guest workload. Rates are page writes per second of the whole VM. */
export interface LabWorkload {
  readonly label: string;
  readonly spec: WorkloadSpec;
}

/** A named migration policy: the API's MigrationPolicy fields it sets (the rest default), Xen's rate limiting included. */
export interface LabPolicy {
  readonly label: string;
  readonly sender: Partial<MigrationPolicy>;
}

/** One cell: migrate a VM of `vmBytes` running `workload` under `policy`, `runs` times. */
export interface LabCellSpec {
  readonly name: string;
  readonly vmBytes: number;
  readonly vcpus: number;
  readonly workload: LabWorkload;
  readonly policy: LabPolicy;
  readonly runs: number;
  /** Fraction of guest pages holding data before the guest starts (the rest stay zero). */
  readonly fillFraction: number;
  /** How long the guest runs before each migration. */
  readonly warmMs: number;
}

/** Writable-working-set sampling done once per VM size × workload. */
export interface LabWwsSpec {
  readonly samples: number;
  readonly intervalMs: number;
}

/** A whole matrix. */
export interface LabMatrix {
  readonly size: 'tiny' | 'quick' | 'full';
  readonly cells: readonly LabCellSpec[];
  readonly wws: LabWwsSpec;
  /** Bytes moved by each ceiling measurement (0 = skip the ceilings). */
  readonly ceilingBytes: number;
}

// The idle guest ticks at 1 kHz (a timer interrupt's worth of steps) so its heartbeat can see a pause.
export const WORKLOADS = {
  idle: { label: 'idle', spec: { kind: 'idle', rate: 1000 } },
  hotsetSmall: { label: 'hotset-4m', spec: { kind: 'hotset', rate: 10_000, params: { hotsetPages: 1024 } } },
  hotsetLarge: { label: 'hotset-32m', spec: { kind: 'hotset', rate: 10_000, params: { hotsetPages: 8192 } } },
  uniform5k: { label: 'uniform-5k', spec: { kind: 'uniform', rate: 5_000 } },
  uniform20k: { label: 'uniform-20k', spec: { kind: 'uniform', rate: 20_000 } },
  uniform80k: { label: 'uniform-80k', spec: { kind: 'uniform', rate: 80_000 } },
  scan: { label: 'scan', spec: { kind: 'scan', rate: 0 } },
} as const satisfies Record<string, LabWorkload>;

export const POLICIES = {
  default: { label: 'default', sender: {} },
  /** 1 Gbit/s: the paper's link. */
  bwLimit: { label: 'limit-1gbit', sender: { bandwidthLimit: 125_000_000 } },
  /** Xen's dynamic rate limiting with the paper's figures: 100 Mbit/s, +50 Mbit/s over the dirty rate, 500 Mbit/s cap. */
  xen: { label: 'xen-100-500', sender: { rateLimit: DEFAULT_XEN_RATE_LIMIT } },
  autoConverge: { label: 'auto-converge', sender: { autoConverge: true } },
} as const satisfies Record<string, LabPolicy>;

function sizeLabel(bytes: number): string {
  return bytes >= GiB ? `${bytes / GiB}g` : `${bytes / MiB}m`;
}

function cell(vmBytes: number, workload: LabWorkload, policy: LabPolicy, runs: number, extra: Partial<LabCellSpec> = {}): LabCellSpec {
  return {
    name: `${workload.label}-${sizeLabel(vmBytes)}-${policy.label}`,
    vmBytes,
    vcpus: 1,
    workload,
    policy,
    runs,
    fillFraction: 1,
    warmMs: 300,
    ...extra,
  };
}

/** The matrix of a size. `maxVmBytes` drops cells larger than the machine can hold twice (source + destination). */
export function labMatrix(size: 'tiny' | 'quick' | 'full', maxVmBytes = Infinity): LabMatrix {
  const W = WORKLOADS;
  const P = POLICIES;
  if (size === 'tiny') {
    return {
      size,
      cells: [cell(16 * MiB, W.idle, P.default, 2, { warmMs: 150 }), cell(16 * MiB, W.hotsetSmall, P.default, 2, { warmMs: 150 })],
      wws: { samples: 5, intervalMs: 20 },
      ceilingBytes: 32 * MiB,
    };
  }
  if (size === 'quick') {
    const m = 64 * MiB;
    return {
      size,
      cells: [
        cell(m, W.idle, P.default, 3),
        cell(m, W.hotsetSmall, P.default, 3),
        cell(m, W.uniform20k, P.default, 3),
        cell(m, W.scan, P.default, 3),
        cell(m, W.scan, P.autoConverge, 3),
        cell(m, W.hotsetSmall, P.bwLimit, 3),
        // 100 Mbit/s is slow: a quarter-filled 32 MiB VM keeps round 1 under a second.
        cell(32 * MiB, W.hotsetSmall, P.xen, 3, { fillFraction: 0.25 }),
      ],
      wws: { samples: 20, intervalMs: 50 },
      ceilingBytes: 256 * MiB,
    };
  }
  const s = 256 * MiB;
  const cells: LabCellSpec[] = [
    cell(s, W.idle, P.default, 5),
    cell(s, W.hotsetSmall, P.default, 5),
    cell(s, W.hotsetLarge, P.default, 5),
    cell(s, W.uniform5k, P.default, 5),
    cell(s, W.uniform20k, P.default, 5),
    cell(s, W.uniform80k, P.default, 5),
    cell(s, W.scan, P.default, 5),
    cell(s, W.scan, P.autoConverge, 5),
    cell(s, W.uniform80k, P.autoConverge, 5),
    cell(s, W.hotsetLarge, P.bwLimit, 3),
    cell(s, W.uniform80k, P.bwLimit, 3),
    // The paper's rates on a quarter-filled VM: 64 MiB at 100 Mbit/s is a 5 s first round.
    cell(s, W.hotsetLarge, P.xen, 3, { fillFraction: 0.25 }),
    cell(GiB, W.idle, P.default, 3),
    cell(GiB, W.hotsetLarge, P.default, 3),
    cell(GiB, W.scan, P.autoConverge, 3),
    cell(4 * GiB, W.idle, P.default, 2),
    cell(4 * GiB, W.hotsetLarge, P.default, 2),
  ];
  return { size, cells: cells.filter((c) => c.vmBytes <= maxVmBytes), wws: { samples: 20, intervalMs: 50 }, ceilingBytes: 512 * MiB };
}
