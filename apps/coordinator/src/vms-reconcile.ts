/**
 * Reconciling the journal with what agents report. The journal is the truth about which host owns
 * a VM (the migration commit point writes it); agents are the truth about what runs.
 *
 * - A host registers (first time, after a reconnect, or after a coordinator restart):
 *   a journaled VM of that host it does not report becomes `lost` (a stopped one stays stopped:
 *   nothing of it lives on the host); one it reports takes the
 *   reported state (a `lost` VM comes back); a VM it reports that the journal lacks is adopted
 *   (recorded with what the report tells, flagged `adopted`, a fresh IP; its login is unknown).
 *   A VM it reports that the journal places on another host is left alone and logged.
 * - A host goes down: its VMs become `lost` (their previous state is kept for their return);
 *   stopped ones stay stopped (`start --host` boots one elsewhere).
 * - Heartbeats and `vm-state-changed`: a VM's state changed on its own (a step limit, a fault).
 *
 * VMs being provisioned, migrating, or with an action in progress are never touched here: their
 * request or migration owns them. A `provisioning` record left by a restart (no request owns it)
 * takes the state its host reports, or is dropped if its host registers without it.
 */
import type { VmReport } from '@ferry/protocol';
import type { CloudDeps } from './cloud-deps.ts';
import type { VmRecord } from './vms-journal.ts';
import { toApiVm } from './vms.ts';
import { isVmBusy } from './vms-lifecycle.ts';
import { apiStateOf } from './vms-run.ts';

function untouchable(deps: CloudDeps, vm: VmRecord): boolean {
  return (vm.state === 'provisioning' && !orphaned(deps, vm)) || vm.state === 'migrating' || isVmBusy(deps, vm.id);
}

/** A `provisioning` record from the journal that no request of this process owns (the coordinator restarted mid-run). */
function orphaned(deps: CloudDeps, vm: VmRecord): boolean {
  return vm.state === 'provisioning' && deps.vms.changedAtMs(vm.id) === 0;
}

/** A host registered with `reported` VMs: see the file comment. */
export function reconcileHost(deps: CloudDeps, hostId: string, reported: readonly VmReport[]): void {
  const byId = new Map(reported.map((r) => [r.vmId, r]));
  for (const vm of deps.vms.list()) {
    if (vm.host !== hostId || untouchable(deps, vm)) continue;
    const report = byId.get(vm.id);
    if (!report && orphaned(deps, vm)) {
      // Its run never replied (the coordinator restarted) and the host does not have it: undo it.
      deps.placement.release(vm.id);
      deps.vms.remove(vm.id);
      deps.events.emit('vm-provision-failed', { vm: vm.id, host: hostId }, { error: { code: 'FERRY_ERR_COORDINATOR_RESTARTED', message: 'the coordinator restarted while the VM was being provisioned' } });
      deps.logger.warn({ event: 'vm-provision-abandoned', vmId: vm.id, hostId }, 'provisioning interrupted by a restart; record dropped');
      continue;
    }
    if (!report) {
      // A stopped VM holds nothing on its host (its memory is gone; start boots it from its image),
      // so an agent that restarted without it has lost nothing: it stays (or is again) stopped.
      if (vm.state === 'stopped') continue;
      if (vm.state === 'lost' && vm.stateBeforeLost === 'stopped') {
        applyState(deps, vm, 'stopped', `host ${hostId} is back; the VM was stopped`);
        continue;
      }
      if (vm.state === 'lost') continue;
      markLost(deps, vm, `host ${hostId} registered without it`);
      continue;
    }
    applyReport(deps, vm, report, 'reported at registration');
  }
  for (const report of reported) {
    const known = deps.vms.find(report.vmId);
    if (known) {
      if (known.host !== hostId && known.state !== 'migrating' && report.state !== 'migrating-in' && report.state !== 'migrating-out') {
        deps.logger.warn({ event: 'vm-reported-elsewhere', vmId: report.vmId, hostId, owner: known.host }, 'an agent reports a VM the journal places on another host');
      }
      continue;
    }
    if (report.state === 'migrating-in' || report.state === 'deleted') continue; // an incoming migration owns it; a deleted one is going
    adopt(deps, hostId, report);
  }
}

/** A heartbeat (or `vm-state-changed`) from a live host: pick up state changes of its VMs. */
export function reconcileReports(deps: CloudDeps, hostId: string, reported: readonly VmReport[], reason: string): void {
  for (const report of reported) {
    const vm = deps.vms.find(report.vmId);
    if (!vm || vm.host !== hostId || untouchable(deps, vm)) continue;
    applyReport(deps, vm, report, reason);
  }
}

/** A host went down: its VMs are `lost` until it returns with them. */
export function hostWentDown(deps: CloudDeps, hostId: string, reason: string): void {
  for (const vm of deps.vms.list()) {
    if (vm.host !== hostId || vm.state === 'lost' || vm.state === 'migrating' || vm.state === 'stopped') continue; // a stopped VM has nothing to lose
    markLost(deps, vm, `host ${hostId} down: ${reason}`);
  }
}

function applyReport(deps: CloudDeps, vm: VmRecord, report: VmReport, reason: string): void {
  const state = apiStateOf(report.state);
  if (state === undefined || state === vm.state || state === 'migrating' || state === 'deleted') return;
  applyState(deps, vm, state, reason);
}

function applyState(deps: CloudDeps, vm: VmRecord, state: VmRecord['state'], reason: string): void {
  const from = vm.state;
  const next = deps.vms.update(vm.id, { state });
  deps.events.emit('vm-state-changed', { vm: vm.id, ...(vm.host !== null ? { host: vm.host } : {}) }, { ...toApiVm(next, false), from, reason });
  deps.logger.info({ event: 'vm-state-changed', vmId: vm.id, hostId: vm.host, from, to: state, reason }, 'VM state reconciled with its agent');
}

function markLost(deps: CloudDeps, vm: VmRecord, reason: string): void {
  const next = deps.vms.update(vm.id, { state: 'lost', stateBeforeLost: vm.state });
  deps.events.emit('vm-lost', { vm: vm.id, ...(vm.host !== null ? { host: vm.host } : {}) }, { ...toApiVm(next, false), reason });
  deps.logger.warn({ event: 'vm-lost', vmId: vm.id, hostId: vm.host, reason }, 'VM lost');
}

function adopt(deps: CloudDeps, hostId: string, report: VmReport): void {
  const record: VmRecord = {
    id: report.vmId,
    name: report.name ?? report.vmId,
    host: hostId,
    ip: deps.vms.allocateIp(),
    state: apiStateOf(report.state) ?? 'running',
    image: report.image ?? 'unknown',
    cpus: report.cpus,
    memoryBytes: report.memoryBytes,
    diskBytes: 0,
    workload: report.workload ? { ...report.workload } : { kind: 'idle' },
    credentials: { user: 'ferry', password: '' },
    createdAt: new Date().toISOString(),
    adopted: true,
  };
  deps.vms.add(record);
  deps.placement.claimExisting(record);
  deps.events.emit('vm-state-changed', { vm: record.id, host: hostId }, { ...toApiVm(record, false), adopted: true, reason: 'reported by its agent but not in the journal' });
  deps.logger.warn({ event: 'vm-adopted', vmId: record.id, hostId }, 'adopted a VM the journal did not know (its login is unknown)');
}
