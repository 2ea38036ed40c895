// `pnpm bench placement [--quick] [--json] [--svg PATH] [--trace-out DIR] [--trace FILE] [--hosts N,N]
// [--seed N]`: replays seeded request traces (or a trace file, docs/placement.md) over clusters of
// 100, 1,000 and 10,000 hosts for each strategy and compares acceptance, hosts used vs the lower
// bound, fragmentation, energy, consolidation and decision speed.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  STRATEGIES, Scheduler, generateTrace, readTraceFile, replayTrace, sortDecreasing, uniformHosts, writeTraceFile,
} from '@ferry/placement';
import type { ReplayReport, Resources, StrategyName, Trace } from '@ferry/placement';
import { PLACEMENT_CHART_TITLE, chartRowsOf, placementChartSvg } from './placement-svg.ts';

const GIB = 1024 ** 3;
/** Every simulated host: 16 cores (64 vCPUs at 4.0), 64 GiB, 1 TiB. */
const HOST_CAPACITY: Resources = { cpus: 16, memoryBytes: 64 * GIB, diskBytes: 1024 * GIB };
/** Host capacity after Nova's default overcommit (cpu 4.0): what request sizes are measured against. */
const EFFECTIVE_CAPACITY: Resources = { ...HOST_CAPACITY, cpus: HOST_CAPACITY.cpus * 4 };
/** VMs of the default mix one host holds at full memory (mean 4.6 GiB each). */
const VMS_PER_HOST = 13.9;
/** Offered load of the dynamic trace, as a share of the cluster's memory (over 1: some requests must fail). */
const OFFERED_LOAD = 1.05;
/** Load of the static trace (everything fits). */
const STATIC_LOAD = 0.85;
const DEFAULT_SEED = 20261124;

