/**
 * The agent's VM host module slot, and the reservation book it shares with the core.
 *
 * A later phase plugs the real hypervisor in here: a `VmHost` that runs VMs (packages/vm),
 * reports them (`listVms`, sent in every register and heartbeat), and receives migrations: the
 * core validates the one-time token and hands the open migration channel plus its reservation to
 * `acceptIncomingMigration`, which runs the receiver state machine (packages/migration) on it.
 * Outgoing migrations and VM lifecycle arrive as cluster messages the VM host will claim through
 * `onCoordinatorMessage`.
 */
import type { AgentToCoordinatorMessage, CoordinatorToAgentMessage, DestinationMessage, HostCapacity, SourceMessage, VmReport } from '@ferry/protocol';
import type { ProbeResult } from './probe.ts';
import { FERRY_CLOSE, type WsChannel } from '@ferry/transport';

/** The receiver's end of a migration stream: decodes source messages, sends destination messages. */
export type IncomingMigrationChannel = WsChannel<SourceMessage, DestinationMessage>;

/** Memory and CPUs held for an incoming migration until its stream arrives or it is released. */
export interface Reservation {
  readonly migrationId: string;
  readonly vmId: string;
  readonly memoryBytes: number;
  readonly cpus: number;
  readonly expiresAtMs: number;
}

/** What the agent core lends its VM host: the coordinator link and the reservation book. */
export interface CoordinatorLink {
  readonly hostId: string;
  /** Sends to the coordinator when registered; returns false (message dropped) otherwise. */
  send(message: AgentToCoordinatorMessage): boolean;
  /** Calls `listener` after every successful (re)registration; returns the unsubscribe function. */
  onRegistered(listener: () => void): () => void;
  readonly reservations: ReservationBook;
}

/** What the agent core needs from a VM host. */
export interface VmHost {
  /** Called once by the agent core before anything else. */
  bind?(link: CoordinatorLink): void;
  /** Answers a probe (probe.ts); absent: every probe gets `not-here`. */
  probe?(vmId: string, afterMs: number, timeoutMs: number): Promise<ProbeResult>;
  /** The VMs this host runs now. */
  listVms(): VmReport[];
  /** A migration stream with a valid one-time token arrived for `reservation`. The host owns the channel from here on. */
  acceptIncomingMigration(channel: IncomingMigrationChannel, reservation: Reservation): void;
  /** Offered coordinator messages the core does not handle; return true when handled. */
  onCoordinatorMessage?(message: CoordinatorToAgentMessage, reply: (m: AgentToCoordinatorMessage) => void): boolean;
  /** Brings back what the last shutdown put away (see LocalVmHostOptions.suspendOnClose); awaited before the first registration. */
  restore?(): Promise<void>;
  /** Stops (or suspends) every VM (shutdown). */
  close?(): Promise<void>;
}

/**
 * The VM host until the real one lands: runs no VMs and refuses incoming migration streams with
 * REFUSED (it cannot receive a VM, so it must not pretend to).
 */
export class NoVmHost implements VmHost {
  listVms(): VmReport[] {
    return [];
  }
  acceptIncomingMigration(channel: IncomingMigrationChannel): void {
    channel.close(FERRY_CLOSE.REFUSED, 'this agent has no VM host module');
  }
}

/** Not enough free memory or CPUs for a reservation. */
export class InsufficientCapacityError extends Error {
  readonly code = 'FERRY_ERR_NO_CAPACITY';
  constructor(message: string) {
    super(message);
    this.name = 'InsufficientCapacityError';
  }
}

/** Reservations against the host's capacity, counting the VMs it runs. Expired ones are swept on use. */
export class ReservationBook {
  private readonly byMigration = new Map<string, Reservation>();
  private readonly capacity: HostCapacity;
  private readonly nowMs: () => number;

  constructor(capacity: HostCapacity, nowMs: () => number = Date.now) {
    this.capacity = capacity;
    this.nowMs = nowMs;
  }

  /** Holds memory and CPUs for `migrationId`; throws InsufficientCapacityError when they do not fit beside `running` and other reservations. Re-reserving the same id replaces it. */
  reserve(r: Omit<Reservation, 'expiresAtMs'>, ttlMs: number, running: readonly VmReport[]): Reservation {
    this.sweep();
    this.byMigration.delete(r.migrationId);
    let memory = r.memoryBytes;
    let cpus = r.cpus;
    for (const vm of running) {
      memory += vm.memoryBytes;
      cpus += vm.cpus;
    }
    for (const other of this.byMigration.values()) {
      memory += other.memoryBytes;
      cpus += other.cpus;
    }
    if (memory > this.capacity.memoryBytes) throw new InsufficientCapacityError(`needs ${memory} bytes of memory in all, host has ${this.capacity.memoryBytes}`);
    if (cpus > this.capacity.cpus * 4) throw new InsufficientCapacityError(`needs ${cpus} vCPUs in all, host allows ${this.capacity.cpus * 4} (4× overcommit)`);
    const reservation = { ...r, expiresAtMs: this.nowMs() + ttlMs };
    this.byMigration.set(r.migrationId, reservation);
    return reservation;
  }

  /** The live reservation of a migration. */
  get(migrationId: string): Reservation | undefined {
    this.sweep();
    return this.byMigration.get(migrationId);
  }

  /** Drops a reservation (released, or taken over by the VM host once the stream arrived). */
  release(migrationId: string): boolean {
    return this.byMigration.delete(migrationId);
  }

  /** Live reservations. */
  list(): Reservation[] {
    this.sweep();
    return [...this.byMigration.values()];
  }

  private sweep(): void {
    const now = this.nowMs();
    for (const [id, r] of this.byMigration) if (r.expiresAtMs <= now) this.byMigration.delete(id);
  }
}
