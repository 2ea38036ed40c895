// Shared-memory layouts used by both the hypervisor (main thread) and the pCPU workers: the
// register block, the per-VM control block, and the guest-info page (page 0 of guest memory).

/** Pages at the bottom of guest memory that workloads never write: 0 = guest info, 1 = run-time config. */
export const RESERVED_PAGES = 2;
/** The guest-info page (heartbeat, steps, largest step gap), owned by this package. */
export const GUEST_INFO_PAGE = 0;
/** The run-time configuration page (hostname, IP, credentials), written by @ferry/images. */
export const CONFIG_PAGE = 1;
/**
 * Guest page size: the same as PAGE_SIZE_BYTES of @ferry/memory, repeated here so the pCPU worker
 * bundle (see cpu-pool.ts) needs nothing of @ferry/memory; a test checks that they agree.
 */
export const PAGE_BYTES = 4096;
/** Largest vCPU count of one VM. */
export const MAX_VCPUS = 64;

// ---- register block: one 64-byte slot per vCPU in a SharedArrayBuffer --------------------------
/** Bytes of one vCPU's register slot. */
export const REGISTER_SLOT_BYTES = 64;
/** Float64 index (within a slot's Float64 view) of the step counter. */
export const REG_STEPS_F64 = 0;
/** Int32 index of the first workload register; workload registers are 8 words: [0] RNG state, [1] cursor, [2..7] free. */
export const REG_WORKLOAD_I32 = 2;
/** Workload registers per vCPU. */
export const WORKLOAD_REGISTER_COUNT = 8;

// ---- control block: Int32Array per VM --------------------------------------------------------
/** 1 = vCPUs may run, 0 = park at the next step boundary. */
export const CTL_RUN = 0;
/** Throttle percent 0..99. */
export const CTL_THROTTLE = 1;
/** First per-vCPU word; vCPU k owns CTL_VCPU_BASE + k × CTL_VCPU_WORDS + (CTL_PARKED | CTL_AT_LIMIT | CTL_FAULTED). */
export const CTL_VCPU_BASE = 4;
export const CTL_VCPU_WORDS = 4;
/** Set to 1 by the worker when the vCPU parked (acknowledges a pause); 0 while it runs. */
export const CTL_PARKED = 0;
/** Set to 1 by the worker when the vCPU reached spec.stepLimit. */
export const CTL_AT_LIMIT = 1;
/** Set to 1 by the worker when the vCPU's workload threw; the vCPU never runs again. */
export const CTL_FAULTED = 2;

/** Int32 words of a control block for `vcpus` vCPUs. */
export function controlWords(vcpus: number): number {
  return CTL_VCPU_BASE + vcpus * CTL_VCPU_WORDS;
}

/** Index of vCPU `k`'s `field` word in the control block. */
export function ctlIndex(k: number, field: number): number {
  return CTL_VCPU_BASE + k * CTL_VCPU_WORDS + field;
}

// ---- guest-info page (page 0) ----------------------------------------------------------------
/** "FRGI" little-endian: marks page 0 as stamped by the guest. */
export const GUEST_INFO_MAGIC = 0x49475246;
export const GUEST_INFO_VERSION = 1;
/** Byte offset of vCPU slots in page 0; slot k is at GUEST_INFO_SLOTS_OFFSET + k × 32. */
export const GUEST_INFO_SLOTS_OFFSET = 64;
export const GUEST_INFO_SLOT_BYTES = 32;
/** Float64 fields of a guest-info slot: last heartbeat (ms, timeOrigin + now), steps, largest gap (ms), first heartbeat (ms). */
export const GI_HEARTBEAT_MS = 0;
export const GI_STEPS = 1;
export const GI_MAX_GAP_MS = 2;
export const GI_FIRST_MS = 3;
