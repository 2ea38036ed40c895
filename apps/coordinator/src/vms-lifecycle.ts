/**
 * Lifecycle actions on instances, routed to the owning agent: start, stop, suspend, resume (on
 * the same host, or on another by live migration), snapshot, clone, delete, and writable working
 * set sampling. Each checks the VM's state first and refuses a wrong one with
 * VmInvalidStateError (409 FERRY_ERR_INVALID_STATE), changing nothing; one action at a time per VM
 * (a second one while the first runs is refused the same way).
 */
import type { AgentToCoordinatorMessage, Image, VmSnapshot, VmState, WwsReport } from '@ferry/protocol';
import { DEFAULT_MIGRATION_POLICY, parseRate, validateCloneRequest, validateImageCaptureRequest, validatePlaceRequest, validateSnapshotRequest, validateStopRequest } from '@ferry/protocol';
import { askAgent, type CloudDeps } from './cloud-deps.ts';
import { CoordinatorError } from './errors.ts';
import { ImageCaptureFailedError } from './images.ts';
import type { VmRecord } from './vms-journal.ts';
import { VmInvalidStateError, toApiVm } from './vms.ts';
import { DEFAULT_ACCESS_RULES, VM_CREATE_TIMEOUT_MS, apiStateOf, workloadWireOf } from './vms-run.ts';

/** How long an agent may take for a lifecycle action (suspend writes all memory to a file). */
export const VM_ACTION_TIMEOUT_MS = 30_000;

/** VM ids with an action in progress. */
const busy = new WeakMap<CloudDeps, Set<string>>();

/** Runs `fn` holding the VM's action lock; a VM already busy is refused (409). */
export async function withVmLock<T>(deps: CloudDeps, vmId: string, action: string, fn: () => Promise<T>): Promise<T> {
  let set = busy.get(deps);
  if (!set) busy.set(deps, (set = new Set()));
  if (set.has(vmId)) {
    const vm = deps.vms.get(vmId);
    throw new CoordinatorError('FERRY_ERR_INVALID_STATE', `cannot ${action} ${vmId}: another action on it is in progress (state ${vm.state})`);
  }
  set.add(vmId);
  try {
    return await fn();
  } finally {
    set.delete(vmId);
  }
}

/** Whether an action holds the VM's lock now. */
export function isVmBusy(deps: CloudDeps, vmId: string): boolean {
  return busy.get(deps)?.has(vmId) === true;
}

function ownerOf(deps: CloudDeps, vm: VmRecord, action: string): string {
  if (vm.host === null) throw new CoordinatorError('FERRY_ERR_INVALID_STATE', `cannot ${action} ${vm.id}: it is on no host`);
  if (!deps.agents.isConnected(vm.host)) throw new CoordinatorError('FERRY_ERR_HOST_UNAVAILABLE', `cannot ${action} ${vm.id}: its host ${vm.host} is not connected`);
  return vm.host;
}

async function hostAction(deps: CloudDeps, vm: VmRecord, action: 'start' | 'stop' | 'suspend' | 'resume' | 'delete', apiAction: string): Promise<VmState | undefined> {
  const host = ownerOf(deps, vm, apiAction);
  const reply = await askAgent(deps.agents, host, { type: 'vm-action', vmId: vm.id, action }, 'vm-updated', VM_ACTION_TIMEOUT_MS);
  return apiStateOf(reply.vm.state);
}

function changed(deps: CloudDeps, vm: VmRecord, type: 'vm-started' | 'vm-stopped' | 'vm-suspended' | 'vm-resumed', extra: object = {}): VmRecord {
  deps.events.emit(type, { vm: vm.id, ...(vm.host !== null ? { host: vm.host } : {}) }, { ...toApiVm(vm, false), ...extra });
  deps.logger.info({ event: type, vmId: vm.id, hostId: vm.host, state: vm.state }, type.replace('vm-', 'VM '));
  return vm;
}

/**
 * `start` (stopped → running): booted afresh from its image with its run-time configuration (EC2
 * stop/start: a stopped VM's memory is gone), on its host, or with `{ host }` on another. The
 * agent replaces the stopped VM it holds (or has forgotten, after its own restart) by the new one.
 */
