import type { DirtyLog, GuestMemory } from '@ferry/memory';

/**
 * What the sender needs of the VM it migrates. The VM package implements exactly these names.
 * Writers (vCPUs) must store a page's data and then mark it in `dirtyLog` (store-then-mark).
 */
export interface SourceVm {
  readonly memory: GuestMemory;
  readonly dirtyLog: DirtyLog;
  /** Stops every vCPU after its current step; resolves once none will write guest memory again until resume(). */
  pause(): Promise<void>;
  /** Lets the vCPUs run again. Called only after pause() resolved, when the migration did not commit. */
  resume(): Promise<void> | void;
  /** Limits vCPU run time: 0 = full speed, 99 = 1% of it. The sender resets it to 0 when it finishes. */
  setThrottle(percent: number): void;
  /** The paused VM's register block and device state (legal only while paused). */
  captureState(): VmState;
}

/** Register block and device state bytes, as the VM serialises them. */
export interface VmState {
  readonly registers: Uint8Array;
  readonly devices: Uint8Array;
}

/** What a receiver hands over at activation: the agent turns it into a running VM. */
export interface ReceivedVm extends VmState {
  readonly memory: GuestMemory;
  /**
   * Pages holding non-zero data (every other page is zero), when the receiver knows them: page p
   * is bit (p & 7) of byte p >> 3, Vm.restore's `writtenPageMap`.
   */
  readonly writtenPageMap?: Uint8Array;
}

/** A clock in milliseconds comparable across processes of one machine: `performance.timeOrigin + performance.now()`. */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}
