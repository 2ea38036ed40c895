import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  API_ROUTES,
  API_WS_PATH,
  ApiError,
  apiEventMatches,
  matchApiRoute,
  parseApiClientMessage,
  validateMigrateRequest,
  validateRunRequest,
  type ApiEvent,
  type ApiEventFilter,
  type ApiEventType,
  type Host,
  type Image,
  type Migration,
  type MigrationReport,
  type PlacementPlan,
  type RoundStats,
  type Vm,
} from '@ferry/protocol';

// A small scriptable coordinator for CLI and console tests: the real HTTP API and `/api`
// WebSocket shapes on port 0, answering from fixtures. Not a coordinator: no agents, no real
// migration. It exists to test rendering, argument handling, error paths and the live channel.

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** A request the fake received (after authentication). */
export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly body: unknown;
}

/** Script of the fake: fixtures and how migrations play out. */
export interface FakeCoordinatorOptions {
  readonly token: string;
  readonly hosts?: Host[];
  readonly vms?: Vm[];
  readonly images?: Image[];
  /** Rounds each migration reports, one every `roundIntervalMs`. */
  readonly rounds?: RoundStats[];
  readonly roundIntervalMs?: number;
  /** How migrations end (default completed). */
  readonly migrationOutcome?: 'completed' | 'failed';
}

const MiB = 1024 * 1024;
const NOW = '2026-11-24T14:00:00.000Z';

/** Three hosts, the third in maintenance. */
export function fixtureHosts(): Host[] {
  const host = (id: string, state: Host['state'], vms: number): Host => ({
    id,
    state,
    address: `127.0.0.1:${7100 + Number(id.slice(-1))}`,
    capacity: { cpus: 8, memoryBytes: 1024 * MiB, diskBytes: 100 * 1024 * MiB },
    used: { cpus: 2 * vms, memoryBytes: 64 * MiB * vms, diskBytes: 1024 * MiB * vms },
    vms,
    lastHeartbeatAt: new Date().toISOString(),
  });
  return [host('host-1', 'up', 1), host('host-2', 'up', 1), host('host-3', 'maintenance', 0)];
}

/** Two running VMs, one per up host. */
export function fixtureVms(): Vm[] {
  const vm = (n: number, host: string): Vm => ({
    id: `vm-${n}`,
    name: `web-${n}`,
    host,
    ip: `10.0.0.${10 + n}`,
    state: 'running',
    image: 'lamp',
    cpus: 2,
    memoryBytes: 64 * MiB,
    diskBytes: 1024 * MiB,
    workload: { kind: 'hotset' },
    group: { name: 'web', policy: 'anti-affinity' },
    credentials: { user: 'ferry', password: `pw-${n}` },
    createdAt: NOW,
  });
  return [vm(1, 'host-1'), vm(2, 'host-2')];
}

/** Two images sharing most pages. */
export function fixtureImages(): Image[] {
  return [
    { id: 'base-os', name: 'base-os', description: 'Base operating system', memoryBytes: 4 * MiB, diskBytes: 1024 * MiB, pages: 465, uniquePages: 1, sharedPages: 464 },
    { id: 'lamp', name: 'lamp', description: 'LAMP stack on base-os', memoryBytes: 8 * MiB, diskBytes: 4096 * MiB, pages: 857, uniquePages: 393, sharedPages: 464 },
  ];
}

/** Three pre-copy rounds converging on a 64 MiB VM (16384 pages). */
export function fixtureRounds(): RoundStats[] {
  return [
    { round: 1, pagesSent: 16384, bytesSent: 64 * MiB, dirtyPages: 2000, dirtyRatePagesPerSec: 20000, bandwidthBytesPerSec: 640 * MiB, expectedDowntimeMs: 12, throttlePercent: 0, pagesLeft: 2000 },
    { round: 2, pagesSent: 2000, bytesSent: 8000 * 1024, dirtyPages: 400, dirtyRatePagesPerSec: 16000, bandwidthBytesPerSec: 600 * MiB, expectedDowntimeMs: 3, throttlePercent: 0, pagesLeft: 400 },
    { round: 3, pagesSent: 400, bytesSent: 1600 * 1024, dirtyPages: 90, dirtyRatePagesPerSec: 15000, bandwidthBytesPerSec: 610 * MiB, expectedDowntimeMs: 1, throttlePercent: 20, pagesLeft: 90 },
  ];
}

