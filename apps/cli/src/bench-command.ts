// `ferry bench`: a small downtime-lab matrix against a running cluster, through the coordinator's
// API: run one VM per workload (EC2-style request), migrate it back and forth `--runs` times,
// collect each migration's report, sample its writable working set, delete it. Downtime three ways,
// as the lab measures it: the hypervisor's (source pause → destination resume, from the report),
// the guest's (the largest jump of its own heartbeat between probe replies) and the client's (the
// largest gap between replies to a probe every millisecond through the agents' `/probe` WebSockets,
// at the addresses the hosts list gives, with the cluster token). The probing client and the gap
// arithmetic are @ferry/lab's, shared with `pnpm bench lab`, which is the full instrument.
import { InvalidArgumentError, type Command } from 'commander';
import { medianMax, probeDowntimes, ProbeRecorder, summarize } from '@ferry/lab';
import { API_ROUTES, ApiError, apiPath, formatSize, parseSize, validateMigrationPolicy, type Host, type Migration, type MigrationPolicyRequest, type Vm, type WwsReport } from '@ferry/protocol';
import type { ApiClient } from './client.ts';
import { clientSide } from './errors.ts';
import { addRateLimitOptions, rateLimitRequest, type RateLimitFlags } from './policy-options.ts';
import * as r from './render.ts';

/** What `ferry bench` needs from the program it joins. */
export interface BenchCommandDeps {
  readonly clientOf: (cmd: Command) => ApiClient;
  readonly print: (cmd: Command, value: unknown, text: () => string) => void;
  readonly signal?: AbortSignal;
}

/** The workloads `ferry bench` knows, as API workload specs (page writes per second of the VM). */
export const BENCH_WORKLOADS: Readonly<Record<string, { readonly kind: string; readonly [k: string]: unknown }>> = {
  idle: { kind: 'idle', rate: 1000 },
  hotset: { kind: 'hotset', rate: 10_000, hotsetPages: 1024 },
  uniform: { kind: 'uniform', rate: 20_000 },
  scan: { kind: 'scan', rate: 0 },
};

/** Probe interval of the client measurement, ms. */
export const BENCH_PROBE_INTERVAL_MS = 1;

/** `{median, max}` of repeated measurements, ms. */
export interface MedianMax {
  readonly median: number;
  readonly max: number;
}

/** One workload's figures. Times in ms; `guest` and `client` are null when the cluster could not be probed. */
export interface BenchCell {
  readonly workload: string;
  readonly vm: string;
  readonly memoryBytes: number;
  readonly runs: number;
  readonly downtimeMs: { readonly hypervisor: MedianMax; readonly guest: MedianMax | null; readonly client: MedianMax | null };
  readonly totalMs: MedianMax;
  readonly rounds: number;
  readonly wireRatio: number;
  readonly bandwidthBytesPerSec: number;
  readonly digestVerified: boolean;
  readonly wwsPages: number | undefined;
  readonly meanDirtyPagesPerSample: number | undefined;
  readonly migrations: readonly string[];
}

/** The whole `ferry bench --json` object. */
export interface BenchResult {
  readonly bench: 'ferry-bench';
  /** The probing client, or null when the agents' probe path could not be reached (`reason` says why). */
  readonly probe: { readonly intervalMs: number; readonly hosts: readonly string[] } | null;
  readonly cells: readonly BenchCell[];
  readonly notes: readonly string[];
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

const now = (): number => performance.timeOrigin + performance.now();

async function until<T>(what: string, timeoutMs: number, signal: AbortSignal | undefined, poll: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (signal?.aborted) throw new ApiError('FERRY_ERR_CANCELLED', `cancelled while waiting for ${what}`);
    const v = await poll();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new ApiError('FERRY_ERR_TIMEOUT', `${what} not within ${timeoutMs} ms`);
    await sleep(50, signal);
  }
}

function workloadList(value: string): string[] {
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const w of list) if (!BENCH_WORKLOADS[w]) throw new InvalidArgumentError(`unknown workload ${w} (one of ${Object.keys(BENCH_WORKLOADS).join(', ')})`);
  if (list.length === 0) throw new InvalidArgumentError('no workload given');
  return list;
}

function count(name: string, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`${name} must be an integer from 1 to ${max}.`);
    return n;
  };
}

/** `{median, max}` of `values` (3 decimals), or null when none is a number. */
function stat(values: readonly (number | undefined)[]): MedianMax | null {
  const s = summarize(values.filter((v): v is number => v !== undefined));
  return s.n === 0 ? null : medianMax(s);
}

