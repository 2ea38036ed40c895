/**
 * Multi-process test harness: spawns the coordinator and agents as real child processes (node +
 * tsx), waits for their one-line JSON ready announcement on stdout, keeps their stderr (logs) for
 * failure messages, and kills everything it started when a test ends, or when the test process
 * exits, so no orphan is left behind.
 *
 * ```ts
 * const cluster = new ProcessGroup();
 * afterEach(() => cluster.stopAll());
 * const coord = await cluster.startCoordinator();
 * const a1 = await cluster.startAgent(coord, { id: 'host-1' });
 * await waitFor(async () => (await coord.getJson('/api/v1/hosts')).length === 1);
 * ```
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundledEntry, tsxExecArgv, waitForReadyLine } from '@ferry/transport';

/** The repository root. */
export const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
const COORDINATOR_MAIN = join(REPO_ROOT, 'apps/coordinator/src/main.ts');
const AGENT_MAIN = join(REPO_ROOT, 'apps/agent/src/main.ts');

/** A spawned child process with its ready line. */
export interface SpawnedProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The parsed ready line. */
  readonly ready: Record<string, unknown>;
  /** Resolves with the exit code and signal when the process ends. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last lines of stderr (logs), for failure messages. */
  logs(): string;
  /** Sends a signal (SIGKILL for kill -9, SIGSTOP to freeze). */
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs` (default 3000); resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** Options of spawnTs. */
export interface SpawnTsOptions {
  /** The `event` value of the JSON ready line on stdout; omit to not wait. */
  readonly readyEvent?: string;
  /** Default 20000 ms. */
  readonly readyTimeoutMs?: number;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Run a bundle of the module with plain node instead of tsx (bundledEntry: ~38 MiB less RSS); agents do. */
  readonly bundle?: boolean;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** Spawns `node --import tsx <modulePath> args` (or `node <bundle> args`) and waits for its ready line. */
export async function spawnTs(modulePath: string, args: readonly string[], options: SpawnTsOptions = {}): Promise<SpawnedProcess> {
  const entry = options.bundle ? [await bundledEntry(modulePath)] : [...tsxExecArgv(), modulePath];
  const child = spawn(process.execPath, [...entry, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const stderr: string[] = [];
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    stderr.push(s);
    if (stderr.length > 200) stderr.shift();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.once('exit', (code, signal) => {
      live.delete(child);
      res({ code, signal });
    }),
  );
  const logs = (): string => stderr.join('').split('\n').slice(-40).join('\n');
  let ready: Record<string, unknown> = {};
  if (options.readyEvent !== undefined) {
    const event = options.readyEvent;
    ready = await waitForReadyLine(child, event, exited, options.readyTimeoutMs ?? 20000, (why) => `${modulePath}: ${why}\n${logs()}`);
  }
  return {
    child,
    pid: child.pid!,
    ready,
    exited,
    logs,
    kill: (signal = 'SIGTERM') => void child.kill(signal),
    async stop(graceMs = 3000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/** A coordinator child process. */
export interface CoordinatorProcess extends SpawnedProcess {
  readonly port: number;
  readonly url: string;
  readonly wsUrl: string;
  readonly token: string;
  readonly stateDir: string;
  /** GET a JSON path with the cluster token (or `token`); throws on non-2xx with the status. */
  getJson<T = unknown>(path: string, token?: string | null): Promise<T>;
  /** GET a path and return the status only. */
  status(path: string, token?: string | null): Promise<number>;
}

/** An agent child process. */
export interface AgentProcess extends SpawnedProcess {
  readonly hostId: string;
  readonly migrationPort: number;
}

/** Options of ProcessGroup.startCoordinator. */
export interface CoordinatorProcessOptions {
  readonly port?: number;
  /** Default a fresh temp dir (removed by stopAll). */
  readonly stateDir?: string;
  readonly heartbeatIntervalMs?: number;
  readonly failureTimeoutMs?: number;
}

/** Options of ProcessGroup.startAgent. */
export interface AgentProcessOptions {
  readonly id: string;
  readonly cpus?: number;
  readonly memory?: string;
  readonly disk?: string;
  readonly token?: string;
  /** Extra flags. */
  readonly args?: readonly string[];
  /** Wait for the agent-ready line; default true. */
  readonly waitReady?: boolean;
}

/** Everything a test started; `stopAll()` in afterEach. */
export class ProcessGroup {
  private readonly procs: SpawnedProcess[] = [];
  private readonly tempDirs: string[] = [];

  /** A temp dir removed by stopAll. */
  tempDir(prefix = 'ferry-e2e-'): string {
    const d = mkdtempSync(join(tmpdir(), prefix));
    this.tempDirs.push(d);
    return d;
  }

  /** Spawns and tracks a process. */
  async spawn(modulePath: string, args: readonly string[], options?: SpawnTsOptions): Promise<SpawnedProcess> {
    const p = await spawnTs(modulePath, args, options);
    this.procs.push(p);
    return p;
  }

  /** Starts a coordinator on port 0 (or `port`) with a temp state dir; resolves when it is ready. */
  async startCoordinator(options: CoordinatorProcessOptions = {}): Promise<CoordinatorProcess> {
    const stateDir = options.stateDir ?? this.tempDir('ferry-coord-');
    const args = ['--port', String(options.port ?? 0), '--state-dir', stateDir, '--heartbeat-interval-ms', String(options.heartbeatIntervalMs ?? 200)];
    if (options.failureTimeoutMs !== undefined) args.push('--failure-timeout-ms', String(options.failureTimeoutMs));
    const p = await this.spawn(COORDINATOR_MAIN, args, { readyEvent: 'coordinator-ready' });
    const port = p.ready['port'] as number;
    const url = `http://127.0.0.1:${port}`;
    const token = readFileSync(join(stateDir, 'token'), 'utf8').trim();
    const request = async (path: string, t: string | null | undefined): Promise<Response> => {
      const headers: Record<string, string> = {};
      const tok = t === undefined ? token : t;
      if (tok !== null) headers['authorization'] = `Bearer ${tok}`;
      return fetch(url + path, { headers });
    };
    return {
      ...p,
      port,
      url,
      wsUrl: `ws://127.0.0.1:${port}`,
      token,
      stateDir,
      async getJson<T>(path: string, t?: string | null): Promise<T> {
        const res = await request(path, t);
        if (!res.ok) throw Object.assign(new Error(`GET ${path}: HTTP ${res.status}`), { status: res.status });
        return (await res.json()) as T;
      },
      async status(path: string, t?: string | null): Promise<number> {
        const res = await request(path, t);
        await res.arrayBuffer();
        return res.status;
      },
    };
  }

  /** Starts an agent connected to `coordinator`; resolves when its migration port listens. */
  async startAgent(coordinator: { wsUrl: string; token: string }, options: AgentProcessOptions): Promise<AgentProcess> {
    const args = [
      '--coordinator', coordinator.wsUrl,
      '--token', options.token ?? coordinator.token,
      '--id', options.id,
      '--cpus', String(options.cpus ?? 4),
      '--memory', options.memory ?? '1GiB',
      '--disk', options.disk ?? '10GiB',
      '--migration-port', '0',
      ...(options.args ?? []),
    ];
    const p = await this.spawn(AGENT_MAIN, args, { bundle: true, ...(options.waitReady === false ? {} : { readyEvent: 'agent-ready' }) });
    return { ...p, hostId: options.id, migrationPort: (p.ready['migrationPort'] as number | undefined) ?? 0 };
  }

  /** Stops every process (SIGTERM, then SIGKILL) and removes temp dirs. */
  async stopAll(): Promise<void> {
    await Promise.all(this.procs.splice(0).map((p) => p.stop(2000)));
    for (const d of this.tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }
}

/** An /api call with the cluster token; any status, the JSON body as it came. */
export async function callApi(coord: CoordinatorProcess, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(coord.url + path, {
    method,
    headers: { authorization: `Bearer ${coord.token}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: await res.json() };
}

/** Polls `cond` every 25 ms until it is true; throws after `timeoutMs` (default 10000) with `what`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 10000, what = 'condition'): Promise<number> {
  const start = Date.now();
  for (;;) {
    try {
      if (await cond()) return Date.now() - start;
    } catch {
      /* not yet */
    }
    if (Date.now() - start > timeoutMs) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** True when a process with this pid exists. */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
