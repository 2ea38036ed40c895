import { MAX_INSTANCE_TYPES, STATE_UP } from './cluster.ts';
import type { ClusterModel, GroupRecord } from './cluster.ts';
import { InvalidPlacementInputError } from './errors.ts';
import type { SoftWeights } from './types.ts';

/**
 * Strategy names (the cluster's `strategy` setting):
 * - `first-fit`: the lowest-numbered host that passes the filters.
 * - `best-fit`: pack: the host left with the least free capacity (mean of the three resources,
 *   each as a share of the host's effective capacity).
 * - `worst-fit`: spread: the host left with the most free capacity.
 * - `alignment`: multi-resource best fit: half the cosine between the demand and free vectors
 *   (Tetris-style dot product, normalized to measure shape rather than size), half best-fit.
 * - `segregation`: one instance type per host: hosts already holding only this type first, then
 *   empty hosts, then mixed ones; best-fit inside each tier.
 */
export const STRATEGIES = ['first-fit', 'best-fit', 'worst-fit', 'alignment', 'segregation'] as const;
/** A strategy name. */
export type StrategyName = (typeof STRATEGIES)[number];

const FIRST_FIT = 0;
const BEST_FIT = 1;
const WORST_FIT = 2;
const ALIGNMENT = 3;
const SEGREGATION = 4;

/** Strategy code of a name; throws InvalidPlacementInputError listing the allowed names. */
export function strategyCode(name: string): number {
  const i = (STRATEGIES as readonly string[]).indexOf(name);
  if (i < 0) throw new InvalidPlacementInputError(`unknown strategy ${name}; allowed: ${STRATEGIES.join(', ')}`);
  return i;
}

/** One decision's inputs in the form the hot loop reads (no allocation per host). */
export interface Query {
  cpus: number;
  memoryBytes: number;
  diskBytes: number;
  group: GroupRecord | undefined;
  typeIdx: number;
  imageMask: Uint8Array | undefined;
  strategy: number;
  weights: SoftWeights;
  /** Host the VM runs on now (its own group membership is discounted there), or -1. */
  selfIdx: number;
  /** Incoming-migration limit per host, or -1 when this is not a migration. */
  migrationLimit: number;
  /** Hosts never chosen (mask by slot), e.g. hosts a plan is emptying. */
  exclude: Uint8Array | undefined;
  /** Score subtracted per host (plans use it to spread). */
  penalty: Float64Array | undefined;
}

/** A Query with no group, no image, no exclusions. */
export function makeQuery(strategy: number, weights: SoftWeights): Query {
  return {
    cpus: 0, memoryBytes: 0, diskBytes: 0, group: undefined, typeIdx: 0, imageMask: undefined,
    strategy, weights, selfIdx: -1, migrationLimit: -1, exclude: undefined, penalty: undefined,
  };
}

function others(g: GroupRecord, h: number, selfIdx: number): number {
  const n = g.hostCounts.get(h) ?? 0;
  return h === selfIdx ? n - 1 : n;
}

/** Strategy score of a host with free capacity (fc, fm, fd) after placing the demand, in [0, 1] (+ tier). */
function strategyScore(m: ClusterModel, q: Query, h: number, n: number, fc: number, fm: number, fd: number): number {
  const ic = m.invCpu[h]!, im = m.invMem[h]!, id = m.invDisk[h]!;
  const rem = (fc * ic + fm * im + fd * id) / 3;
  switch (q.strategy) {
    case FIRST_FIT: return 1 - h / n;
    case BEST_FIT: return 1 - rem;
    case WORST_FIT: return rem;
    case ALIGNMENT: {
      const dc = q.cpus * ic, dm = q.memoryBytes * im, dd = q.diskBytes * id;
      const vc = (fc + q.cpus) * ic, vm = (fm + q.memoryBytes) * im, vd = (fd + q.diskBytes) * id;
      const norm = Math.sqrt((dc * dc + dm * dm + dd * dd) * (vc * vc + vm * vm + vd * vd));
      return 0.5 * (norm > 0 ? (dc * vc + dm * vm + dd * vd) / norm : 0) + 0.5 * (1 - rem);
    }
    default: {
      const count = m.vmCount[h]!;
      const tier = count === 0 ? 1 : m.typeCounts[h * MAX_INSTANCE_TYPES + q.typeIdx] === count ? 2 : 0;
      return tier + 0.5 * (1 - rem);
    }
  }
}

