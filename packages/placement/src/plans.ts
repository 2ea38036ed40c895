import { STATE_UP } from './cluster.ts';
import type { ClusterModel, VmRecord } from './cluster.ts';
import { makeQuery, scoreHost, selectHost, strategyCode } from './select.ts';
import type { Query } from './select.ts';
import type { Migration, SoftWeights } from './types.ts';

/** Where each VM of a drained host goes, in execution order. `unplaced`: VMs no host can take. */
export interface DrainPlan {
  readonly hostId: string;
  readonly migrations: readonly Migration[];
  readonly unplaced: readonly string[];
  readonly costBytes: number;
}

/** Which hosts to empty and how, in execution order (Power-Aware Best-Fit Decreasing). */
export interface ConsolidationPlan {
  readonly migrations: readonly Migration[];
  readonly hostsEmptied: readonly string[];
  /** Up hosts holding at least one VM, before and after the plan. */
  readonly hostsBefore: number;
  readonly hostsAfter: number;
  readonly costBytes: number;
}

/** Moves that narrow the spread of load (dominant-resource share) between up hosts. */
export interface RebalancePlan {
  readonly migrations: readonly Migration[];
  /** Max − min dominant share over up hosts, before and after. */
  readonly spreadBefore: number;
  readonly spreadAfter: number;
  readonly costBytes: number;
}

/** Options of planConsolidation. */
export interface ConsolidationOptions {
  /** Stop after this many hosts in a row could not be emptied (they only get fuller). Default 64. */
  readonly maxFailedHosts?: number;
  /** Stop after this many migrations. Default unlimited. */
  readonly maxMigrations?: number;
}

/** Options of planRebalance. */
export interface RebalanceOptions {
  /** Stop when max − min dominant share is at most this. Default 0.1. */
  readonly targetSpread?: number;
  /** Stop after this many migrations. Default: the number of VMs. */
  readonly maxMigrations?: number;
}

function queryFor(vm: VmRecord, from: number, strategy: string, weights: SoftWeights): Query {
  const q = makeQuery(strategyCode(strategy), weights);
  q.cpus = vm.cpus; q.memoryBytes = vm.memoryBytes; q.diskBytes = vm.diskBytes;
  q.group = vm.group; q.typeIdx = vm.typeIdx; q.selfIdx = from;
  return q;
}

function movable(vm: VmRecord): boolean {
  return vm.migratingTo < 0 && !(vm.group?.policy === 'affinity' && vm.group.members.size > 1);
}

function step(m: ClusterModel, vm: VmRecord, to: number): Migration {
  const from = vm.hostIdx;
  m.moveVm(vm.vmId, to);
  return { vmId: vm.vmId, fromHostId: m.hostIds[from]!, toHostId: m.hostIds[to]!, costBytes: vm.memoryBytes };
}

function vmsOf(m: ClusterModel, h: number): VmRecord[] {
  const out: VmRecord[] = [];
  for (const id of m.hostVms[h] ?? []) {
    const vm = m.vms.get(id);
    if (vm && vm.hostIdx === h) out.push(vm);
  }
  return out.sort((a, b) => b.memoryBytes - a.memoryBytes || b.cpus - a.cpus || (a.vmId < b.vmId ? -1 : 1));
}

/**
 * Drain plan on `m` (a copy: it is changed): moves every VM of slot `h` away, largest first, each to
 * the host with the fewest VMs already sent by this drain, then the most free capacity (spread).
 * Members of a hard-affinity group move together to one host. VMs in flight are left out.
 */
