// The lab's multi-process driver: a lab coordinator and two real agent processes on loopback
// (scripts/bench/migrate-cluster.ts), VMs created on the source agent with an exact spec, migrated
// through the coordinator's API (the agents stream pages peer to peer), and a client probing the
// VM through both agents' `/probe` WebSockets every millisecond (apps/agent/src/probe.ts).
//
// What crosses the API decides what is measured here: the hypervisor downtime, rounds, bytes and
// stop reason come from the coordinator's migration report, the policy (Xen's rate limiting too)
// goes in the migrate request, and the timeline comes from the migration's `timeline` (round times
// on the source's clock, ready / commit / activation stamped by the coordinator); the guest figure
// is the largest jump of the guest's own heartbeat between consecutive probe replies (its step gap
// plus at most one time slice). WWS sampling (no lab route for it) runs in-process.
import { fileURLToPath } from 'node:url';
import { ProbeRecorder, probeDowntimes, timelinePhases, type LabPhase, type LabRound, type LabRun } from '@ferry/lab';
import type { Migration, MigrationReport, VmSpecWire } from '@ferry/protocol';
import type { WwsSampling } from '@ferry/vm';
import type { LabDriver } from './lab-driver.ts';
import type { LabCellSpec } from './lab-matrix.ts';
import { LAB_INNER_KINDS } from './lab-workload.ts';
import { startMigrationCluster, type MigrationCluster } from './migrate-cluster.ts';

const PROBE_INTERVAL_MS = 1;
const WORKLOAD_MODULE = fileURLToPath(new URL('./lab-workload.ts', import.meta.url));
const HOSTS = ['h1', 'h2'] as const;

/** The extra fields the coordinator's report carries beyond the API's MigrationReport. */
type FullReport = MigrationReport & { readonly pausedAtMs?: number; readonly stopReason?: string; readonly finalThrottlePercent?: number; readonly pageBytesSent?: number; readonly switchoverMs?: number };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const now = (): number => performance.timeOrigin + performance.now();

/** The VM spec a cell boots in an agent: the lab workload module filling memory, then the cell's built-in workload. */
export function agentSpec(cell: LabCellSpec, id: string): VmSpecWire {
  const w = cell.workload.spec;
  const inner = LAB_INNER_KINDS.indexOf(w.kind as (typeof LAB_INNER_KINDS)[number]);
  if (inner < 0) throw new Error(`lab workload ${w.kind} cannot run in an agent`);
  return {
    id,
    name: id,
    vcpus: cell.vcpus,
    memoryBytes: cell.vmBytes,
    workload: { kind: 'module', modulePath: WORKLOAD_MODULE, seed: w.seed ?? 1, rate: w.rate ?? 0, params: { ...(w.params ?? {}), inner, fill: cell.fillFraction } },
  };
}

/** Runs lab cells between two agent processes; `fallback` samples writable working sets. */
export class AgentsDriver implements LabDriver {
  readonly mode = 'multi-process' as const;
  readonly probeIntervalMs = PROBE_INTERVAL_MS;
  private seq = 0;
  private next = 0;

  private constructor(
    private readonly cluster: MigrationCluster,
    private readonly probe: ProbeRecorder,
    readonly fallback: LabDriver,
  ) {}

