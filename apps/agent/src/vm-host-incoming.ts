/**
 * The destination side of a live migration on an agent. The migration port already consumed the
 * one-time token; here a MigrationReceiver runs over the stream. Its hello must name the reserved
 * migration and VM and fit the reservation; memory is allocated only after that. Once the memory
 * is verified and `ready` sent, while the coordinator commits, the VM is completed from the
 * received memory, registers and the VM envelope (spec, image, run flag), paused, its vCPUs placed
 * parked on the pool (`prepare`; not adopted, invisible). The hello's prelude (the source's spec)
 * lets the placing happen as soon as memory is allocated (`Vm.incoming`), during round 1: what is
 * left for `prepare` inside the downtime is loading the state (`loadState`). On `activate` (sent by the
 * source only after the coordinator's commit) it is adopted and resumed, which only unparks the
 * vCPUs (unless it left its source paused). Any failure before activation discards the partial VM:
 * nothing is half-created. The end is reported with `migration-finished` (role destination).
 */
import { MigrationReceiver, MigrationSizeError, UnknownMigrationError, MigrationError, type ReceivedVm } from '@ferry/migration';
import { Vm, normalizeSpec, type VmSpec } from '@ferry/vm';
import type { GuestMemory } from '@ferry/memory';
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
  /** The spec the hello's prelude named, if it named this VM. */
  let preludeSpec: VmSpec | undefined;
  /** The VM placed from the prelude while pages arrive (Vm.incoming), until build() takes it or it is dropped. */
  let early: { vm: Vm; placed: Promise<boolean> } | undefined;
  let placedEarly = false;
  /** Set once the receiver has settled: memory allocated after a failure must not place anything. */
  let settled = false;
  const placeEarly = (memory: GuestMemory): void => {
    if (!preludeSpec || settled) return;
    try {
      const vm = Vm.incoming(preludeSpec, memory, host.pool);
      early = { vm, placed: vm.prepareResume().then(() => true, (err: unknown) => (log.warn({ event: 'migration-destination-early-place-failed', err: (err as Error).message }, 'could not place the vCPUs early; placing them at the end'), false)) };
    } catch (err) {
      log.warn({ event: 'migration-destination-early-place-failed', err: (err as Error).message }, 'could not place the vCPUs early; placing them at the end');
    }
  };
  /** Stops the early VM if nothing took it (its memory stays with the receiver). */
  const dropEarly = async (): Promise<void> => {
    const e = early;
    early = undefined;
    if (e) await e.placed.then(() => e.vm.stop()).catch(() => {});
  };
  /** The VM from the received memory, registers and envelope, paused (not adopted): the early one with its state loaded when it was placed for this spec. */
  const build = async ({ memory, registers, devices, writtenPageMap }: ReceivedVm): Promise<Vm> => {
    const envelope = decodeEnvelope(devices);
    if (envelope.spec.id !== vmId) throw new MigrationError('FERRY_ERR_MIGRATION_WRONG_VM', `envelope names vm ${envelope.spec.id}`, { migrationId });
    if (host.vms.has(vmId)) throw new MigrationError('FERRY_ERR_MIGRATION_VM_EXISTS', `vm ${vmId} already exists on this host`, { migrationId });
    const state = { registers, devices: envelope.devices };
    const options = writtenPageMap ? { writtenPageMap } : {};
    const e = early;
    // Both normalized, so same keys in the same order; JSON.stringify rather than util's deep
    // equality, whose first call loads code for over a millisecond, inside the downtime.
    if (e && (await e.placed) && JSON.stringify(e.vm.spec) === JSON.stringify(normalizeSpec(envelope.spec))) {
      early = undefined;
      e.vm.loadState(state, options);
      placedEarly = true;
      return e.vm;
    }
    await dropEarly();
    return Vm.restore(envelope.spec, memory, state, host.pool, options);
  };
  const receiver = new MigrationReceiver({
    channel,
    allocateMemory: async (pageCount) => {
      const memory = await host.allocateIncoming(pageCount);
      placeEarly(memory);
      return memory;
    },
    prefault: (memory, pages) => host.prefaultIncoming(memory, pages),
    // Ask the commit point ourselves: its answer comes straight back (commit() below), so the
    // downtime does not wait for the source to relay `ready` and then `activate`.
    announceReady: (digest) => host.notify({ type: 'migration-ready', migrationId, vmId, digest }),
    authorize: (hello) => {
      if (hello.migrationId !== migrationId) throw new UnknownMigrationError(hello.migrationId);
      if (hello.vm.vmId !== vmId) throw new MigrationError('FERRY_ERR_MIGRATION_WRONG_VM', `reserved for vm ${vmId}, hello names ${hello.vm.vmId}`, { migrationId });
      if (hello.vm.memoryBytes > reservation.memoryBytes) throw new MigrationSizeError(`vm needs ${hello.vm.memoryBytes} bytes, ${reservation.memoryBytes} reserved`, migrationId);
      if (host.vms.has(vmId)) throw new MigrationError('FERRY_ERR_MIGRATION_VM_EXISTS', `vm ${vmId} already exists on this host`, { migrationId });
      preludeSpec = specOfPrelude(hello.prelude, vmId, hello.vm.memoryBytes);
      log.info({ event: 'migration-destination-started', memory_bytes: hello.vm.memoryBytes }, 'receiving a VM');
    },
    prepare: (received) => {
      // Before the commit: build the VM paused with its vCPUs parked on the pool, not adopted.
      preparing = (async () => {
        const vm = await build(received);
        prepared = vm;
        await vm.prepareResume(); // a no-op for the early VM: placed already
      })();
      return preparing;
    },
    activate: async (received) => {
      const t0 = performance.now();
      const wasPrepared = prepared !== undefined;
      const vm = prepared ?? (await build(received));
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
      log.info({ event: 'migration-destination-resumed', activate_ms: performance.now() - t0, prepared: wasPrepared, placed_early: placedEarly }, 'VM rebuilt and resumed');
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
      settled = true;
      host.incoming.delete(migrationId);
      host.reservations?.release(migrationId);
      const entry = host.vms.get(vmId);
      log.info({ event: 'migration-destination-activated', downtime_ms: activated.resumedAtMs - activated.pausedAtMs, bytes_received: activated.stats.bytesReceived }, 'VM activated here');
      host.notify({ type: 'migration-finished', migrationId, vmId, role: 'destination', outcome: 'completed', ...(entry ? { vm: host.report(entry) } : {}) });
      if (entry) host.notify({ type: 'vm-state-changed', vm: host.report(entry), reason: `migrated in (${migrationId})` });
    },
    async (err: unknown) => {
      settled = true;
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
      await dropEarly(); // placed from the prelude, never completed
      releaseMemorySoon(); // the partial VM's memory
      const e = err as { code?: string; message?: string };
      log.warn({ event: 'migration-destination-failed', code: e.code, err: e.message }, 'incoming migration failed; partial VM discarded');
      host.notify({ type: 'migration-finished', migrationId, vmId, role: 'destination', outcome: 'failed', error: { code: e.code ?? 'FERRY_ERR_MIGRATION_FAILED', message: e.message ?? String(err) } });
    },
  );
}

/** The spec in a hello's prelude (a VM envelope) when it is this VM's and of the announced size; else undefined (then nothing is placed early). */
function specOfPrelude(prelude: Uint8Array | undefined, vmId: string, memoryBytes: number): VmSpec | undefined {
  if (!prelude) return undefined;
  try {
    const { spec } = decodeEnvelope(prelude);
    return spec.id === vmId && spec.memoryBytes === memoryBytes ? spec : undefined;
  } catch {
    return undefined; // a prelude is a hint: a bad one only means placing at the end
  }
}