/** The probing client on every up host's probe path; undefined (and why, in `notes`) when it cannot start. */
async function startProbe(client: ApiClient, notes: string[]): Promise<{ recorder: ProbeRecorder; hosts: string[] } | undefined> {
  const hosts = (await client.get<Host[]>(API_ROUTES.hosts)).filter((h) => h.state !== 'down');
  if (client.token === undefined) {
    notes.push('no cluster token: the agents\' probe path could not be used, so guest and client downtime are null.');
    return undefined;
  }
  try {
    const recorder = await ProbeRecorder.start({ urls: hosts.map((h) => `ws://${h.address}/probe`), token: client.token, intervalMs: BENCH_PROBE_INTERVAL_MS });
    return { recorder, hosts: hosts.map((h) => h.id) };
  } catch (err) {
    notes.push(`the agents' probe path could not be reached (${(err as Error).message}), so guest and client downtime are null.`);
    return undefined;
  }
}

interface BenchOptions extends RateLimitFlags {
  workloads: string[];
  memory: string;
  image: string;
  runs: number;
  maxDowntime?: number;
  bandwidthLimit?: string;
  autoConverge?: boolean;
  warm: number;
  probe: boolean;
}

/** Registers `ferry bench` on `program`. */
export function registerBenchCommand(program: Command, deps: BenchCommandDeps): void {
  const bench = program
    .command('bench')
    .description('measure live migration downtime on this cluster three ways (hypervisor, guest heartbeat, a client probing every ms): one VM per workload, migrated back and forth (see `pnpm bench lab` for the full lab)')
    .option('--workloads <list>', `comma-separated: ${Object.keys(BENCH_WORKLOADS).join(', ')}`, workloadList, ['idle', 'hotset', 'uniform'])
    .option('--memory <size>', 'VM memory', '256MiB')
    .option('--image <image>', 'image to boot', 'minimal')
    .option('--runs <n>', 'migrations per workload', count('--runs', 100), 3)
    .option('--max-downtime <ms>', 'policy maxDowntimeMs', count('--max-downtime', 60_000))
    .option('--bandwidth-limit <rate>', 'policy bandwidthLimit (e.g. 1G/s, 100MiB, 800Mbit/s)')
    .option('--auto-converge', 'policy autoConverge');
  addRateLimitOptions(bench)
    .option('--warm <ms>', 'let each VM run this long before the first migration', count('--warm', 60_000), 500)
    .option('--no-probe', 'no probing client: hypervisor downtime only')
    .action(async (o: BenchOptions, cmd: Command) => {
      const client = deps.clientOf(cmd);
      const rateLimit = rateLimitRequest(o);
      const policy: MigrationPolicyRequest = {
        ...(o.maxDowntime !== undefined ? { maxDowntimeMs: o.maxDowntime } : {}),
        ...(o.bandwidthLimit !== undefined ? { bandwidthLimit: o.bandwidthLimit } : {}),
        ...(o.autoConverge ? { autoConverge: true } : {}),
        ...(rateLimit !== undefined ? { rateLimit } : {}),
      };
      clientSide(() => validateMigrationPolicy(policy));
      const memoryBytes = clientSide(() => parseSize(o.memory, '--memory'));
      const notes: string[] = [];
      const probe = o.probe ? await startProbe(client, notes) : undefined;
      if (!o.probe) notes.push('--no-probe: guest and client downtime not measured.');
      const cells: BenchCell[] = [];
      try {
        for (const workload of o.workloads) cells.push(await benchWorkload(client, workload, memoryBytes, o, policy, probe, deps.signal));
      } finally {
        await probe?.recorder.close();
      }
      const result: BenchResult = { bench: 'ferry-bench', probe: probe ? { intervalMs: BENCH_PROBE_INTERVAL_MS, hosts: probe.hosts } : null, cells, notes };
      deps.print(cmd, result, () => renderBench(result));
    });
}

