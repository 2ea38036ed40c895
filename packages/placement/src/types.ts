/** Resource amounts: vCPUs, memory and disk in bytes. */
export interface Resources {
  readonly cpus: number;
  readonly memoryBytes: number;
  readonly diskBytes: number;
}

/** Host states (the same names as `@ferry/protocol`'s HOST_STATES). Only `up` hosts take new VMs. */
export const HOST_STATES = ['up', 'down', 'draining', 'maintenance'] as const;
/** A host state. `draining`: being emptied; `maintenance`: takes no VMs. */
export type HostState = (typeof HOST_STATES)[number];

/**
 * Placement group policies. `affinity`/`anti-affinity` are hard (a filter): all members on one
 * host / every member on a distinct host. `soft-*` are preferences (weights).
 */
export const GROUP_POLICIES = ['affinity', 'anti-affinity', 'soft-affinity', 'soft-anti-affinity'] as const;
/** A placement group policy. */
export type GroupPolicy = (typeof GROUP_POLICIES)[number];

/** A placement group membership (compatible with `@ferry/protocol`'s PlacementGroupRef). */
export interface PlacementGroupRef {
  readonly name: string;
  readonly policy: GroupPolicy;
}

/** A hypervisor host: physical capacity (before overcommit) and the images it has cached. */
export interface HostSpec {
  readonly id: string;
  readonly state: HostState;
  readonly capacity: Resources;
  readonly images?: readonly string[];
}

/** A request for a new VM. `instanceType` drives segregation; `image` drives image locality. */
export interface PlacementRequest {
  readonly vmId: string;
  readonly demand: Resources;
  readonly group?: PlacementGroupRef;
  readonly instanceType?: string;
  readonly image?: string;
}

/** A VM already running on a host (used to build or extend the scheduler's cluster model). */
export interface VmPlacement extends PlacementRequest {
  readonly hostId: string;
}

/** Result of a decision: the chosen host (now claimed), or why none fits. */
export type PlacementResult =
  | { readonly ok: true; readonly vmId: string; readonly hostId: string }
  | { readonly ok: false; readonly vmId: string; readonly error: import('./errors.ts').PlacementError };

/** One step of a plan: move `vmId` from one host to another, costing `costBytes` (its memory) on the wire. */
export interface Migration {
  readonly vmId: string;
  readonly fromHostId: string;
  readonly toHostId: string;
  readonly costBytes: number;
}

/** Per-resource overcommit ratios (Nova's defaults: cpu 4.0, memory 1.0, disk 1.0). */
export interface OvercommitRatios {
  readonly cpu: number;
  readonly memory: number;
  readonly disk: number;
}

/** Weights of the soft rules, added to the strategy's score (which lies in [0, 1] per tier). */
export interface SoftWeights {
  /** Bonus for a host that already has the request's image cached. Default 0.3. */
  readonly imageLocality: number;
  /** Bonus for a host that holds a member of the request's soft-affinity group. Default 1. */
  readonly softAffinity: number;
  /** Penalty per member of the request's soft-anti-affinity group already on the host. Default 1. */
  readonly softAntiAffinity: number;
}

/** The linear energy model: a powered host draws idle + (peak − idle) × CPU utilization watts. */
export interface EnergyModel {
  /** Watts of a powered, idle host. Default 100. */
  readonly idleWatts: number;
  /** Watts at 100% CPU. Default 250. */
  readonly peakWatts: number;
  /** Average busy share of one vCPU; utilization = min(1, vCPUs × this ÷ physical cores). Default 0.5. */
  readonly vcpuUtilization: number;
  /** Whether hosts with no VM stay powered (false: they are switched off). Default false. */
  readonly emptyHostsPowered: boolean;
}

/** Default energy model. */
export const DEFAULT_ENERGY_MODEL: EnergyModel = { idleWatts: 100, peakWatts: 250, vcpuUtilization: 0.5, emptyHostsPowered: false };
/** Default overcommit ratios (OpenStack Nova's). */
export const DEFAULT_OVERCOMMIT: OvercommitRatios = { cpu: 4, memory: 1, disk: 1 };
/** Default soft-rule weights. */
export const DEFAULT_SOFT_WEIGHTS: SoftWeights = { imageLocality: 0.3, softAffinity: 1, softAntiAffinity: 1 };