export async function startVm(deps: CloudDeps, vmId: string, body: unknown): Promise<VmRecord> {
  const { host } = validatePlaceRequest(body);
  return withVmLock(deps, vmId, 'start', async () => {
    const vm = deps.vms.expectState(vmId, ['stopped'], 'start');
    if (host === undefined || host === vm.host) {
      const reply = await bootFromImage(deps, vm, ownerOf(deps, vm, 'start'));
      return changed(deps, deps.vms.update(vmId, { state: apiStateOf(reply.vm.state) ?? 'running' }), 'vm-started');
    }
    // Another host: claim there first (the old claim goes back if that fails), boot from the image, then drop the old VM.
    const from = vm.host;
    deps.placement.release(vmId);
    try {
      deps.placement.place(vm, host);
    } catch (err) {
      deps.placement.claimExisting(vm);
      throw err;
    }
    try {
      const reply = await bootFromImage(deps, vm, host);
      const moved = deps.vms.update(vmId, { host, state: apiStateOf(reply.vm.state) ?? 'running' });
      if (from !== null && deps.agents.isConnected(from)) askAgent(deps.agents, from, { type: 'vm-action', vmId, action: 'delete' }, 'vm-updated').catch(() => {});
      return changed(deps, moved, 'vm-started', { from });
    } catch (err) {
      deps.placement.release(vmId);
      deps.placement.claimExisting(vm);
      throw err;
    }
  });
}

/** Asks `host` to provision `vm` from its image with its run-time configuration and boot it. */
function bootFromImage(deps: CloudDeps, vm: VmRecord, host: string): Promise<Extract<AgentToCoordinatorMessage, { type: 'vm-created' }>> {
  return askAgent(
    deps.agents,
    host,
    {
      type: 'vm-create',
      spec: { id: vm.id, name: vm.name, vcpus: vm.cpus, memoryBytes: vm.memoryBytes, workload: workloadWireOf(vm.workload) },
      image: vm.image,
      config: { instanceId: vm.id, hostname: vm.name, ip: vm.ip, accessRules: [...DEFAULT_ACCESS_RULES], user: vm.credentials.user, password: vm.credentials.password },
      start: true,
    },
    'vm-created',
    VM_CREATE_TIMEOUT_MS,
  );
}

/** `stop` (running|paused → stopped). */
export async function stopVm(deps: CloudDeps, vmId: string, body: unknown): Promise<VmRecord> {
  validateStopRequest(body);
  return withVmLock(deps, vmId, 'stop', async () => {
    const vm = deps.vms.expectState(vmId, ['running', 'paused'], 'stop');
    const state = await hostAction(deps, vm, 'stop', 'stop');
    return changed(deps, deps.vms.update(vmId, { state: state ?? 'stopped' }), 'vm-stopped');
  });
}

/** `suspend` (running|paused → suspended: memory saved to a file on its host). */
export async function suspendVm(deps: CloudDeps, vmId: string): Promise<VmRecord> {
  return withVmLock(deps, vmId, 'suspend', async () => {
    const vm = deps.vms.expectState(vmId, ['running', 'paused'], 'suspend');
    const state = await hostAction(deps, vm, 'suspend', 'suspend');
    return changed(deps, deps.vms.update(vmId, { state: state ?? 'suspended' }), 'vm-suspended');
  });
}

/**
 * `resume` (suspended|paused → running): on its host, or with `{ host }` on another one by live
 * migration (a suspended VM migrates from its file and arrives running). Resolves once it runs.
 */
