import type { VcpuFaultError } from './errors.ts';

/** A lifecycle transition that happened. */
export interface VmStateChanged {
  readonly vmId: string;
  readonly from: string;
  readonly to: string;
  readonly action: string;
  /** Wall clock (performance.timeOrigin + now), ms. */
  readonly atMs: number;
}

/** Events a Vm emits, by name. */
export interface VmEventMap {
  'state-changed': VmStateChanged;
  'vcpu-faulted': VcpuFaultError;
}

type Listener<K extends keyof VmEventMap> = (event: VmEventMap[K]) => void;

/** A tiny typed event emitter. Listeners run synchronously; a throwing listener does not stop the others. */
export class VmEmitter {
  private readonly listeners: { [K in keyof VmEventMap]: Set<Listener<K>> } = { 'state-changed': new Set(), 'vcpu-faulted': new Set() };

  /** Adds `listener` for `event`; returns the function that removes it. */
  on<K extends keyof VmEventMap>(event: K, listener: Listener<K>): () => void {
    const set = this.listeners[event] as Set<Listener<K>>;
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Calls every listener of `event`. */
  emit<K extends keyof VmEventMap>(event: K, payload: VmEventMap[K]): void {
    for (const l of this.listeners[event] as Set<Listener<K>>) {
      try {
        l(payload);
      } catch {
        // a listener's failure is its own; the VM's state is already changed
      }
    }
  }
}
