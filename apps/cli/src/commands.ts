import { writeFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { wwsChartSvg } from '@ferry/lab';
import {
  API_ROUTES,
  ApiError,
  FINAL_MIGRATION_STATES,
  GROUP_POLICIES,
  apiPath,
  formatRate,
  validateMigrationPolicy,
  validateRunRequest,
  type ApiEvent,
  type Host,
  type HostDrain,
  type Image,
  type Migration,
  type MigrationPolicyRequest,
  type Vm,
  type VmSnapshot,
  type WwsReport,
} from '@ferry/protocol';
import { ApiClient } from './client.ts';
import { resolveConnection } from './connection.ts';
import { UsageError, clientSide } from './errors.ts';
import { startAndWatchMigration } from './migrate-watch.ts';
import { registerBenchCommand } from './bench-command.ts';
import { registerPlanCommand } from './plan-command.ts';
import { addRateLimitOptions, rateLimitRequest, type RateLimitFlags } from './policy-options.ts';
import * as r from './render.ts';

/** Where a command writes and what it may read. The CLI passes process streams and env; the console its own. */
export interface CommandContext {
  /** Standard output: tables, JSON, and `--json` errors. */
  readonly out: (text: string) => void;
  /** Standard error: human-readable errors. */
  readonly err: (text: string) => void;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
  /** A fixed connection (the console's); else resolved from flags, env and the local cluster file. */
  readonly connection?: { readonly url: string; readonly token: string | undefined };
  /** Aborts long commands (`events --follow`, `migrate --watch`): Ctrl-C. */
  readonly signal?: AbortSignal;
  /** Program name in help (`ferry`, or '' in the console). */
  readonly name?: string;
}

/** Exit status: 0 success, 1 the operation failed or was refused, 2 the command line was wrong. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** How long `migrate --cancel` waits for the migration to end before printing it as it is. */
export const CANCEL_WAIT_MS = 15_000;

/** Names of every command, for help and completion. */
export const COMMAND_NAMES = [
  'hosts', 'vms', 'images', 'show', 'run', 'start', 'stop', 'suspend', 'resume', 'snapshot', 'clone', 'delete',
  'migrate', 'migrations', 'drain', 'undrain', 'plan', 'events', 'wws', 'capture', 'help',
] as const;
/** Commands whose first argument is a VM id. */
export const VM_ARG_COMMANDS: readonly string[] = ['start', 'stop', 'suspend', 'resume', 'snapshot', 'clone', 'delete', 'migrate', 'wws', 'capture'];
/** Commands whose first argument is a host id. */
export const HOST_ARG_COMMANDS: readonly string[] = ['drain', 'undrain'];
/** Options whose value is a host id. */
export const HOST_OPTIONS: readonly string[] = ['--to', '--host'];

interface GlobalOpts {
  json?: boolean;
  url?: string;
  token?: string;
  stateDir?: string;
}

function integer(name: string, min: number, max: number): (value: string) => number {
  return (value) => {
    if (!/^-?[0-9]+$/.test(value.trim())) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}.`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}.`);
    return n;
  };
}

/**
 * Runs one command line (argv without the program name) and returns its exit status. The same
 * code serves the one-shot CLI and each console line. Never throws: errors are printed (as
 * `{error:{code,message}}` on `out` with --json, else a line on `err`) and mapped to a status.
 */
export async function runCommand(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const json = argv.includes('--json');
  let usageText = '';
  let status = EXIT_OK;
  const program = buildProgram(ctx, (s) => (status = s), (s) => (usageText += s));
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return status;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return EXIT_OK; // help or version shown
      // No command at all (only options): commander prints the whole help as the "error".
      const message = /^Usage:/.test(usageText) ? 'no command given: `ferry --help` lists the commands' : (usageText || err.message).replace(/^error: /, '').trim();
      printError(ctx, json, new UsageError(message));
      return EXIT_USAGE;
    }
    const error = err instanceof ApiError ? err : new ApiError('FERRY_ERR_INTERNAL', (err as Error).message ?? String(err));
    printError(ctx, json, error);
    return error instanceof UsageError || (error as { clientSide?: boolean }).clientSide === true ? EXIT_USAGE : EXIT_FAILED;
  }
}

function printError(ctx: CommandContext, json: boolean, error: ApiError): void {
  if (json) ctx.out(JSON.stringify({ error: { code: error.code, message: error.message } }) + '\n');
  else ctx.err(`error: ${error.message} [${error.code}]\n`);
}