export async function resumeVm(deps: CloudDeps, vmId: string, body: unknown): Promise<VmRecord> {
  const { host } = validatePlaceRequest(body);
  const vm = deps.vms.expectState(vmId, ['suspended', 'paused'], 'resume');
  if (host !== undefined && host !== vm.host) {
    if (!deps.migrations) throw new CoordinatorError('FERRY_ERR_INVALID_STATE', `cannot resume ${vmId} on ${host}: live migration is not available`);
    if (isVmBusy(deps, vmId)) throw new CoordinatorError('FERRY_ERR_INVALID_STATE', `cannot resume ${vmId}: another action on it is in progress`);
    const started = await deps.migrations.start({ vm: vmId, to: host });
    const final = await deps.migrations.whenFinished(started.id);
    if (final.state !== 'completed') throw new CoordinatorError(final.error?.code ?? 'FERRY_ERR_MIGRATION_FAILED', `resume of ${vmId} on ${host} failed: ${final.error?.message ?? final.state}`);
    const after = deps.vms.get(vmId);
    if (after.state !== 'running') {
      return withVmLock(deps, vmId, 'resume', async () => {
        const state = await hostAction(deps, after, 'resume', 'resume');
        return changed(deps, deps.vms.update(vmId, { state: state ?? 'running' }), 'vm-resumed', { migration: started.id });
      });
    }
    return changed(deps, after, 'vm-resumed', { migration: started.id });
  }
  return withVmLock(deps, vmId, 'resume', async () => {
    const current = deps.vms.expectState(vmId, ['suspended', 'paused'], 'resume');
    const state = await hostAction(deps, current, 'resume', 'resume');
    return changed(deps, deps.vms.update(vmId, { state: state ?? 'running' }), 'vm-resumed');
  });
}

/** `snapshot` (running|paused; the VM keeps running): a live snapshot file on its host. */
export async function snapshotVm(deps: CloudDeps, vmId: string, body: unknown): Promise<VmSnapshot> {
  const { name } = validateSnapshotRequest(body);
  return withVmLock(deps, vmId, 'snapshot', () => takeSnapshot(deps, deps.vms.expectState(vmId, ['running', 'paused'], 'snapshot'), name));
}

async function takeSnapshot(deps: CloudDeps, vm: VmRecord, name: string | undefined): Promise<VmSnapshot> {
  const host = ownerOf(deps, vm, 'snapshot');
  const snapshotId = deps.vms.newSnapshotId();
  const reply = await askAgent(deps.agents, host, { type: 'vm-snapshot', vmId: vm.id, snapshotId }, 'snapshot-taken', VM_ACTION_TIMEOUT_MS);
  const snapshot: VmSnapshot = { id: snapshotId, vm: vm.id, name: name ?? snapshotId, host, memoryBytes: reply.memoryBytes, createdAt: new Date().toISOString() };
  deps.vms.addSnapshot(snapshot);
  deps.events.emit('vm-snapshotted', { vm: vm.id, host }, { ...snapshot, fileBytes: reply.fileBytes, durationMs: reply.durationMs, pauseMs: reply.pauseMs });
  deps.logger.info({ event: 'vm-snapshotted', vmId: vm.id, hostId: host, snapshotId, pause_ms: reply.pauseMs, file_bytes: reply.fileBytes }, 'snapshot taken');
  return snapshot;
}

/**
 * `clone` (running|paused): a live snapshot, then a new instance from it on the same host (the
 * snapshot lives there), with its own id, name, IP and credential; with `{ host }` elsewhere, the
 * clone is then live-migrated there. The clone is in no placement group.
 */
