// `pnpm bench migrate [--json] [--quick] [--runs N] [--case NAME]…`: live migration between real agent processes
// on loopback (a lab coordinator and two agents, migrate-cluster.ts), with the raw TCP and ws
// ceilings re-measured in the same run at the migration's frame size (1 MiB; ws in the migration
// stream's direction: client→server, zero mask, raw frames).
//
// Cases (1 GiB; --quick: 64 MiB and fewer runs, under a minute):
// - idle-full-1g: every page non-zero (a scan with a step limit of one pass), then idle → bandwidth.
// - idle-zero-1g: idle, mostly zero pages → the zero-page path.
// - hotset-1g: 32 MiB hot set, ~10,000 page writes/s, 10 migrations → downtime.
// - scan-autoconverge / scan-no-autoconverge: a scan at full speed over a link limited to 256 MiB/s
//   (dirtying outpaces sending): with autoConverge the vCPUs are throttled until it converges;
//   without, it stops at maxRounds (10) and reports the larger downtime.
// `--case NAME` (repeatable) runs only the named cases, e.g. `--case idle-full-1g`.
// Each case reports downtime (source pause → destination resume), total time, bandwidth, bytes on
// the wire vs the VM's non-zero bytes, rounds, digest verification, total time ÷ one copy of the VM and of its
// non-zero bytes at the measured bandwidth, and both agents' peak RSS (also as growth over their idle RSS ÷ VM size).
import { readFileSync } from 'node:fs';
import type { Migration, MigrationPolicy, VmSpecWire } from '@ferry/protocol';
import { measureTcpCeiling, measureWsCeiling } from '@ferry/transport';
import { startMigrationCluster, type MigrationCluster } from './migrate-cluster.ts';

const MiB = 2 ** 20;
/** The sender's MIN_BANDWIDTH_SAMPLE_BYTES: smaller rounds report its assumed bandwidth, not a measurement. */
const MEASURABLE_ROUND_BYTES = 4 * MiB;
const GiB = 2 ** 30;
const PAGE = 4096;

/** One bench case. */
export interface MigrateCase {
  readonly name: string;
  readonly vmBytes: number;
  readonly spec: Omit<VmSpecWire, 'id' | 'memoryBytes'>;
  readonly policy: Partial<MigrationPolicy>;
  readonly runs: number;
  /** Wait for this many total guest steps before the first migration (fill). */
  readonly fillSteps?: number;
}

/** Result of one case (the `--json` shape of `cases[]`). */
export interface MigrateCaseResult {
  readonly name: string;
  readonly vmBytes: number;
  readonly workload: Record<string, unknown>;
  readonly runs: number;
  readonly downtimeMs: { median: number; max: number };
  readonly totalMs: { median: number; max: number };
  /** Round 1's page bandwidth (median over runs); null when round 1 sent too little to measure (the sender then only assumes one). */
  readonly bandwidthBytesPerSec: number | null;
  readonly bytesOnWire: number;
  readonly nonZeroBytes: number;
  readonly rounds: number;
  readonly digestVerified: boolean;
  readonly stopReasons: string[];
  readonly finalThrottlePercent: number;
  readonly agentRssMaxBytes: number;
  /**
   * Median total time ÷ the time of one copy at the case's bandwidth: of the whole VM (`vm`, what
   * a plain stop-and-copy would move) and of its non-zero bytes (`nonZero`, what round 1 moves).
   * Null without a measured bandwidth.
   */
  readonly totalOverOneCopy: { vm: number; nonZero: number } | null;
  /** Largest growth of one agent's RSS over its idle RSS before the case (what hosting and migrating the VM cost, without the idle agent's own ~77 MiB). */
  readonly agentRssOverIdleMaxBytes: number;
  readonly failures: number;
}

