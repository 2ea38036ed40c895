/**
 * Host membership: the hosts the coordinator knows, their capacity, migration address, the VMs
 * they report, and their state.
 *
 * ```
 *   register ──► up ──drain──► draining ──enterMaintenance──► maintenance
 *                 ▲  ◄─────────undrain──────────────────────────┘  │
 *                 │                                               │
 *   any live state ──missed heartbeats / link closed──► down ──register──► (admin state: up/draining/maintenance)
 * ```
 * `down` means "not heard from"; the operator's choice (draining, maintenance) is kept as the
 * host's admin state and restored when it registers again.
 */
import type { Host, HostCapacity, HostState, VmReport } from '@ferry/protocol';
import { InvalidTransitionError, UnknownHostError } from './errors.ts';
import type { EventBus } from './events.ts';

/** The states an operator sets; survive `down` and a coordinator restart. */
export type HostAdminState = 'up' | 'draining' | 'maintenance';

/** A host as the coordinator sees it (also the JSON of /api/v1/hosts). */
export interface HostView {
  readonly id: string;
  readonly state: HostState;
  readonly adminState: HostAdminState;
  readonly capacity: HostCapacity;
  readonly migrationAddress: string;
  readonly vms: readonly VmReport[];
  readonly connected: boolean;
  readonly registeredAtMs: number;
  readonly lastHeartbeatAtMs: number;
  /** Why the host is down, when it is. */
  readonly downReason?: string;
}

interface HostRecord {
  id: string;
  state: HostState;
  adminState: HostAdminState;
  capacity: HostCapacity;
  migrationAddress: string;
  vms: readonly VmReport[];
  registeredAtMs: number;
  lastHeartbeatAtMs: number;
  downReason: string | undefined;
}

/** The registry of hosts. Every transition emits an event on `events` and calls `onChange` (persist). */
export class HostRegistry {
  private readonly hosts = new Map<string, HostRecord>();
  private readonly events: EventBus;
  private readonly onChange: () => void;
  private readonly nowMs: () => number;

  constructor(events: EventBus, onChange: () => void = () => {}, nowMs: () => number = Date.now) {
    this.events = events;
    this.onChange = onChange;
    this.nowMs = nowMs;
  }

  /** Restores hosts known before a restart: they start `down` until their agent registers. */
  restore(hosts: readonly { id: string; adminState: HostAdminState; lastSeenAtMs: number }[]): void {
    for (const h of hosts) {
      this.hosts.set(h.id, {
        id: h.id,
        state: 'down',
        adminState: h.adminState,
        capacity: { cpus: 0, memoryBytes: 0, diskBytes: 0 },
        migrationAddress: '',
        vms: [],
        registeredAtMs: 0,
        lastHeartbeatAtMs: h.lastSeenAtMs,
        downReason: 'coordinator restarted; waiting for the agent to register',
      });
    }
  }

  /** An agent registered (first time or again): the host becomes live in its admin state. */
  register(id: string, capacity: HostCapacity, migrationAddress: string, vms: readonly VmReport[]): HostView {
    const now = this.nowMs();
    const existing = this.hosts.get(id);
    const adminState = existing?.adminState ?? 'up';
    const record: HostRecord = { id, state: adminState, adminState, capacity, migrationAddress, vms, registeredAtMs: now, lastHeartbeatAtMs: now, downReason: undefined };
    this.hosts.set(id, record);
    this.events.emit('host-registered', { host: id }, { ...toApiHost(view(record)), returning: existing !== undefined });
    if (existing?.state === 'down') this.events.emit('host-up', { host: id }, toApiHost(view(record)));
    this.onChange();
    return view(record);
  }

  /** A heartbeat from a live host: refreshes liveness and the VM list. Ignored for a host marked down (its link is being replaced). */
  heartbeat(id: string, vms: readonly VmReport[]): void {
    const h = this.hosts.get(id);
    if (!h || h.state === 'down') return;
    h.lastHeartbeatAtMs = this.nowMs();
    h.vms = vms;
  }

