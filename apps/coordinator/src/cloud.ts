/**
 * The cloud manager module (`name` = `vms`): the VM registry and its journal, the image catalog,
 * placement, the EC2-style `run`, lifecycle actions, host drains, reconciliation with the agents'
 * reports, and their HTTP routes under /api/v1. `createCloudModules` pairs it with the migration
 * orchestrator (migrations.ts), which it serves as the VmDirectory.
 *
 * Routes answered here: GET /hosts, /hosts/:id (with use from the registry), GET/POST /vms, GET/DELETE /vms/:id, POST /vms/:id/{start,stop,suspend,
 * resume,snapshot,clone}, GET /vms/:id/wws, GET /images, GET /images/:id, POST /images (capture a
 * VM as an image), GET /images/:id/file (agents download an image they lack), PUT
 * /images/:id/file (the capturing agent uploads; only for a capture waiting for that id; see
 * images-transfer.ts), POST /hosts/:id/drain, /drain/cancel, /undrain. Migrations (and
 * /vms/:id/migrate) belong to the orchestrator.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { API_ROUTES, ApiError, matchApiRoute, type AgentToCoordinatorMessage, type Host } from '@ferry/protocol';
import type { StrategyName } from '@ferry/placement';
import type { CloudDeps } from './cloud-deps.ts';
import { DrainManager, type DrainLimits } from './drain.ts';
import { toApiHost, type HostView } from './hosts.ts';
import { sendError, sendJson } from './http-api.ts';
import { ImageCatalog } from './images.ts';
import { receiveImageUpload, sendImageFile } from './images-transfer.ts';
import { registerCloudMetrics } from './metrics.ts';
import { MigrationOrchestrator, readJson, type VmDirectory, type VmLocation } from './migrations.ts';
import type { CoordinatorContext, CoordinatorModule } from './modules.ts';
import { ClusterPlacement, DEFAULT_PLACEMENT_STRATEGY } from './placement.ts';
import { VmJournal } from './vms-journal.ts';
import { VmRegistry, toApiVm } from './vms.ts';
import { RegistryVmDirectory, migrationStarterOf } from './vms-directory.ts';
import { captureImage, cloneVm, deleteVm, resumeVm, sampleWws, snapshotVm, startVm, stopVm, suspendVm } from './vms-lifecycle.ts';
import { hostWentDown, reconcileHost, reconcileReports } from './vms-reconcile.ts';
import { runInstance } from './vms-run.ts';

/** Options of the cloud module. */
export interface CloudModuleOptions {
  /** The coordinator's state directory (journal `vms.json`, catalog `images/`). */
  readonly stateDir: string;
  /** Placement strategy; default best-fit. */
  readonly strategy?: StrategyName;
  /** Drain concurrency limits. */
  readonly drain?: DrainLimits;
  /** How often heartbeat reports are compared with the registry; default 250 ms. */
  readonly reconcileIntervalMs?: number;
}

/** The cloud manager module. */
export class CloudModule implements CoordinatorModule {
  readonly name = 'vms';
  private readonly options: CloudModuleOptions;
  private state: { deps: CloudDeps; drains: DrainManager; stop: (() => void)[] } | undefined;
  private orchestrator: MigrationOrchestrator | undefined;

  constructor(options: CloudModuleOptions) {
    this.options = options;
  }

  /** The shared parts (after start). */
  get deps(): CloudDeps {
    if (!this.state) throw new Error('vms module not started');
    return this.state.deps;
  }

  /** The drain manager (after start). */
  get drains(): DrainManager {
    if (!this.state) throw new Error('vms module not started');
    return this.state.drains;
  }

  /** The VmDirectory for the orchestrator; usable from this module's start on (start it first). */
  readonly directory: VmDirectory = {
    get: (vmId: string): VmLocation | undefined => this.inner().get(vmId),
    chooseDestination: (vmId, from, to) => this.inner().chooseDestination(vmId, from, to),
    migrationEnded: (vmId, outcome) => this.inner().migrationEnded(vmId, outcome),
    recordOwner: (vmId, hostId) => this.inner().recordOwner(vmId, hostId),
    setState: (vmId, state) => this.inner().setState(vmId, state),
  };
  private directoryImpl: RegistryVmDirectory | undefined;

  private inner(): RegistryVmDirectory {
    this.directoryImpl ??= new RegistryVmDirectory(this.deps);
    return this.directoryImpl;
  }

  /** Lets lifecycle actions and drains start migrations through `orchestrator`. */
  useMigrations(orchestrator: MigrationOrchestrator): void {
    this.orchestrator = orchestrator;
    if (this.state) this.state.deps.migrations = migrationStarterOf(orchestrator);
  }

