/**
 * A minimal coordinator for migration tests, benchmarks and the downtime lab, without the cloud
 * manager: `ReportedVmDirectory` is a VmDirectory over what agents report (plus the owner switches
 * the orchestrator records), and `MigrationLabModule` serves a few raw routes the cloud API does
 * not have (VMs with an exact packages/vm spec — step limits, heartbeat off — and memory digests):
 *
 * | route | body | reply |
 * |---|---|---|
 * | POST /api/v1/lab/vms | `{ host, spec: VmSpecWire, image?, start? }` | VmReport (201) |
 * | GET  /api/v1/lab/vms | | `[{ host, vm: VmReport }]` |
 * | GET  /api/v1/lab/vms/:id/digest | | `{ host, digest, state, totalSteps }` |
 * | POST /api/v1/lab/vms/:id/action | `{ action }` (vm-action) | VmReport |
 *
 * Use with `startCoordinator({ modules: [lab, orchestrator] })` (see `createMigrationLab`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { API_PREFIX, ApiError, VM_HOST_ACTIONS, type VmActionMessage, type VmCreateMessage, type VmDigestMessage, type VmHostAction, type VmReport, type VmSpecWire, type VmState } from '@ferry/protocol';
import type { HostRegistry } from './hosts.ts';
import type { CoordinatorContext, CoordinatorModule } from './modules.ts';
import { sendError, sendJson } from './http-api.ts';
import { MigrationOrchestrator, readJson, type MigrationOrchestratorOptions, type VmDirectory, type VmLocation } from './migrations.ts';

const API_STATES: readonly string[] = ['running', 'paused', 'suspended', 'stopped'];

/** A VmDirectory over agent reports: the recorded owner wins, else the host that reports the VM. Destination: the up host with the most free memory. */
export class ReportedVmDirectory implements VmDirectory {
  private hostsRef: HostRegistry | undefined;
  private readonly owners = new Map<string, string>();
  private readonly states = new Map<string, VmState>();
  private readonly known = new Map<string, { host: string; vm: VmReport }>();

  /** Records a VM created through the lab (before its host's next heartbeat reports it). */
  learn(host: string, vm: VmReport): void {
    this.known.set(vm.vmId, { host, vm });
    this.owners.set(vm.vmId, host);
    if (API_STATES.includes(vm.state)) this.states.set(vm.vmId, vm.state as VmState);
  }

  /** Binds to the coordinator's host registry (MigrationLabModule does it at start). */
  bind(hosts: HostRegistry): void {
    this.hostsRef = hosts;
  }

  private get hosts(): HostRegistry {
    if (!this.hostsRef) throw new Error('ReportedVmDirectory not bound');
    return this.hostsRef;
  }

  /** The host that reports `vmId` and its report. */
  reported(vmId: string): { host: string; vm: VmReport } | undefined {
    const owner = this.owners.get(vmId);
    const ownerHost = owner === undefined ? undefined : this.hosts.find(owner);
    const own = ownerHost?.vms.find((v) => v.vmId === vmId);
    if (owner !== undefined && own) return this.remember({ host: owner, vm: own });
    for (const h of this.hosts.list()) {
      if (h.state === 'down') continue;
      const v = h.vms.find((x) => x.vmId === vmId);
      if (v) return this.remember({ host: h.id, vm: v });
    }
    // Between a migration's end and the destination's next heartbeat no host reports the VM: the
    // last report still knows its size (a next migration must reserve it, not 0 bytes).
    return this.known.get(vmId);
  }

  private remember(report: { host: string; vm: VmReport }): { host: string; vm: VmReport } {
    this.known.set(report.vm.vmId, report);
    return report;
  }

  get(vmId: string): VmLocation | undefined {
    const r = this.reported(vmId);
    const owner = this.owners.get(vmId);
    const override = this.states.get(vmId);
    if (!r) {
      if (owner === undefined) return undefined;
      return { host: owner, state: override ?? 'lost', memoryBytes: 0, cpus: 1 };
    }
    // The owner's own report wins; a report from elsewhere lags a migration by a heartbeat, so
    // the state the orchestrator set last stands until the owner reports.
    const fromOwner = owner === undefined || r.host === owner;
    let state: VmState;
    if (override === 'migrating' || override === 'lost') state = override;
    else if (fromOwner && API_STATES.includes(r.vm.state)) state = r.vm.state as VmState;
    else if (override !== undefined) state = override;
    else state = API_STATES.includes(r.vm.state) ? (r.vm.state as VmState) : 'provisioning';
    return { host: owner ?? r.host, state, memoryBytes: r.vm.memoryBytes, cpus: r.vm.cpus };
  }

  chooseDestination(vmId: string, from: string, to?: string): string {
    const need = this.get(vmId)?.memoryBytes ?? 0;
    const free = (id: string): number => {
      const h = this.hosts.find(id);
      if (!h || h.state !== 'up') return -1;
      return h.capacity.memoryBytes - h.vms.reduce((s, v) => s + v.memoryBytes, 0);
    };
    if (to !== undefined) {
      if (!this.hosts.find(to)) throw new ApiError('FERRY_ERR_UNKNOWN_HOST', `no host ${to}`);
      if (free(to) < need) throw new ApiError('FERRY_ERR_NO_CAPACITY', `host ${to} is not up or lacks ${need} bytes of memory`);
      return to;
    }
    const best = this.hosts
      .list()
      .filter((h) => h.id !== from && free(h.id) >= need)
      .sort((a, b) => free(b.id) - free(a.id))[0];
    if (!best) throw new ApiError('FERRY_ERR_PLACEMENT', `no up host other than ${from} has ${need} bytes free`);
    return best.id;
  }

