/**
 * The coordinator process core, startable in-process (`startCoordinator`) and as a process
 * (main.ts): one HTTP server on one port carrying `/agent` (agents' WebSockets), `/api` (the
 * console's event stream), `/api/v1/*` (JSON), `/metrics`. State lives in the state directory:
 * the cluster token and state.json (hosts and their admin states; modules' sections).
 */
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { Gauge, Registry } from 'prom-client';
import { API_WS_PATH } from '@ferry/protocol';
import { attachWsRoutes, hasBearerToken, FERRY_CLOSE } from '@ferry/transport';
import { EventBus } from './events.ts';
import { HostRegistry } from './hosts.ts';
import { AgentLinks } from './agent-links.ts';
import { serveApiStream } from './api-stream.ts';
import { createHttpHandler } from './http-api.ts';
import { openStateDir, loadOrCreateToken, loadState, saveState, type StateDirPaths } from './state-dir.ts';
import { createLogger, type Logger } from './logger.ts';
import type { CoordinatorContext, CoordinatorModule } from './modules.ts';

/** Default port. */
export const DEFAULT_COORDINATOR_PORT = 7070;

/** Options of startCoordinator; all optional. */
export interface CoordinatorOptions {
  /** Port; default 7070, 0 for any free port (the real one is in the result). */
  readonly port?: number;
  /** Interface; default 127.0.0.1 (use 0.0.0.0 to let agents on other machines join). */
  readonly host?: string;
  /** State directory; default `.ferry` under cwd. */
  readonly stateDir?: string;
  /** Agents heartbeat at this interval; default 1000 ms. */
  readonly heartbeatIntervalMs?: number;
  /** A host silent this long is `down`; default 3 × heartbeatIntervalMs. */
  readonly failureTimeoutMs?: number;
  /** Logger; default a silent one (main.ts passes the process logger). */
  readonly logger?: Logger;
  /** Pluggable parts: the `migrations` module, a `vms` module, … (see modules.ts). */
  readonly modules?: readonly CoordinatorModule[];
}

/** A running coordinator. */
export interface RunningCoordinator {
  readonly port: number;
  readonly url: string;
  readonly token: string;
  readonly stateDir: string;
  readonly hosts: HostRegistry;
  readonly events: EventBus;
  readonly agents: AgentLinks;
  readonly context: CoordinatorContext;
  /** Closes agent links (GOING_AWAY), modules, the port, and saves the state. Idempotent. */
  close(): Promise<void>;
}

/** Starts a coordinator; resolves once it listens. */
export async function startCoordinator(options: CoordinatorOptions = {}): Promise<RunningCoordinator> {
  const logger = options.logger ?? createLogger('coordinator', 'silent', false);
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? 1000;
  const failureTimeoutMs = options.failureTimeoutMs ?? 3 * heartbeatIntervalMs;
  const paths: StateDirPaths = openStateDir(resolve(options.stateDir ?? '.ferry'));
  const { token, created } = loadOrCreateToken(paths);
  const persisted = loadState(paths);
  const modules = options.modules ?? [];

  const events = new EventBus();
  let saveTimer: NodeJS.Timeout | undefined;
  const saveNow = (): void => {
    if (saveTimer) clearTimeout(saveTimer);
    saveTimer = undefined;
    const moduleStates: Record<string, unknown> = { ...persisted.modules };
    for (const m of modules) if (m.saveState) moduleStates[m.name] = m.saveState();
    saveState(paths, {
      version: 1,
      hosts: hosts.list().map((h) => ({ id: h.id, adminState: h.adminState, lastSeenAtMs: h.lastHeartbeatAtMs })),
      modules: moduleStates,
    });
  };
  const requestSave = (): void => {
    saveTimer ??= setTimeout(() => {
      try {
        saveNow();
      } catch (err) {
        logger.error({ event: 'state-save-failed', err }, 'could not save state');
      }
    }, 50);
  };
  const hosts = new HostRegistry(events, requestSave);
  hosts.restore(persisted.hosts);

  const agents = new AgentLinks({
    hosts,
    logger,
    heartbeatIntervalMs,
    failureTimeoutMs,
    onUnhandled: (hostId, message) => {
      for (const m of modules) if (m.onAgentMessage?.(hostId, message)) return;
      logger.warn({ event: 'agent-message-unhandled', hostId, type: message.type }, 'no module handles this agent message');
    },
    onHostDown: (hostId, reason) => {
      for (const m of modules) m.onHostDown?.(hostId, reason);
    },
  });

  const metrics = new Registry();
  new Gauge({
    name: 'ferry_hosts',
    help: 'Hosts by state',
    labelNames: ['state'],
    registers: [metrics],
    collect() {
      for (const [state, n] of Object.entries(hosts.countByState())) this.set({ state }, n);
    },
  });

  const context: CoordinatorContext = {
    hosts,
    events,
    agents,
    logger,
    metrics,
    token,
    persisted: (name) => persisted.modules[name],
    requestSave,
  };
  for (const m of modules) await m.start?.(context);

  const server: Server = createServer(createHttpHandler({ token, hosts, events, metrics, modules, logger }));
  const authed = (req: import('node:http').IncomingMessage): true | undefined => (hasBearerToken(req, token) ? true : undefined);
  const routes = attachWsRoutes(server, [
    { path: '/agent', authenticate: authed, maxPayloadBytes: 2 * 1024 * 1024, onConnection: (ws) => agents.accept(ws) },
    { path: API_WS_PATH, authenticate: authed, maxPayloadBytes: 64 * 1024, onConnection: (ws) => serveApiStream(ws, events) },
  ]);
  server.listen(options.port ?? DEFAULT_COORDINATOR_PORT, options.host ?? '127.0.0.1');
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err as Error))]);
  const port = (server.address() as { port: number }).port;
  logger.info({ event: 'coordinator-listening', port, state_dir: paths.dir, token_created: created, known_hosts: persisted.hosts.length }, 'coordinator listening');

  let closing: Promise<void> | undefined;
  return {
    port,
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    token,
    stateDir: paths.dir,
    hosts,
    events,
    agents,
    context,
    close() {
      closing ??= (async () => {
        for (const m of [...modules].reverse()) await m.close?.();
        agents.closeAll(FERRY_CLOSE.GOING_AWAY, 'coordinator shutting down');
        routes.close();
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
        saveNow();
        logger.info({ event: 'coordinator-stopped' }, 'coordinator stopped');
      })();
      return closing;
    },
  };
}