/** Score of host `h` for `q`, or -Infinity when a filter rejects it. Allocation-free. */
export function scoreHost(m: ClusterModel, q: Query, h: number, n: number): number {
  if (m.state[h] !== STATE_UP || h === q.selfIdx) return -Infinity;
  if (q.exclude !== undefined && q.exclude[h] === 1) return -Infinity;
  const fc = m.capCpu[h]! - m.usedCpu[h]! - q.cpus;
  const fm = m.capMem[h]! - m.usedMem[h]! - q.memoryBytes;
  const fd = m.capDisk[h]! - m.usedDisk[h]! - q.diskBytes;
  if (fc < -1e-9 || fm < -1e-3 || fd < -1e-3) return -Infinity;
  if (q.migrationLimit >= 0 && m.incoming[h]! >= q.migrationLimit) return -Infinity;
  const g = q.group;
  let groupHere = 0;
  if (g !== undefined) {
    groupHere = others(g, h, q.selfIdx);
    if (g.policy === 'anti-affinity' && groupHere > 0) return -Infinity;
  }
  let s = strategyScore(m, q, h, n, fc, fm, fd);
  if (q.imageMask !== undefined && q.imageMask[h] === 1) s += q.weights.imageLocality;
  if (g !== undefined && groupHere > 0) {
    if (g.policy === 'soft-affinity') s += q.weights.softAffinity;
    else if (g.policy === 'soft-anti-affinity') s -= q.weights.softAntiAffinity * groupHere;
  }
  if (q.penalty !== undefined) s -= q.penalty[h]!;
  return s;
}

const SEARCH_OVERFLOW = -2;
const PQ_CAPACITY = 1 << 15;
/**
 * Tree nodes the worst-fit search may take from its queue before it gives up for the plain scan.
 * Finding a host in a cluster with room takes about two per tree level (≈ 30 at 10,000 hosts); in a
 * full cluster, where many subtrees have free CPU and disk but too little memory, the search could
 * otherwise expand thousands of nodes (p99 of one decision 0.8 ms idle, 5 ms on a busy machine, at
 * 10,000 hosts) where the scan costs ≈ 0.1 ms.
 */
const SEARCH_NODE_BUDGET = 128;
const pqNode = new Int32Array(PQ_CAPACITY);
const pqKey = new Float64Array(PQ_CAPACITY);
const pqLeft = new Int32Array(PQ_CAPACITY);

/** True when queue entry a comes before b: larger key, then lower first slot covered. */
function before(a: number, b: number): boolean {
  return pqKey[a]! > pqKey[b]! || (pqKey[a] === pqKey[b] && pqLeft[a]! < pqLeft[b]!);
}

function swap(a: number, b: number): void {
  const n = pqNode[a]!, k = pqKey[a]!, l = pqLeft[a]!;
  pqNode[a] = pqNode[b]!; pqKey[a] = pqKey[b]!; pqLeft[a] = pqLeft[b]!;
  pqNode[b] = n; pqKey[b] = k; pqLeft[b] = l;
}

/**
 * Worst-fit by best-first search of the free-share max-tree (subtrees whose largest free cpu,
 * memory or disk is below the demand are never entered): nodes come out by (upper bound,
 * lowest slot); a leaf's score is (its free-share sum − the demand's share of it) ÷ 3, bounded by
 * (key − the smallest demand share over capacity classes) ÷ 3. Stops when no node left can beat
 * or tie-with-a-lower-slot the best leaf. Same answer as the full scan; SEARCH_OVERFLOW when the
 * queue would overflow or more than SEARCH_NODE_BUDGET nodes were taken from it (in a full cluster
 * many hosts have free CPU and disk but no memory): the caller then scans.
 */
