// Messages between a CpuPool and its pCPU worker threads. Fast-path state (run/park, throttle,
// acknowledgements, registers) goes through shared memory, never through these messages.

/** Everything a pCPU worker needs to schedule one vCPU. */
export interface VcpuBinding {
  /** Unique per attachment: `${vmId}#${vcpu}@${epoch}`. */
  readonly key: string;
  readonly vmId: string;
  readonly vcpu: number;
  readonly vcpuCount: number;
  readonly pageCount: number;
  readonly memory: SharedArrayBuffer;
  readonly dirtyBitmap: SharedArrayBuffer;
  readonly registers: SharedArrayBuffer;
  readonly control: SharedArrayBuffer;
  readonly workloadKind: string;
  readonly modulePath?: string;
  /** Steps per second of this vCPU (0 = as fast as allowed, before the workload's defaultRate). */
  readonly rate: number;
  readonly params: Readonly<Record<string, number>>;
  readonly heartbeat: boolean;
  /** 0 = no limit. */
  readonly stepLimit: number;
  /**
   * Run the workload's `create` at the vCPU's first run instead of at attach: the registers are
   * placeholders until then (Vm.incoming). Otherwise a `create` that throws fails the attach.
   */
  readonly deferCreate: boolean;
}

/** Pool → worker. */
export type ToWorker =
  | { readonly type: 'attach'; readonly binding: VcpuBinding }
  | { readonly type: 'detach'; readonly key: string }
  | { readonly type: 'close' };

/** Worker → pool. */
export type FromWorker =
  | { readonly type: 'attached'; readonly key: string }
  | { readonly type: 'attach-failed'; readonly key: string; readonly message: string }
  | { readonly type: 'detached'; readonly key: string }
  | { readonly type: 'vcpu-faulted'; readonly key: string; readonly message: string };

/** Data given to each worker at start. */
export interface WorkerInit {
  /** Int32Array[1]: bumped and notified by the pool whenever a worker should look again. */
  readonly doorbell: SharedArrayBuffer;
  readonly sliceMs: number;
  /** file: URL of tsx's ESM API, registered on demand before loading a TypeScript workload module. */
  readonly tsxApiUrl: string;
}