  /** Starts a lab coordinator, two agents (one pCPU each) and the probing client. */
  static async start(fallback: LabDriver, agentMemory = '16GiB'): Promise<AgentsDriver> {
    // Generous failure detection: filling and streaming GiBs on a loaded 2-core machine can stall
    // an agent's event loop for longer than the 600 ms the test clusters use.
    const cluster = await startMigrationCluster({ agents: [...HOSTS], agentMemory, pcpus: 1, heartbeatIntervalMs: 1000, failureTimeoutMs: 15_000 });
    try {
      const urls = HOSTS.map((h) => {
        const u = new URL(cluster.agent(h).migrationAddress);
        u.pathname = '/probe';
        return u.toString();
      });
      // Each agent keeps a small resident VM for the whole lab (1 MiB, idle at 10 steps/s): its
      // vCPU pool is then started before anything is measured and never recycled between runs
      // (an agent replaces its pool when its last VM leaves, and a destination would otherwise
      // pay a worker start inside the downtime).
      // It runs the lab's workload module so the pool's worker has loaded it too (a first load
      // would otherwise land inside a measured activation).
      for (const h of HOSTS) {
        const id = `lab-anchor-${h}`;
        await cluster.createVm(h, { id, name: id, vcpus: 1, memoryBytes: 1 << 20, workload: { kind: 'module', modulePath: WORKLOAD_MODULE, rate: 10, params: { inner: 0, fill: 0 } } });
      }
      // One unmeasured migration each way: first-time costs (code paths, JIT) stay out of the figures.
      const warm = 'lab-warmup';
      await cluster.createVm('h1', { id: warm, name: warm, vcpus: 1, memoryBytes: 16 << 20, workload: { kind: 'module', modulePath: WORKLOAD_MODULE, rate: 1000, params: { inner: 2, fill: 1, hotsetPages: 256 } } });
      for (const to of ['h2', 'h1']) await cluster.waitMigration((await cluster.migrate(warm, { to })).id);
      for (const action of ['stop', 'delete']) await cluster.api('POST', `/api/v1/lab/vms/${warm}/action`, { action }).catch(() => {});
      const probe = await ProbeRecorder.start({ urls, token: cluster.token, intervalMs: PROBE_INTERVAL_MS });
      return new AgentsDriver(cluster, probe, fallback);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  async runOnce(cell: LabCellSpec): Promise<LabRun> {
    const id = `lab-${process.pid}-${++this.seq}`;
    // Alternate the direction so neither agent accumulates work.
    const from = HOSTS[this.next % 2]!;
    const to = HOSTS[(this.next + 1) % 2]!;
    this.next++;
    await this.cluster.createVm(from, agentSpec(cell, id));
    try {
      // The guest fills its memory on its first attach, before its first step: for big VMs (whose
      // fill outlasts the warm-up) wait for the first step, read live through the digest route.
      const fillDeadline = Date.now() + 120_000;
      while (cell.vmBytes >= 512 * 2 ** 20 && Date.now() < fillDeadline) {
        if ((await this.cluster.digest(id)).totalSteps > 0) break;
        await sleep(100);
      }
      await sleep(cell.warmMs);
      this.probe.begin(id, HOSTS.indexOf(from));
      await sleep(20);
      const startMs = now();
      const started = await this.cluster.migrate(id, { to, policy: cell.policy.sender });
      let m = await this.cluster.waitMigration(started.id);
      if (m.state !== 'completed' || !m.report) throw new Error(`lab migration ${m.id} ${m.state}: ${m.error?.message ?? 'no report'}`);
      const endMs = now();
      await sleep(50);
      const probe = await this.probe.end();
      // The destination's report (the activation stamp) may trail the source's.
      for (let i = 0; i < 20 && m.timeline && m.timeline.activatedMs === undefined; i++) {
        await sleep(25);
        m = await this.cluster.api<Migration>('GET', `/api/v1/migrations/${encodeURIComponent(m.id)}`);
      }
      const d = probeDowntimes(probe, startMs, endMs + 40);
      return runFromApi(m, m.report as FullReport, { client: d.clientMs, guest: d.guestMs, latency: d.latencyMs });
    } finally {
      // Stop and delete: a stopped VM still holds its host's memory reservation.
      for (const action of ['stop', 'delete']) await this.cluster.api('POST', `/api/v1/lab/vms/${encodeURIComponent(id)}/action`, { action }).catch(() => {});
    }
  }

  sampleWws(cell: LabCellSpec, samples: number, intervalMs: number): Promise<WwsSampling> {
    return this.fallback.sampleWws(cell, samples, intervalMs);
  }

  async close(): Promise<void> {
    await this.probe.close();
    await this.cluster.stop();
    await this.fallback.close();
  }
}

/** A LabRun from the coordinator's migration: figures from its report, round durations and phases from its timeline. */
function runFromApi(m: Migration, r: FullReport, measured: { client: number | undefined; guest: number; latency: number | undefined }): LabRun {
  if (!m.timeline) throw new Error(`migration ${m.id} has no timeline (a coordinator from before timelines?)`);
  const times = new Map(m.timeline.rounds.map((x) => [x.round, x]));
  const rounds: LabRound[] = m.rounds.map((s) => {
    const t = times.get(s.round);
    return {
      round: s.round,
      final: t?.final ?? false,
      durationMs: t ? t.endMs - t.startMs : 0,
      pagesSent: s.pagesSent,
      bytesSent: s.bytesSent,
      dirtyPages: s.dirtyPages,
      pagesRedirtied: 0,
      throttlePercent: s.throttlePercent,
      bandwidthBytesPerSec: s.bandwidthBytesPerSec,
    };
  });
  const pre = rounds.filter((x) => !x.final);
  const precopyMs = pre.reduce((a, x) => a + x.durationMs, 0);
  const preBytes = pre.reduce((a, x) => a + x.bytesSent, 0);
  const dirtyPre = pre.reduce((a, x) => a + x.dirtyPages, 0);
  const phases: LabPhase[] = timelinePhases(m.timeline);
  return {
    hypervisorDowntimeMs: r.downtimeMs,
    guestDowntimeMs: measured.guest,
    clientDowntimeMs: measured.client,
    totalMs: r.totalMs,
    setupMs: r.setupMs,
    ...(r.switchoverMs !== undefined ? { switchoverMs: r.switchoverMs } : {}),
    rounds: r.rounds,
    stopReason: r.stopReason ?? 'unknown',
    bytesOnWire: r.bytesOnWire,
    vmBytes: r.vmBytes,
    nonZeroBytes: r.vmBytes - r.zeroPagesSkipped * 4096,
    zeroPagesSkipped: r.zeroPagesSkipped,
    finalThrottlePercent: r.finalThrottlePercent ?? 0,
    digestVerified: r.digestVerified,
    bandwidthBytesPerSec: precopyMs > 0 ? preBytes / (precopyMs / 1000) : 0,
    dirtyRatePagesPerSec: precopyMs > 0 ? dirtyPre / (precopyMs / 1000) : 0,
    roundStats: rounds,
    phases,
    ...(measured.latency !== undefined ? { probeLatencyMs: measured.latency } : {}),
  };
}