function worstFitSearch(m: ClusterModel, q: Query, n: number): number {
  const t = m.remTree, size = m.treeSize, tc = m.cpuTree, tm = m.memTree, td = m.diskTree;
  const anti = q.group !== undefined ? q.group.hostCounts : undefined; // plain: anti-affinity only
  const dc = q.cpus - 1e-9, dm = q.memoryBytes - 1e-3, dd = q.diskBytes - 1e-3;
  let dShareMin = Infinity;
  for (let cls = 0; cls < m.classInv.length; cls++) {
    const inv = m.classInv[cls]!;
    dShareMin = Math.min(dShareMin, q.cpus * inv[0]! + q.memoryBytes * inv[1]! + q.diskBytes * inv[2]!);
  }
  if (dShareMin === Infinity) return -1;
  const levels = Math.log2(size);
  let len = 0;
  const push = (k: number): void => {
    pqNode[len] = k; pqKey[len] = t[k]!;
    pqLeft[len] = (k << (levels - (31 - Math.clz32(k)))) - size;
    let c = len++;
    while (c > 0) { const p = (c - 1) >> 1; if (!before(c, p)) break; swap(c, p); c = p; }
  };
  if (tm[1]! < dm || tc[1]! < dc || td[1]! < dd) return -1;
  push(1);
  let best = -1, bestScore = -Infinity, pops = 0;
  const state = m.state;
  while (len > 0) {
    const k = pqNode[0]!, key = pqKey[0]!, left = pqLeft[0]!;
    len--;
    if (len > 0) {
      pqNode[0] = pqNode[len]!; pqKey[0] = pqKey[len]!; pqLeft[0] = pqLeft[len]!;
      let c = 0;
      for (;;) {
        const l = 2 * c + 1, r = l + 1;
        let b = c;
        if (l < len && before(l, b)) b = l;
        if (r < len && before(r, b)) b = r;
        if (b === c) break;
        swap(b, c); c = b;
      }
    }
    if (key === -Infinity) break;
    if (++pops > SEARCH_NODE_BUDGET) return SEARCH_OVERFLOW;
    const bound = (key - dShareMin) / 3 + 1e-12;
    if (bound < bestScore || (bound <= bestScore + 2e-12 && left > best && best >= 0)) break;
    if (k >= size) {
      const h = k - size;
      if (state[h] !== STATE_UP) continue;
      const fm = m.capMem[h]! - m.usedMem[h]! - q.memoryBytes;
      const fc = m.capCpu[h]! - m.usedCpu[h]! - q.cpus;
      const fd = m.capDisk[h]! - m.usedDisk[h]! - q.diskBytes;
      if (fm < -1e-3 || fc < -1e-9 || fd < -1e-3) continue;
      if (anti !== undefined && anti.has(h)) continue;
      const sc = strategyScore(m, q, h, n, fc, fm, fd);
      if (sc > bestScore || (sc === bestScore && h < best)) { bestScore = sc; best = h; }
      continue;
    }
    if (len + 2 > PQ_CAPACITY) return SEARCH_OVERFLOW;
    for (let c = 2 * k; c <= 2 * k + 1; c++) {
      if (t[c] !== -Infinity && tm[c]! >= dm && tc[c]! >= dc && td[c]! >= dd) push(c);
    }
  }
  return best;
}

/**
 * Hosts a hard affinity group confines the VM to, or undefined when it may go anywhere. A member
 * migrating off a host that is not up (draining, maintenance, down) is not held by the members it
 * leaves there: the whole group must leave, so it goes where the rest already went, or, first of
 * its group to move, leads it anywhere (the others then follow it). Off an up host the group holds.
 */
function affinityHosts(m: ClusterModel, q: Query): number[] | undefined {
  const g = q.group;
  if (g === undefined || g.policy !== 'affinity') return undefined;
  const leaving = q.selfIdx >= 0 && m.state[q.selfIdx] !== STATE_UP;
  const hosts: number[] = [];
  for (const h of g.hostCounts.keys()) {
    if (leaving && h === q.selfIdx) continue;
    if (others(g, h, q.selfIdx) > 0) hosts.push(h);
  }
  return hosts.length > 0 ? hosts : undefined;
}

