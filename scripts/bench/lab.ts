// `pnpm bench lab [--quick] [--json] [--out DIR] [--results FILE] [--max-vm SIZE] [--in-process]
//  [--save FILE] [--from FILE]`: the downtime lab. `--save` keeps the whole report (every run) as
// JSON; `--from` renders a saved report again (table, charts, results) without measuring.
// Migrates a matrix of VM sizes × workloads × policies repeatedly, measures downtime three ways
// (hypervisor: source pause → destination resume; guest: largest heartbeat gap; client: largest
// gap between replies to a probe every millisecond), samples each workload's writable working set
// and predicts its downtime, re-measures the raw TCP and ws ceilings, and writes a markdown table,
// one JSON object (--json), SVG charts (--out, default bench-out/lab) and, with --results, the
// results document (docs/results.md, charts under docs/lab/).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { buildCell, labCharts, labJson, labTable, type LabCell, type LabMachine, type LabReport, type LabWws } from '@ferry/lab';
import { parseSize } from '@ferry/protocol';
import { measureTcpCeiling, measureWsCeiling } from '@ferry/transport';
import { predictPrecopy, type WwsSampling } from '@ferry/vm';
import type { LabDriver } from './lab-driver.ts';
import { AgentsDriver } from './lab-agents.ts';
import { InProcessDriver } from './lab-inprocess.ts';
import { labMatrix, type LabCellSpec, type LabMatrix } from './lab-matrix.ts';
import { resultsMarkdown } from './lab-results.ts';

/** Options of runLab. */
export interface LabOptions {
  readonly matrix: LabMatrix;
  /** Defaults to the in-process driver (closed by runLab; a given driver is left open). */
  readonly driver?: LabDriver;
  /** Progress lines (stderr in the bench). */
  readonly log?: (line: string) => void;
}

/** The machine this process runs on. */
export function machineInfo(): LabMachine {
  const c = cpus();
  return { cpus: c.length, cpuModel: c[0]?.model.trim() ?? 'unknown', memoryBytes: totalmem(), node: process.version, platform: `${process.platform} ${process.arch}`, loadAverage: loadavg().map((x) => Math.round(x * 100) / 100) };
}

/** The largest VM the lab will migrate here: source and destination copies must fit in free memory with room to spare. */
export function maxVmBytesHere(): number {
  return Math.floor(freemem() / 2.5);
}

/** Runs the matrix and returns the report (no output written). */
export async function runLab(options: LabOptions): Promise<LabReport> {
  const { matrix } = options;
  const log = options.log ?? (() => {});
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  let ceiling = { tcpBytesPerSec: 0, wsBytesPerSec: 0 };
  if (matrix.ceilingBytes > 0) {
    log(`ceilings: raw TCP and ws (client→server, zero mask, raw frames) over ${matrix.ceilingBytes / 2 ** 20} MiB`);
    const tcp = await measureTcpCeiling({ bytes: matrix.ceilingBytes });
    const ws = await measureWsCeiling({ bytes: matrix.ceilingBytes, direction: 'client-to-server', mask: 'zero', sendMode: 'raw' });
    ceiling = { tcpBytesPerSec: tcp.bytesPerSec, wsBytesPerSec: ws.bytesPerSec };
    log(`  tcp ${(tcp.bytesPerSec / 1e9).toFixed(2)} GB/s, ws ${(ws.bytesPerSec / 1e9).toFixed(2)} GB/s`);
  }
  const driver: LabDriver = options.driver ?? (await InProcessDriver.start());
  const notes: string[] = [];
  if (driver.mode === 'in-process') {
    notes.push('In-process: source and destination hosts run in the lab process (separate CpuPools and HTTP servers, one event loop), the page stream is a real loopback WebSocket; these are not multi-process figures.');
  } else {
    notes.push('Multi-process: a lab coordinator and two agent processes (one pCPU worker each) on loopback; migrations go through the coordinator API (the policy, Xen\'s rate limiting included, in the migrate request) and the agents stream pages peer to peer. The guest figure is the largest jump of the guest heartbeat carried by probe replies. The timeline is the migration\'s own: rounds on the source\'s clock, ready, commit and activation as the coordinator received them. Each agent keeps a 1 MiB idle VM resident so its vCPU pool stays up between runs.');
    notes.push('Writable working sets are sampled on in-process VMs (the lab coordinator has no WWS route); predictions use each cell\'s measured bandwidth.');
  }
  const cells: LabCell[] = [];
  const wwsByKey = new Map<string, WwsSampling>();
  try {
    for (const spec of matrix.cells) {
      const key = `${spec.vmBytes}/${spec.workload.label}/${spec.fillFraction}`;
      if (!wwsByKey.has(key)) {
        log(`wws ${spec.workload.label} ${spec.vmBytes / 2 ** 20} MiB: ${matrix.wws.samples} × ${matrix.wws.intervalMs} ms`);
        wwsByKey.set(key, await driver.sampleWws(spec, matrix.wws.samples, matrix.wws.intervalMs));
      }
      const runs = [];
      const failures: string[] = [];
      for (let i = 0; i < spec.runs; i++) {
        let run;
        try {
          run = await driver.runOnce(spec);
        } catch (err) {
          // One failed migration must not lose the whole lab: it is reported with the cell.
          failures.push((err as Error).message.slice(0, 200));
          log(`${spec.name} #${i + 1}: FAILED ${(err as Error).message.slice(0, 200)}`);
          continue;
        }
        log(`${spec.name} #${i + 1}: down ${run.hypervisorDowntimeMs.toFixed(2)} ms (guest ${run.guestDowntimeMs.toFixed(2)}, client ${run.clientDowntimeMs?.toFixed(2) ?? '—'}), total ${run.totalMs.toFixed(0)} ms, ${run.rounds} rounds, ${run.stopReason}`);
        runs.push(run);
      }
      if (failures.length > 0) notes.push(`${spec.name}: ${failures.length} of ${spec.runs} runs failed (${[...new Set(failures)].join('; ')}).`);
      if (runs.length === 0) continue;
      const meta = { name: spec.name, vmBytes: spec.vmBytes, workload: spec.workload.label, policy: spec.policy.label };
      const draft = buildCell(meta, runs);
      cells.push(buildCell(meta, runs, wwsFor(wwsByKey.get(key)!, draft, spec)));
    }
  } finally {
    if (!options.driver) await driver.close();
  }
  if (cells.some((c) => c.policy.startsWith('xen'))) notes.push('WWS predictions simulate Ferry\'s own stop rule at the measured bandwidth; for the Xen rate-limited cells that is not the policy that ran.');
  return { mode: driver.mode, quick: matrix.size !== 'full', startedAt, durationMs: performance.now() - started, machine, ceiling, probeIntervalMs: driver.probeIntervalMs, cells, notes };
}