  async start(ctx: CoordinatorContext): Promise<void> {
    const vms = new VmRegistry(new VmJournal(this.options.stateDir));
    const images = await ImageCatalog.open(this.options.stateDir);
    const placement = new ClusterPlacement(ctx.hosts, ctx.events, vms.list(), this.options.strategy ?? DEFAULT_PLACEMENT_STRATEGY);
    const deps: CloudDeps = {
      vms,
      placement,
      images,
      hosts: ctx.hosts,
      events: ctx.events,
      agents: ctx.agents,
      logger: ctx.logger.child({ module: 'vms' }),
      migrations: this.orchestrator ? migrationStarterOf(this.orchestrator) : undefined,
    };
    const drains = new DrainManager(deps, this.options.drain);
    const stop: (() => void)[] = [() => placement.close(), () => drains.close()];
    stop.push(registerCloudMetrics(ctx.metrics, deps));
    stop.push(
      ctx.events.subscribe((e) => {
        if (e.type !== 'host-registered' || e.host === undefined) return;
        const host = ctx.hosts.find(e.host);
        if (host) reconcileHost(deps, host.id, host.vms);
      }),
    );
    // Heartbeats refresh the hosts' VM lists; pick up changes the agents made on their own. A
    // report older than the registry's last change of a VM is stale and skipped.
    const timer = setInterval(() => {
      for (const h of ctx.hosts.list()) if (h.state !== 'down') reconcileReports(deps, h.id, h.vms.filter((r) => vms.changedAtMs(r.vmId) < h.lastHeartbeatAtMs), 'heartbeat');
    }, this.options.reconcileIntervalMs ?? 250);
    timer.unref();
    stop.push(() => clearInterval(timer));
    stop.push(() => void images.close());
    this.state = { deps, drains, stop };
    deps.logger.info({ event: 'vms-loaded', vm_count: vms.list().length, strategy: placement.scheduler.strategy }, 'VM registry loaded');
  }

  onAgentMessage(hostId: string, message: AgentToCoordinatorMessage): boolean {
    if (message.type !== 'vm-state-changed' || !this.state) return false;
    reconcileReports(this.state.deps, hostId, [message.vm], message.reason);
    return true;
  }

  onHostDown(hostId: string, reason: string): void {
    if (this.state) hostWentDown(this.state.deps, hostId, reason);
  }

  async handleHttp(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const match = matchApiRoute(url.pathname);
    if (!match || !this.state) return false;
    const { deps, drains } = this.state;
    const id = match.id ?? '';
    const method = req.method ?? 'GET';
    const body = (): Promise<unknown> => readJson(req);
    try {
      switch (`${method} ${match.route}`) {
        case `GET ${API_ROUTES.hosts}`:
          return reply(res, 200, deps.hosts.list().map((h) => hostWithUse(deps, h)));
        case `GET ${API_ROUTES.host}`: {
          const host = deps.hosts.find(id);
          if (!host) throw new ApiError('FERRY_ERR_UNKNOWN_HOST', `no host ${id}`);
          return reply(res, 200, hostWithUse(deps, host));
        }
        case `GET ${API_ROUTES.vms}`:
          return reply(res, 200, deps.vms.list().map((v) => toApiVm(v)));
        case `POST ${API_ROUTES.vms}`:
          return reply(res, 201, toApiVm(await runInstance(deps, await body())));
        case `GET ${API_ROUTES.vm}`:
          return reply(res, 200, toApiVm(deps.vms.get(id)));
        case `DELETE ${API_ROUTES.vm}`:
          return reply(res, 200, toApiVm(await deleteVm(deps, id)));
        case `POST ${API_ROUTES.vmStart}`:
          return reply(res, 200, toApiVm(await startVm(deps, id, await body())));
        case `POST ${API_ROUTES.vmStop}`:
          return reply(res, 200, toApiVm(await stopVm(deps, id, await body())));
        case `POST ${API_ROUTES.vmSuspend}`:
          return reply(res, 200, toApiVm(await suspendVm(deps, id)));
        case `POST ${API_ROUTES.vmResume}`:
          return reply(res, 200, toApiVm(await resumeVm(deps, id, await body())));
        case `POST ${API_ROUTES.vmSnapshot}`:
          return reply(res, 201, await snapshotVm(deps, id, await body()));
        case `POST ${API_ROUTES.vmClone}`:
          return reply(res, 201, toApiVm(await cloneVm(deps, id, await body())));
        case `GET ${API_ROUTES.vmWws}`:
          return reply(res, 200, await sampleWws(deps, id, url.searchParams));
        case `GET ${API_ROUTES.images}`:
          return reply(res, 200, deps.images.list());
        case `GET ${API_ROUTES.image}`:
          return reply(res, 200, await deps.images.get(id));
        case `POST ${API_ROUTES.images}`:
          return reply(res, 201, await captureImage(deps, await body()));
        case `GET ${API_ROUTES.imageFile}`:
          await sendImageFile(deps.images, id, res);
          return true;
        case `PUT ${API_ROUTES.imageFile}`:
          try {
            return reply(res, 201, await receiveImageUpload(deps.images, id, req));
          } catch (err) {
            // A refused upload's body is left unread: drop it instead of keeping the socket.
            res.setHeader('connection', 'close');
            req.resume();
            throw err;
          }
        case `POST ${API_ROUTES.hostDrain}`:
          return reply(res, 202, drains.start(id));
        case `POST ${API_ROUTES.hostDrainCancel}`:
          return reply(res, 200, drains.cancel(id));
        case `POST ${API_ROUTES.hostUndrain}`: {
          if (drains.get(id)?.state === 'running') drains.cancel(id);
          deps.hosts.undrain(id);
          return reply(res, 200, hostWithUse(deps, deps.hosts.find(id)!));
        }
        default:
          if ([API_ROUTES.vms, API_ROUTES.vm, API_ROUTES.vmStart, API_ROUTES.vmStop, API_ROUTES.vmSuspend, API_ROUTES.vmResume, API_ROUTES.vmSnapshot, API_ROUTES.vmClone, API_ROUTES.vmWws, API_ROUTES.images, API_ROUTES.image, API_ROUTES.imageFile, API_ROUTES.hostDrain, API_ROUTES.hostDrainCancel, API_ROUTES.hostUndrain].includes(match.route as never)) {
            sendError(res, 'FERRY_ERR_METHOD_NOT_ALLOWED', `${method} not allowed on ${url.pathname}`, 405);
            return true;
          }
          return false;
      }
    } catch (err) {
      const e = err as { code?: string; message?: string; status?: number };
      const code = e.code ?? 'FERRY_ERR_INTERNAL';
      if (code === 'FERRY_ERR_INTERNAL') deps.logger.error({ event: 'http-request-failed', err, url: url.pathname }, 'request failed');
      sendError(res, code, e.message ?? String(err), e.status ?? statusOf(code));
      return true;
    }
  }