  /** Marks a live host down (missed heartbeats, link closed). Legal from up, draining, maintenance. */
  markDown(id: string, reason: string): void {
    const h = this.get(id);
    if (h.state === 'down') throw new InvalidTransitionError(id, h.state, 'mark down');
    h.state = 'down';
    h.downReason = reason;
    this.events.emit('host-down', { host: id }, { reason, vms: h.vms.map((v) => v.vmId) });
    this.onChange();
  }

  /** Operator: stop placing on the host, migrations move VMs off. Legal only from `up`. */
  drain(id: string): void {
    const h = this.get(id);
    if (h.state !== 'up') throw new InvalidTransitionError(id, h.state, 'drain');
    h.state = h.adminState = 'draining';
    this.events.emit('host-drain-started', { host: id }, toApiHost(view(h)));
    this.onChange();
  }

  /** Operator (or the drain when done): the host is in maintenance. Legal from `up` or `draining`. */
  enterMaintenance(id: string): void {
    const h = this.get(id);
    if (h.state !== 'up' && h.state !== 'draining') throw new InvalidTransitionError(id, h.state, 'enter maintenance');
    h.state = h.adminState = 'maintenance';
    this.events.emit('host-drain-completed', { host: id }, toApiHost(view(h)));
    this.onChange();
  }

  /** Operator: back in service. Legal from `draining` or `maintenance`. */
  undrain(id: string): void {
    const h = this.get(id);
    if (h.state !== 'draining' && h.state !== 'maintenance') throw new InvalidTransitionError(id, h.state, 'undrain');
    h.state = h.adminState = 'up';
    this.events.emit('host-undrained', { host: id }, toApiHost(view(h)));
    this.onChange();
  }

  /** Live hosts whose last heartbeat is older than `timeoutMs`. */
  overdue(timeoutMs: number): string[] {
    const now = this.nowMs();
    return [...this.hosts.values()].filter((h) => h.state !== 'down' && now - h.lastHeartbeatAtMs > timeoutMs).map((h) => h.id);
  }

  /** One host, or undefined. */
  find(id: string): HostView | undefined {
    const h = this.hosts.get(id);
    return h && view(h);
  }

  /** Every host, sorted by id. */
  list(): HostView[] {
    return [...this.hosts.values()].sort((a, b) => a.id.localeCompare(b.id)).map(view);
  }

  /** Count of hosts in each state. */
  countByState(): Record<HostState, number> {
    const counts: Record<HostState, number> = { up: 0, down: 0, draining: 0, maintenance: 0 };
    for (const h of this.hosts.values()) counts[h.state]++;
    return counts;
  }

  private get(id: string): HostRecord {
    const h = this.hosts.get(id);
    if (!h) throw new UnknownHostError(id);
    return h;
  }
}

function view(h: HostRecord): HostView {
  return {
    id: h.id,
    state: h.state,
    adminState: h.adminState,
    capacity: h.capacity,
    migrationAddress: h.migrationAddress,
    vms: h.vms,
    connected: h.state !== 'down',
    registeredAtMs: h.registeredAtMs,
    lastHeartbeatAtMs: h.lastHeartbeatAtMs,
    ...(h.downReason !== undefined ? { downReason: h.downReason } : {}),
  };
}

/** The API resource (api.ts `Host`) for a host: `used` sums the VMs it reports. */
export function toApiHost(h: HostView): Host {
  let cpus = 0;
  let memoryBytes = 0;
  for (const vm of h.vms) {
    cpus += vm.cpus;
    memoryBytes += vm.memoryBytes;
  }
  return {
    id: h.id,
    state: h.state,
    address: h.migrationAddress.replace(/^wss?:\/\//, '').replace(/\/.*$/, ''),
    capacity: h.capacity,
    used: { cpus, memoryBytes, diskBytes: 0 },
    vms: h.vms.length,
    lastHeartbeatAt: new Date(h.lastHeartbeatAtMs).toISOString(),
  };
}
