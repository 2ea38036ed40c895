/**
 * `pnpm cluster`: a local Ferry cluster on loopback — a coordinator and N agents as real child
 * processes, a few demo VMs, and the coordinator console in this terminal.
 *
 * ```
 * pnpm cluster [--agents 3] [--cpus 4] [--memory 2GiB] [--disk 20GiB] [--port 7070] [--host 127.0.0.1]
 *              [--state-dir .ferry] [--placement best-fit] [--no-demo] [--detach] [--log-level info]
 *              [--failure-timeout-ms 3000]
 * pnpm cluster down [--state-dir .ferry]
 * ```
 * - The coordinator listens on `--port` (0: any free port); `<stateDir>/cluster.json` ({url, token})
 *   tells `pnpm ferry` where it is, so `pnpm ferry hosts` needs no flags. Logs: `<stateDir>/logs/`.
 * - Foreground: the console reads commands from this terminal (or from stdin when it is a pipe,
 *   until end of input). `exit`, Ctrl-C at the prompt, end of input, SIGINT or SIGTERM stop every
 *   process of the cluster and free its ports.
 * - `--detach`: the cluster keeps running in the background under a supervisor process whose pid is
 *   in `<stateDir>/cluster.pid`; `pnpm cluster down` stops it.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, closeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { LOCAL_CLUSTER_FILE, parseSize, type LocalClusterFile } from '@ferry/protocol';
import { writeFileAtomic } from '../apps/coordinator/src/state-dir.ts';
import { CONSOLE_HISTORY_FILE, startConsole } from '../apps/cli/src/index.ts';
import { AGENT_MAIN, COORDINATOR_MAIN, REPO_ROOT, processAlive, startChild, type ClusterChild } from './cluster-processes.ts';
import { bootDemoVms, waitForHosts } from './cluster-demo.ts';
import { tsxExecArgv } from '@ferry/transport';
import { STRATEGIES } from '@ferry/placement';

/** File holding the supervisor's pid while a cluster runs. */
export const CLUSTER_PID_FILE = 'cluster.pid';

const say = (line: string): void => void process.stdout.write(line + '\n');
function fail(message: string, code = 2): never {
  process.stderr.write(`cluster: ${message}\n`);
  process.exit(code);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      agents: { type: 'string' },
      cpus: { type: 'string' },
      memory: { type: 'string' },
      disk: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      'state-dir': { type: 'string' },
      placement: { type: 'string' },
      'no-demo': { type: 'boolean' },
      detach: { type: 'boolean' },
      supervise: { type: 'boolean' },
      'log-level': { type: 'string' },
      'failure-timeout-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
} catch (err) {
  fail((err as Error).message);
}
const { values, positionals } = parsed;
if (values.help) {
  say('usage: pnpm cluster [options]        a coordinator and N agents on loopback, demo VMs, then the console');
  say('       pnpm cluster down [--state-dir .ferry]   stop a cluster started with --detach');
  say('');
  say('  --agents N             host agents (default 3)');
  say('  --cpus N               vCPUs of each agent (default 4)');
  say('  --memory SIZE          memory of each agent (default 2GiB)');
  say('  --disk SIZE            disk of each agent (default 20GiB)');
  say('  --port N               coordinator port (default 7070; 0: any free port)');
  say('  --host ADDR            coordinator listen address (default 127.0.0.1; 0.0.0.0 lets remote agents join)');
  say('  --state-dir DIR        token, VMs, migrations, images, logs (default .ferry); `pnpm ferry --state-dir DIR` finds it');
  say(`  --placement NAME       scheduler strategy (${STRATEGIES.join(', ')}; default best-fit)`);
  say('  --no-demo              boot no demo VMs');
  say('  --detach               run in the background; `pnpm ferry ...` talks to it, `pnpm cluster down` stops it');
  say('  --log-level LEVEL      trace, debug, info, warn, error (default info)');
  say('  --failure-timeout-ms N how long a silent agent stays up (default 3000)');
  say('');
  say('Remote agents join with: tsx apps/agent/src/main.ts --coordinator ws://HOST:PORT --token-file DIR/token (or --token T)');
  process.exit(0);
}
const stateDir = resolve(values['state-dir'] ?? '.ferry');
const pidFile = join(stateDir, CLUSTER_PID_FILE);
const clusterFile = join(stateDir, LOCAL_CLUSTER_FILE);
const logDir = join(stateDir, 'logs');
/** How commands name this state dir: nothing for `<repo>/.ferry` (found by itself), else `--state-dir DIR`. */
const where = stateDir === resolve(REPO_ROOT, '.ferry') ? '' : ` --state-dir ${stateDir}`;