/** One workload: run its VM, migrate it `o.runs` times while probing, sample its WWS, delete it. */
async function benchWorkload(client: ApiClient, workload: string, memoryBytes: number, o: BenchOptions, policy: MigrationPolicyRequest, probe: { recorder: ProbeRecorder; hosts: string[] } | undefined, signal: AbortSignal | undefined): Promise<BenchCell> {
  const vm = await client.post<Vm>(API_ROUTES.vms, { image: o.image, cpus: 1, memory: memoryBytes, disk: '1GiB', name: `bench-${workload}`, workload: BENCH_WORKLOADS[workload] });
  try {
    await until(`VM ${vm.id} running`, 60_000, signal, async () => ((await client.get<Vm>(apiPath(API_ROUTES.vm, vm.id))).state === 'running' ? true : undefined));
    await sleep(o.warm, signal);
    const reports: NonNullable<Migration['report']>[] = [];
    const ids: string[] = [];
    const guest: (number | undefined)[] = [];
    const clientGap: (number | undefined)[] = [];
    for (let i = 0; i < o.runs; i++) {
      if (probe) {
        const host = (await client.get<Vm>(apiPath(API_ROUTES.vm, vm.id))).host;
        probe.recorder.begin(vm.id, Math.max(0, probe.hosts.indexOf(host ?? '')));
        await sleep(20, signal); // replies flowing before the migration starts
      }
      const startMs = now();
      const m = await client.post<Migration>(API_ROUTES.migrations, { vm: vm.id, ...(Object.keys(policy).length ? { policy } : {}) });
      const done = await until(`migration ${m.id}`, 300_000, signal, async () => {
        const cur = await client.get<Migration>(apiPath(API_ROUTES.migration, m.id));
        return ['completed', 'failed', 'cancelled'].includes(cur.state) ? cur : undefined;
      });
      const endMs = now();
      if (probe) {
        await sleep(50, signal); // the guest runs on the destination and the client sees it
        const record = await probe.recorder.end();
        const d = probeDowntimes(record, startMs, endMs + 40);
        // Fewer than two replies: nothing was measured (heartbeat off, or the probe path lost).
        guest.push(d.clientMs === undefined ? undefined : d.guestMs);
        clientGap.push(d.clientMs);
      }
      if (done.state !== 'completed' || !done.report) throw new ApiError(done.error?.code ?? 'FERRY_ERR_MIGRATION_FAILED', `migration ${done.id} of ${vm.id} ${done.state}: ${done.error?.message ?? 'no report'}`);
      reports.push(done.report);
      ids.push(done.id);
      await sleep(100, signal);
    }
    let wws: WwsReport | undefined;
    try {
      wws = await client.get<WwsReport>(apiPath(API_ROUTES.vmWws, vm.id), { samples: 10, intervalMs: 50 });
    } catch (err) {
      if (!(err instanceof ApiError)) throw err; // a cluster without WWS sampling: the cell says so
    }
    const precopyMs = reports.map((x) => Math.max(1e-3, x.totalMs - x.setupMs - x.downtimeMs));
    return {
      workload,
      vm: vm.id,
      memoryBytes,
      runs: reports.length,
      downtimeMs: { hypervisor: stat(reports.map((x) => x.downtimeMs))!, guest: stat(guest), client: stat(clientGap) },
      totalMs: stat(reports.map((x) => x.totalMs))!,
      rounds: summarize(reports.map((x) => x.rounds)).median,
      wireRatio: summarize(reports.map((x) => x.bytesOnWire / x.vmBytes)).median,
      bandwidthBytesPerSec: summarize(reports.map((x, k) => x.bytesOnWire / (precopyMs[k]! / 1000))).median,
      digestVerified: reports.every((x) => x.digestVerified),
      wwsPages: wws?.wwsPages,
      meanDirtyPagesPerSample: wws ? wws.samples.reduce((a, s) => a + s.dirtyPages, 0) / Math.max(1, wws.samples.length) : undefined,
      migrations: ids,
    };
  } finally {
    await client.delete(apiPath(API_ROUTES.vm, vm.id)).catch(() => {});
  }
}

const mm = (x: MedianMax | null, digits: number): string => (x === null ? '-' : `${x.median.toFixed(digits)} / ${x.max.toFixed(digits)}`);

/** The human-readable table of a bench result, then its notes. */
export function renderBench(result: BenchResult): string {
  const table = r.renderTable(result.cells, [
    { header: 'workload', cell: (c) => c.workload },
    { header: 'memory', cell: (c) => formatSize(c.memoryBytes) },
    { header: 'runs', cell: (c) => String(c.runs), align: 'right' },
    { header: 'hypervisor ms', cell: (c) => mm(c.downtimeMs.hypervisor, 2), align: 'right' },
    { header: 'guest ms', cell: (c) => mm(c.downtimeMs.guest, 2), align: 'right' },
    { header: 'client ms', cell: (c) => mm(c.downtimeMs.client, 2), align: 'right' },
    { header: 'total ms', cell: (c) => mm(c.totalMs, 0), align: 'right' },
    { header: 'rounds', cell: (c) => String(c.rounds), align: 'right' },
    { header: 'wire ÷ VM', cell: (c) => c.wireRatio.toFixed(3), align: 'right' },
    { header: 'MB/s', cell: (c) => (c.bandwidthBytesPerSec / 1e6).toFixed(0), align: 'right' },
    { header: 'WWS pages', cell: (c) => (c.wwsPages === undefined ? '-' : r.formatCount(c.wwsPages)), align: 'right' },
  ]);
  const legend = `downtime (median / max): hypervisor = source pause → destination resume (report); guest = largest heartbeat jump between probe replies; client = largest gap between replies to a probe every ${BENCH_PROBE_INTERVAL_MS} ms through the agents.\n`;
  return table + legend + result.notes.map((n) => `note: ${n}\n`).join('');
}
