import { STATE_UP } from './cluster.ts';
import type { ClusterModel } from './cluster.ts';
import type { EnergyModel, Resources } from './types.ts';

/** Power and energy of the cluster as it stands. */
export interface EnergyReport {
  /** Hosts drawing power (holding a VM, or every non-down host when empty hosts stay powered). */
  readonly hostsPowered: number;
  readonly watts: number;
  /** Energy over the duration asked for, at the current draw. */
  readonly kwh: number;
}

/** Watts drawn by slot `h` under the linear model (0 when switched off or down). */
export function hostWatts(m: ClusterModel, h: number, e: EnergyModel): number {
  const st = m.state[h]!;
  if (st === 0 || st === 2) return 0;
  if (m.vmCount[h] === 0 && !e.emptyHostsPowered) return 0;
  const phys = m.physCpu[h]!;
  const util = phys > 0 ? Math.min(1, (m.usedCpu[h]! * e.vcpuUtilization) / phys) : 1;
  return e.idleWatts + (e.peakWatts - e.idleWatts) * util;
}

/** Power now and energy over `durationSeconds` at that power. */
export function energyOf(m: ClusterModel, e: EnergyModel, durationSeconds: number): EnergyReport {
  let watts = 0, powered = 0;
  for (let h = 0; h < m.size; h++) {
    const w = hostWatts(m, h, e);
    if (w > 0) { watts += w; powered++; }
  }
  return { hostsPowered: powered, watts, kwh: (watts * durationSeconds) / 3.6e6 };
}

/** The demand of the most common instance type among placed VMs (by type name, else by shape). */
export function mostCommonDemand(m: ClusterModel): Resources | undefined {
  const counts = new Map<string, { n: number; d: Resources }>();
  for (const vm of m.vms.values()) {
    const key = vm.instanceType ?? `${vm.cpus}/${vm.memoryBytes}/${vm.diskBytes}`;
    const c = counts.get(key);
    if (c) c.n++;
    else counts.set(key, { n: 1, d: { cpus: vm.cpus, memoryBytes: vm.memoryBytes, diskBytes: vm.diskBytes } });
  }
  let best: { n: number; d: Resources } | undefined;
  for (const c of counts.values()) if (!best || c.n > best.n) best = c;
  return best?.d;
}

/**
 * Fragmentation: the share of free capacity on up hosts that cannot host `request` (by default the
 * most common instance type), measured in the request's dominant resource (the one it takes the
 * largest share of cluster capacity in). Per host, free capacity beyond whole copies of the request
 * is stranded. 0 when nothing is free or no request is known; 1 when nothing free is usable.
 */
export function fragmentationOf(m: ClusterModel, request?: Resources): number {
  const d = request ?? mostCommonDemand(m);
  if (!d) return 0;
  let capC = 0, capM = 0, capD = 0;
  for (let h = 0; h < m.size; h++) {
    if (m.state[h] !== STATE_UP) continue;
    capC += m.capCpu[h]!; capM += m.capMem[h]!; capD += m.capDisk[h]!;
  }
  const shares = [capC > 0 ? d.cpus / capC : 0, capM > 0 ? d.memoryBytes / capM : 0, capD > 0 ? d.diskBytes / capD : 0];
  const r = shares.indexOf(Math.max(...shares));
  const dr = r === 0 ? d.cpus : r === 1 ? d.memoryBytes : d.diskBytes;
  if (!(dr > 0)) return 0;
  let free = 0, usable = 0;
  for (let h = 0; h < m.size; h++) {
    if (m.state[h] !== STATE_UP) continue;
    const fc = Math.max(0, m.capCpu[h]! - m.usedCpu[h]!), fm = Math.max(0, m.capMem[h]! - m.usedMem[h]!), fd = Math.max(0, m.capDisk[h]! - m.usedDisk[h]!);
    let k = Infinity;
    if (d.cpus > 0) k = Math.min(k, Math.floor(fc / d.cpus + 1e-9));
    if (d.memoryBytes > 0) k = Math.min(k, Math.floor(fm / d.memoryBytes + 1e-9));
    if (d.diskBytes > 0) k = Math.min(k, Math.floor(fd / d.diskBytes + 1e-9));
    const fr = r === 0 ? fc : r === 1 ? fm : fd;
    free += fr;
    usable += Math.min(fr, k * dr);
  }
  return free > 0 ? 1 - usable / free : 0;
}

/**
 * Lower bound on hosts needed for the VMs placed: per resource, total demand ÷ the largest host's
 * effective capacity, rounded up; the maximum over resources.
 */
export function lowerBoundOf(m: ClusterModel): number {
  let dc = 0, dm = 0, dd = 0;
  for (const vm of m.vms.values()) { dc += vm.cpus; dm += vm.memoryBytes; dd += vm.diskBytes; }
  let cc = 0, cm = 0, cd = 0;
  for (let h = 0; h < m.size; h++) {
    if (m.state[h] === 0) continue;
    cc = Math.max(cc, m.capCpu[h]!); cm = Math.max(cm, m.capMem[h]!); cd = Math.max(cd, m.capDisk[h]!);
  }
  const q = (d: number, c: number): number => (d > 0 ? (c > 0 ? Math.ceil(d / c - 1e-9) : Infinity) : 0);
  return Math.max(q(dc, cc), q(dm, cm), q(dd, cd));
}
