import { describe, expect, it } from 'vitest';
import { buildCell } from './cell.ts';
import type { LabReport, LabRun } from './model.ts';
import { labJson, labTable } from './render.ts';
import { summarize } from './stats.ts';
import { svgProblem } from './svg-check.ts';
import { labCharts, roundsChartSvg } from './svg.ts';
import { timelinePhases } from './timeline.ts';

function run(downtimeMs: number, overrides: Partial<LabRun> = {}): LabRun {
  return {
    hypervisorDowntimeMs: downtimeMs,
    guestDowntimeMs: downtimeMs + 0.5,
    clientDowntimeMs: downtimeMs + 1,
    totalMs: 100 + downtimeMs,
    setupMs: 1,
    rounds: 3,
    stopReason: 'converged',
    bytesOnWire: 1_100_000,
    vmBytes: 1_048_576,
    nonZeroBytes: 1_000_000,
    zeroPagesSkipped: 10,
    finalThrottlePercent: 0,
    digestVerified: true,
    bandwidthBytesPerSec: 1e9,
    dirtyRatePagesPerSec: 1000,
    roundStats: [
      { round: 1, final: false, durationMs: 80, pagesSent: 250, bytesSent: 1e6, dirtyPages: 40, pagesRedirtied: 2, throttlePercent: 0, bandwidthBytesPerSec: 1e9 },
      { round: 2, final: true, durationMs: 2, pagesSent: 40, bytesSent: 160_000, dirtyPages: 0, pagesRedirtied: 0, throttlePercent: 0, bandwidthBytesPerSec: 1e9 },
    ],
    phases: [
      { name: 'setup', startMs: 0, endMs: 1 },
      { name: 'pre-copy', startMs: 1, endMs: 81, round: 1 },
      { name: 'stop-and-copy', startMs: 81, endMs: 83 },
      { name: 'commitment', startMs: 83, endMs: 84 },
      { name: 'activation', startMs: 84, endMs: 84 + downtimeMs / 10 },
    ],
    ...overrides,
  };
}

describe('lab statistics and rendering', () => {
  it('summarize gives the median of odd and even counts and ignores non-finite values', () => {
    expect(summarize([3, 1, 2])).toMatchObject({ median: 2, max: 3, min: 1, n: 3 });
    expect(summarize([4, 1, 3, 2])).toMatchObject({ median: 2.5, max: 4, n: 4 });
    expect(summarize([1, Number.NaN, Infinity])).toMatchObject({ median: 1, n: 1 });
    expect(summarize([]).n).toBe(0);
  });

  it('a cell keeps the median run as its chart sample and reports a client summary only when every run was probed', () => {
    const cell = buildCell({ name: 'c', vmBytes: 1_048_576, workload: 'idle', policy: 'default' }, [run(5), run(1), run(3)]);
    expect(cell.sample.hypervisorDowntimeMs).toBe(3);
    expect(cell.downtimeMs.hypervisor).toMatchObject({ median: 3, max: 5 });
    expect(cell.downtimeMs.client).toMatchObject({ median: 4, max: 6 });
    const unprobed = buildCell({ name: 'u', vmBytes: 1_048_576, workload: 'idle', policy: 'default' }, [run(5, { clientDowntimeMs: undefined }), run(1)]);
    expect(unprobed.downtimeMs.client).toBeUndefined();
    expect(() => buildCell({ name: 'x', vmBytes: 1, workload: 'idle', policy: 'p' }, [])).toThrow(RangeError);
  });

  it('the table, the JSON and every chart come out well formed, names with markup escaped', () => {
    const cells = [
      buildCell({ name: 'idle<&>"', vmBytes: 1_048_576, workload: 'idle', policy: 'default' }, [run(2), run(3)], {
        intervalMs: 50,
        samples: 3,
        wwsPages: 7,
        meanDirtyPagesPerSample: 5,
        dirtyPagesPerSample: [4, 5, 6],
        predictedDowntimeMs: 1.5,
        predictedRounds: 2,
        atBandwidthBytesPerSec: 1e9,
        measuredDowntimeMs: 2.5,
      }),
      buildCell({ name: 'hot', vmBytes: 1_048_576, workload: 'hotset', policy: 'xen' }, [run(20)]),
    ];
    const report: LabReport = {
      mode: 'in-process',
      quick: true,
      startedAt: new Date(0).toISOString(),
      durationMs: 1,
      machine: { cpus: 2, cpuModel: 'x', memoryBytes: 1, node: 'v20', platform: 'linux', loadAverage: [0, 0, 0] },
      ceiling: { tcpBytesPerSec: 4e9, wsBytesPerSec: 2e9 },
      probeIntervalMs: 1,
      cells,
      notes: [],
    };
    const table = labTable(report);
    expect(table.split('\n').filter((l) => l.startsWith('|'))).toHaveLength(4);
    const json = JSON.parse(JSON.stringify(labJson(report))) as { cells: { downtimeMs: { hypervisor: { median: number }; client: unknown } }[] };
    expect(json.cells[0]!.downtimeMs.hypervisor.median).toBe(2.5);
    const charts = labCharts(cells);
    expect([...charts.keys()].sort()).toEqual(['downtime-vs-dirty-rate.svg', 'rounds-hot.svg', 'rounds-idle<&>".svg', 'timeline.svg', 'wws.svg'].sort());
    for (const [name, svg] of charts) expect(svgProblem(svg), name).toBeUndefined();
  });

  it('the SVG check catches what it must', () => {
    const good = roundsChartSvg([], 'empty');
    expect(svgProblem(good)).toBeUndefined();
    expect(svgProblem('<svg><g></svg>')).toMatch(/does not close/);
    expect(svgProblem('<svg><text>a & b</text></svg>')).toMatch(/bare &/);
    expect(svgProblem('<svg a="1" a="2"/>')).toMatch(/duplicate/);
    expect(svgProblem('<svg x=1/>')).toMatch(/malformed/);
    expect(svgProblem('<g/>')).toMatch(/root/);
  });
});

describe('timeline phases from a migration\'s step times', () => {
  it('setup, each pre-copy round, stop-and-copy, commitment, activation; clamped in order; missing steps left out', () => {
    const rounds = [
      { round: 1, final: false, startMs: 2, endMs: 50 },
      { round: 2, final: false, startMs: 49.5, endMs: 60 }, // source clock vs receipt: starts 0.5 ms "early"
      { round: 3, final: true, startMs: 61, endMs: 63 },
    ];
    const phases = timelinePhases({ rounds, readyMs: 64, committedMs: 65, activatedMs: 66 });
    expect(phases.map((p) => [p.name, p.startMs, p.endMs, p.round])).toEqual([
      ['setup', 0, 2, undefined],
      ['pre-copy', 2, 50, 1],
      ['pre-copy', 50, 60, 2],
      ['stop-and-copy', 61, 64, undefined],
      ['commitment', 64, 65, undefined],
      ['activation', 65, 66, undefined],
    ]);
    expect(timelinePhases({ rounds: rounds.slice(0, 1) }).map((p) => p.name)).toEqual(['setup', 'pre-copy']);
    expect(timelinePhases({ rounds: [] })).toEqual([]);
  });
});