if (positionals[0] === 'down') {
  await down();
  process.exit(0);
}
if (positionals.length > 0) fail(`unknown command "${positionals[0]}" (only "down")`);

const agentCount = intOption('agents', values.agents, 3, 1, 64);
const cpus = intOption('cpus', values.cpus, 4, 1, 4096);
const memoryBytes = sizeOption('memory', values.memory, '2GiB');
const diskBytes = sizeOption('disk', values.disk, '20GiB');
const port = intOption('port', values.port, 7070, 0, 65535);
const logLevel = values['log-level'] ?? 'info';
if (values.placement !== undefined && !(STRATEGIES as readonly string[]).includes(values.placement)) fail(`--placement must be one of ${STRATEGIES.join(', ')}, got "${values.placement}"`);
const failureTimeoutMs = values['failure-timeout-ms'] === undefined ? undefined : intOption('failure-timeout-ms', values['failure-timeout-ms'], 3000, 100, 600_000);

const running = runningSupervisor();
if (running !== undefined && running !== process.pid) fail(`a cluster already runs from ${stateDir} (pid ${running}); stop it with: pnpm cluster down${where}`, 1);

if (values.detach && !values.supervise) {
  await detach();
  process.exit(0);
}
await runCluster(values.supervise === true);

// ---------------------------------------------------------------------------------------------

function intOption(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min || n > max) fail(`--${name} must be an integer from ${min} to ${max}, got "${value}"`);
  return n;
}

function sizeOption(name: string, value: string | undefined, fallback: string): number {
  try {
    const bytes = parseSize(value ?? fallback, `--${name}`);
    if (bytes <= 0) fail(`--${name} must be more than 0 bytes`);
    return bytes;
  } catch (err) {
    fail((err as Error).message);
  }
}

/** The pid of a live supervisor of this state dir, if any (a stale pid file is removed). */
function runningSupervisor(): number | undefined {
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  if (Number.isSafeInteger(pid) && pid > 0 && processAlive(pid)) return pid;
  rmSync(pidFile, { force: true });
  return undefined;
}

async function down(): Promise<void> {
  const pid = runningSupervisor();
  if (pid === undefined) {
    say(`no cluster running from ${stateDir}`);
    return;
  }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 20_000;
  while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (processAlive(pid)) {
    process.kill(pid, 'SIGKILL');
    rmSync(pidFile, { force: true });
    rmSync(clusterFile, { force: true });
    say(`cluster (pid ${pid}) did not stop within 20 s: killed`);
    return;
  }
  say(`cluster stopped (pid ${pid})`);
}

/** Starts this script again as a background supervisor and returns once its cluster is ready. */
async function detach(): Promise<void> {
  mkdirSync(logDir, { recursive: true });
  const logFd = openSync(join(logDir, 'cluster.log'), 'a');
  const args = process.argv.slice(2).filter((a) => a !== '--detach');
  const child = spawn(process.execPath, [...tsxExecArgv(), join(REPO_ROOT, 'scripts/cluster.ts'), ...args, '--supervise', '--detach', '--state-dir', stateDir], {
    cwd: process.cwd(),
    detached: true,
    stdio: ['ignore', 'pipe', logFd],
  });
  closeSync(logFd);
  const ready = await new Promise<Record<string, unknown>>((res, rej) => {
    let buf = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      buf += s;
      for (const line of buf.split('\n')) {
        try {
          const msg = JSON.parse(line) as Record<string, unknown>;
          if (msg['event'] === 'cluster-ready') res(msg);
        } catch {
          /* partial line */
        }
      }
    });
    child.once('exit', (code) => rej(new Error(`the cluster exited (${code}) before it was ready; see ${join(logDir, 'cluster.log')}`)));
  }).catch((err: unknown) => {
    const log = join(logDir, 'cluster.log');
    const tail = existsSync(log) ? readFileSync(log, 'utf8').trimEnd().split('\n').slice(-6).map((l) => `  ${l}`).join('\n') : '';
    fail(`${(err as Error).message}${tail ? `\n${tail}` : ''}`, 1);
  });
  child.stdout!.destroy();
  child.unref();
  say(`Ferry cluster running in the background (pid ${child.pid}): coordinator ${String(ready['url'])}, ${agentCount} agents.`);
  say(`  npx -y pnpm@10.34.8 ferry hosts${where}      # or vms, images, run, migrate, drain …`);
  say(`  npx -y pnpm@10.34.8 ferry console${where}    # the console`);
  say(`  npx -y pnpm@10.34.8 cluster down${where}     # stop it`);
  say(`State and logs: ${stateDir}`);
}