function buildProgram(ctx: CommandContext, setStatus: (status: number) => void, usage: (text: string) => void): Command {
  const program = new Command(ctx.name ?? 'ferry');
  // Set before any subcommand exists: subcommands copy these settings when created.
  program.configureOutput({ writeOut: (s) => ctx.out(s), writeErr: usage, outputError: usage });
  program
    .description('Operate a Ferry cluster: hosts, images, VMs, live migration.')
    .option('--json', 'print JSON instead of tables')
    .option('--url <url>', 'coordinator URL (default: FERRY_URL, .ferry/cluster.json, http://127.0.0.1:7070)')
    .option('--token <token>', 'cluster token (default: FERRY_TOKEN, .ferry/cluster.json)')
    .option('--state-dir <dir>', 'state dir of a local cluster started with `pnpm cluster --state-dir DIR` (default: FERRY_STATE_DIR, .ferry)')
    .exitOverride()
    .showSuggestionAfterError(true)
    .allowExcessArguments(false);

  const globals = (cmd: Command): GlobalOpts => cmd.optsWithGlobals() as GlobalOpts;
  const clientOf = (cmd: Command, timeoutMs?: number): ApiClient => {
    const g = globals(cmd);
    const conn =
      ctx.connection && g.url === undefined && g.token === undefined && g.stateDir === undefined
        ? ctx.connection
        : clientSide(() =>
            resolveConnection({
              ...(g.url !== undefined ? { url: g.url } : {}),
              ...(g.token !== undefined ? { token: g.token } : {}),
              ...(g.stateDir !== undefined ? { stateDir: g.stateDir } : {}),
              env: ctx.env ?? {},
              cwd: ctx.cwd ?? process.cwd(),
            }),
          );
    return new ApiClient({ url: conn.url, token: conn.token, ...(timeoutMs !== undefined ? { timeoutMs } : {}), ...unreachableHint(conn) });
  };
  const print = (cmd: Command, value: unknown, text: () => string): void => {
    ctx.out(globals(cmd).json ? JSON.stringify(value, null, 2) + '\n' : text());
  };

  program.command('hosts').description('list hosts').action(async (_o, cmd: Command) => {
    const hosts = await clientOf(cmd).get<Host[]>(API_ROUTES.hosts);
    print(cmd, hosts, () => r.renderHosts(hosts));
  });
  program.command('vms').description('list VMs (instances)').action(async (_o, cmd: Command) => {
    const vms = await clientOf(cmd).get<Vm[]>(API_ROUTES.vms);
    print(cmd, vms, () => r.renderVms(vms));
  });
  program.command('images').description('list images (virtual appliances) with dedup figures').action(async (_o, cmd: Command) => {
    const images = await clientOf(cmd).get<Image[]>(API_ROUTES.images);
    print(cmd, images, () => r.renderImages(images));
  });

  program
    .command('show')
    .argument('<id>', 'a VM, host, migration or image id')
    .description('show one VM, host, migration or image')
    .action(async (id: string, _o, cmd: Command) => {
      const client = clientOf(cmd);
      const kinds = [
        [API_ROUTES.vm, (v: unknown) => r.renderVm(v as Vm)],
        [API_ROUTES.host, (v: unknown) => r.renderHost(v as Host)],
        [API_ROUTES.migration, (v: unknown) => r.renderMigration(v as Migration)],
        [API_ROUTES.image, (v: unknown) => r.renderImage(v as Image)],
      ] as const;
      for (const [route, render] of kinds) {
        try {
          const value = await client.get<unknown>(apiPath(route, id));
          print(cmd, value, () => render(value));
          return;
        } catch (err) {
          if (!(err instanceof ApiError && err.status === 404)) throw err;
        }
      }
      throw new ApiError('FERRY_ERR_NOT_FOUND', `no VM, host, migration or image "${id}"`);
    });

  program
    .command('run')
    .description('request a VM (EC2 style): placed, provisioned from the image, booted; prints the instance and its login')
    .requiredOption('--image <image>', 'image id (see `images`)')
    .requiredOption('--cpus <n>', 'vCPUs', integer('--cpus', 1, 64))
    .requiredOption('--memory <size>', 'memory: 512MiB, 1.5G, bytes')
    .option('--disk <size>', 'disk: 10GiB, bytes', '1GiB')
    .option('--name <name>', 'instance name')
    .option('--group <name>', 'placement group')
    .option('--policy <policy>', `group policy: ${GROUP_POLICIES.join(', ')} (default anti-affinity); soft-* are preferences, never refusals`)
    .option('--anti-affinity', 'same as --policy anti-affinity')
    .option('--affinity', 'same as --policy affinity')
    .option('--workload <kind>', 'workload: idle, uniform, hotset, scan')
    .option('--host <host>', 'pin to a host')
    .action(async (o: { image: string; cpus: number; memory: string; disk: string; name?: string; group?: string; policy?: string; antiAffinity?: boolean; affinity?: boolean; workload?: string; host?: string }, cmd: Command) => {
      if ([o.affinity, o.antiAffinity, o.policy !== undefined].filter(Boolean).length > 1) throw new UsageError('--policy, --affinity and --anti-affinity exclude each other');
      if ((o.affinity || o.antiAffinity || o.policy !== undefined) && !o.group) throw new UsageError('--policy/--affinity/--anti-affinity need --group NAME');
      const policy = o.policy ?? (o.affinity ? 'affinity' : 'anti-affinity');
      const request = {
        image: o.image,
        cpus: o.cpus,
        memory: o.memory,
        disk: o.disk,
        ...(o.name !== undefined ? { name: o.name } : {}),
        ...(o.group !== undefined ? { group: { name: o.group, policy } } : {}),
        ...(o.workload !== undefined ? { workload: { kind: o.workload } } : {}),
        ...(o.host !== undefined ? { host: o.host } : {}),
      };
      const spec = clientSide(() => validateRunRequest(request));
      const body = { ...request, memory: spec.memoryBytes, disk: spec.diskBytes };
      const vm = await clientOf(cmd).post<Vm>(API_ROUTES.vms, body);
      print(cmd, vm, () => r.renderVm(vm));
    });

  const vmAction = (name: 'start' | 'stop' | 'suspend' | 'resume' | 'delete', description: string, withHost: boolean, withForce = false): void => {
    const c = program.command(name).argument('<vm>', 'VM id').description(description);
    if (withHost) c.option('--host <host>', 'on this host instead of its current one');
    if (withForce) c.option('--force', 'skip the clean guest shutdown');
    c.action(async (vmId: string, o: { host?: string; force?: boolean }, cmd: Command) => {
      const client = clientOf(cmd);
      const body = { ...(o.host !== undefined ? { host: o.host } : {}), ...(o.force ? { force: true } : {}) };
      const routes = { start: API_ROUTES.vmStart, stop: API_ROUTES.vmStop, suspend: API_ROUTES.vmSuspend, resume: API_ROUTES.vmResume } as const;
      const vm = name === 'delete' ? await client.delete<Vm>(apiPath(API_ROUTES.vm, vmId)) : await client.post<Vm>(apiPath(routes[name], vmId), body);
      print(cmd, vm, () => r.renderVm(vm));
    });
  };
  vmAction('start', 'start a stopped VM', true);
  vmAction('stop', 'stop a VM', false, true);
  vmAction('suspend', 'suspend a VM: memory saved to a file on its host', false);
  vmAction('resume', 'resume a suspended VM, on the same or another host', true);
  vmAction('delete', 'delete a VM and release its resources', false);

  program
    .command('snapshot')
    .argument('<vm>', 'VM id')
    .option('--name <name>', 'snapshot name')
    .description("save a snapshot of a VM's memory and devices")
    .action(async (vmId: string, o: { name?: string }, cmd: Command) => {
      const snap = await clientOf(cmd).post<VmSnapshot>(apiPath(API_ROUTES.vmSnapshot, vmId), o.name ? { name: o.name } : {});
      print(cmd, snap, () => r.renderFields([['snapshot', snap.id], ['vm', snap.vm], ['name', snap.name], ['host', snap.host], ['memory', r.formatCount(snap.memoryBytes) + ' bytes'], ['created', snap.createdAt]]));
    });
  program
    .command('clone')
    .argument('<vm>', 'VM id')
    .option('--name <name>', 'name of the new instance')
    .option('--host <host>', 'host of the new instance')
    .description('clone a VM into a new instance')
    .action(async (vmId: string, o: { name?: string; host?: string }, cmd: Command) => {
      const vm = await clientOf(cmd).post<Vm>(apiPath(API_ROUTES.vmClone, vmId), { ...(o.name ? { name: o.name } : {}), ...(o.host ? { host: o.host } : {}) });
      print(cmd, vm, () => r.renderVm(vm));
    });
  program
    .command('capture')
    .argument('<vm>', 'VM id')
    .requiredOption('--name <name>', 'id of the new image')
    .option('--description <text>', 'image description')
    .description("capture a VM's memory as a new image (deduplicated against the library)")
    .action(async (vmId: string, o: { name: string; description?: string }, cmd: Command) => {
      const image = await clientOf(cmd).post<Image>(API_ROUTES.images, { vm: vmId, name: o.name, ...(o.description ? { description: o.description } : {}) });
      print(cmd, image, () => r.renderImage(image));
    });

  const migrate = program
    .command('migrate')
    .argument('[vm]', 'VM id')
    .description('live-migrate a VM (iterative pre-copy); waits for the report')
    .option('--to <host>', 'destination host (default: the coordinator picks)')
    .option('--max-downtime <ms>', 'target downtime', integer('--max-downtime', 1, 600_000))
    .option('--max-rounds <n>', 'most pre-copy rounds', integer('--max-rounds', 1, 1000))
    .option('--bandwidth <rate>', 'bandwidth limit: 100MiB, 1G/s, 800Mbit/s (default unlimited)')
    .option('--auto-converge', 'throttle the vCPUs when dirtying outpaces the link');
  addRateLimitOptions(migrate)
    .option('--watch', 'show progress per round (the default without --json)')
    .option('--no-progress', 'print only the final report')
    .option('--no-wait', 'return once the migration has started')
    .option('--cancel <migration>', 'cancel a running migration instead')
    .action(async (vmId: string | undefined, o: { to?: string; maxDowntime?: number; maxRounds?: number; bandwidth?: string; autoConverge?: boolean; watch?: boolean; wait: boolean; progress: boolean; cancel?: string } & RateLimitFlags, cmd: Command) => {
      const client = clientOf(cmd);
      const json = globals(cmd).json === true;
      if (o.cancel !== undefined) {
        if (vmId !== undefined) throw new UsageError('migrate --cancel ID takes no VM argument');
        let m = await client.post<Migration>(apiPath(API_ROUTES.migrationCancel, o.cancel));
        // The cancel is asynchronous: show where it ended (cancelled, or completed if it was past its commit point).
        const deadline = Date.now() + CANCEL_WAIT_MS;
        while (!FINAL_MIGRATION_STATES.includes(m.state) && Date.now() < deadline && !ctx.signal?.aborted) {
          await new Promise((resolve) => setTimeout(resolve, 200));
          m = await client.get<Migration>(apiPath(API_ROUTES.migration, m.id));
        }
        print(cmd, m, () => r.renderMigration(m));
        return;
      }
      if (vmId === undefined) throw new UsageError('migrate needs a VM id (or --cancel MIGRATION)');
      let policy: MigrationPolicyRequest = {
        ...(o.maxDowntime !== undefined ? { maxDowntimeMs: o.maxDowntime } : {}),
        ...(o.maxRounds !== undefined ? { maxRounds: o.maxRounds } : {}),
        ...(o.bandwidth !== undefined ? { bandwidthLimit: o.bandwidth } : {}),
        ...(o.autoConverge ? { autoConverge: true } : {}),
      };
      const rateLimit = rateLimitRequest(o);
      if (rateLimit !== undefined) policy = { ...policy, rateLimit };
      clientSide(() => validateMigrationPolicy(policy));
      if (!o.wait) {
        const m = await client.post<Migration>(API_ROUTES.migrations, { vm: vmId, ...(o.to ? { to: o.to } : {}), policy });
        print(cmd, m, () => r.renderMigration(m));
        return;
      }
      const vm = await client.get<Vm>(apiPath(API_ROUTES.vm, vmId));
      const vmPages = r.vmPagesOf(vm.memoryBytes);
      // Live progress per round unless --json or --no-progress (--watch only says it explicitly).
      const showProgress = !json && o.progress !== false;
      const final = await startAndWatchMigration({
        client,
        vm: vmId,
        ...(o.to !== undefined ? { to: o.to } : {}),
        policy,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        onStarted: (m) => {
          if (showProgress) ctx.out(`migration ${m.id}: ${m.vm} ${m.from} → ${m.to}\n`);
        },
        onRound: (round) => {
          if (showProgress) ctx.out(r.renderRoundProgress(round, vmPages));
        },
      });
      if (final.state === 'completed') {
        const report = final.report;
        print(cmd, report ?? final, () => (report ? r.renderReport(report) : r.renderMigration(final)));
        return;
      }
      if (final.state === 'failed' || final.state === 'cancelled') {
        const error = final.error ?? { code: final.state === 'cancelled' ? 'FERRY_ERR_MIGRATION_CANCELLED' : 'FERRY_ERR_MIGRATION_FAILED', message: `migration ${final.id} ${final.state}` };
        if (json) ctx.out(JSON.stringify({ error, ...(final.report ? { report: final.report } : {}) }, null, 2) + '\n');
        else ctx.err(`${final.report ? r.renderReport(final.report) : r.renderMigration(final)}error: migration ${final.id} ${final.state}: ${error.message} [${error.code}]\n`);
        setStatus(EXIT_FAILED);
        return;
      }
      // Aborted while running: it goes on in the background.
      print(cmd, final, () => `${r.renderMigration(final)}still running: ferry show ${final.id}\n`);
    });

  program.command('migrations').description('list migrations').action(async (_o, cmd: Command) => {
    const ms = await clientOf(cmd).get<Migration[]>(API_ROUTES.migrations);
    print(cmd, ms, () => r.renderMigrations(ms));
  });

  program
    .command('drain')
    .argument('<host>', 'host id')
    .option('--cancel', 'cancel a running drain')
    .option('--wait', 'wait until the host is in maintenance')
    .description('live-migrate every VM off a host, then put it in maintenance')
    .action(async (hostId: string, o: { cancel?: boolean; wait?: boolean }, cmd: Command) => {
      const client = clientOf(cmd);
      const drain = await client.post<HostDrain>(apiPath(o.cancel ? API_ROUTES.hostDrainCancel : API_ROUTES.hostDrain, hostId));
      if (!o.wait || o.cancel) {
        print(cmd, drain, () => renderDrain(drain));
        return;
      }
      let host = await client.get<Host>(apiPath(API_ROUTES.host, hostId));
      while (host.state === 'draining' && !ctx.signal?.aborted) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        host = await client.get<Host>(apiPath(API_ROUTES.host, hostId));
      }
      print(cmd, host, () => r.renderHost(host));
      if (host.state !== 'maintenance') setStatus(EXIT_FAILED);
    });
  program
    .command('undrain')
    .argument('<host>', 'host id')
    .description('take a host out of maintenance')
    .action(async (hostId: string, _o, cmd: Command) => {
      const host = await clientOf(cmd).post<Host>(apiPath(API_ROUTES.hostUndrain, hostId));
      print(cmd, host, () => r.renderHost(host));
    });

  program
    .command('events')
    .description('print the event stream')
    .option('--since <seq>', 'events after this seq', integer('--since', 0, Number.MAX_SAFE_INTEGER))
    .option('--limit <n>', 'at most this many past events: the latest ones, or the first ones after --since', integer('--limit', 1, 100_000))
    .option('--follow', 'keep printing new events (Ctrl-C stops)')
    .action(async (o: { since?: number; limit?: number; follow?: boolean }, cmd: Command) => {
      const client = clientOf(cmd);
      const json = globals(cmd).json === true;
      // Without --since, --limit keeps the latest events (like tail); with it, the first ones after that seq (paging).
      const kept = await client.get<ApiEvent[]>(API_ROUTES.events, { since: o.since ?? 0, limit: o.since !== undefined ? o.limit : undefined });
      const past = o.since === undefined && o.limit !== undefined ? kept.slice(-o.limit) : kept;
      if (!o.follow) {
        print(cmd, past, () => (past.length === 0 ? '(no events)\n' : past.map(r.renderEvent).join('')));
        return;
      }
      // --follow prints one line (or one JSON object) per event, backlog first.
      const show = (e: ApiEvent): void => ctx.out(json ? JSON.stringify(e) + '\n' : r.renderEvent(e));
      let last = o.since ?? 0;
      for (const e of kept) last = Math.max(last, e.seq); // events left out by --limit are not replayed either
      for (const e of past) show(e);
      const sub = await client.subscribe({
        since: last,
        onEvent: (e) => {
          if (e.seq <= last) return;
          last = e.seq;
          show(e);
        },
      });
      const onAbort = (): void => sub.close();
      ctx.signal?.addEventListener('abort', onAbort, { once: true });
      if (ctx.signal?.aborted) sub.close();
      await sub.closed;
      ctx.signal?.removeEventListener('abort', onAbort);
    });

  program
    .command('wws')
    .argument('<vm>', 'VM id')
    .option('--samples <n>', 'number of samples', integer('--samples', 1, 1000), 20)
    .option('--interval <ms>', 'sampling interval (the paper: 50 ms)', integer('--interval', 10, 60_000), 50)
    .option('--bandwidth <rate>', 'also predict pre-copy at this link rate (e.g. 1Gbit/s, 125MB)')
    .option('--max-downtime <ms>', 'with --bandwidth: the stop rule\'s downtime target', integer('--max-downtime', 1, 600_000))
    .option('--svg <file>', 'also draw the writable working set over time into this SVG file')
    .description("sample a VM's writable working set (pages dirtied per interval), plot it, and predict pre-copy at a bandwidth")
    .action(async (vmId: string, o: { samples: number; interval: number; bandwidth?: string; maxDowntime?: number; svg?: string }, cmd: Command) => {
      if (o.maxDowntime !== undefined && o.bandwidth === undefined) throw new UsageError('--max-downtime needs --bandwidth');
      const report = await clientOf(cmd).get<WwsReport>(apiPath(API_ROUTES.vmWws, vmId), { samples: o.samples, intervalMs: o.interval, bandwidth: o.bandwidth, maxDowntimeMs: o.maxDowntime });
      if (o.svg !== undefined) writeFileSync(o.svg, wwsChartSvg([{ label: vmId, intervalMs: o.interval, dirtyPages: report.samples.map((s) => s.dirtyPages) }], `writable working set of ${vmId}`));
      print(cmd, report, () => renderWws(report) + (o.svg !== undefined ? `chart: ${o.svg}\n` : ''));
    });

  registerPlanCommand(program, { clientOf, print, failed: () => setStatus(EXIT_FAILED) });
  registerBenchCommand(program, { clientOf, print, ...(ctx.signal ? { signal: ctx.signal } : {}) });
  return program;
}