/** The best host slot for `q` under its strategy and soft weights, or -1 if none passes the filters. */
export function selectHost(m: ClusterModel, q: Query): number {
  const n = m.size;
  let best = -1;
  let bestScore = -Infinity;
  const confined = affinityHosts(m, q);
  if (confined !== undefined) {
    for (const h of confined) {
      const s = scoreHost(m, q, h, n);
      if (s > bestScore || (s === bestScore && s > -Infinity && h < best)) { bestScore = s; best = h; }
    }
    return best;
  }
  const g = q.group;
  const shortCircuit = q.strategy === FIRST_FIT && q.imageMask === undefined && q.penalty === undefined &&
    (g === undefined || g.policy === 'affinity' || g.policy === 'anti-affinity');
  // Plain requests (no group but anti-affinity, no image, exclusion, penalty, migration): empty up hosts of one
  // capacity class all score the same but for their slot, so only the lowest of each class is
  // scored, plus every host holding VMs; the filters inline over local typed arrays.
  const plain = (g === undefined || g.policy === 'anti-affinity') && q.imageMask === undefined && q.penalty === undefined &&
    q.exclude === undefined && q.migrationLimit < 0 && q.selfIdx < 0;
  const antiCounts = g !== undefined ? g.hostCounts : undefined;
  if (plain && q.strategy === WORST_FIT) {
    const h = worstFitSearch(m, q, n);
    if (h !== SEARCH_OVERFLOW) return h;
  }
  if (plain) {
    const state = m.state, capC = m.capCpu, capM = m.capMem, capD = m.capDisk;
    const usedC = m.usedCpu, usedM = m.usedMem, usedD = m.usedDisk;
    const dc = q.cpus, dm = q.memoryBytes, dd = q.diskBytes;
    const active = m.active;
    const classes = m.emptyHeaps.length;
    for (let k = -classes; k < active.length; k++) {
      const h = k < 0 ? m.lowestEmpty(-k - 1) : active[k]!;
      if (h < 0 || state[h] !== STATE_UP) continue;
      const fm = capM[h]! - usedM[h]! - dm;
      if (fm < -1e-3) continue;
      const fc = capC[h]! - usedC[h]! - dc;
      if (fc < -1e-9) continue;
      const fd = capD[h]! - usedD[h]! - dd;
      if (fd < -1e-3) continue;
      if (antiCounts !== undefined && antiCounts.has(h)) continue;
      const s = strategyScore(m, q, h, n, fc, fm, fd);
      if (s > bestScore || (s === bestScore && h < best)) { bestScore = s; best = h; }
    }
    return best;
  }
  for (let h = 0; h < n; h++) {
    const s = scoreHost(m, q, h, n);
    if (s > bestScore) {
      bestScore = s;
      best = h;
      if (shortCircuit) break;
    }
  }
  return best;
}

/** Filter names in the order they run, as counted by `explainRejection`. */
export const FILTERS = ['host-state', 'excluded', 'capacity', 'incoming-migrations', 'anti-affinity', 'affinity'] as const;

/**
 * Counts, per filter, the hosts that reject `q` (the first failing filter of each host); with
 * `onlyHost`, only that slot is examined (an operator's choice of host).
 */
export function explainRejection(m: ClusterModel, q: Query, onlyHost?: number): Record<string, number> {
  const confined = affinityHosts(m, q);
  const anti = q.group?.policy === 'anti-affinity' ? q.group : undefined;
  const state = m.state, capC = m.capCpu, capM = m.capMem, capD = m.capDisk;
  const usedC = m.usedCpu, usedM = m.usedMem, usedD = m.usedDisk;
  const dc = q.cpus - 1e-9, dm = q.memoryBytes - 1e-3, dd = q.diskBytes - 1e-3;
  let hostState = 0, excluded = 0, capacity = 0, migrations = 0, antiAffinity = 0, affinity = 0;
  const first = onlyHost ?? 0, end = onlyHost !== undefined ? onlyHost + 1 : m.size;
  for (let h = first; h < end; h++) {
    const st = state[h];
    if (st === 0) continue;
    if (st !== STATE_UP || h === q.selfIdx) hostState++;
    else if (q.exclude !== undefined && q.exclude[h] === 1) excluded++;
    else if (capM[h]! - usedM[h]! < dm || capC[h]! - usedC[h]! < dc || capD[h]! - usedD[h]! < dd) capacity++;
    else if (q.migrationLimit >= 0 && m.incoming[h]! >= q.migrationLimit) migrations++;
    else if (anti !== undefined && others(anti, h, q.selfIdx) > 0) antiAffinity++;
    else if (confined !== undefined && !confined.includes(h)) affinity++;
  }
  return {
    'host-state': hostState, excluded, capacity, 'incoming-migrations': migrations, 'anti-affinity': antiAffinity, affinity,
  };
}
