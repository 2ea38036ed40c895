/**
 * The host agent core, startable in-process (`startAgent`) and as a process (main.ts): serves the
 * migration port, connects out to the coordinator (reconnecting with backoff), registers with its
 * capacity, migration address and VMs, heartbeats, and answers reservation requests by reserving
 * capacity and issuing a one-time token for the migration port.
 */
import { nanoid } from 'nanoid';
import {
  CLUSTER_PROTOCOL_VERSION,
  agentClusterCodec,
  type AgentToCoordinatorMessage,
  type CoordinatorToAgentMessage,
  type HostCapacity,
} from '@ferry/protocol';
import { OneTimeTokenRegistry, ReconnectingClient, openWsChannel, FERRY_CLOSE, closeCodeName, redactUrl, type WsChannel } from '@ferry/transport';
import { startMigrationServer, MIGRATION_WS_PATH, type MigrationGrant, type MigrationServer } from './migration-server.ts';
import { ReservationBook, type VmHost } from './vm-host.ts';
import { LocalVmHost } from './vm-host-local.ts';
import { join, resolve } from 'node:path';
import { createLogger, type Logger } from './logger.ts';

type CoordinatorChannel = WsChannel<CoordinatorToAgentMessage, AgentToCoordinatorMessage>;

/** Options of startAgent. */
export interface AgentOptions {
  /** Coordinator base URL, `ws://host:port` (or http://); `/agent` is appended. */
  readonly coordinatorUrl: string;
  /** The cluster token. */
  readonly token: string;
  /** Host id; default `host-<random>`. */
  readonly hostId?: string;
  readonly capacity: HostCapacity;
  /** Migration port; default 0 (any free port). */
  readonly migrationPort?: number;
  /** Interface the migration port listens on; default 127.0.0.1. */
  readonly migrationHost?: string;
  /** Host name peers use to reach the migration port; default migrationHost. */
  readonly advertiseHost?: string;
  /** The VM host module; default a LocalVmHost (real VMs) in `dataDir`. */
  readonly vmHost?: VmHost;
  /** Data dir of the default VM host (images, suspend files, snapshots); default `.ferry/agents/<hostId>` under cwd. */
  readonly dataDir?: string;
  /** pCPU worker threads of the default VM host; default 2. */
  readonly pcpus?: number;
  /** Memory pool of the default VM host (LocalVmHostOptions.memoryPoolBytes); default 0. */
  readonly memoryPoolBytes?: number;
  /** The default VM host suspends its VMs on close and brings them back at the next start (LocalVmHostOptions.suspendOnClose); default false. */
  readonly suspendOnClose?: boolean;
  readonly logger?: Logger;
  /** Reconnect backoff; default 100 ms doubling to 5 s. */
  readonly backoff?: { initialMs?: number; maxMs?: number };
  /** Called when the agent gives up for good (token refused, registration refused). */
  readonly onFatal?: (error: Error) => void;
}

/** A running agent. */
export interface RunningAgent {
  readonly hostId: string;
  readonly migrationPort: number;
  readonly migrationAddress: string;
  readonly vmHost: VmHost;
  readonly reservations: ReservationBook;
  /** Whether the agent is registered right now. */
  readonly registered: boolean;
  /** Resolves at the next successful registration (at once if registered). */
  whenRegistered(): Promise<void>;
  /** Stops heartbeats and reconnects, closes the link and the migration port. Idempotent. */
  close(): Promise<void>;
}