  async close(): Promise<void> {
    for (const f of this.state?.stop.splice(0) ?? []) f();
  }
}

/**
 * The API Host with `used` and `vms` from the registry: the VMs placed on it in any state but
 * lost (a stopped or suspended VM keeps its place), so the figures are right between heartbeats
 * and after a coordinator restart.
 */
function hostWithUse(deps: CloudDeps, h: HostView): Host {
  let cpus = 0;
  let memoryBytes = 0;
  let diskBytes = 0;
  let count = 0;
  for (const vm of deps.vms.list()) {
    if (vm.host !== h.id || vm.state === 'lost' || vm.state === 'deleted') continue;
    cpus += vm.cpus;
    memoryBytes += vm.memoryBytes;
    diskBytes += vm.diskBytes;
    count++;
  }
  return { ...toApiHost(h), used: { cpus, memoryBytes, diskBytes }, vms: count };
}

/** HTTP status for an error code, adding the coordinator's own codes to the API's table. */
function statusOf(code: string): number | undefined {
  switch (code) {
    case 'FERRY_ERR_HOST_TRANSITION':
      return 409;
    case 'FERRY_ERR_HOST_NOT_CONNECTED':
      return 503;
    case 'FERRY_ERR_AGENT_TIMEOUT':
      return 504;
    default:
      return undefined;
  }
}

function reply(res: ServerResponse, status: number, body: unknown): true {
  sendJson(res, status, body);
  return true;
}

/** Options of createCloudModules. */
export interface CloudModulesOptions extends CloudModuleOptions {
  /** Migration reservation lifetime and decision timeout (see MigrationOrchestratorOptions). */
  readonly reservationTtlMs?: number;
  readonly decisionTimeoutMs?: number;
  /** Failpoint hook (see failpoints.ts); main.ts sets it from FERRY_FAILPOINTS. */
  readonly afterCommitRecorded?: (migrationId: string) => void;
}

/**
 * The cloud module and the migration orchestrator, wired to each other, in the order
 * startCoordinator must get them (the registry loads before the orchestrator recovers migrations).
 */
export function createCloudModules(options: CloudModulesOptions): { cloud: CloudModule; migrations: MigrationOrchestrator; modules: CoordinatorModule[] } {
  const cloud = new CloudModule(options);
  const migrations = new MigrationOrchestrator({
    directory: cloud.directory,
    journalPath: join(options.stateDir, 'migrations.journal.json'),
    ...(options.reservationTtlMs !== undefined ? { reservationTtlMs: options.reservationTtlMs } : {}),
    ...(options.decisionTimeoutMs !== undefined ? { decisionTimeoutMs: options.decisionTimeoutMs } : {}),
    ...(options.afterCommitRecorded !== undefined ? { afterCommitRecorded: options.afterCommitRecorded } : {}),
  });
  cloud.useMigrations(migrations);
  return { cloud, migrations, modules: [cloud, migrations] };
}
