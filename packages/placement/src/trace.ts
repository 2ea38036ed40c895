import { readFileSync, writeFileSync } from 'node:fs';
import { TraceFormatError } from './errors.ts';
import { GROUP_POLICIES } from './types.ts';
import type { GroupPolicy, PlacementGroupRef, Resources } from './types.ts';

/** First line of every trace file; the number is the format version. */
export const TRACE_MAGIC = 'ferry-placement-trace 1';

/** An instance type of a trace: a name and the demand every instance of it makes. */
export interface TraceType {
  readonly name: string;
  readonly demand: Resources;
}

/** A VM arrives (a placement request) at `timeSec`. */
export interface ArriveEvent {
  readonly kind: 'arrive';
  readonly timeSec: number;
  readonly vmId: string;
  readonly type: string;
  readonly group?: PlacementGroupRef;
  readonly image?: string;
}

/** A VM departs (is deleted) at `timeSec`. Departures of rejected VMs are skipped on replay. */
export interface DepartEvent {
  readonly kind: 'depart';
  readonly timeSec: number;
  readonly vmId: string;
}

/** A trace event. */
export type TraceEvent = ArriveEvent | DepartEvent;

/** A request trace: instance types and events in time order. */
export interface Trace {
  readonly seed?: number;
  readonly types: readonly TraceType[];
  readonly events: readonly TraceEvent[];
}

const GIB = 1024 ** 3;

/** The default instance mix: name, share of arrivals, demand. Memory is the usual bottleneck. */
export const DEFAULT_MIX: readonly { readonly type: TraceType; readonly share: number }[] = [
  { type: { name: 'small', demand: { cpus: 1, memoryBytes: 2 * GIB, diskBytes: 20 * GIB } }, share: 0.5 },
  { type: { name: 'medium', demand: { cpus: 2, memoryBytes: 4 * GIB, diskBytes: 40 * GIB } }, share: 0.2 },
  { type: { name: 'large', demand: { cpus: 4, memoryBytes: 8 * GIB, diskBytes: 80 * GIB } }, share: 0.15 },
  { type: { name: 'compute', demand: { cpus: 16, memoryBytes: 8 * GIB, diskBytes: 40 * GIB } }, share: 0.1 },
  { type: { name: 'memory', demand: { cpus: 2, memoryBytes: 16 * GIB, diskBytes: 40 * GIB } }, share: 0.05 },
];

/** A small seeded PRNG (mulberry32): returns floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Options of generateTrace. */
export interface TraceOptions {
  readonly seed: number;
  /** Number of arrivals. */
  readonly arrivals: number;
  /** Mean time between arrivals (exponential). Default 1 s. */
  readonly meanInterarrivalSec?: number;
  /** Mean VM lifetime (exponential); omit for a static trace (arrivals only). */
  readonly meanLifetimeSec?: number;
  /** Instance mix. Default DEFAULT_MIX. */
  readonly mix?: readonly { readonly type: TraceType; readonly share: number }[];
  /** Share of arrivals that join an anti-affinity group of `groupSize`. Default 0. */
  readonly groupShare?: number;
  /** Members per group. Default 3. */
  readonly groupSize?: number;
  /** Image names to draw from (uniformly). Default none. */
  readonly images?: readonly string[];
}

/**
 * A seeded trace: Poisson arrivals of the mix; with `meanLifetimeSec`, each VM departs after an
 * exponential lifetime, and departures after the last arrival are dropped (the trace ends with the
 * VMs still alive in place). Same options, same trace.
 */
export function generateTrace(o: TraceOptions): Trace {
  const rnd = seededRandom(o.seed);
  const mix = o.mix ?? DEFAULT_MIX;
  const total = mix.reduce((s, x) => s + x.share, 0);
  const gap = o.meanInterarrivalSec ?? 1;
  const groupShare = o.groupShare ?? 0, groupSize = o.groupSize ?? 3;
  const arrivals: ArriveEvent[] = [];
  const departs: DepartEvent[] = [];
  let t = 0, groupNo = 0, groupLeft = 0;
  for (let i = 0; i < o.arrivals; i++) {
    t += -Math.log(1 - rnd()) * gap;
    let pick = rnd() * total, k = 0;
    while (k < mix.length - 1 && pick >= mix[k]!.share) pick -= mix[k++]!.share;
    const vmId = `vm-${i}`;
    let group: PlacementGroupRef | undefined;
    if (groupLeft > 0) { groupLeft--; group = { name: `g-${groupNo}`, policy: 'anti-affinity' }; }
    else if (groupShare > 0 && rnd() < groupShare / groupSize) { groupNo++; groupLeft = groupSize - 1; group = { name: `g-${groupNo}`, policy: 'anti-affinity' }; }
    const image = o.images && o.images.length > 0 ? o.images[Math.floor(rnd() * o.images.length)] : undefined;
    arrivals.push({ kind: 'arrive', timeSec: round3(t), vmId, type: mix[k]!.type.name, ...(group ? { group } : {}), ...(image ? { image } : {}) });
    if (o.meanLifetimeSec !== undefined) departs.push({ kind: 'depart', timeSec: round3(t + -Math.log(1 - rnd()) * o.meanLifetimeSec), vmId });
  }
  const end = arrivals.at(-1)?.timeSec ?? 0;
  const events: TraceEvent[] = [...arrivals, ...departs.filter((d) => d.timeSec < end)];
  // Stable: at equal times departures first (they free capacity), then by original order.
  events.sort((a, b) => a.timeSec - b.timeSec || (a.kind === b.kind ? 0 : a.kind === 'depart' ? -1 : 1));
  return { seed: o.seed, types: mix.map((x) => x.type), events };
}

function round3(x: number): number { return Math.round(x * 1000) / 1000; }