export function planDrainOn(m: ClusterModel, h: number, weights: SoftWeights): DrainPlan {
  m.setState(h, 'draining'); // takes nothing
  const penalty = new Float64Array(m.capCpu.length);
  const migrations: Migration[] = [];
  const unplaced: string[] = [];
  const done = new Set<string>();
  for (const vm of vmsOf(m, h)) {
    if (done.has(vm.vmId)) continue;
    if (vm.migratingTo >= 0) { unplaced.push(vm.vmId); continue; }
    const g = vm.group;
    if (g?.policy === 'affinity' && g.members.size > 1) {
      // The whole group on this host moves as one unit, to where the rest of it lives if anywhere.
      const unit = vmsOf(m, h).filter((v) => v.group === g && v.migratingTo < 0);
      for (const v of unit) done.add(v.vmId);
      const q = makeQuery(strategyCode('worst-fit'), weights);
      for (const v of unit) { q.cpus += v.cpus; q.memoryBytes += v.memoryBytes; q.diskBytes += v.diskBytes; }
      q.penalty = penalty;
      let to = -1;
      const elsewhere = [...g.hostCounts.keys()].filter((x) => x !== h);
      if (elsewhere.length > 0) {
        const t = elsewhere[0]!;
        if (scoreHost(m, q, t, m.size) > -Infinity) to = t;
      } else {
        to = selectHost(m, q);
      }
      if (to < 0) { for (const v of unit) unplaced.push(v.vmId); continue; }
      for (const v of unit) migrations.push(step(m, v, to));
      penalty[to] = (penalty[to] ?? 0) + 10 * unit.length;
      continue;
    }
    done.add(vm.vmId);
    const q = queryFor(vm, h, 'worst-fit', weights);
    q.penalty = penalty;
    const to = selectHost(m, q);
    if (to < 0) { unplaced.push(vm.vmId); continue; }
    migrations.push(step(m, vm, to));
    penalty[to] = (penalty[to] ?? 0) + 10;
  }
  return { hostId: m.hostIds[h]!, migrations, unplaced, costBytes: migrations.reduce((s, x) => s + x.costBytes, 0) };
}

/** Number of up hosts holding at least one VM. */
/** Ids of the up hosts holding at least one VM, sorted. */
export function activeHostIds(m: ClusterModel): string[] {
  const ids: string[] = [];
  for (let h = 0; h < m.size; h++) if (m.state[h] === STATE_UP && m.vmCount[h]! > 0) ids.push(m.hostIds[h]!);
  return ids.sort();
}

export function activeHosts(m: ClusterModel): number {
  let n = 0;
  for (let h = 0; h < m.size; h++) if (m.state[h] === STATE_UP && m.vmCount[h]! > 0) n++;
  return n;
}

function load(m: ClusterModel, h: number): number {
  return Math.max(
    m.capCpu[h]! > 0 ? m.usedCpu[h]! / m.capCpu[h]! : 0,
    m.capMem[h]! > 0 ? m.usedMem[h]! / m.capMem[h]! : 0,
    m.capDisk[h]! > 0 ? m.usedDisk[h]! / m.capDisk[h]! : 0,
  );
}

/**
 * Consolidation plan on `m` (a copy: it is changed), after Beloglazov's Power-Aware Best-Fit
 * Decreasing: hosts are tried in order of fewest VMs then least load; a host is emptied only if
 * every VM it holds fits, largest first, best-fit onto hosts that stay on (never a host being
 * emptied, never an empty host); hosts that received VMs are not emptied later (no VM moves twice).
 */
export function planConsolidationOn(m: ClusterModel, weights: SoftWeights, opts: ConsolidationOptions = {}): ConsolidationPlan {
  const maxFailed = opts.maxFailedHosts ?? 64;
  const maxMigrations = opts.maxMigrations ?? Infinity;
  const hostsBefore = activeHosts(m);
  const exclude = new Uint8Array(m.capCpu.length);
  const received = new Uint8Array(m.capCpu.length);
  const sources: number[] = [];
  let freeCpu = 0, freeMem = 0, freeDisk = 0;
  for (let h = 0; h < m.size; h++) {
    if (m.state[h] !== STATE_UP || m.vmCount[h] === 0) { exclude[h] = 1; continue; }
    freeCpu += m.capCpu[h]! - m.usedCpu[h]!; freeMem += m.capMem[h]! - m.usedMem[h]!; freeDisk += m.capDisk[h]! - m.usedDisk[h]!;
    if (m.incoming[h] === 0) sources.push(h);
  }
  const loads = new Float64Array(m.capCpu.length);
  for (const h of sources) loads[h] = load(m, h);
  sources.sort((a, b) => m.vmCount[a]! - m.vmCount[b]! || loads[a]! - loads[b]! || a - b);
  const migrations: Migration[] = [];
  const emptied: string[] = [];
  let failedInRow = 0;
  for (const s of sources) {
    if (failedInRow >= maxFailed || migrations.length >= maxMigrations) break;
    if (received[s] === 1) continue;
    const vms = vmsOf(m, s);
    if (vms.length === 0 || vms.length + migrations.length > maxMigrations || !vms.every(movable)) { failedInRow++; continue; }
    const ownFreeCpu = m.capCpu[s]! - m.usedCpu[s]!, ownFreeMem = m.capMem[s]! - m.usedMem[s]!, ownFreeDisk = m.capDisk[s]! - m.usedDisk[s]!;
    if (m.usedCpu[s]! > freeCpu - ownFreeCpu + 1e-9 || m.usedMem[s]! > freeMem - ownFreeMem + 1e-3 || m.usedDisk[s]! > freeDisk - ownFreeDisk + 1e-3) {
      failedInRow++;
      continue;
    }
    exclude[s] = 1;
    const moved: { vm: VmRecord; to: number; mig: Migration }[] = [];
    let ok = true;
    for (const vm of vms) {
      const q = queryFor(vm, s, 'best-fit', weights);
      q.exclude = exclude;
      const to = selectHost(m, q);
      if (to < 0) { ok = false; break; }
      moved.push({ vm, to, mig: step(m, vm, to) });
    }
    if (!ok) {
      for (let i = moved.length - 1; i >= 0; i--) m.moveVm(moved[i]!.vm.vmId, s);
      exclude[s] = 0;
      failedInRow++;
      continue;
    }
    failedInRow = 0;
    freeCpu -= m.capCpu[s]!; freeMem -= m.capMem[s]!; freeDisk -= m.capDisk[s]!;
    for (const x of moved) { received[x.to] = 1; migrations.push(x.mig); }
    emptied.push(m.hostIds[s]!);
  }
  return {
    migrations, hostsEmptied: emptied, hostsBefore, hostsAfter: activeHosts(m),
    costBytes: migrations.reduce((a, x) => a + x.costBytes, 0),
  };
}