  migrationEnded(): void {}

  recordOwner(vmId: string, hostId: string): void {
    this.owners.set(vmId, hostId);
  }

  setState(vmId: string, state: VmState): void {
    this.states.set(vmId, state);
  }
}

/** Raw VM routes for tests, benchmarks and the lab (see the file comment). */
export class MigrationLabModule implements CoordinatorModule {
  readonly name = 'migration-lab';
  private ctx: CoordinatorContext | undefined;
  private readonly directory: ReportedVmDirectory;

  constructor(directory: ReportedVmDirectory) {
    this.directory = directory;
  }

  start(ctx: CoordinatorContext): void {
    this.ctx = ctx;
    this.directory.bind(ctx.hosts);
  }

  async handleHttp(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const rest = url.pathname.slice(API_PREFIX.length);
    if (!rest.startsWith('/lab/')) return false;
    const ctx = this.ctx!;
    try {
      const digest = /^\/lab\/vms\/([^/]+)\/digest$/.exec(rest);
      const action = /^\/lab\/vms\/([^/]+)\/action$/.exec(rest);
      if (rest === '/lab/vms' && req.method === 'POST') {
        const body = (await readJson(req)) as { host?: string; spec?: VmSpecWire; image?: string; start?: boolean };
        if (typeof body.host !== 'string' || typeof body.spec !== 'object' || body.spec === null) throw new ApiError('FERRY_ERR_BAD_REQUEST', 'body needs host and spec');
        const reply = await ctx.agents.request<VmCreateMessage>(body.host, { type: 'vm-create', spec: body.spec, ...(body.image !== undefined ? { image: body.image } : {}), start: body.start ?? true }, 60_000);
        if (reply.type !== 'vm-created') throw new ApiError('FERRY_ERR_INTERNAL', `agent replied ${reply.type}`);
        this.directory.learn(body.host, reply.vm);
        sendJson(res, 201, reply.vm);
      } else if (rest === '/lab/vms' && req.method === 'GET') {
        sendJson(res, 200, ctx.hosts.list().flatMap((h) => (h.state === 'down' ? [] : h.vms.map((vm) => ({ host: h.id, vm })))));
      } else if (digest && req.method === 'GET') {
        const vmId = decodeURIComponent(digest[1]!);
        const host = this.directory.get(vmId)?.host;
        if (!host) throw new ApiError('FERRY_ERR_UNKNOWN_VM', `no vm ${vmId}`);
        const reply = await ctx.agents.request<VmDigestMessage>(host, { type: 'vm-digest', vmId }, 60_000);
        if (reply.type !== 'vm-digested') throw new ApiError('FERRY_ERR_INTERNAL', `agent replied ${reply.type}`);
        sendJson(res, 200, { host, digest: reply.digest, state: reply.state, totalSteps: reply.totalSteps });
      } else if (action && req.method === 'POST') {
        const vmId = decodeURIComponent(action[1]!);
        const body = (await readJson(req)) as { action?: string };
        if (!VM_HOST_ACTIONS.includes(body.action as VmHostAction)) throw new ApiError('FERRY_ERR_BAD_REQUEST', `action must be one of ${VM_HOST_ACTIONS.join(', ')}`);
        const host = this.directory.get(vmId)?.host;
        if (!host) throw new ApiError('FERRY_ERR_UNKNOWN_VM', `no vm ${vmId}`);
        const reply = await ctx.agents.request<VmActionMessage>(host, { type: 'vm-action', vmId, action: body.action as VmHostAction }, 60_000);
        if (reply.type !== 'vm-updated') throw new ApiError('FERRY_ERR_INTERNAL', `agent replied ${reply.type}`);
        sendJson(res, 200, reply.vm);
      } else sendError(res, 'FERRY_ERR_NOT_FOUND', `no route ${req.method} ${url.pathname}`, 404);
    } catch (err) {
      const e = err as { code?: string; message?: string; status?: number };
      sendError(res, e.code ?? 'FERRY_ERR_INTERNAL', e.message ?? String(err), e.status);
    }
    return true;
  }
}

/** The lab's modules: the raw routes and an orchestrator over a ReportedVmDirectory. Pass `modules` to startCoordinator. */
export function createMigrationLab(options: Omit<MigrationOrchestratorOptions, 'directory'> = {}): { directory: ReportedVmDirectory; lab: MigrationLabModule; migrations: MigrationOrchestrator; modules: CoordinatorModule[] } {
  const directory = new ReportedVmDirectory();
  const lab = new MigrationLabModule(directory);
  const migrations = new MigrationOrchestrator({ ...options, directory });
  return { directory, lab, migrations, modules: [lab, migrations] };
}