/**
 * A static trace's arrivals sorted by size, largest first (for offline best-fit decreasing). Size
 * is the weighted sum of the request's shares of `capacity`, each resource weighted by its share
 * of the trace's total demand (FFDSum with demand weights, Panigrahy et al. 2011): the resource
 * that binds the cluster orders the items, so CPU-heavy VMs are not packed first into hosts whose
 * memory they then strand.
 */
export function sortDecreasing(trace: Trace, capacity: Resources): Trace {
  const byName = new Map(trace.types.map((t) => [t.name, t.demand]));
  const arrivals = trace.events.filter((e): e is ArriveEvent => e.kind === 'arrive');
  const share = (d: Resources): [number, number, number] =>
    [d.cpus / capacity.cpus, d.memoryBytes / capacity.memoryBytes, d.diskBytes / capacity.diskBytes];
  const w = [0, 0, 0];
  for (const e of arrivals) {
    const d = byName.get(e.type);
    if (d) share(d).forEach((x, r) => { w[r]! += x; });
  }
  const size = (e: ArriveEvent): number => {
    const d = byName.get(e.type);
    return d ? share(d).reduce((a, x, r) => a + x * w[r]!, 0) : 0;
  };
  const sorted = arrivals.map((e, i) => ({ e, i, s: size(e) })).sort((a, b) => b.s - a.s || a.i - b.i);
  return { ...trace, events: sorted.map(({ e }, i) => ({ ...e, timeSec: i })) };
}

/** The trace as text (see docs/placement.md for the format). */
export function formatTrace(trace: Trace): string {
  const lines = [TRACE_MAGIC];
  if (trace.seed !== undefined) lines.push(`seed ${trace.seed}`);
  for (const t of trace.types) lines.push(`type ${t.name} ${t.demand.cpus} ${t.demand.memoryBytes} ${t.demand.diskBytes}`);
  for (const e of trace.events) {
    if (e.kind === 'depart') { lines.push(`d ${e.timeSec} ${e.vmId}`); continue; }
    let line = `a ${e.timeSec} ${e.vmId} ${e.type}`;
    if (e.group) line += ` group=${e.group.name}:${e.group.policy}`;
    if (e.image) line += ` image=${e.image}`;
    lines.push(line);
  }
  return lines.join('\n') + '\n';
}

function num(s: string | undefined, line: number, what: string): number {
  const v = Number(s);
  if (s === undefined || s === '' || !Number.isFinite(v) || v < 0) throw new TraceFormatError(line, `${what} must be a number ≥ 0, got ${s ?? 'nothing'}`);
  return v;
}

/** Parses trace text; throws TraceFormatError naming the line on any malformed input. */
export function parseTrace(text: string): Trace {
  const lines = text.split('\n');
  if (lines[0]?.trim() !== TRACE_MAGIC) throw new TraceFormatError(1, `expected "${TRACE_MAGIC}"`);
  let seed: number | undefined;
  const types: TraceType[] = [];
  const typeNames = new Set<string>();
  const events: TraceEvent[] = [];
  let last = 0;
  for (let i = 1; i < lines.length; i++) {
    const n = i + 1;
    const raw = lines[i]!.trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const f = raw.split(/\s+/);
    const kw = f[0];
    if (kw === 'seed') { seed = num(f[1], n, 'seed'); continue; }
    if (kw === 'type') {
      if (f.length !== 5 || !f[1]) throw new TraceFormatError(n, 'type needs: name cpus memoryBytes diskBytes');
      if (typeNames.has(f[1])) throw new TraceFormatError(n, `type ${f[1]} defined twice`);
      typeNames.add(f[1]);
      types.push({ name: f[1], demand: { cpus: num(f[2], n, 'cpus'), memoryBytes: num(f[3], n, 'memoryBytes'), diskBytes: num(f[4], n, 'diskBytes') } });
      continue;
    }
    if (kw !== 'a' && kw !== 'd') throw new TraceFormatError(n, `unknown line kind ${kw}`);
    const timeSec = num(f[1], n, 'time');
    if (timeSec < last) throw new TraceFormatError(n, `time ${timeSec} goes backwards (previous ${last})`);
    last = timeSec;
    const vmId = f[2];
    if (!vmId) throw new TraceFormatError(n, 'missing vm id');
    if (kw === 'd') {
      if (f.length !== 3) throw new TraceFormatError(n, 'depart takes: time vmId');
      events.push({ kind: 'depart', timeSec, vmId });
      continue;
    }
    const type = f[3];
    if (!type || !typeNames.has(type)) throw new TraceFormatError(n, `unknown instance type ${type ?? 'nothing'}`);
    let group: PlacementGroupRef | undefined, image: string | undefined;
    for (const opt of f.slice(4)) {
      if (opt.startsWith('group=')) {
        const [name, policy] = opt.slice(6).split(':');
        if (!name || !(GROUP_POLICIES as readonly string[]).includes(policy ?? '')) throw new TraceFormatError(n, `bad group ${opt}`);
        group = { name, policy: policy as GroupPolicy };
      } else if (opt.startsWith('image=') && opt.length > 6) image = opt.slice(6);
      else throw new TraceFormatError(n, `unknown field ${opt}`);
    }
    events.push({ kind: 'arrive', timeSec, vmId, type, ...(group ? { group } : {}), ...(image ? { image } : {}) });
  }
  return { ...(seed !== undefined ? { seed } : {}), types, events };
}

/** Writes a trace file at `path`. */
export function writeTraceFile(path: string, trace: Trace): void { writeFileSync(path, formatTrace(trace)); }

/** Reads and parses the trace file at `path`. */
export function readTraceFile(path: string): Trace { return parseTrace(readFileSync(path, 'utf8')); }
