/**
 * What the cloud manager's parts (run, lifecycle, drain, reconciliation) share: the registries,
 * the scheduler, the image catalog, the agent links, the event bus, and the migration starter
 * (the migrations module, once wired).
 */
import type { AgentToCoordinatorMessage, CoordinatorToAgentMessage, Migration, MigrationPolicy } from '@ferry/protocol';
import type { AgentLinks } from './agent-links.ts';
import { AgentRequestError } from './errors.ts';
import type { EventBus } from './events.ts';
import type { HostRegistry } from './hosts.ts';
import type { ImageCatalog } from './images.ts';
import type { Logger } from './logger.ts';
import type { ClusterPlacement } from './placement.ts';
import type { VmRegistry } from './vms.ts';

/** Starts live migrations (the migrations module). */
export interface MigrationStarter {
  /** Starts migrating `vm` (to `to`, or where the scheduler chooses); resolves with the Migration once it started, rejects with an API error when refused. */
  start(request: { vm: string; to?: string; policy?: Partial<MigrationPolicy> }): Promise<Migration>;
  /** Resolves with the migration once it is final (completed, failed, cancelled). */
  whenFinished(migrationId: string): Promise<Migration>;
}

/** The shared parts. */
export interface CloudDeps {
  readonly vms: VmRegistry;
  readonly placement: ClusterPlacement;
  readonly images: ImageCatalog;
  readonly hosts: HostRegistry;
  readonly events: EventBus;
  readonly agents: AgentLinks;
  readonly logger: Logger;
  /** Set once the migrations module is wired; resume-elsewhere and drain need it. */
  migrations: MigrationStarter | undefined;
}

type RequestOf<M> = M extends { requestId: string } ? Omit<M, 'requestId'> : never;
/** A coordinator → agent request without its `requestId` (filled in by AgentLinks). */
export type AgentRequest = RequestOf<CoordinatorToAgentMessage>;

/**
 * Sends a request to `hostId` and resolves with the reply of type `expect`; any other reply is an
 * AgentRequestError (FERRY_ERR_AGENT_REPLY). `request-failed` rejects with the agent's code.
 */
export async function askAgent<T extends AgentToCoordinatorMessage['type']>(
  agents: AgentLinks,
  hostId: string,
  message: AgentRequest,
  expect: T,
  timeoutMs = 10_000,
): Promise<Extract<AgentToCoordinatorMessage, { type: T }>> {
  const reply = await agents.request(hostId, message as never, timeoutMs);
  if (reply.type !== expect) throw new AgentRequestError(hostId, 'FERRY_ERR_AGENT_REPLY', `unexpected reply ${reply.type} to ${message.type}`);
  return reply as Extract<AgentToCoordinatorMessage, { type: T }>;
}
