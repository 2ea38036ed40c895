import { InvalidPlacementInputError } from './errors.ts';
import type { Scheduler } from './scheduler.ts';
import type { Trace } from './trace.ts';
import type { HostSpec, Resources } from './types.ts';

/** `count` identical up hosts named `${prefix}${i}`. */
export function uniformHosts(count: number, capacity: Resources, prefix = 'host-'): HostSpec[] {
  return Array.from({ length: count }, (_, i) => ({ id: `${prefix}${i}`, state: 'up' as const, capacity }));
}

/** Options of replayTrace. */
export interface ReplayOptions {
  /** A clock in milliseconds (e.g. performance.now) to time each decision; omit to skip timing. */
  readonly nowMs?: () => number;
}

/** What one replay measured. Energy integrates the power model over the trace's duration. */
export interface ReplayReport {
  readonly decisions: number;
  readonly accepted: number;
  readonly acceptanceRate: number;
  /** Up hosts holding a VM at the end of the trace. */
  readonly hostsUsed: number;
  /** Lower bound on hosts for the VMs alive at the end. */
  readonly lowerBound: number;
  /** Fragmentation at the end (for the most common instance type). */
  readonly fragmentation: number;
  readonly energyKwh: number;
  readonly durationSec: number;
  /** Decisions per second of time spent in `place` (0 without a clock). */
  readonly decisionsPerSec: number;
  /** 99th percentile of one `place` call in ms (0 without a clock). */
  readonly p99DecisionMs: number;
}

/**
 * Replays a trace on `scheduler` (which it changes): each arrival is a `place`, each departure of
 * an accepted VM a `release`. Power is tracked per host touched, so energy costs O(1) per event.
 */
export function replayTrace(scheduler: Scheduler, trace: Trace, opts: ReplayOptions = {}): ReplayReport {
  const types = new Map(trace.types.map((t) => [t.name, t]));
  const placed = new Map<string, string>();
  const now = opts.nowMs;
  const latencies = new Float64Array(trace.events.length);
  let decisions = 0, accepted = 0, spentMs = 0;
  const hostWatts = new Map<string, number>();
  for (const h of scheduler.hosts()) hostWatts.set(h.id, scheduler.hostWatts(h.id));
  let watts = scheduler.energy(0).watts, joules = 0, lastSec = trace.events[0]?.timeSec ?? 0;
  for (const e of trace.events) {
    joules += watts * (e.timeSec - lastSec);
    lastSec = e.timeSec;
    let hostId: string | undefined;
    if (e.kind === 'arrive') {
      const t = types.get(e.type);
      if (!t) throw new InvalidPlacementInputError(`trace uses unknown type ${e.type}`);
      const req = { vmId: e.vmId, demand: t.demand, instanceType: t.name, ...(e.group ? { group: e.group } : {}), ...(e.image ? { image: e.image } : {}) };
      let r;
      if (now) {
        const t0 = now();
        r = scheduler.place(req);
        const dt = now() - t0;
        latencies[decisions] = dt;
        spentMs += dt;
      } else {
        r = scheduler.place(req);
      }
      decisions++;
      if (!r.ok) continue;
      accepted++;
      placed.set(e.vmId, r.hostId);
      hostId = r.hostId;
    } else {
      hostId = placed.get(e.vmId);
      if (hostId === undefined) continue;
      placed.delete(e.vmId);
      scheduler.release(e.vmId);
    }
    const w = scheduler.hostWatts(hostId);
    watts += w - (hostWatts.get(hostId) ?? 0);
    hostWatts.set(hostId, w);
  }
  const sorted = latencies.subarray(0, decisions).sort();
  const durationSec = lastSec - (trace.events[0]?.timeSec ?? 0);
  return {
    decisions, accepted, acceptanceRate: decisions > 0 ? accepted / decisions : 1,
    hostsUsed: scheduler.hostsUsed(), lowerBound: scheduler.lowerBound(), fragmentation: scheduler.fragmentation(),
    energyKwh: joules / 3.6e6, durationSec,
    decisionsPerSec: now && spentMs > 0 ? decisions / (spentMs / 1000) : 0,
    p99DecisionMs: now && decisions > 0 ? sorted[Math.min(decisions - 1, Math.floor(decisions * 0.99))]! : 0,
  };
}
