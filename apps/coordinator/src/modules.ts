/**
 * Module slots: how later phases plug into the coordinator without editing its core. A module
 * gets the context at start, may claim agent messages, HTTP routes under /api/v1, and a section of
 * the persisted state, and is told when a host goes down.
 *
 * The `migrations` module (orchestration, the commit point) and a `vms` module (lifecycle,
 * placement) are expected here: pass them in `startCoordinator({ modules: [...] })`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { AgentToCoordinatorMessage } from '@ferry/protocol';
import type { Logger } from './logger.ts';
import type { HostRegistry } from './hosts.ts';
import type { EventBus } from './events.ts';
import type { AgentLinks } from './agent-links.ts';

/** What a module can use. */
export interface CoordinatorContext {
  readonly hosts: HostRegistry;
  readonly events: EventBus;
  /** Send to and request from connected agents; `reserveMigration` is wired here. */
  readonly agents: AgentLinks;
  readonly logger: Logger;
  /** The coordinator's prom-client registry: register module metrics here. */
  readonly metrics: Registry;
  /** The state this module saved before the last restart (undefined on first start). */
  persisted(moduleName: string): unknown;
  /** Asks the coordinator to write the state file soon (it calls every module's `saveState`). */
  requestSave(): void;
  /** The cluster token (to authenticate module HTTP routes the same way). */
  readonly token: string;
}

/** A pluggable part of the coordinator. Every member but `name` is optional. */
export interface CoordinatorModule {
  /** Unique name; also the key of its persisted state. */
  readonly name: string;
  /** Called once after the state is loaded, before the port opens. */
  start?(context: CoordinatorContext): void | Promise<void>;
  /** Offered every agent message the core does not handle itself; return true when handled. */
  onAgentMessage?(hostId: string, message: AgentToCoordinatorMessage): boolean;
  /** A host went down (its VMs and migrations may be lost). */
  onHostDown?(hostId: string, reason: string): void;
  /** Offered every authenticated /api/v1 request first; return true when it answered. */
  handleHttp?(req: IncomingMessage, res: ServerResponse, url: URL): boolean | Promise<boolean>;
  /** This module's state to persist (JSON-serializable). */
  saveState?(): unknown;
  /** Called on shutdown, before the port closes. */
  close?(): void | Promise<void>;
}