export async function cloneVm(deps: CloudDeps, vmId: string, body: unknown): Promise<VmRecord> {
  const { name, host } = validateCloneRequest(body);
  const clone = await withVmLock(deps, vmId, 'clone', async () => {
    const vm = deps.vms.expectState(vmId, ['running', 'paused'], 'clone');
    const owner = ownerOf(deps, vm, 'clone');
    if (host !== undefined && host !== owner && !deps.migrations) throw new CoordinatorError('FERRY_ERR_INVALID_STATE', `cannot clone ${vmId} onto ${host}: live migration is not available`);
    const newId = deps.vms.newVmId();
    // A clone is a new instance outside the original's placement group (a group is a run request's choice;
    // in an anti-affinity group the clone, made on the original's host, could never be placed).
    const base = { id: newId, cpus: vm.cpus, memoryBytes: vm.memoryBytes, diskBytes: vm.diskBytes, image: vm.image };
    if (host !== undefined && host !== owner) {
      // Refuse a destination that cannot take the clone before anything is made (a dry run of its placement).
      deps.placement.place(base, host);
      deps.placement.release(newId);
    }
    deps.placement.place(base, owner);
    let added = false;
    try {
      const snapshot = await takeSnapshot(deps, vm, `clone-of-${vm.id}`);
      const record: VmRecord = {
        ...base,
        name: name ?? newId,
        host: owner,
        ip: deps.vms.allocateIp(),
        state: 'provisioning',
        workload: vm.workload,
        credentials: vm.credentials, // a clone is the same guest: its config page holds the same login
        createdAt: new Date().toISOString(),
      };
      deps.vms.add(record);
      added = true;
      const reply = await askAgent(deps.agents, owner, { type: 'vm-clone', snapshotId: snapshot.id, newVmId: newId, name: record.name, start: true }, 'vm-created', VM_CREATE_TIMEOUT_MS);
      const created = deps.vms.update(newId, { state: apiStateOf(reply.vm.state) ?? 'running' });
      deps.events.emit('vm-cloned', { vm: newId, host: owner }, { ...toApiVm(created, false), from: vm.id, snapshot: snapshot.id });
      return created;
    } catch (err) {
      deps.placement.release(newId);
      if (added) deps.vms.remove(newId);
      throw err;
    }
  });
  if (host === undefined || host === clone.host || !deps.migrations) return clone;
  // The clone moves by live migration; if it cannot get there, it is deleted and the request fails (nothing left behind).
  try {
    const started = await deps.migrations.start({ vm: clone.id, to: host });
    const final = await deps.migrations.whenFinished(started.id);
    if (final.state !== 'completed') throw new CoordinatorError(final.error?.code ?? 'FERRY_ERR_MIGRATION_FAILED', `clone ${clone.id} of ${vmId} could not move to ${host}: ${final.error?.message ?? final.state}; it was deleted`);
  } catch (err) {
    await deleteVm(deps, clone.id).catch((e: unknown) => deps.logger.warn({ event: 'vm-clone-cleanup-failed', vmId: clone.id, err: (e as Error).message }, 'could not delete a clone that did not reach its host'));
    throw err;
  }
  return deps.vms.get(clone.id);
}

/** `delete` (any state but provisioning and migrating): the VM is destroyed on its host, its claim and address freed, the record dropped. */
export async function deleteVm(deps: CloudDeps, vmId: string): Promise<VmRecord> {
  return withVmLock(deps, vmId, 'delete', async () => {
    const vm = deps.vms.expectState(vmId, ['running', 'paused', 'suspended', 'stopped', 'lost'], 'delete');
    if (vm.host !== null && deps.agents.isConnected(vm.host)) {
      try {
        await hostAction(deps, vm, 'delete', 'delete');
      } catch (err) {
        // A VM its host no longer knows is gone already; anything else stops the delete.
        if ((err as { code?: string }).code !== 'FERRY_ERR_UNKNOWN_VM') throw err;
      }
    }
    deps.placement.release(vmId);
    const removed = deps.vms.remove(vmId);
    const gone: VmRecord = { ...removed, state: 'deleted' };
    deps.events.emit('vm-deleted', { vm: vmId, ...(vm.host !== null ? { host: vm.host } : {}) }, toApiVm(gone, false));
    deps.logger.info({ event: 'vm-deleted', vmId, hostId: vm.host }, 'VM deleted');
    return gone;
  });
}

