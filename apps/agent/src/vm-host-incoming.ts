/**
 * The destination side of a live migration on an agent. The migration port already consumed the
 * one-time token; here a MigrationReceiver runs over the stream. Its hello must name the reserved
 * migration and VM and fit the reservation; memory is allocated only after that. Once the memory
 * is verified and `ready` sent, while the coordinator commits, the VM is built with `Vm.restore`
 * from the received memory, registers and the VM envelope (spec, image, run flag), paused, its
 * vCPUs placed parked on the pool (`prepare`; not adopted, invisible). On `activate` (sent by the
 * source only after the coordinator's commit) it is adopted and resumed, which only unparks the
 * vCPUs (unless it left its source paused). Any failure before activation discards the partial VM:
 * nothing is half-created. The end is reported with `migration-finished` (role destination).
 */
import { MigrationReceiver, MigrationSizeError, UnknownMigrationError, MigrationError, type ReceivedVm } from '@ferry/migration';
import { Vm } from '@ferry/vm';
import type { IncomingMigrationChannel, Reservation } from './vm-host.ts';
import { decodeEnvelope } from './vm-host-envelope.ts';
import { releaseMemorySoon, type LocalVmHost } from './vm-host-local.ts';

/** Runs the receiver for one incoming migration stream. */
export function acceptIncoming(host: LocalVmHost, channel: IncomingMigrationChannel, reservation: Reservation): void {
  const { migrationId, vmId } = reservation;
  const log = host.logger.child({ migrationId, vmId, role: 'destination' });
  let restored: Vm | undefined;
  let prepared: Vm | undefined;
  let preparing: Promise<void> | undefined;
  /** The VM from the received memory, registers and envelope, paused (not adopted). */
  const build = ({ memory, registers, devices, writtenPages }: ReceivedVm): Vm => {
    const envelope = decodeEnvelope(devices);
    if (envelope.spec.id !== vmId) throw new MigrationError('FERRY_ERR_MIGRATION_WRONG_VM', `envelope names vm ${envelope.spec.id}`, { migrationId });
    if (host.vms.has(vmId)) throw new MigrationError('FERRY_ERR_MIGRATION_VM_EXISTS', `vm ${vmId} already exists on this host`, { migrationId });
    return Vm.restore(envelope.spec, memory, { registers, devices: envelope.devices }, host.pool, writtenPages ? { writtenPages } : {});
  };
  const receiver = new MigrationReceiver({
    channel,
    allocateMemory: (pageCount) => host.allocateIncoming(pageCount),
    prefault: (memory, pages) => host.prefaultIncoming(memory, pages),
    // Ask the commit point ourselves: its answer comes straight back (commit() below), so the
    // downtime does not wait for the source to relay `ready` and then `activate`.
    announceReady: (digest) => host.notify({ type: 'migration-ready', migrationId, vmId, digest }),
    authorize: (hello) => {
      if (hello.migrationId !== migrationId) throw new UnknownMigrationError(hello.migrationId);
      if (hello.vm.vmId !== vmId) throw new MigrationError('FERRY_ERR_MIGRATION_WRONG_VM', `reserved for vm ${vmId}, hello names ${hello.vm.vmId}`, { migrationId });
      if (hello.vm.memoryBytes > reservation.memoryBytes) throw new MigrationSizeError(`vm needs ${hello.vm.memoryBytes} bytes, ${reservation.memoryBytes} reserved`, migrationId);
      if (host.vms.has(vmId)) throw new MigrationError('FERRY_ERR_MIGRATION_VM_EXISTS', `vm ${vmId} already exists on this host`, { migrationId });
      log.info({ event: 'migration-destination-started', memory_bytes: hello.vm.memoryBytes }, 'receiving a VM');
    },
    prepare: (received) => {
      // Before the commit: build the VM paused with its vCPUs parked on the pool, not adopted.
      preparing = (async () => {
        const vm = build(received);
        prepared = vm;
        await vm.prepareResume();
      })();
      return preparing;
    },
    activate: async (received) => {
      const t0 = performance.now();
      const wasPrepared = prepared !== undefined;
      const vm = prepared ?? build(received);
      prepared = undefined;
      if (host.vms.has(vmId)) {
        await vm.stop().catch(() => {});
        throw new MigrationError('FERRY_ERR_MIGRATION_VM_EXISTS', `vm ${vmId} already exists on this host`, { migrationId });
      }
      restored = vm;
      const envelope = decodeEnvelope(received.devices);
      host.adopt(vm, vm.spec, envelope.image);
      if (!envelope.run) return undefined; // arrives paused: it is "resumed" (handed over) as it is
      await vm.resume(); // prepared: the vCPUs are placed already, resume only unparks them
      log.info({ event: 'migration-destination-resumed', activate_ms: performance.now() - t0, prepared: wasPrepared }, 'VM rebuilt and resumed');
      return { resumedAtMs: vm.lastReleasedAtMs };
    },
  });
  host.incoming.set(migrationId, {
    commit: () => {
      try {
        receiver.commit();
      } catch (err) {
        // not ready here (failed meanwhile): the source's activate or the coordinator's reconcile decides
        log.warn({ event: 'migration-destination-commit-refused', err: (err as Error).message }, 'commit arrived in a state that cannot activate');
      }
    },
    abort: () => {
      try {
        receiver.abort();
      } catch {
        // past activation: the VM is ours
      }
    },
  });
  receiver.done.then(
    (activated) => {
      host.incoming.delete(migrationId);
      host.reservations?.release(migrationId);
      const entry = host.vms.get(vmId);
      log.info({ event: 'migration-destination-activated', downtime_ms: activated.resumedAtMs - activated.pausedAtMs, bytes_received: activated.stats.bytesReceived }, 'VM activated here');
      host.notify({ type: 'migration-finished', migrationId, vmId, role: 'destination', outcome: 'completed', ...(entry ? { vm: host.report(entry) } : {}) });
      if (entry) host.notify({ type: 'vm-state-changed', vm: host.report(entry), reason: `migrated in (${migrationId})` });
    },
    async (err: unknown) => {
      host.incoming.delete(migrationId);
      host.reservations?.release(migrationId);
      if (restored) {
        // activate threw after the VM was built: drop it, nothing half-created stays
        host.forget(vmId);
        await restored.stop().catch(() => {});
      }
      if (prepared) {
        // built before the commit, never adopted: place nothing, keep nothing
        const vm = prepared;
        prepared = undefined;
        await preparing?.catch(() => {});
        await vm.stop().catch(() => {});
      }
      releaseMemorySoon(); // the partial VM's memory
      const e = err as { code?: string; message?: string };
      log.warn({ event: 'migration-destination-failed', code: e.code, err: e.message }, 'incoming migration failed; partial VM discarded');
      host.notify({ type: 'migration-finished', migrationId, vmId, role: 'destination', outcome: 'failed', error: { code: e.code ?? 'FERRY_ERR_MIGRATION_FAILED', message: e.message ?? String(err) } });
    },
  );
}
