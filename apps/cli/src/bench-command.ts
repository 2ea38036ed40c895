// `ferry bench`: a small downtime-lab matrix against a running cluster, through the coordinator's
// API only: run one VM per workload (EC2-style request), migrate it back and forth `--runs` times,
// collect each migration's report, sample its writable working set, delete it. No probing client
// here (the cloud API has no probe path): downtime is the hypervisor's (source pause → destination
// resume, from the report). `pnpm bench lab` is the full instrument.
import { InvalidArgumentError, type Command } from 'commander';
import { API_ROUTES, ApiError, apiPath, formatSize, parseRate, parseSize, type Migration, type MigrationPolicyRequest, type Vm, type WwsReport } from '@ferry/protocol';
import type { ApiClient } from './client.ts';
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

/** One workload's figures. Times in ms. */
export interface BenchCell {
  readonly workload: string;
  readonly vm: string;
  readonly memoryBytes: number;
  readonly runs: number;
  readonly downtimeMs: { readonly hypervisor: { readonly median: number; readonly max: number }; readonly guest: null; readonly client: null };
  readonly totalMs: { readonly median: number; readonly max: number };
  readonly rounds: number;
  readonly wireRatio: number;
  readonly bandwidthBytesPerSec: number;
  readonly digestVerified: boolean;
  readonly wwsPages: number | undefined;
  readonly meanDirtyPagesPerSample: number | undefined;
  readonly migrations: readonly string[];
}

