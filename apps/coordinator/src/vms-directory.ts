/**
 * The VM registry as the migration orchestrator sees it (migrations.ts `VmDirectory`): where a VM
 * is, where it may go (the placement scheduler's `beginMigration`, which claims the destination),
 * the owner switch (journaled before it returns: the commit point), and the VM's state.
 */
import { NoValidHostError } from '@ferry/placement';
import { validateMigrationPolicy } from '@ferry/protocol';
import type { VmState } from '@ferry/protocol';
import type { CloudDeps, MigrationStarter } from './cloud-deps.ts';
import { CoordinatorError } from './errors.ts';
import type { MigrationOrchestrator, VmDirectory, VmLocation } from './migrations.ts';
import { NoCapacityError } from './placement.ts';
import { toApiVm } from './vms.ts';
import { isVmBusy } from './vms-lifecycle.ts';

/** VmDirectory over the cloud's registry and scheduler. */
export class RegistryVmDirectory implements VmDirectory {
  constructor(private readonly deps: CloudDeps) {}

  get(vmId: string): VmLocation | undefined {
    const vm = this.deps.vms.find(vmId);
    return vm && { host: vm.host, state: vm.state, memoryBytes: vm.memoryBytes, cpus: vm.cpus };
  }

  chooseDestination(vmId: string, from: string, to?: string): string {
    const { vms, placement, hosts } = this.deps;
    const vm = vms.get(vmId);
    if (isVmBusy(this.deps, vmId)) throw new CoordinatorError('FERRY_ERR_INVALID_STATE', `cannot migrate ${vmId}: another action on it is in progress`);
    if (to !== undefined) {
      const dest = hosts.find(to);
      if (!dest) throw new CoordinatorError('FERRY_ERR_UNKNOWN_HOST', `no host ${to}`);
      if (dest.state !== 'up') throw new CoordinatorError('FERRY_ERR_PLACEMENT', `cannot migrate ${vmId} to ${to}: the host is ${dest.state}`);
    }
    placement.claimExisting({ ...vm, host: from });
    const result = placement.scheduler.beginMigration(vmId, to);
    if (result.ok) return result.hostId;
    const rejectedBy = result.error instanceof NoValidHostError ? result.error.rejectedBy : {};
    throw new NoCapacityError(vmId, `no destination for ${vmId}${to !== undefined ? ` on ${to}` : ''}: ${result.error.message}`, rejectedBy);
  }

  migrationEnded(vmId: string, outcome: 'committed' | 'aborted'): void {
    const scheduler = this.deps.placement.scheduler;
    if (!scheduler.vm(vmId)?.migratingTo) return;
    if (outcome === 'committed') scheduler.completeMigration(vmId);
    else scheduler.abortMigration(vmId);
  }

  recordOwner(vmId: string, hostId: string): void {
    const vm = this.deps.vms.find(vmId);
    if (!vm) return;
    if (vm.host !== hostId) this.deps.vms.update(vmId, { host: hostId });
    const placed = this.deps.placement.scheduler.vm(vmId);
    if (placed && placed.hostId !== hostId && placed.migratingTo !== hostId) this.deps.placement.moveClaim({ ...vm, host: hostId });
    this.deps.logger.info({ event: 'vm-owner-recorded', vmId, hostId }, 'owner recorded');
  }

  setState(vmId: string, state: VmState): void {
    const vm = this.deps.vms.find(vmId);
    if (!vm || vm.state === state) return;
    const next = this.deps.vms.update(vmId, { state });
    this.deps.events.emit('vm-state-changed', { vm: vmId, ...(next.host !== null ? { host: next.host } : {}) }, { ...toApiVm(next, false), from: vm.state, reason: 'migration' });
  }
}

/** The MigrationStarter the lifecycle and drain use, over A1's orchestrator. */
export function migrationStarterOf(orchestrator: MigrationOrchestrator): MigrationStarter {
  return {
    start: async ({ vm, to, policy }) => orchestrator.migrate({ vmId: vm, ...(to !== undefined ? { to } : {}), policy: validateMigrationPolicy(policy ?? {}) }),
    whenFinished: (id) => orchestrator.whenFinal(id, 600_000),
  };
}
