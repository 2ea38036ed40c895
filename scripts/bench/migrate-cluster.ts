// Reusable process-spawning helpers for migration tests, `pnpm bench migrate` and the downtime lab:
// a lab coordinator process (migrate-coordinator.ts) and real agent processes on loopback, with a
// small typed client for the routes they need.
//
// ```ts
// const cluster = await startMigrationCluster({ agents: ['h1', 'h2', 'h3'] });
// await cluster.createVm('h1', { id: 'vm-1', name: 'a', vcpus: 1, memoryBytes: 64 << 20, workload: { kind: 'hotset' } });
// const m = await cluster.migrate('vm-1', { to: 'h2' });
// const done = await cluster.waitMigration(m.id);        // state, rounds, report (downtimeMs, …)
// const probe = await cluster.probeClient('h2');          // apps/agent/src/probe.ts
// cluster.agent('h2').kill('SIGKILL');                     // kill -9
// await cluster.stop();
// ```
// `pnpm bench migrate-cluster [--agents 3]` starts one and waits for Ctrl-C (prints how to reach it).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Migration, MigrationPolicy, VmReport, VmSpecWire } from '@ferry/protocol';
import { spawnTs, type SpawnedProcess } from '../../test/e2e/src/harness.ts';
import { ProbeClient } from '../../apps/agent/src/probe.ts';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const COORDINATOR_MAIN = join(HERE, 'migrate-coordinator.ts');
const AGENT_MAIN = resolve(HERE, '../../apps/agent/src/main.ts');

/** Options of startMigrationCluster. */
export interface MigrationClusterOptions {
  /** Host ids of the agents to start (default h1, h2, h3). */
  readonly agents?: readonly string[];
  /** Memory capacity of each agent (default 4GiB). */
  readonly agentMemory?: string;
  /** pCPU workers per agent (default 1). */
  readonly pcpus?: number;
  readonly heartbeatIntervalMs?: number;
  /** Default max(3000 ms, 3 × heartbeat): a loaded machine delays heartbeats; kill -9 is seen at once (the link closes). */
  readonly failureTimeoutMs?: number;
  /** Source's wait for the commit decision (default 30 s). */
  readonly decisionTimeoutMs?: number;
  /** Log level of the processes (default warn); their stderr is kept for `logs()`. */
  readonly logLevel?: string;
  /** Extra command-line flags for an agent (e.g. `--advertise-host` to route its migration port through a proxy). */
  readonly agentArgs?: (hostId: string) => readonly string[];
  /** Extra environment of the first coordinator process (e.g. `{ FERRY_FAILPOINTS: 'crash-after-commit-record' }`); a restart takes its own. */
  readonly coordinatorEnv?: NodeJS.ProcessEnv;
}

/** An agent process of the cluster. */
export interface ClusterAgent extends SpawnedProcess {
  readonly hostId: string;
  readonly migrationAddress: string;
}

/** A running cluster. */
export interface MigrationCluster {
  readonly url: string;
  readonly token: string;
  readonly stateDir: string;
  coordinator(): SpawnedProcess;
  agent(hostId: string): ClusterAgent;
  agents(): ClusterAgent[];
  /** Starts (or restarts) an agent; resolves once it registered. */
  startAgent(hostId: string): Promise<ClusterAgent>;
  /**
   * Kills the coordinator (SIGKILL by default; a no-op when it already died) and starts it again on
   * the same port and state dir, with `options.env` as its extra environment (default none: a
   * failpoint of the first process is not re-armed).
   */
  restartCoordinator(signal?: NodeJS.Signals, options?: { env?: NodeJS.ProcessEnv }): Promise<void>;
  /** Authenticated JSON request to the coordinator; throws with `status` and `body` on non-2xx. */
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
  /** Creates a VM with an exact spec on `host` (POST /api/v1/lab/vms). */
  createVm(host: string, spec: VmSpecWire, options?: { image?: string; start?: boolean }): Promise<VmReport>;
  /** Every VM the agents report, with its host. */
  vms(): Promise<{ host: string; vm: VmReport }[]>;
  /** Guest steps of a VM as its host last reported (heartbeat lag), 0 if not reported. */
  steps(vmId: string): Promise<number>;
  /** The memory digest of a VM where it runs. */
  digest(vmId: string): Promise<{ host: string; digest: string; state: string; totalSteps: number }>;
  /** Starts a migration (202); policy fields default to DEFAULT_MIGRATION_POLICY. */
  migrate(vmId: string, options?: { to?: string; policy?: Partial<MigrationPolicy> }): Promise<Migration>;
  /** Polls until the migration is final. */
  waitMigration(id: string, timeoutMs?: number): Promise<Migration>;
  /** A probe client on an agent's migration port. */
  probeClient(hostId: string): Promise<ProbeClient>;
  /** Stops every process and removes the temp dirs. */
  stop(): Promise<void>;
}