/** What to tell a user whose coordinator does not answer, by where its address came from (Connection.source). */
export function unreachableHint(conn: { url: string; source?: string }): { unreachableHint?: string } {
  if (conn.source === 'default') return { unreachableHint: 'no local cluster found (.ferry/cluster.json): start one with `pnpm cluster --detach`, or name one with --state-dir DIR, --url and --token, or FERRY_URL and FERRY_TOKEN' };
  if (conn.source?.endsWith('.json')) return { unreachableHint: `${conn.source} names a cluster that is not running any more: \`pnpm cluster --detach\` starts it again` };
  return {};
}

/** The samples as a table with a bar per interval, the working set, and the prediction if asked. */
function renderWws(report: WwsReport): string {
  const most = Math.max(1, ...report.samples.map((s) => s.dirtyPages));
  const table = r.renderTable(report.samples, [
    { header: 'interval', cell: (s) => r.formatMs(s.intervalMs), align: 'right' },
    { header: 'dirty pages', cell: (s) => r.formatCount(s.dirtyPages), align: 'right' },
    { header: 'pages/s', cell: (s) => r.formatCount(s.dirtyRatePagesPerSec), align: 'right' },
    { header: '', cell: (s) => '#'.repeat(Math.round((s.dirtyPages / most) * 40)) },
  ]);
  const wws = `writable working set: ${r.formatCount(report.wwsPages)} pages (${r.formatCount(report.wwsBytes)} bytes) of ${r.formatCount(report.memoryBytes)} bytes\n`;
  const p = report.prediction;
  const predicted = p
    ? `predicted pre-copy at ${formatRate(p.bandwidthBytesPerSec)} (stop rule ${r.formatMs(p.maxDowntimeMs)}): ${p.rounds} rounds, ${p.stopReason}, downtime ${r.formatMs(p.downtimeMs)} (${r.formatCount(p.finalPages)} pages while paused), total ${r.formatMs(p.totalMs)}\n` +
      '  (round 1 sends all of memory; the fixed cost of the switch-over is not included: compare with a migration\'s report)\n'
    : '';
  return table + wws + predicted;
}

function renderDrain(d: HostDrain): string {
  return r.renderFields([
    ['host', d.host],
    ['drain', d.state],
    ['vms moved', `${d.vmsMoved} of ${d.vmsTotal}`],
    ['migrations', d.migrations.length ? d.migrations.join(', ') : '-'],
    ...(d.error ? [['error', `${d.error.code}: ${d.error.message}`] as const] : []),
  ]);
}