function median(values: readonly number[]): number {
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
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

/** Registers `ferry bench` on `program`. */
export function registerBenchCommand(program: Command, deps: BenchCommandDeps): void {
  program
    .command('bench')
    .description('measure live migration downtime on this cluster: one VM per workload, migrated back and forth (see `pnpm bench lab` for the full lab)')
    .option('--workloads <list>', `comma-separated: ${Object.keys(BENCH_WORKLOADS).join(', ')}`, workloadList, ['idle', 'hotset', 'uniform'])
    .option('--memory <size>', 'VM memory', '256MiB')
    .option('--image <image>', 'image to boot', 'minimal')
    .option('--runs <n>', 'migrations per workload', count('--runs', 100), 3)
    .option('--max-downtime <ms>', 'policy maxDowntimeMs', count('--max-downtime', 60_000))
    .option('--bandwidth-limit <rate>', 'policy bandwidthLimit (e.g. 1G/s, 100MiB)')
    .option('--auto-converge', 'policy autoConverge')
    .option('--warm <ms>', 'let each VM run this long before the first migration', count('--warm', 60_000), 500)
    .action(async (o: { workloads: string[]; memory: string; image: string; runs: number; maxDowntime?: number; bandwidthLimit?: string; autoConverge?: boolean; warm: number }, cmd: Command) => {
      const client = deps.clientOf(cmd);
      const memoryBytes = parseSize(o.memory, '--memory');
      const policy: MigrationPolicyRequest = {
        ...(o.maxDowntime !== undefined ? { maxDowntimeMs: o.maxDowntime } : {}),
        ...(o.bandwidthLimit !== undefined ? { bandwidthLimit: parseRate(o.bandwidthLimit, '--bandwidth-limit') } : {}),
        ...(o.autoConverge ? { autoConverge: true } : {}),
      };
      const cells: BenchCell[] = [];
      for (const workload of o.workloads) {
        const vm = await client.post<Vm>(API_ROUTES.vms, { image: o.image, cpus: 1, memory: memoryBytes, disk: '1GiB', name: `bench-${workload}`, workload: BENCH_WORKLOADS[workload] });
        try {
          await until(`VM ${vm.id} running`, 60_000, deps.signal, async () => ((await client.get<Vm>(apiPath(API_ROUTES.vm, vm.id))).state === 'running' ? true : undefined));
          await sleep(o.warm, deps.signal);
          const reports: NonNullable<Migration['report']>[] = [];
          const ids: string[] = [];
          for (let i = 0; i < o.runs; i++) {
            const m = await client.post<Migration>(API_ROUTES.migrations, { vm: vm.id, ...(Object.keys(policy).length ? { policy } : {}) });
            const done = await until(`migration ${m.id}`, 300_000, deps.signal, async () => {
              const cur = await client.get<Migration>(apiPath(API_ROUTES.migration, m.id));
              return ['completed', 'failed', 'cancelled'].includes(cur.state) ? cur : undefined;
            });
            if (done.state !== 'completed' || !done.report) throw new ApiError(done.error?.code ?? 'FERRY_ERR_MIGRATION_FAILED', `migration ${done.id} of ${vm.id} ${done.state}: ${done.error?.message ?? 'no report'}`);
            reports.push(done.report);
            ids.push(done.id);
            await sleep(100, deps.signal);
          }
          let wws: WwsReport | undefined;
          try {
            wws = await client.get<WwsReport>(apiPath(API_ROUTES.vmWws, vm.id), { samples: 10, intervalMs: 50 });
          } catch (err) {
            if (!(err instanceof ApiError)) throw err; // a cluster without WWS sampling: the cell says so
          }
          const precopyMs = reports.map((x) => Math.max(1e-3, x.totalMs - x.setupMs - x.downtimeMs));
          cells.push({
            workload,
            vm: vm.id,
            memoryBytes,
            runs: reports.length,
            downtimeMs: { hypervisor: { median: median(reports.map((x) => x.downtimeMs)), max: Math.max(...reports.map((x) => x.downtimeMs)) }, guest: null, client: null },
            totalMs: { median: median(reports.map((x) => x.totalMs)), max: Math.max(...reports.map((x) => x.totalMs)) },
            rounds: median(reports.map((x) => x.rounds)),
            wireRatio: median(reports.map((x) => x.bytesOnWire / x.vmBytes)),
            bandwidthBytesPerSec: median(reports.map((x, k) => x.bytesOnWire / (precopyMs[k]! / 1000))),
            digestVerified: reports.every((x) => x.digestVerified),
            wwsPages: wws?.wwsPages,
            meanDirtyPagesPerSample: wws ? wws.samples.reduce((a, s) => a + s.dirtyPages, 0) / Math.max(1, wws.samples.length) : undefined,
            migrations: ids,
          });
        } finally {
          await client.delete(apiPath(API_ROUTES.vm, vm.id)).catch(() => {});
        }
      }
      deps.print(cmd, { bench: 'ferry-bench', probe: null, cells }, () =>
        r.renderTable(cells, [
          { header: 'workload', cell: (c) => c.workload },
          { header: 'memory', cell: (c) => formatSize(c.memoryBytes) },
          { header: 'runs', cell: (c) => String(c.runs), align: 'right' },
          { header: 'downtime ms (median / max)', cell: (c) => `${c.downtimeMs.hypervisor.median.toFixed(2)} / ${c.downtimeMs.hypervisor.max.toFixed(2)}`, align: 'right' },
          { header: 'total ms', cell: (c) => `${c.totalMs.median.toFixed(0)} / ${c.totalMs.max.toFixed(0)}`, align: 'right' },
          { header: 'rounds', cell: (c) => String(c.rounds), align: 'right' },
          { header: 'wire ÷ VM', cell: (c) => c.wireRatio.toFixed(3), align: 'right' },
          { header: 'MB/s', cell: (c) => (c.bandwidthBytesPerSec / 1e6).toFixed(0), align: 'right' },
          { header: 'WWS pages', cell: (c) => (c.wwsPages === undefined ? '-' : r.formatCount(c.wwsPages)), align: 'right' },
        ]) + 'downtime is the hypervisor\'s (pause → resume, from each migration report); no probing client through the cloud API: `pnpm bench lab` measures guest and client too.\n',
      );
    });
}