/** Predicted vs measured downtime for a cell, from its workload's WWS trace at the cell's measured bandwidth. */
function wwsFor(s: WwsSampling, cell: LabCell, spec: LabCellSpec): LabWws {
  const bandwidth = cell.bandwidthBytesPerSec > 0 ? cell.bandwidthBytesPerSec : 1e9;
  const p = predictPrecopy(s, {
    bandwidthBytesPerSec: bandwidth,
    firstRoundBytes: cell.nonZeroBytes,
    maxDowntimeMs: spec.policy.sender.maxDowntimeMs ?? 300,
    maxRounds: spec.policy.sender.maxRounds ?? 30,
    // The sender's own estimate: what its reports say it used, else its guess of two round trips.
    switchoverMs: cell.switchoverMs.n > 0 ? cell.switchoverMs.median : 2 * cell.setupMs.median,
  });
  const perSample = s.samples.map((x) => x.dirtyPages);
  return {
    intervalMs: s.intervalMs,
    samples: s.samples.length,
    wwsPages: s.wwsPages,
    meanDirtyPagesPerSample: perSample.reduce((a, b) => a + b, 0) / Math.max(1, perSample.length),
    dirtyPagesPerSample: perSample,
    predictedDowntimeMs: p.downtimeMs,
    predictedRounds: p.rounds.length + 1,
    atBandwidthBytesPerSec: bandwidth,
    measuredDowntimeMs: cell.downtimeMs.hypervisor.median,
  };
}

/** Writes the charts into `dir`; returns their paths. */
export function writeCharts(report: LabReport, dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  const paths: string[] = [];
  for (const [name, svg] of labCharts(report.cells)) {
    const path = join(dir, name);
    writeFileSync(path, svg);
    paths.push(path);
  }
  return paths;
}

function flag(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** `pnpm bench lab` entry point. */
export async function main(args: string[]): Promise<void> {
  const size = args.includes('--tiny') ? 'tiny' : args.includes('--quick') ? 'quick' : 'full';
  const maxVm = flag(args, '--max-vm');
  const matrix = labMatrix(size, maxVm ? parseSize(maxVm) : maxVmBytesHere());
  const log = (l: string): void => void process.stderr.write(`${l}\n`);
  const from = flag(args, '--from');
  const report = from ? (JSON.parse(readFileSync(from, 'utf8')) as LabReport) : await measure(args, matrix, log);
  const save = flag(args, '--save');
  if (save) writeFileSync(save, JSON.stringify(report));
  output(args, report, from ? (report.quick ? 'quick' : 'full') : size);
}

async function measure(args: readonly string[], matrix: LabMatrix, log: (line: string) => void): Promise<LabReport> {
  const inProcess = await InProcessDriver.start();
  let driver: LabDriver = inProcess;
  if (!args.includes('--in-process')) {
    try {
      driver = await AgentsDriver.start(inProcess);
    } catch (err) {
      log(`agent processes did not start (${(err as Error).message}); running in-process`);
    }
  }
  let report: LabReport;
  try {
    report = await runLab({ matrix, driver, log });
  } finally {
    await driver.close();
  }
  return report;
}

function output(args: readonly string[], report: LabReport, size: string): void {
  const json = args.includes('--json');
  const out = flag(args, '--out') ?? 'bench-out/lab';
  const resultsPath = flag(args, '--results');
  const charts = writeCharts(report, out);
  if (resultsPath) {
    const chartDir = join(dirname(resultsPath), 'lab');
    writeCharts(report, chartDir);
    writeFileSync(resultsPath, resultsMarkdown(report, relative(dirname(resultsPath), chartDir) || '.'));
  }
  if (json) {
    process.stdout.write(`${JSON.stringify(labJson(report))}\n`);
    return;
  }
  process.stdout.write(`downtime lab (${report.mode}, ${size}): ${report.cells.length} cells in ${(report.durationMs / 1000).toFixed(1)} s on ${report.machine.cpus} cpus, load ${report.machine.loadAverage.join(' ')}\n`);
  process.stdout.write(`ceilings: raw TCP ${(report.ceiling.tcpBytesPerSec / 1e9).toFixed(2)} GB/s, ws ${(report.ceiling.wsBytesPerSec / 1e9).toFixed(2)} GB/s; downtime cells are median / max ms\n\n`);
  process.stdout.write(labTable(report));
  for (const n of report.notes) process.stdout.write(`\nnote: ${n}\n`);
  process.stdout.write(`\ncharts: ${charts.length} SVG files in ${out}${resultsPath ? `; results written to ${resultsPath}` : ''}\n`);
}