/** One row of the report. */
interface Row {
  strategy: string;
  hosts: number;
  trace: 'dynamic' | 'static-sorted';
  decisions: number;
  acceptanceRate: number;
  hostsUsed: number;
  lowerBound: number;
  hostsOverLowerBound: number;
  fragmentation: number;
  energyKwh: number;
  decisionsPerSec: number;
  p99DecisionMs: number;
  staticHostsUsed?: number;
  staticLowerBound?: number;
  /** After 40% of the VMs leave: hosts in use and the lower bound, before consolidation. */
  nightHostsUsed?: number;
  nightLowerBound?: number;
  consolidationMigrations?: number;
  consolidationCostGib?: number;
  hostsAfterConsolidation?: number;
  consolidationMs?: number;
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/**
 * Mean lifetime that leaves `target` VMs alive after `arrivals` arrivals one second apart on
 * average: solves L·(1 − e^(−T/L)) = target for L by bisection (T = arrivals).
 */
function lifetimeFor(arrivals: number, target: number): number {
  let lo = 1e-3, hi = 1e3; // x = T / L
  for (let i = 0; i < 100; i++) {
    const x = (lo + hi) / 2;
    if ((arrivals * (1 - Math.exp(-x))) / x > target) lo = x; else hi = x;
  }
  return arrivals / ((lo + hi) / 2);
}

function traces(hosts: number, quick: boolean, seed: number): { dynamic: Trace; static: Trace } {
  const population = Math.round(hosts * VMS_PER_HOST * OFFERED_LOAD);
  const arrivals = Math.round(population * (quick || hosts >= 10_000 ? 1.5 : 2));
  return {
    dynamic: generateTrace({ seed: seed + hosts, arrivals, meanLifetimeSec: lifetimeFor(arrivals, population), groupShare: 0.05 }),
    static: generateTrace({ seed: seed + 7 * hosts, arrivals: Math.round(hosts * VMS_PER_HOST * STATIC_LOAD) }),
  };
}

function usage(message: string): never {
  process.stderr.write(`bench placement: ${message}\nusage: pnpm bench placement [--quick] [--json] [--svg PATH] [--trace-out DIR] [--trace FILE] [--hosts N,N] [--seed N]\n`);
  process.exit(2);
}

function cliNumber(args: string[], name: string): number | undefined {
  const raw = flag(args, name);
  if (!args.includes(name)) return undefined;
  const v = Number(raw);
  if (raw === undefined || !Number.isInteger(v) || v < 0) usage(`${name} needs a whole number, got ${raw ?? 'nothing'}`);
  return v;
}

const now = (): number => performance.now();

function run(strategy: StrategyName, hosts: number, trace: Trace): { s: Scheduler; r: ReplayReport } {
  const s = new Scheduler(uniformHosts(hosts, HOST_CAPACITY), [], { strategy });
  return { s, r: replayTrace(s, trace, { nowMs: now }) };
}

function fmt(x: number | undefined, digits = 0): string {
  return x === undefined ? '-' : x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Entry point (see the header comment). */
export async function main(args: string[]): Promise<void> {
  const quick = args.includes('--quick');
  const json = args.includes('--json');
  const svgPath = flag(args, '--svg') ?? 'bench-out/placement.svg';
  const traceDir = flag(args, '--trace-out');
  const seed = cliNumber(args, '--seed') ?? DEFAULT_SEED;
  const hostsFlag = flag(args, '--hosts');
  const sizes = hostsFlag !== undefined
    ? hostsFlag.split(',').map((x) => { const n = Number(x); if (!Number.isInteger(n) || n < 1) usage(`--hosts takes sizes like 100,1000, got ${hostsFlag}`); return n; })
    : quick ? [100, 1000] : [100, 1000, 10_000];
  const tracePath = flag(args, '--trace');
  if (args.includes('--trace') && tracePath === undefined) usage('--trace needs a trace file');
  // A trace file (format in docs/placement.md) replaces the generated churn trace at every size.
  let fileTrace: Trace | undefined;
  if (tracePath !== undefined) {
    try { fileTrace = readTraceFile(tracePath); } catch (err) { usage(`cannot use ${tracePath}: ${(err as Error).message}`); }
  }
  const rows: Row[] = [];
  const started = now();
  for (const hosts of sizes) {
    const generated = traces(hosts, quick, seed);
    const t = { dynamic: fileTrace ?? generated.dynamic, static: generated.static };
    if (traceDir) {
      mkdirSync(traceDir, { recursive: true });
      writeTraceFile(join(traceDir, `dynamic-${hosts}.trace`), t.dynamic);
      writeTraceFile(join(traceDir, `static-${hosts}.trace`), t.static);
    }
    for (const strategy of STRATEGIES) {
      const { s, r } = run(strategy, hosts, t.dynamic);
      // Night: 40% of the VMs leave at once (every VM whose number ends in 0-3, or every 10th
      // to 10th+3rd in placement order for ids without a number), then consolidate.
      s.vms().forEach((vm, i) => {
        const n = /(\d+)$/.exec(vm.vmId);
        if ((n ? Number(n[1]) : i) % 10 < 4) s.release(vm.vmId);
      });
      const nightHostsUsed = s.hostsUsed(), nightLowerBound = s.lowerBound();
      const c0 = now();
      const plan = s.planConsolidation();
      const consolidationMs = now() - c0;
      const st = run(strategy, hosts, t.static).r;
      rows.push({
        strategy, hosts, trace: 'dynamic', decisions: r.decisions, acceptanceRate: r.acceptanceRate,
        hostsUsed: r.hostsUsed, lowerBound: r.lowerBound, hostsOverLowerBound: r.hostsUsed / r.lowerBound,
        fragmentation: r.fragmentation, energyKwh: r.energyKwh, decisionsPerSec: r.decisionsPerSec, p99DecisionMs: r.p99DecisionMs,
        ...(st ? { staticHostsUsed: st.hostsUsed, staticLowerBound: st.lowerBound } : {}),
        nightHostsUsed, nightLowerBound, consolidationMigrations: plan.migrations.length, consolidationCostGib: plan.costBytes / GIB,
        hostsAfterConsolidation: plan.hostsAfter, consolidationMs,
      });
    }
    // Offline best-fit decreasing on the static trace: the 11/9 target.
    const sorted = sortDecreasing(t.static, EFFECTIVE_CAPACITY);
    const { s, r } = run('best-fit', hosts, sorted);
    const durationSec = t.static.events.at(-1)?.timeSec ?? 0;
    rows.push({
      strategy: 'best-fit-decreasing', hosts, trace: 'static-sorted', decisions: r.decisions, acceptanceRate: r.acceptanceRate,
      hostsUsed: r.hostsUsed, lowerBound: r.lowerBound, hostsOverLowerBound: r.hostsUsed / r.lowerBound,
      fragmentation: r.fragmentation,
      // Sorted replay has no real timeline: energy of the final packing over the static trace's duration.
      energyKwh: s.energy(durationSec).kwh,
      decisionsPerSec: r.decisionsPerSec, p99DecisionMs: r.p99DecisionMs,
    });
  }
  const wallSec = (now() - started) / 1000;
  const at1000 = rows.filter((x) => x.hosts === 1000 && x.trace === 'dynamic');
  const at10k = rows.filter((x) => x.hosts === 10_000 && x.trace === 'dynamic');
  const bfd = rows.filter((x) => x.strategy === 'best-fit-decreasing');
  const targets = {
    minDecisionsPerSecAt1000Hosts: at1000.length ? Math.min(...at1000.map((x) => x.decisionsPerSec)) : null,
    decisionsPerSecAt1000HostsOk: at1000.length ? at1000.every((x) => x.decisionsPerSec >= 50_000) : null,
    maxP99DecisionMsAt10000Hosts: at10k.length ? Math.max(...at10k.map((x) => x.p99DecisionMs)) : null,
    p99At10000HostsOk: at10k.length ? at10k.every((x) => x.p99DecisionMs < 1) : null,
    worstBfdHostsOverLowerBound: Math.max(...bfd.map((x) => x.hostsOverLowerBound)),
    bfdWithin11Over9: bfd.every((x) => x.hostsUsed <= (11 / 9) * x.lowerBound),
  };
  mkdirSync(dirname(svgPath), { recursive: true });
  writeFileSync(svgPath, placementChartSvg(chartRowsOf(rows), PLACEMENT_CHART_TITLE));
  const results = rows.map((x) => ({ ...x }));
  if (json) {
    process.stdout.write(JSON.stringify({
      bench: 'placement', quick, seed, trace: tracePath ?? 'generated', hostCapacity: HOST_CAPACITY, offeredLoad: OFFERED_LOAD, staticLoad: STATIC_LOAD,
      svg: svgPath, wallSec, targets, results,
    }) + '\n');
    return;
  }
  const head = ['strategy', 'hosts', 'accept', 'used', 'LB', 'used/LB', 'frag', 'kWh', 'dec/s', 'p99 ms', 'static used/LB', 'night used/LB', 'consol migr', 'after', 'consol ms'];
  const table = rows.map((x) => [
    x.strategy, fmt(x.hosts), `${(x.acceptanceRate * 100).toFixed(2)}%`, fmt(x.hostsUsed), fmt(x.lowerBound), x.hostsOverLowerBound.toFixed(3),
    x.fragmentation.toFixed(3), fmt(x.energyKwh), fmt(x.decisionsPerSec), x.p99DecisionMs.toFixed(3),
    x.staticHostsUsed !== undefined ? `${x.staticHostsUsed}/${x.staticLowerBound}` : '-',
    x.nightHostsUsed !== undefined ? `${x.nightHostsUsed}/${x.nightLowerBound}` : '-',
    fmt(x.consolidationMigrations), fmt(x.hostsAfterConsolidation), fmt(x.consolidationMs),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  process.stdout.write(line(head) + '\n' + table.map(line).join('\n') + '\n');
  process.stdout.write(`\ntrace: ${tracePath ?? `generated, seed ${seed}`}\ntargets: ${JSON.stringify(targets)}\nchart: ${svgPath}; wall ${wallSec.toFixed(1)} s\n`);
}

