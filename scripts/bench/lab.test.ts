import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { labJson, svgProblem, type LabReport } from '@ferry/lab';
import { runLab, writeCharts } from './lab.ts';
import { labMatrix } from './lab-matrix.ts';
import { resultsMarkdown } from './lab-results.ts';

// Bounds between the three downtime figures, from what each one spans:
// - hypervisor: h0 = the sender asks the source VM to pause, h1 = the destination's resume() returned.
// - guest: the largest gap between two of its time slices, g0 = the heartbeat stamped at the end of
//   the last slice before the gap, g1 = the start of the next. Around a migration the guest may run
//   until every vCPU has parked (g0 ≤ h0 + pauseMs) and starts on the destination before resume()
//   is acknowledged (g1 ≥ h1 − resumeMs), so guest ≥ hypervisor − pauseMs − resumeMs (both measured
//   in every run).
// - client: a host answers a probe only once the guest stamped a heartbeat newer than the probe
//   (the agents' probe semantics). No stamp falls inside the guest's gap, so no reply is earned in it
//   and the first reply after it comes after g1; the last one before it was earned by the stamp at
//   g0 and arrived at most probeLatencyMs later (the longest stamp → reply time measured in the run).
//   So client ≥ guest − probeLatencyMs.
describe('pnpm bench lab (tiny matrix, in-process)', () => {
  it('measures every cell three ways with consistent downtimes, and its outputs parse', async () => {
    const matrix = { ...labMatrix('tiny'), ceilingBytes: 16 * 1024 * 1024 };
    const report: LabReport = await runLab({ matrix });
    expect(report.mode).toBe('in-process');
    expect(report.notes.join(' ')).toMatch(/not multi-process/);
    expect(report.ceiling.tcpBytesPerSec).toBeGreaterThan(0);
    expect(report.ceiling.wsBytesPerSec).toBeGreaterThan(0);
    expect(report.cells).toHaveLength(matrix.cells.length);
    for (const cell of report.cells) {
      expect(cell.digestVerified).toBe(true);
      expect(cell.runs).toBe(2);
      for (const run of cell.all) {
        const where = `${cell.name}: ${JSON.stringify({ h: run.hypervisorDowntimeMs, g: run.guestDowntimeMs, c: run.clientDowntimeMs, p: run.pauseMs, r: run.resumeMs, l: run.probeLatencyMs })}`;
        expect(run.hypervisorDowntimeMs, where).toBeGreaterThan(0);
        expect(run.guestDowntimeMs, where).toBeGreaterThan(0);
        expect(run.clientDowntimeMs, where).toBeGreaterThan(0);
        expect(run.guestDowntimeMs, where).toBeGreaterThanOrEqual(run.hypervisorDowntimeMs - run.pauseMs! - run.resumeMs!);
        expect(run.clientDowntimeMs!, where).toBeGreaterThanOrEqual(run.guestDowntimeMs - run.probeLatencyMs!);
        expect(run.totalMs).toBeGreaterThan(run.hypervisorDowntimeMs);
        expect(run.bytesOnWire).toBeGreaterThanOrEqual(run.nonZeroBytes * 0.9);
        expect(run.phases.map((p) => p.name)).toEqual(expect.arrayContaining(['setup', 'pre-copy', 'stop-and-copy', 'commitment', 'activation']));
      }
      expect(cell.wws).toBeDefined();
      expect(cell.wws!.samples).toBe(matrix.wws.samples);
      expect(cell.wws!.predictedDowntimeMs).toBeGreaterThanOrEqual(0);
    }
    const idle = report.cells.find((c) => c.workload === 'idle')!;
    const hot = report.cells.find((c) => c.workload.startsWith('hotset'))!;
    expect(hot.wws!.wwsPages).toBeGreaterThan(idle.wws!.wwsPages); // the hot set is the larger working set

    const json = JSON.parse(JSON.stringify(labJson(report))) as { ceiling: Record<string, number>; cells: Record<string, unknown>[] };
    expect(Object.keys(json.ceiling).sort()).toEqual(['tcpBytesPerSec', 'wsBytesPerSec']);
    for (const c of json.cells) {
      for (const key of ['name', 'vmBytes', 'workload', 'runs', 'downtimeMs', 'totalMs', 'bandwidthBytesPerSec', 'bytesOnWire', 'nonZeroBytes', 'rounds', 'digestVerified']) expect(c, key).toHaveProperty(key);
      const d = c['downtimeMs'] as Record<string, { median: number; max: number }>;
      for (const k of ['hypervisor', 'guest', 'client']) {
        expect(d[k]!.median).toBeGreaterThan(0);
        expect(d[k]!.max).toBeGreaterThanOrEqual(d[k]!.median);
      }
    }

    const dir = await mkdtemp(join(tmpdir(), 'ferry-lab-'));
    try {
      const paths = writeCharts(report, dir);
      expect((await readdir(dir)).length).toBe(paths.length);
      expect(paths.map((p) => p.slice(dir.length + 1))).toEqual(expect.arrayContaining(['timeline.svg', 'downtime-vs-dirty-rate.svg', 'wws.svg']));
      for (const p of paths) expect(svgProblem(await readFile(p, 'utf8')), p).toBeUndefined();
      const md = resultsMarkdown(report, 'lab');
      expect(md).toMatch(/## The machine/);
      expect(md).toMatch(/in-process/);
      expect(md).toContain('](lab/timeline.svg)');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('pnpm bench lab, multi-process (agent processes, one Xen rate-limited cell)', () => {
  it('runs the Xen cell through the cluster: the policy paces round 1, the timeline has every phase in order, downtime is measured three ways', async () => {
    const { AgentsDriver } = await import('./lab-agents.ts');
    const { InProcessDriver } = await import('./lab-inprocess.ts');
    const { POLICIES, WORKLOADS } = await import('./lab-matrix.ts');
    const driver = await AgentsDriver.start(await InProcessDriver.start(), '1GiB');
    try {
      // 16 MiB, a quarter filled: ~4 MiB of data at the paper's 100 Mbit/s is a ~0.3 s first round.
      const cell = { name: 'xen-tiny', vmBytes: 16 * 2 ** 20, vcpus: 1, workload: WORKLOADS.hotsetSmall, policy: POLICIES.xen, runs: 1, fillFraction: 0.25, warmMs: 150 };
      const run = await driver.runOnce(cell);
      expect(run.digestVerified).toBe(true);
      const first = run.roundStats[0]!;
      expect(first.bytesSent).toBeGreaterThan(2 * 2 ** 20);
      // paced at 12.5 MB/s after the token bucket's first 1 MiB burst (unpaced it takes a few ms)
      expect(first.durationMs).toBeGreaterThan(((first.bytesSent - 2 ** 20) / 12.5e6) * 1000 * 0.9);
      expect(run.phases.map((p) => p.name)).toEqual(['setup', ...run.roundStats.filter((r) => !r.final).map(() => 'pre-copy'), 'stop-and-copy', 'commitment', 'activation']);
      for (let i = 1; i < run.phases.length; i++) expect(run.phases[i]!.startMs).toBeGreaterThanOrEqual(run.phases[i - 1]!.endMs);
      expect(run.hypervisorDowntimeMs).toBeGreaterThan(0);
      expect(run.guestDowntimeMs).toBeGreaterThan(0);
      expect(run.clientDowntimeMs).toBeGreaterThan(0);
    } finally {
      await driver.close();
    }
  }, 60_000);
});
