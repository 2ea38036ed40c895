import { PAGE_SIZE_BYTES } from '@ferry/memory';
import type { GuestMemory } from '@ferry/memory';
import {
  GI_FIRST_MS,
  GI_HEARTBEAT_MS,
  GI_MAX_GAP_MS,
  GI_STEPS,
  GUEST_INFO_MAGIC,
  GUEST_INFO_PAGE,
  GUEST_INFO_SLOTS_OFFSET,
  GUEST_INFO_SLOT_BYTES,
  MAX_VCPUS,
} from './layout.ts';

/** One vCPU's view of itself as the guest recorded it in page 0. */
export interface VcpuGuestInfo {
  /** Wall clock of the last step (performance.timeOrigin + performance.now(), ms). */
  readonly heartbeatMs: number;
  readonly steps: number;
  /** Largest gap the guest saw between two consecutive steps (ms): downtime as the guest sees it. */
  readonly maxGapMs: number;
  /** Wall clock of the first heartbeat (ms). */
  readonly firstHeartbeatMs: number;
}

/** What the guest wrote into its guest-info page (page 0). */
export interface GuestInfo {
  /** Latest heartbeat over all vCPUs (ms). */
  readonly heartbeatMs: number;
  /** Steps over all vCPUs, as of each vCPU's last heartbeat. */
  readonly steps: number;
  /** Largest step gap over all vCPUs (ms). */
  readonly maxGapMs: number;
  readonly vcpus: readonly VcpuGuestInfo[];
}

/**
 * Reads the heartbeat, steps and largest step gap the guest stamped into page 0, or undefined if it
 * never stamped (heartbeat off, or not yet run). Legal in any state that holds memory; a read while
 * the guest runs may see one vCPU's slot mid-update (each field is one aligned 8-byte store).
 */
export function readGuestInfo(memory: GuestMemory): GuestInfo | undefined {
  const page = memory.page(GUEST_INFO_PAGE);
  const header = new Uint32Array(page.buffer, page.byteOffset, 4);
  if (header[0] !== GUEST_INFO_MAGIC) return undefined;
  const count = Math.min(header[2]!, MAX_VCPUS);
  const vcpus: VcpuGuestInfo[] = [];
  let heartbeatMs = 0;
  let steps = 0;
  let maxGapMs = 0;
  for (let k = 0; k < count; k++) {
    const slot = new Float64Array(page.buffer, page.byteOffset + GUEST_INFO_SLOTS_OFFSET + k * GUEST_INFO_SLOT_BYTES, GUEST_INFO_SLOT_BYTES / 8);
    const v = { heartbeatMs: slot[GI_HEARTBEAT_MS]!, steps: slot[GI_STEPS]!, maxGapMs: slot[GI_MAX_GAP_MS]!, firstHeartbeatMs: slot[GI_FIRST_MS]! };
    vcpus.push(v);
    heartbeatMs = Math.max(heartbeatMs, v.heartbeatMs);
    steps += v.steps;
    maxGapMs = Math.max(maxGapMs, v.maxGapMs);
  }
  return { heartbeatMs, steps, maxGapMs, vcpus };
}

/** The guest's heartbeat (ms on its clock, comparable across processes on one machine), or undefined. */
export function readHeartbeatMs(memory: GuestMemory): number | undefined {
  return readGuestInfo(memory)?.heartbeatMs;
}

/** The largest gap between consecutive steps the guest has seen (ms), or undefined. */
export function readMaxStepGapMs(memory: GuestMemory): number | undefined {
  return readGuestInfo(memory)?.maxGapMs;
}

/** Byte offset of vCPU k's guest-info slot in guest memory. */
export function guestInfoSlotOffset(k: number): number {
  return GUEST_INFO_PAGE * PAGE_SIZE_BYTES + GUEST_INFO_SLOTS_OFFSET + k * GUEST_INFO_SLOT_BYTES;
}
