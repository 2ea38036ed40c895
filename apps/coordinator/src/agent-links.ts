/**
 * The coordinator's side of the `/agent` WebSockets: registration (first message, version
 * checked), heartbeats into the host registry, request/reply to agents by `requestId`, failure
 * detection (missed heartbeats or a closed link → host `down`), and the reservation request that
 * starts every migration.
 */
import type { WebSocket } from 'ws';
import { nanoid } from 'nanoid';
import {
  CLUSTER_PROTOCOL_VERSION,
  CLUSTER_PROTOCOL_VERSIONS_ACCEPTED,
  coordinatorClusterCodec,
  type AgentToCoordinatorMessage,
  type CoordinatorToAgentMessage,
  type MigrationReservedMessage,
} from '@ferry/protocol';
import { FERRY_CLOSE, WsChannel, closeCodeName } from '@ferry/transport';
import { AgentRequestError } from './errors.ts';
import type { HostRegistry } from './hosts.ts';
import type { Logger } from './logger.ts';

type AgentChannel = WsChannel<AgentToCoordinatorMessage, CoordinatorToAgentMessage>;

/** Options of AgentLinks. */
export interface AgentLinksOptions {
  readonly hosts: HostRegistry;
  readonly logger: Logger;
  /** Interval agents heartbeat at (sent to them in `registered`). */
  readonly heartbeatIntervalMs: number;
  /** A live host silent for longer is marked down. */
  readonly failureTimeoutMs: number;
  /** A connection that has not registered within this is closed. Default 5000 ms. */
  readonly registerTimeoutMs?: number;
  /** Messages the core does not handle go here (the modules). */
  readonly onUnhandled: (hostId: string, message: AgentToCoordinatorMessage) => void;
  /** A host went down. */
  readonly onHostDown: (hostId: string, reason: string) => void;
}

interface Pending {
  readonly hostId: string;
  resolve(m: AgentToCoordinatorMessage): void;
  reject(err: Error): void;
  readonly timer: NodeJS.Timeout;
}

/** Reservation on a destination agent for an incoming migration. */
export interface MigrationReservation {
  readonly token: string;
  readonly migrationAddress: string;
  readonly expiresAtMs: number;
}

/** The live agent connections. */
export class AgentLinks {
  private readonly options: AgentLinksOptions;
  private readonly links = new Map<string, AgentChannel>();
  private readonly pending = new Map<string, Pending>();
  private readonly sweepTimer: NodeJS.Timeout;

  constructor(options: AgentLinksOptions) {
    this.options = options;
    this.sweepTimer = setInterval(() => this.sweep(), Math.max(20, Math.floor(options.heartbeatIntervalMs / 2)));
    this.sweepTimer.unref();
  }

  /** Takes a new authenticated `/agent` socket; it must send `register` first. */
  accept(ws: WebSocket): void {
    const channel: AgentChannel = new WsChannel(ws, { codec: coordinatorClusterCodec, maxControlBytes: 1024 * 1024 });
    const log = this.options.logger;
    let hostId: string | undefined;
    const registerTimer = setTimeout(() => {
      if (hostId === undefined) channel.close(FERRY_CLOSE.REFUSED, 'no register message in time');
    }, this.options.registerTimeoutMs ?? 5000);
    channel.onMessage((message) => {
      if (hostId === undefined) {
        if (message.type !== 'register') {
          channel.close(FERRY_CLOSE.BAD_MESSAGE, `expected register, got ${message.type}`);
          return;
        }
        if (!CLUSTER_PROTOCOL_VERSIONS_ACCEPTED.includes(message.protocolVersion)) {
          channel.send({ type: 'register-refused', code: 'FERRY_ERR_CLUSTER_VERSION', message: `protocol version ${message.protocolVersion} not accepted (this coordinator speaks ${CLUSTER_PROTOCOL_VERSION})` });
          channel.close(FERRY_CLOSE.PROTOCOL_VERSION, 'protocol version not accepted');
          return;
        }
        clearTimeout(registerTimer);
        hostId = message.hostId;
        const previous = this.links.get(hostId);
        this.links.set(hostId, channel);
        if (previous) previous.close(FERRY_CLOSE.REPLACED, 'a newer connection from this host replaced this one');
        this.options.hosts.register(hostId, message.capacity, message.migrationAddress, message.vms);
        channel.send({ type: 'registered', hostId, heartbeatIntervalMs: this.options.heartbeatIntervalMs });
        log.info({ event: 'agent-registered', hostId, capacity: message.capacity, vm_count: message.vms.length }, 'agent registered');
        return;
      }
      this.handle(hostId, message);
    });
    channel.onFrame(() => channel.close(FERRY_CLOSE.UNEXPECTED_FRAME, 'page frames never go through the coordinator'));
    channel.onClose((info) => {
      clearTimeout(registerTimer);
      if (hostId === undefined) {
        log.warn({ event: 'agent-connection-refused', code: info.code, code_name: closeCodeName(info.code), reason: info.reason }, 'agent connection closed before registering');
        return;
      }
      if (this.links.get(hostId) !== channel) return;
      this.links.delete(hostId);
      this.rejectPending(hostId, `link closed (${closeCodeName(info.code)})`);
      this.down(hostId, `link closed (${closeCodeName(info.code)}${info.reason ? `: ${info.reason}` : ''})`);
    });
  }