/** Max − min dominant share over up hosts (0 with fewer than two up hosts). */
export function loadSpread(m: ClusterModel): number {
  let lo = Infinity, hi = -Infinity;
  for (let h = 0; h < m.size; h++) {
    if (m.state[h] !== STATE_UP) continue;
    const l = load(m, h);
    if (l < lo) lo = l;
    if (l > hi) hi = l;
  }
  return hi > lo ? hi - lo : 0;
}

/**
 * Rebalance plan on `m` (a copy: it is changed): repeatedly moves, from the most loaded up host to
 * the least loaded, the VM that lowers the larger of the two loads the most, while that helps and
 * the filters allow it; stops at `targetSpread` or `maxMigrations`.
 */
export function planRebalanceOn(m: ClusterModel, weights: SoftWeights, opts: RebalanceOptions = {}): RebalancePlan {
  const target = opts.targetSpread ?? 0.1;
  const maxMigrations = opts.maxMigrations ?? m.vms.size;
  const spreadBefore = loadSpread(m);
  const migrations: Migration[] = [];
  const stuck = new Uint8Array(m.capCpu.length);
  while (migrations.length < maxMigrations) {
    let hi = -1, lo = -1, hiLoad = -Infinity, loLoad = Infinity;
    for (let h = 0; h < m.size; h++) {
      if (m.state[h] !== STATE_UP) continue;
      const l = load(m, h);
      if (stuck[h] === 0 && l > hiLoad) { hiLoad = l; hi = h; }
      if (l < loLoad) { loLoad = l; lo = h; }
    }
    if (hi < 0 || lo < 0 || hi === lo || hiLoad - loLoad <= target) break;
    let bestVm: VmRecord | undefined;
    let bestPeak = hiLoad - 1e-9;
    for (const vm of vmsOf(m, hi)) {
      if (!movable(vm)) continue;
      const q = queryFor(vm, hi, 'worst-fit', weights);
      if (scoreHost(m, q, lo, m.size) === -Infinity) continue;
      const share = (used: number, d: number, cap: number): number => (cap > 0 ? (used + d) / cap : 0);
      const hiAfter = Math.max(share(m.usedCpu[hi]!, -vm.cpus, m.capCpu[hi]!), share(m.usedMem[hi]!, -vm.memoryBytes, m.capMem[hi]!), share(m.usedDisk[hi]!, -vm.diskBytes, m.capDisk[hi]!));
      const loAfter = Math.max(share(m.usedCpu[lo]!, vm.cpus, m.capCpu[lo]!), share(m.usedMem[lo]!, vm.memoryBytes, m.capMem[lo]!), share(m.usedDisk[lo]!, vm.diskBytes, m.capDisk[lo]!));
      // Both new loads must land strictly inside (min, max): the spread then never widens.
      const peak = Math.max(hiAfter, loAfter);
      if (peak < bestPeak && Math.min(hiAfter, loAfter) > loLoad + 1e-12) { bestPeak = peak; bestVm = vm; }
    }
    if (!bestVm) { stuck[hi] = 1; continue; }
    migrations.push(step(m, bestVm, lo));
  }
  return { migrations, spreadBefore, spreadAfter: loadSpread(m), costBytes: migrations.reduce((a, x) => a + x.costBytes, 0) };
}