/** The fake coordinator. Start with FakeCoordinator.start; `url` is `http://127.0.0.1:PORT`. */
export class FakeCoordinator {
  readonly hosts: Host[];
  readonly vms: Mutable<Vm>[];
  readonly images: Image[];
  readonly migrations: Mutable<Migration>[] = [];
  readonly events: ApiEvent[] = [];
  readonly requests: RecordedRequest[] = [];
  url = '';
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private readonly subscribers = new Map<WebSocket, ApiEventFilter | undefined>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private nextVm = 3;
  private nextMigration = 1;

  private constructor(private readonly options: FakeCoordinatorOptions) {
    this.hosts = options.hosts ?? fixtureHosts();
    this.vms = options.vms ?? fixtureVms();
    this.images = options.images ?? fixtureImages();
    this.server = createServer((req, res) => void this.handle(req, res));
    this.wss = new WebSocketServer({ noServer: true });
    this.server.on('upgrade', (req, socket, head) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const token = req.headers.authorization?.replace(/^Bearer /, '') ?? url.searchParams.get('token');
      if (url.pathname !== API_WS_PATH || token !== this.options.token) {
        socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onSocket(ws));
    });
  }

  /** Starts the fake on 127.0.0.1, port 0. */
  static async start(options: FakeCoordinatorOptions): Promise<FakeCoordinator> {
    const fake = new FakeCoordinator(options);
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    fake.url = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
    return fake;
  }

  /** Appends an event (next seq) and pushes it to matching subscribers. */
  emit(type: ApiEventType, fields: { vm?: string; host?: string; migration?: string; data?: Record<string, unknown> } = {}): ApiEvent {
    const event: ApiEvent = { seq: this.events.length + 1, at: new Date().toISOString(), type, ...fields, data: fields.data ?? {} };
    this.events.push(event);
    for (const [ws, filter] of this.subscribers) if (apiEventMatches(event, filter)) ws.send(JSON.stringify({ type: 'event', event }));
    return event;
  }

  /** Stops timers, closes sockets and the server. */
  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    for (const ws of this.wss.clients) ws.terminate();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onSocket(ws: WebSocket): void {
    ws.send(JSON.stringify({ type: 'hello', lastSeq: this.events.length }));
    ws.on('message', (data) => {
      try {
        const msg = parseApiClientMessage(data.toString());
        if (msg.type === 'subscribe') {
          this.subscribers.set(ws, msg.filter);
          ws.send(JSON.stringify({ type: 'subscribed', lastSeq: this.events.length }));
          if (msg.since) for (const event of this.events) if (event.seq > msg.since && apiEventMatches(event, msg.filter)) ws.send(JSON.stringify({ type: 'event', event }));
        } else if (msg.type === 'unsubscribe') this.subscribers.delete(ws);
        else ws.send(JSON.stringify({ type: 'pong', id: msg.id }));
      } catch (err) {
        ws.send(JSON.stringify({ type: 'error', error: { code: (err as ApiError).code ?? 'FERRY_ERR_BAD_REQUEST', message: (err as Error).message } }));
      }
    });
    ws.on('close', () => this.subscribers.delete(ws));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reply = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      if (req.headers.authorization !== `Bearer ${this.options.token}`) throw new ApiError('FERRY_ERR_UNAUTHORIZED', 'missing or wrong cluster token');
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const text = Buffer.concat(chunks).toString('utf8');
      const body: unknown = text ? JSON.parse(text) : undefined;
      const url = new URL(req.url ?? '/', 'http://x');
      this.requests.push({ method: req.method ?? 'GET', path: url.pathname, body });
      const match = matchApiRoute(url.pathname);
      if (!match) throw new ApiError('FERRY_ERR_NOT_FOUND', `no route ${url.pathname}`);
      const [status, value] = this.route(req.method ?? 'GET', match.route, match.id, body, url.searchParams);
      reply(status, value);
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError('FERRY_ERR_INTERNAL', (err as Error).message);
      reply(e.status, e.toBody());
    }
  }

  private vm(id: string | undefined): Mutable<Vm> {
    const vm = this.vms.find((v) => v.id === id);
    if (!vm) throw new ApiError('FERRY_ERR_UNKNOWN_VM', `no VM "${id}"`);
    return vm;
  }

  private route(method: string, route: string, id: string | undefined, body: unknown, query: URLSearchParams): [number, unknown] {
    const R = API_ROUTES;
    const key = `${method} ${route}`;
    switch (key) {
      case `GET ${R.hosts}`:
        return [200, this.hosts];
      case `GET ${R.host}`: {
        const host = this.hosts.find((h) => h.id === id);
        if (!host) throw new ApiError('FERRY_ERR_UNKNOWN_HOST', `no host "${id}"`);
        return [200, host];
      }
      case `POST ${R.hostDrain}`:
        return [202, { host: id, state: 'running', vmsTotal: 1, vmsMoved: 0, migrations: [] }];
      case `GET ${R.images}`:
        return [200, this.images];
      case `GET ${R.image}`: {
        const image = this.images.find((i) => i.id === id);
        if (!image) throw new ApiError('FERRY_ERR_UNKNOWN_IMAGE', `no image "${id}"`);
        return [200, image];
      }
      case `GET ${R.vms}`:
        return [200, this.vms];
      case `GET ${R.vm}`:
        return [200, this.vm(id)];
      case `POST ${R.vms}`:
        return [201, this.run(body)];
      case `POST ${R.vmStart}`: {
        const vm = this.vm(id);
        if (vm.state !== 'stopped') throw new ApiError('FERRY_ERR_INVALID_STATE', `cannot start ${vm.id}: it is ${vm.state}, start needs stopped`);
        vm.state = 'running';
        return [200, vm];
      }
      case `POST ${R.vmStop}`: {
        const vm = this.vm(id);
        if (vm.state !== 'running') throw new ApiError('FERRY_ERR_INVALID_STATE', `cannot stop ${vm.id}: it is ${vm.state}`);
        vm.state = 'stopped';
        return [200, vm];
      }
      case `POST ${R.vmSuspend}`: {
        const vm = this.vm(id);
        if (vm.state !== 'running') throw new ApiError('FERRY_ERR_INVALID_STATE', `cannot suspend ${vm.id}: it is ${vm.state}`);
        vm.state = 'suspended';
        return [200, vm];
      }
      case `POST ${R.vmResume}`: {
        const vm = this.vm(id);
        if (vm.state !== 'suspended') throw new ApiError('FERRY_ERR_INVALID_STATE', `cannot resume ${vm.id}: it is ${vm.state}, resume needs suspended`);
        vm.state = 'running';
        const host = (body as { host?: string } | undefined)?.host;
        if (host) vm.host = host;
        return [200, vm];
      }
      case `POST ${R.vmSnapshot}`: {
        const vm = this.vm(id);
        return [201, { id: `snap-1`, vm: vm.id, name: (body as { name?: string } | undefined)?.name ?? 'snap-1', host: vm.host, memoryBytes: vm.memoryBytes, createdAt: NOW }];
      }
      case `POST ${R.vmClone}`: {
        const source = this.vm(id);
        const clone: Mutable<Vm> = { ...source, id: `vm-${this.nextVm++}`, name: (body as { name?: string } | undefined)?.name ?? `${source.name}-clone`, ip: `10.0.0.${100 + this.nextVm}` };
        this.vms.push(clone);
        return [201, clone];
      }
      case `DELETE ${R.vm}`: {
        const vm = this.vm(id);
        vm.state = 'deleted';
        return [200, vm];
      }
      case `GET ${R.vmWws}`: {
        const vm = this.vm(id);
        const n = Number(query.get('samples') ?? 5);
        const intervalMs = Number(query.get('intervalMs') ?? 200);
        const samples = Array.from({ length: n }, (_, i) => ({ atMs: (i + 1) * intervalMs, intervalMs, dirtyPages: 300 + i, dirtyRatePagesPerSec: ((300 + i) * 1000) / intervalMs }));
        return [200, { vm: vm.id, samples, wwsPages: 420, wwsBytes: 420 * 4096, memoryBytes: vm.memoryBytes }];
      }
      case `POST ${R.images}`: {
        const b = body as { vm: string; name: string; description?: string };
        const vm = this.vm(b.vm);
        const image: Image = { id: b.name, name: b.name, description: b.description ?? '', memoryBytes: vm.memoryBytes, diskBytes: vm.diskBytes, pages: 900, uniquePages: 40, sharedPages: 860 };
        this.images.push(image);
        return [201, image];
      }
      case `POST ${R.hostDrainCancel}`:
        return [200, { host: id, state: 'cancelled', vmsTotal: 1, vmsMoved: 0, migrations: [] }];
      case `POST ${R.hostUndrain}`: {
        const host = this.hosts.find((h) => h.id === id);
        if (!host) throw new ApiError('FERRY_ERR_UNKNOWN_HOST', `no host "${id}"`);
        if (host.state !== 'maintenance') throw new ApiError('FERRY_ERR_INVALID_STATE', `host ${host.id} is ${host.state}, not in maintenance`);
        const up = { ...host, state: 'up' as const };
        this.hosts[this.hosts.indexOf(host)] = up;
        return [200, up];
      }
      case `GET ${R.migrations}`:
        return [200, this.migrations];
      case `GET ${R.migration}`: {
        const m = this.migrations.find((x) => x.id === id);
        if (!m) throw new ApiError('FERRY_ERR_UNKNOWN_MIGRATION', `no migration "${id}"`);
        return [200, m];
      }
      case `POST ${R.migrations}`:
        return [202, this.migrate(body)];
      case `POST ${R.migrationCancel}`: {
        const m = this.migrations.find((x) => x.id === id);
        if (!m) throw new ApiError('FERRY_ERR_UNKNOWN_MIGRATION', `no migration "${id}"`);
        m.state = 'cancelled';
        m.error = { code: 'FERRY_ERR_MIGRATION_CANCELLED', message: 'cancelled by the operator' };
        this.emit('migration-cancelled', { vm: m.vm, migration: m.id, data: { error: m.error } });
        return [200, m];
      }
      case `GET ${R.placementConsolidation}`:
      case `GET ${R.placementRebalance}`:
        return [200, this.plan(route === R.placementConsolidation ? 'consolidation' : 'rebalance')];
      case `POST ${R.placementConsolidationApply}`:
      case `POST ${R.placementRebalanceApply}`: {
        const plan = this.plan(route === R.placementConsolidationApply ? 'consolidation' : 'rebalance');
        if (this.options.migrationOutcome === 'failed') return [200, { plan, state: 'failed', migrations: ['mig-plan-1'], vmsMoved: 0, error: { code: 'FERRY_ERR_MIGRATION_FAILED', message: 'vm-2 → host-1: migration mig-plan-1 failed' } }];
        return [200, { plan, state: 'completed', migrations: ['mig-plan-1'], vmsMoved: 1 }];
      }
      case `GET ${R.events}`: {
        const since = Number(query.get('since') ?? 0);
        return [200, this.events.filter((e) => e.seq > since)];
      }
      default:
        throw new ApiError('FERRY_ERR_NOT_FOUND', `the fake does not serve ${key}`);
    }
  }

  /** A fixed plan: vm-2 from host-2 to host-1 (consolidation empties host-2). */
  private plan(kind: 'consolidation' | 'rebalance'): PlacementPlan {
    return {
      kind,
      migrations: [{ vm: 'vm-2', from: 'host-2', to: 'host-1', costBytes: 64 * MiB }],
      hostsBefore: 2,
      hostsAfter: kind === 'consolidation' ? 1 : 2,
      hostsEmptied: kind === 'consolidation' ? ['host-2'] : [],
      spreadBefore: 0.25,
      spreadAfter: kind === 'consolidation' ? 0.5 : 0.125,
      costBytes: 64 * MiB,
    };
  }

  private run(body: unknown): Vm {
    const spec = validateRunRequest(body);
    if (!this.images.some((i) => i.id === spec.image)) throw new ApiError('FERRY_ERR_UNKNOWN_IMAGE', `no image "${spec.image}"`);
    const id = `vm-${this.nextVm++}`;
    const host = spec.host ?? 'host-1';
    for (const step of ['request-received', 'placement-decided', 'dispatched-to-host', 'appliance-copied', 'vm-booted', 'credentials-issued'] as const) this.emit(step, { vm: id, host });
    const vm: Mutable<Vm> = {
      id,
      name: spec.name ?? id,
      host,
      ip: `10.0.0.${100 + this.nextVm}`,
      state: 'running',
      image: spec.image,
      cpus: spec.cpus,
      memoryBytes: spec.memoryBytes,
      diskBytes: spec.diskBytes,
      workload: spec.workload ?? { kind: 'idle' },
      ...(spec.group ? { group: spec.group } : {}),
      credentials: { user: 'ferry', password: 'generated-pw' },
      createdAt: new Date().toISOString(),
    };
    this.vms.push(vm);
    this.emit('vm-provisioned', { vm: id, host, data: { image: vm.image } });
    return vm;
  }

  private migrate(body: unknown): Migration {
    const spec = validateMigrateRequest(body);
    const vm = this.vm(spec.vm);
    if (vm.state !== 'running') throw new ApiError('FERRY_ERR_INVALID_STATE', `cannot migrate ${vm.id}: it is ${vm.state}`);
    const to = spec.to ?? this.hosts.find((h) => h.state === 'up' && h.id !== vm.host)?.id ?? 'host-2';
    const m: Mutable<Migration> = { id: `mig-${this.nextMigration++}`, vm: vm.id, from: vm.host ?? '-', to, state: 'precopy', policy: spec.policy, rounds: [], startedAt: new Date().toISOString() };
    this.migrations.push(m);
    this.emit('migration-started', { vm: vm.id, migration: m.id });
    const rounds = this.options.rounds ?? fixtureRounds();
    const interval = this.options.roundIntervalMs ?? 20;
    rounds.forEach((round, i) => {
      this.later(interval * (i + 1), () => {
        if (m.state !== 'precopy') return;
        m.rounds = [...m.rounds, round];
        this.emit('migration-round-completed', { vm: vm.id, migration: m.id, data: { ...round } });
      });
    });
    this.later(interval * (rounds.length + 1), () => {
      if (m.state !== 'precopy') return;
      const failed = this.options.migrationOutcome === 'failed';
      const report: MigrationReport = { id: m.id, vm: m.vm, from: m.from, to: m.to, state: failed ? 'failed' : 'completed', downtimeMs: 7, totalMs: 180, setupMs: 4, rounds: rounds.length + 1, bytesOnWire: 74 * MiB, vmBytes: vm.memoryBytes, zeroPagesSkipped: 1200, digestVerified: !failed };
      m.state = report.state;
      m.report = report;
      if (failed) {
        m.error = { code: 'FERRY_ERR_MIGRATION_DIGEST', message: 'destination digest does not match' };
        this.emit('migration-failed', { vm: vm.id, migration: m.id, data: { error: m.error, report } });
      } else {
        vm.host = m.to;
        this.emit('migration-completed', { vm: vm.id, migration: m.id, data: { ...report } });
      }
    });
    return m;
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }
}