async function runCluster(supervised: boolean): Promise<void> {
  const out = supervised ? (line: string) => void process.stderr.write(line + '\n') : say;
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileAtomic(pidFile, `${process.pid}\n`, 0o644);
  const children: ClusterChild[] = [];
  let stopping: Promise<void> | undefined;
  const stopAll = (why: string): Promise<void> => {
    stopping ??= (async () => {
      out(`stopping the cluster (${why}) …`);
      await Promise.all(children.filter((c) => c.name !== 'coordinator').map((c) => c.stop()));
      await Promise.all(children.filter((c) => c.name === 'coordinator').map((c) => c.stop()));
      rmSync(clusterFile, { force: true });
      if (runningSupervisor() === process.pid) rmSync(pidFile, { force: true });
      out('cluster stopped');
    })();
    return stopping;
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      void stopAll(signal).then(() => process.exit(0));
    });
  }
  try {
    const coordinator = await startChild(
      'coordinator',
      COORDINATOR_MAIN,
      ['--port', String(port), ...(values.host !== undefined ? ['--host', values.host] : []), '--state-dir', stateDir, '--log-level', logLevel, ...(values.placement !== undefined ? ['--placement', values.placement] : []), ...(failureTimeoutMs !== undefined ? ['--failure-timeout-ms', String(failureTimeoutMs)] : [])],
      logDir,
      'coordinator-ready',
    );
    children.push(coordinator);
    const url = String(coordinator.ready['url']);
    const token = readFileSync(join(stateDir, 'token'), 'utf8').trim();
    const local: LocalClusterFile = { url, token };
    writeFileAtomic(clusterFile, JSON.stringify(local, null, 2) + '\n');
    out(`coordinator ${url} (pid ${coordinator.pid}); state in ${stateDir}`);
    const wsUrl = url.replace(/^http/, 'ws');
    const agents = await Promise.all(
      Array.from({ length: agentCount }, (_, i) =>
        startChild(
          `host-${i + 1}`,
          AGENT_MAIN,
          ['--coordinator', wsUrl, '--token-file', join(stateDir, 'token'), '--id', `host-${i + 1}`, '--cpus', String(cpus), '--memory', String(memoryBytes), '--disk', String(diskBytes), '--log-level', logLevel, '--data-dir', join(stateDir, 'agents', `host-${i + 1}`)],
          logDir,
          'agent-ready',
          { bundle: true },
        ),
      ),
    );
    children.push(...agents);
    await waitForHosts(local, agents.map((a) => a.name));
    out(`${agents.length} agents up: ${agents.map((a) => `${a.name} (pid ${a.pid})`).join(', ')}`);
    if (!values['no-demo']) await bootDemoVms(local, out);
    if (supervised) {
      process.stdout.write(JSON.stringify({ event: 'cluster-ready', url, pid: process.pid, agents: agents.map((a) => a.name) }) + '\n');
      // Nothing more on stdout: the launcher has gone. Stay up until a signal.
      for (const c of children) void c.exited.then(() => void stopAll(`${c.name} exited`).then(() => process.exit(1)));
      return;
    }
    const handle = startConsole({
      url,
      token,
      input: process.stdin,
      output: process.stdout,
      terminal: process.stdin.isTTY === true && process.stdout.isTTY === true,
      historyPath: join(stateDir, CONSOLE_HISTORY_FILE),
    });
    for (const c of children) void c.exited.then(() => void stopAll(`${c.name} exited`).then(() => process.exit(1)));
    await handle.closed;
    await stopAll('console closed');
    process.exit(0);
  } catch (err) {
    process.stderr.write(`cluster: ${(err as Error).message}\n`);
    // A process that died before it was ready said why on its last lines: show them here, not only in its log.
    const failedLog = /\(see (.+\.log)\)/.exec((err as Error).message)?.[1];
    if (failedLog !== undefined && existsSync(failedLog)) {
      for (const line of readFileSync(failedLog, 'utf8').trimEnd().split('\n').slice(-3)) process.stderr.write(`  ${line.slice(0, 500)}\n`);
    }
    const coordinatorLog = join(logDir, 'coordinator.log');
    if (existsSync(coordinatorLog) && readFileSync(coordinatorLog, 'utf8').includes('EADDRINUSE')) {
      process.stderr.write(`cluster: port ${port} is in use (another cluster?); pick another with --port N, or --port 0 for any free port\n`);
    }
    await stopAll('start failed');
    process.exit(1);
  }
}