/** `wws` (running|paused): samples the writable working set on the owning agent. */
export async function sampleWws(deps: CloudDeps, vmId: string, query: URLSearchParams): Promise<WwsReport> {
  // The paper's sampling: every 50 ms, here for a second by default.
  const samples = intParam(query, 'samples', 20, 1, 1000);
  const intervalMs = intParam(query, 'intervalMs', 50, 10, 60_000);
  const bandwidth = query.get('bandwidth');
  let predictAt: { bandwidthBytesPerSec: number; maxDowntimeMs: number } | undefined;
  if (bandwidth !== null && bandwidth !== '') {
    const bytesPerSec = parseRate(/^\d+(\.\d+)?$/.test(bandwidth) ? Number(bandwidth) : bandwidth, 'bandwidth');
    if (!(bytesPerSec > 0)) throw new CoordinatorError('FERRY_ERR_BAD_REQUEST', 'bandwidth must be more than 0 bytes/s');
    predictAt = { bandwidthBytesPerSec: bytesPerSec, maxDowntimeMs: intParam(query, 'maxDowntimeMs', DEFAULT_MIGRATION_POLICY.maxDowntimeMs, 1, 600_000) };
  }
  const vm = deps.vms.expectState(vmId, ['running', 'paused'], 'sample the working set of');
  if (isVmBusy(deps, vmId)) throw new VmInvalidStateError(vmId, vm.state, 'sample the working set of (busy)', ['running', 'paused']);
  const host = ownerOf(deps, vm, 'sample the working set of');
  const reply = await askAgent(deps.agents, host, { type: 'vm-wws', vmId, samples, intervalMs, ...(predictAt ? { predictAt } : {}) }, 'wws-sampled', samples * intervalMs + 10_000);
  return { vm: vmId, samples: reply.samples, wwsPages: reply.wwsPages, wwsBytes: reply.wwsPages * 4096, memoryBytes: reply.memoryBytes, ...(reply.prediction ? { prediction: reply.prediction } : {}) };
}

function intParam(query: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const raw = query.get(name);
  if (raw === null || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw Object.assign(new CoordinatorError('FERRY_ERR_BAD_REQUEST', `${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`));
  return n;
}

/** How long an agent may take to capture a VM and upload the image file. */
export const IMAGE_CAPTURE_TIMEOUT_MS = 60_000;
/** Room an image file takes beyond the guest memory it holds (header, page table, metadata). */
export const IMAGE_FILE_OVERHEAD_BYTES = 1024 * 1024;

/**
 * `capture` (running|paused; EC2 CreateImage): the VM's memory becomes image `name` in the catalog.
 * The id must be free (409 FERRY_ERR_IMAGE_EXISTS); the owning agent pauses the VM for the capture,
 * resumes it, and uploads the image file (PUT /api/v1/images/:id/file), accepted only while this
 * waits and at most the VM's memory + 1 MiB. Resolves with the catalog's Image once the agent
 * replied `vm-captured`; on any failure the catalog holds nothing new and the VM keeps running.
 */
export async function captureImage(deps: CloudDeps, body: unknown): Promise<Image> {
  const { vm: vmId, name, description } = validateImageCaptureRequest(body);
  return withVmLock(deps, vmId, 'capture', async () => {
    const vm = deps.vms.expectState(vmId, ['running', 'paused'], 'capture');
    const host = ownerOf(deps, vm, 'capture');
    const { upload, done } = await deps.images.expectUpload(name, vmId, vm.memoryBytes + IMAGE_FILE_OVERHEAD_BYTES);
    try {
      const reply = await askAgent(deps.agents, host, { type: 'vm-capture', vmId, imageId: name, name, description: description ?? '' }, 'vm-captured', IMAGE_CAPTURE_TIMEOUT_MS).catch((err: unknown) => {
        const e = err as { code?: string; message?: string };
        // Refusals (unknown VM, wrong state, host gone, timeout) keep their code; a failed capture or upload is a 502.
        if (e.code !== undefined && e.code !== 'FERRY_ERR_INTERNAL' && !e.code.startsWith('FERRY_ERR_IMAGE')) throw err;
        throw new ImageCaptureFailedError(name, e.message ?? String(err), { cause: err });
      });
      if (!upload.imported) throw new CoordinatorError('FERRY_ERR_AGENT_REPLY', `host ${host} replied vm-captured for ${name} without uploading it`);
      const image = await deps.images.get(name);
      deps.logger.info({ event: 'image-captured', vmId, hostId: host, imageId: name, pages: image.pages, pause_ms: reply.pauseMs, file_bytes: reply.fileBytes }, 'image captured');
      return image;
    } finally {
      done();
    }
  });
}
