import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { clientGapMs, heartbeatJumpMs, probeLatencyMs } from './probe-gaps.ts';

/** What the probing client saw between `begin` and `end`: reply times and the guest heartbeats they carried (epoch ms). */
export interface ProbeRecord {
  readonly atMs: Float64Array;
  readonly heartbeats: Float64Array;
  /** Probes sent while recording. */
  readonly sent: number;
  /** `not-here` replies while recording (the client then moved to the next host). */
  readonly notHere: number;
}

/** Options of ProbeRecorder.start. */
export interface ProbeRecorderOptions {
  /** Every host's probe WebSocket (`ws://host:port/probe`), in the order `begin`'s `firstHost` indexes. */
  readonly urls: readonly string[];
  /** The cluster token the agents' probe path accepts. */
  readonly token: string;
  /** Probe interval. Default 1 ms. */
  readonly intervalMs?: number;
}

/**
 * A client probing a VM through the agents every millisecond (apps/agent/src/probe.ts's `/probe`),
 * on a worker thread of its own (probe-worker.mjs) so the caller's work does not delay it: the
 * client half of the downtime lab's and `ferry bench`'s guest and client downtime.
 * Usage: `start` once, then `begin(vm, host)` before a migration and `end()` after it, any number
 * of times; `close` at the end.
 */
export class ProbeRecorder {
  readonly intervalMs: number;
  private readonly worker: Worker;

  private constructor(worker: Worker, intervalMs: number) {
    this.worker = worker;
    this.intervalMs = intervalMs;
  }

  /** Opens a probe socket to every host; rejects when one cannot be opened (refused, wrong token). */
  static async start(options: ProbeRecorderOptions): Promise<ProbeRecorder> {
    const intervalMs = options.intervalMs ?? 1;
    const worker = new Worker(new URL('./probe-worker.mjs', import.meta.url), { workerData: { urls: [...options.urls], token: options.token, intervalMs } });
    const [first] = (await once(worker, 'message')) as [{ type: string; message?: string }];
    if (first.type !== 'ready') {
      await worker.terminate();
      throw new Error(`probe client failed: ${first.message ?? first.type}`);
    }
    return new ProbeRecorder(worker, intervalMs);
  }

  /** Starts probing `vmId` (first through `urls[firstHost]`) with a fresh record. */
  begin(vmId: string, firstHost = 0): void {
    this.worker.postMessage({ type: 'start', vm: vmId, target: firstHost });
  }

  /** Stops probing and returns the record since `begin`. */
  async end(): Promise<ProbeRecord> {
    const reply = once(this.worker, 'message') as Promise<[ProbeRecord]>;
    this.worker.postMessage({ type: 'stop' });
    return (await reply)[0];
  }

  /** Ends the worker and its sockets. */
  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/** The guest's and the client's downtime in a record, over replies received in [fromMs, toMs] (see probe-gaps.ts). */
export function probeDowntimes(record: ProbeRecord, fromMs: number, toMs: number): { readonly guestMs: number; readonly clientMs: number | undefined; readonly latencyMs: number | undefined } {
  return {
    guestMs: heartbeatJumpMs(record.atMs, record.heartbeats, fromMs, toMs),
    clientMs: clientGapMs(record.atMs, fromMs, toMs),
    latencyMs: probeLatencyMs(record.atMs, record.heartbeats, fromMs, toMs),
  };
}