/** Starts an agent; resolves once the migration port listens (registration happens in the background). */
export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const hostId = options.hostId ?? `host-${nanoid(6)}`;
  const logger = (options.logger ?? createLogger('agent', 'silent', false)).child({ hostId });
  const vmHost: VmHost = options.vmHost ?? new LocalVmHost({ dataDir: resolve(options.dataDir ?? join('.ferry', 'agents', hostId)), logger, ...(options.pcpus !== undefined ? { pcpus: options.pcpus } : {}), ...(options.memoryPoolBytes !== undefined ? { memoryPoolBytes: options.memoryPoolBytes } : {}), ...(options.suspendOnClose !== undefined ? { suspendOnClose: options.suspendOnClose } : {}), coordinator: { url: options.coordinatorUrl, token: options.token } });
  const reservations = new ReservationBook(options.capacity);
  let currentChannel: CoordinatorChannel | undefined;
  const registeredListeners = new Set<() => void>();
  vmHost.bind?.({
    hostId,
    reservations,
    send(message) {
      if (!registered || !currentChannel || currentChannel.closed) return false;
      currentChannel.send(message);
      return true;
    },
    onRegistered(listener) {
      registeredListeners.add(listener);
      return () => registeredListeners.delete(listener);
    },
  });
  await vmHost.restore?.();
  const tokens = new OneTimeTokenRegistry<MigrationGrant>();
  const migrationHost = options.migrationHost ?? '127.0.0.1';
  const migration: MigrationServer = await startMigrationServer({ host: migrationHost, port: options.migrationPort ?? 0, tokens, reservations, vmHost, logger, clusterToken: options.token, hostId });
  const migrationAddress = `ws://${options.advertiseHost ?? migrationHost}:${migration.port}${MIGRATION_WS_PATH}`;
  const url = agentUrl(options.coordinatorUrl);

  let registered = false;
  let registeredWaiters: (() => void)[] = [];
  let heartbeatTimer: NodeJS.Timeout | undefined;
  let seq = 0;

  const handle = (channel: CoordinatorChannel, message: CoordinatorToAgentMessage): void => {
    const reply = (m: AgentToCoordinatorMessage): void => {
      if (!channel.closed) channel.send(m);
    };
    switch (message.type) {
      case 'registered': {
        registered = true;
        logger.info({ event: 'agent-registered', heartbeat_interval_ms: message.heartbeatIntervalMs }, 'registered with the coordinator');
        if (heartbeatTimer) clearInterval(heartbeatTimer);
        heartbeatTimer = setInterval(() => reply({ type: 'heartbeat', seq: ++seq, vms: vmHost.listVms() }), message.heartbeatIntervalMs);
        currentChannel = channel;
        for (const w of registeredWaiters.splice(0)) w();
        for (const l of [...registeredListeners]) {
          try {
            l();
          } catch (err) {
            logger.error({ event: 'registered-listener-failed', err }, 'a registration listener failed');
          }
        }
        return;
      }
      case 'register-refused': {
        logger.error({ event: 'agent-register-refused', code: message.code }, message.message);
        client.stop(FERRY_CLOSE.NORMAL, 'registration refused');
        options.onFatal?.(Object.assign(new Error(`registration refused: ${message.message}`), { code: message.code }));
        return;
      }
      case 'reserve-migration': {
        try {
          const reservation = reservations.reserve(
            { migrationId: message.migrationId, vmId: message.vmId, memoryBytes: message.memoryBytes, cpus: message.cpus },
            message.ttlMs,
            vmHost.listVms(),
          );
          tokens.revoke((g) => g.migrationId === message.migrationId);
          const grant = tokens.issue({ migrationId: message.migrationId }, message.ttlMs);
          logger.info({ event: 'migration-reserved', migrationId: message.migrationId, vmId: message.vmId, memory_bytes: message.memoryBytes }, 'reserved for an incoming migration');
          reply({ type: 'migration-reserved', requestId: message.requestId, migrationId: message.migrationId, token: grant.token, migrationAddress, expiresAtMs: reservation.expiresAtMs });
        } catch (err) {
          reply({ type: 'request-failed', requestId: message.requestId, code: (err as { code?: string }).code ?? 'FERRY_ERR_INTERNAL', message: (err as Error).message });
        }
        return;
      }
      case 'release-reservation': {
        reservations.release(message.migrationId);
        tokens.revoke((g) => g.migrationId === message.migrationId);
        return;
      }
      default:
        if (!vmHost.onCoordinatorMessage?.(message, reply)) logger.warn({ event: 'coordinator-message-unhandled', type: message.type }, 'no handler for this message');
    }
  };

  const client = new ReconnectingClient<CoordinatorToAgentMessage, AgentToCoordinatorMessage>({
    connect: () => openWsChannel(url, { codec: agentClusterCodec, token: options.token, maxPayloadBytes: 2 * 1024 * 1024, heartbeat: { intervalMs: 2000, timeoutMs: 6000 } }),
    onConnected: (channel) => {
      logger.info({ event: 'coordinator-connected', url: redactUrl(url) }, 'connected to the coordinator');
      channel.onMessage((m) => handle(channel, m));
      channel.send({ type: 'register', protocolVersion: CLUSTER_PROTOCOL_VERSION, hostId, capacity: options.capacity, migrationAddress, vms: vmHost.listVms() });
    },
    onDisconnected: (info) => {
      registered = false;
      if (heartbeatTimer) clearInterval(heartbeatTimer);
      heartbeatTimer = undefined;
      logger.warn({ event: 'coordinator-disconnected', code: info.code, code_name: closeCodeName(info.code), reason: info.reason }, 'lost the coordinator; reconnecting');
    },
    onRetry: (err, attempt, delayMs) => logger.warn({ event: 'coordinator-connect-failed', attempt, delay_ms: delayMs, err: (err as Error).message }, 'cannot reach the coordinator'),
    shouldRetry: (err) => (err as { statusCode?: number }).statusCode !== 401,
    backoff: { initialMs: options.backoff?.initialMs ?? 100, maxMs: options.backoff?.maxMs ?? 5000 },
  });
  client.onGiveUp((err) => {
    logger.error({ event: 'coordinator-token-refused', err: (err as Error).message }, 'the coordinator refused the token');
    options.onFatal?.(err as Error);
  });

  let closing: Promise<void> | undefined;
  return {
    hostId,
    migrationPort: migration.port,
    migrationAddress,
    vmHost,
    reservations,
    get registered() {
      return registered;
    },
    whenRegistered() {
      return registered ? Promise.resolve() : new Promise<void>((r) => registeredWaiters.push(r));
    },
    close() {
      closing ??= (async () => {
        if (heartbeatTimer) clearInterval(heartbeatTimer);
        client.stop(FERRY_CLOSE.GOING_AWAY, 'agent shutting down');
        registeredWaiters = [];
        await vmHost.close?.();
        await migration.close();
        logger.info({ event: 'agent-stopped' }, 'agent stopped');
      })();
      return closing;
    },
  };
}

/** `ws://host:port` or `http://host:port` → `ws://host:port/agent`. */
export function agentUrl(coordinatorUrl: string): string {
  const u = new URL(coordinatorUrl);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new Error(`coordinator URL must be ws://, wss://, http:// or https://, got ${coordinatorUrl}`);
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/agent';
  return u.toString();
}