  /** Whether `hostId` has a live link (a closed one may stay in the table until its close event runs). */
  isConnected(hostId: string): boolean {
    const link = this.links.get(hostId);
    return link !== undefined && !link.closed;
  }

  /** Sends to a connected agent; throws AgentRequestError when it is not connected. */
  send(hostId: string, message: CoordinatorToAgentMessage): void {
    const link = this.links.get(hostId);
    if (!link || link.closed) throw new AgentRequestError(hostId, 'FERRY_ERR_HOST_NOT_CONNECTED', 'not connected');
    link.send(message);
  }

  /**
   * Sends a request (its `requestId` is filled in) and resolves with the agent's reply; rejects
   * with AgentRequestError on `request-failed`, timeout (default 5000 ms) or a closed link.
   */
  request<T extends CoordinatorToAgentMessage & { requestId: string }>(hostId: string, message: Omit<T, 'requestId'>, timeoutMs = 5000): Promise<AgentToCoordinatorMessage> {
    const requestId = nanoid(12);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new AgentRequestError(hostId, 'FERRY_ERR_AGENT_TIMEOUT', `no reply to ${message.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(requestId, { hostId, resolve, reject, timer });
      try {
        this.send(hostId, { ...message, requestId } as unknown as CoordinatorToAgentMessage);
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(requestId);
        reject(err);
      }
    });
  }

  /** Asks the destination agent to reserve memory for an incoming migration; resolves with its one-time token and address. */
  async reserveMigration(hostId: string, r: { migrationId: string; vmId: string; memoryBytes: number; cpus: number; ttlMs: number }): Promise<MigrationReservation> {
    const reply = await this.request(hostId, { type: 'reserve-migration', ...r });
    if (reply.type !== 'migration-reserved') throw new AgentRequestError(hostId, 'FERRY_ERR_AGENT_REPLY', `unexpected reply ${reply.type}`);
    const m: MigrationReservedMessage = reply;
    return { token: m.token, migrationAddress: m.migrationAddress, expiresAtMs: m.expiresAtMs };
  }

  /** Tells an agent to drop a reservation (idempotent; ignored if the agent is gone). */
  releaseReservation(hostId: string, migrationId: string): void {
    if (!this.isConnected(hostId)) return;
    try {
      this.send(hostId, { type: 'release-reservation', migrationId });
    } catch {
      // the link closed under us: the agent drops its reservations when it goes
    }
  }

  /** Closes every link (shutdown). */
  closeAll(code: number = FERRY_CLOSE.GOING_AWAY, reason = 'coordinator shutting down'): void {
    clearInterval(this.sweepTimer);
    for (const [hostId, link] of this.links) {
      this.links.delete(hostId);
      link.close(code, reason);
    }
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new AgentRequestError(p.hostId, 'FERRY_ERR_COORDINATOR_CLOSED', 'coordinator shutting down'));
    }
  }

  private handle(hostId: string, message: AgentToCoordinatorMessage): void {
    switch (message.type) {
      case 'heartbeat':
        this.options.hosts.heartbeat(hostId, message.vms);
        return;
      case 'register':
        this.links.get(hostId)?.close(FERRY_CLOSE.BAD_MESSAGE, 'already registered');
        return;
      default: {
        // Every reply (a message with a `requestId`) resolves its pending request; a late or
        // unknown reply is dropped. Notifications go to the modules.
        if ('requestId' in message) {
          const p = this.pending.get(message.requestId);
          if (!p || p.hostId !== hostId) return;
          this.pending.delete(message.requestId);
          clearTimeout(p.timer);
          if (message.type === 'request-failed') p.reject(new AgentRequestError(hostId, message.code, message.message));
          else p.resolve(message);
          return;
        }
        this.options.onUnhandled(hostId, message);
      }
    }
  }

  private sweep(): void {
    for (const hostId of this.options.hosts.overdue(this.options.failureTimeoutMs)) {
      const link = this.links.get(hostId);
      this.links.delete(hostId);
      link?.close(FERRY_CLOSE.HEARTBEAT_TIMEOUT, `no heartbeat for ${this.options.failureTimeoutMs} ms`);
      this.rejectPending(hostId, 'missed heartbeats');
      this.down(hostId, `missed heartbeats for ${this.options.failureTimeoutMs} ms`);
    }
  }

  private down(hostId: string, reason: string): void {
    const host = this.options.hosts.find(hostId);
    if (!host || host.state === 'down') return;
    this.options.hosts.markDown(hostId, reason);
    this.options.logger.warn({ event: 'host-down', hostId, reason }, 'host down');
    this.options.onHostDown(hostId, reason);
  }

  private rejectPending(hostId: string, why: string): void {
    for (const [id, p] of this.pending) {
      if (p.hostId !== hostId) continue;
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new AgentRequestError(hostId, 'FERRY_ERR_HOST_NOT_CONNECTED', why));
    }
  }
}