/** The cases at full or quick size. */
export function migrateCases(quick: boolean, runsOverride?: number): MigrateCase[] {
  const size = quick ? 64 * MiB : GiB;
  const pages = size / PAGE;
  const hotsetPages = quick ? 2048 : 8192; // 8 MiB quick, 32 MiB full
  const scanBytes = quick ? 64 * MiB : 256 * MiB;
  const r = (n: number): number => runsOverride ?? n;
  return [
    { name: quick ? 'idle-full-64m' : 'idle-full-1g', vmBytes: size, spec: { name: 'idle-full', vcpus: 1, workload: { kind: 'scan', seed: 1, rate: 0 }, stepLimit: pages - 2 }, policy: {}, runs: r(quick ? 2 : 5), fillSteps: pages - 2 },
    { name: quick ? 'idle-zero-64m' : 'idle-zero-1g', vmBytes: size, spec: { name: 'idle-zero', vcpus: 1, workload: { kind: 'idle', seed: 1 } }, policy: {}, runs: r(quick ? 2 : 3) },
    {
      name: quick ? 'hotset-64m' : 'hotset-1g',
      vmBytes: size,
      spec: { name: 'hotset', vcpus: 1, workload: { kind: 'hotset', seed: 5, rate: 10_000, params: { hotsetPages, hotPercent: 100 } } },
      policy: { maxDowntimeMs: 10 },
      runs: r(quick ? 3 : 10),
      fillSteps: quick ? 10_000 : 40_000,
    },
    // The scan has made one pass over its memory before the first migration, so that every run
    // starts with the guest at full speed (right after boot the first one could converge).
    { name: 'scan-autoconverge', vmBytes: scanBytes, spec: { name: 'scan', vcpus: 1, workload: { kind: 'scan', seed: 9, rate: 0 } }, policy: { autoConverge: true, maxRounds: 30, maxDowntimeMs: 50, bandwidthLimit: 256 * MiB }, runs: r(quick ? 1 : 2), fillSteps: scanBytes / PAGE },
    { name: 'scan-no-autoconverge', vmBytes: scanBytes, spec: { name: 'scan', vcpus: 1, workload: { kind: 'scan', seed: 9, rate: 0 } }, policy: { autoConverge: false, maxRounds: 10, maxDowntimeMs: 50, bandwidthLimit: 256 * MiB }, runs: r(quick ? 1 : 2), fillSteps: scanBytes / PAGE },
  ];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Resident set size of a process (Linux /proc), bytes; 0 if unknown. */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Runs one case on a running cluster of agents h1 and h2: the VM hops back and forth. */
export async function runCase(cluster: MigrationCluster, c: MigrateCase, log: (line: string) => void = () => {}): Promise<MigrateCaseResult> {
  const vmId = `vm-${c.name}`;
  const idleRss = new Map(cluster.agents().map((a) => [a.pid, rssBytes(a.pid)]));
  await cluster.createVm('h1', { ...c.spec, id: vmId, memoryBytes: c.vmBytes });
  if (c.fillSteps !== undefined) {
    const start = Date.now();
    while ((await cluster.steps(vmId)) < c.fillSteps && Date.now() - start < 120_000) await new Promise((r) => setTimeout(r, 100));
  }
  const done: Migration[] = [];
  let rssMax = 0;
  let rssOverIdleMax = 0;
  let at = 'h1';
  let failures = 0;
  for (let i = 0; i < c.runs; i++) {
    const to = at === 'h1' ? 'h2' : 'h1';
    let m: Migration;
    try {
      m = await cluster.migrate(vmId, { to, policy: c.policy });
    } catch (err) {
      failures++;
      log(`  ${c.name} run ${i + 1}: refused: ${(err as Error).message}`);
      break;
    }
    const pids = cluster.agents().map((a) => a.pid);
    const sampler = setInterval(() => {
      for (const pid of pids) {
        const rss = rssBytes(pid);
        rssMax = Math.max(rssMax, rss);
        rssOverIdleMax = Math.max(rssOverIdleMax, rss - (idleRss.get(pid) ?? rss));
      }
    }, 25);
    let final: Migration;
    try {
      final = await cluster.waitMigration(m.id, 300_000);
    } finally {
      clearInterval(sampler);
    }
    if (final.state !== 'completed') {
      failures++;
      log(`  ${c.name} run ${i + 1}: ${final.state} ${final.error?.message ?? ''}`);
      continue;
    }
    done.push(final);
    at = to;
    log(`  ${c.name} run ${i + 1}: downtime ${final.report?.downtimeMs.toFixed(2)} ms, total ${final.report?.totalMs.toFixed(0)} ms, rounds ${final.report?.rounds}`);
    await new Promise((r) => setTimeout(r, 300)); // a heartbeat: the registry sees the new host
  }
  await cluster.api('POST', `/api/v1/lab/vms/${vmId}/action`, { action: 'delete' }).catch(() => {});
  const reports = done.map((m) => m.report!).filter(Boolean);
  const first = done[0];
  // The VM's non-zero bytes: every page round 1 did not skip as zero or never written. (Round 1's
  // pagesSent is less by the pages it left for round 2 because the guest dirtied them again first.)
  const nonZeroBytes = first?.report ? first.report.vmBytes - first.report.zeroPagesSkipped * PAGE : 0;
  const detail = reports as unknown as { pageBytesSent: number; totalMs: number; stopReason: string; finalThrottlePercent: number }[];
  // The sender measures a round's bandwidth only from 4 MiB up; below that the figure is its assumption.
  const bandwidths = done.flatMap((m) => (m.rounds[0] && m.rounds[0].bytesSent >= MEASURABLE_ROUND_BYTES ? [m.rounds[0].bandwidthBytesPerSec] : []));
  const bandwidth = bandwidths.length > 0 ? median(bandwidths) : null;
  const totalMedian = median(reports.map((r) => r.totalMs));
  return {
    name: c.name,
    vmBytes: c.vmBytes,
    workload: { ...c.spec.workload },
    runs: done.length,
    downtimeMs: { median: median(reports.map((r) => r.downtimeMs)), max: Math.max(...reports.map((r) => r.downtimeMs)) },
    totalMs: { median: totalMedian, max: Math.max(...reports.map((r) => r.totalMs)) },
    bandwidthBytesPerSec: bandwidth,
    bytesOnWire: median(reports.map((r) => r.bytesOnWire)),
    nonZeroBytes,
    rounds: median(reports.map((r) => r.rounds)),
    digestVerified: reports.length > 0 && reports.every((r) => r.digestVerified),
    totalOverOneCopy: bandwidth === null ? null : { vm: totalMedian / ((c.vmBytes / bandwidth) * 1000), nonZero: totalMedian / ((nonZeroBytes / bandwidth) * 1000) },
    stopReasons: [...new Set(detail.map((d) => d.stopReason))],
    finalThrottlePercent: Math.max(0, ...detail.map((d) => d.finalThrottlePercent)),
    agentRssMaxBytes: rssMax,
    agentRssOverIdleMaxBytes: rssOverIdleMax,
    failures,
  };
}

const fmtB = (b: number): string => (b >= GiB ? `${(b / GiB).toFixed(2)} GiB` : `${(b / MiB).toFixed(1)} MiB`);
const fmtR = (b: number): string => `${(b / 1e9).toFixed(2)} GB/s`;

/** The table printed by default. */
export function migrateTable(result: { ceiling: { tcpBytesPerSec: number; wsBytesPerSec: number }; cases: MigrateCaseResult[] }): string {
  const rows = [['case', 'vm', 'runs', 'downtime med/max ms', 'total med/max ms', 'total ÷ copy (VM / non-zero)', 'bandwidth', '% ws', 'wire / non-zero', 'rounds', 'stop', 'verified', 'agent RSS max (÷ VM)', 'over idle / VM']];
  for (const c of result.cases) {
    rows.push([
      c.name,
      fmtB(c.vmBytes),
      `${c.runs}${c.failures ? ` (+${c.failures} failed)` : ''}`,
      `${c.downtimeMs.median.toFixed(2)} / ${c.downtimeMs.max.toFixed(2)}`,
      `${c.totalMs.median.toFixed(0)} / ${c.totalMs.max.toFixed(0)}`,
      c.totalOverOneCopy === null ? '-' : `${c.totalOverOneCopy.vm.toFixed(2)}× / ${c.totalOverOneCopy.nonZero.toFixed(2)}×`,
      c.bandwidthBytesPerSec === null ? '-' : fmtR(c.bandwidthBytesPerSec),
      c.bandwidthBytesPerSec === null ? '-' : `${((100 * c.bandwidthBytesPerSec) / result.ceiling.wsBytesPerSec).toFixed(0)}%`,
      `${fmtB(c.bytesOnWire)} / ${fmtB(c.nonZeroBytes)}`,
      String(c.rounds),
      c.stopReasons.join(','),
      String(c.digestVerified),
      `${fmtB(c.agentRssMaxBytes)} (${(c.agentRssMaxBytes / c.vmBytes).toFixed(3)}×)`,
      `${(c.agentRssOverIdleMaxBytes / c.vmBytes).toFixed(3)}×`,
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  '));
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return `ceiling (1 MiB frames, two processes): raw TCP ${fmtR(result.ceiling.tcpBytesPerSec)}, ws client→server zero-mask ${fmtR(result.ceiling.wsBytesPerSec)}\n${lines.join('\n')}\n`;
}

/** Entry point of `pnpm bench migrate`. */
export async function main(args: string[]): Promise<void> {
  const json = args.includes('--json');
  const quick = args.includes('--quick');
  const runsAt = args.indexOf('--runs');
  const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : undefined;
  const only = args.flatMap((a, i) => (a === '--case' && args[i + 1] !== undefined ? [args[i + 1]!] : []));
  const selected = migrateCases(quick, runs).filter((c) => only.length === 0 || only.includes(c.name));
  if (selected.length === 0) throw new Error(`no case named ${only.join(', ')}; cases: ${migrateCases(quick).map((c) => c.name).join(', ')}`);
  const log = (line: string): void => void process.stderr.write(line + '\n');
  const ceilingBytes = quick ? 256 * MiB : GiB;
  log('measuring ceilings…');
  const tcp = await measureTcpCeiling({ bytes: ceilingBytes, frameBytes: MiB });
  const ws = await measureWsCeiling({ bytes: ceilingBytes, frameBytes: MiB, direction: 'client-to-server', mask: 'zero', sendMode: 'raw' });
  const ceiling = { tcpBytesPerSec: tcp.bytesPerSec, wsBytesPerSec: ws.bytesPerSec };
  const cases: MigrateCaseResult[] = [];
  for (const c of selected) {
    log(`case ${c.name}…`);
    // Fresh agents per case: memory an earlier case's VM left in an agent's pool (kept 30 s) would
    // count against this case's RSS. Generous failure detection: a loaded 2-core machine can delay
    // a heartbeat by a second.
    const cluster = await startMigrationCluster({ agents: ['h1', 'h2'], agentMemory: '8GiB', pcpus: 1, heartbeatIntervalMs: 500, failureTimeoutMs: 10_000 });
    try {
      cases.push(await runCase(cluster, c, log));
    } finally {
      await cluster.stop();
    }
  }
  const result = { ceiling, cases };
  if (json) process.stdout.write(JSON.stringify(result) + '\n');
  else process.stdout.write(migrateTable(result));
}