/** Starts a lab coordinator and the agents; resolves once every agent registered. */
export async function startMigrationCluster(options: MigrationClusterOptions = {}): Promise<MigrationCluster> {
  const root = mkdtempSync(join(tmpdir(), 'ferry-migrate-'));
  const stateDir = join(root, 'coordinator');
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? 200;
  const logLevel = options.logLevel ?? 'warn';
  const coordArgs = (port: number): string[] => [
    '--port', String(port),
    '--state-dir', stateDir,
    '--heartbeat-interval-ms', String(heartbeatIntervalMs),
    '--failure-timeout-ms', String(options.failureTimeoutMs ?? Math.max(3000, 3 * heartbeatIntervalMs)),
    '--log-level', logLevel,
    ...(options.decisionTimeoutMs !== undefined ? ['--decision-timeout-ms', String(options.decisionTimeoutMs)] : []),
  ];
  let coord = await spawnTs(COORDINATOR_MAIN, coordArgs(0), { readyEvent: 'coordinator-ready', ...(options.coordinatorEnv ? { env: options.coordinatorEnv } : {}) });
  const port = coord.ready['port'] as number;
  const token = coord.ready['token'] as string;
  const url = `http://127.0.0.1:${port}`;
  const agents = new Map<string, ClusterAgent>();

  const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(url + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    const parsed: unknown = text ? JSON.parse(text) : undefined;
    if (!res.ok) throw Object.assign(new Error(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 300)}`), { status: res.status, body: parsed });
    return parsed as T;
  };
  const hostUp = async (hostId: string): Promise<boolean> => {
    const hosts = await api<{ id: string; state: string }[]>('GET', '/api/v1/hosts');
    return hosts.some((h) => h.id === hostId && h.state === 'up');
  };
  const until = async (cond: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> => {
    const start = Date.now();
    for (;;) {
      try {
        if (await cond()) return;
      } catch {
        // not yet
      }
      if (Date.now() - start > timeoutMs) throw new Error(`${what} not within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  const startAgent = async (hostId: string): Promise<ClusterAgent> => {
    const args = [
      '--coordinator', `ws://127.0.0.1:${port}`,
      '--token', token,
      '--id', hostId,
      '--cpus', '8',
      '--memory', options.agentMemory ?? '4GiB',
      '--disk', '10GiB',
      '--data-dir', join(root, hostId),
      '--pcpus', String(options.pcpus ?? 1),
      '--log-level', logLevel,
      ...(options.agentArgs?.(hostId) ?? []),
    ];
    const p = await spawnTs(AGENT_MAIN, args, { readyEvent: 'agent-ready', bundle: true });
    const agent: ClusterAgent = { ...p, hostId, migrationAddress: p.ready['migrationAddress'] as string };
    agents.set(hostId, agent);
    await until(() => hostUp(hostId), 20_000, `agent ${hostId} registered`);
    return agent;
  };
  try {
    await Promise.all((options.agents ?? ['h1', 'h2', 'h3']).map((id) => startAgent(id)));
  } catch (err) {
    coord.kill('SIGKILL');
    for (const a of agents.values()) a.kill('SIGKILL');
    throw err;
  }

  const cluster: MigrationCluster = {
    url,
    token,
    stateDir,
    coordinator: () => coord,
    agent(hostId) {
      const a = agents.get(hostId);
      if (!a) throw new Error(`no agent ${hostId}`);
      return a;
    },
    agents: () => [...agents.values()],
    startAgent,
    async restartCoordinator(signal = 'SIGKILL', o = {}) {
      coord.kill(signal);
      await coord.exited;
      coord = await spawnTs(COORDINATOR_MAIN, coordArgs(port), { readyEvent: 'coordinator-ready', ...(o.env ? { env: o.env } : {}) });
    },
    api,
    createVm: (host, spec, o = {}) => api<VmReport>('POST', '/api/v1/lab/vms', { host, spec, ...(o.image !== undefined ? { image: o.image } : {}), start: o.start ?? true }),
    vms: () => api('GET', '/api/v1/lab/vms'),
    steps: async (vmId) => (await cluster.vms()).find((v) => v.vm.vmId === vmId)?.vm.totalSteps ?? 0,
    digest: (vmId) => api('GET', `/api/v1/lab/vms/${encodeURIComponent(vmId)}/digest`),
    migrate: (vmId, o = {}) => api<Migration>('POST', `/api/v1/vms/${encodeURIComponent(vmId)}/migrate`, { ...(o.to !== undefined ? { to: o.to } : {}), ...(o.policy ? { policy: o.policy } : {}) }),
    async waitMigration(id, timeoutMs = 120_000) {
      let m: Migration | undefined;
      await until(
        async () => {
          m = await api<Migration>('GET', `/api/v1/migrations/${encodeURIComponent(id)}`);
          return ['completed', 'failed', 'cancelled'].includes(m.state);
        },
        timeoutMs,
        `migration ${id} final`,
      );
      return m!;
    },
    probeClient: (hostId) => ProbeClient.connect(cluster.agent(hostId).migrationAddress, token),
    async stop() {
      await Promise.all([coord, ...agents.values()].map((p) => p.stop(2000)));
      rmSync(root, { recursive: true, force: true });
    },
  };
  return cluster;
}

/** `pnpm bench migrate-cluster [--agents N]`: starts a lab cluster and waits for Ctrl-C. */
export async function main(args: string[]): Promise<void> {
  const i = args.indexOf('--agents');
  const n = i >= 0 ? Number(args[i + 1]) : 3;
  const cluster = await startMigrationCluster({ agents: Array.from({ length: n }, (_, k) => `h${k + 1}`), logLevel: 'info' });
  process.stdout.write(`lab cluster up: ${cluster.url} token ${cluster.token}\nagents: ${cluster.agents().map((a) => `${a.hostId} ${a.migrationAddress}`).join(', ')}\nCtrl-C stops it.\n`);
  await new Promise<void>((r) => process.once('SIGINT', () => r()));
  await cluster.stop();
}
