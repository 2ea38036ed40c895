/**
 * Prometheus metrics of the cloud manager, registered on the coordinator's registry (served at
 * `/metrics` with the hosts gauge of the core and the migration metrics of the migrations module:
 * `ferry_migrations_total{outcome}`, `ferry_migration_downtime_ms`, `ferry_migration_bytes_total`).
 *
 * - `ferry_vms{state}`: instances by state.
 * - `ferry_vm_requests_total{outcome}`: `run` requests, `provisioned` or `failed` after placement (refused bad requests are not counted).
 * - `ferry_host_drains_total{outcome}`: finished drains, `completed`, `failed` or `cancelled`.
 * - `ferry_placement_fragmentation_ratio`: share of free capacity that cannot host the most common request.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ApiEvent } from '@ferry/protocol';
import type { CloudDeps } from './cloud-deps.ts';

/** Registers the cloud metrics; returns a function that stops following events. */
export function registerCloudMetrics(registry: Registry, deps: CloudDeps): () => void {
  new Gauge({
    name: 'ferry_vms',
    help: 'Instances by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      for (const [state, n] of Object.entries(deps.vms.countByState())) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'ferry_placement_fragmentation_ratio',
    help: 'Share of free capacity (up hosts) that cannot host the most common instance type',
    registers: [registry],
    collect() {
      const f = deps.placement.scheduler.fragmentation();
      this.set(Number.isFinite(f) ? f : 0);
    },
  });
  const requests = new Counter({ name: 'ferry_vm_requests_total', help: 'run requests by outcome', labelNames: ['outcome'], registers: [registry] });
  const drains = new Counter({ name: 'ferry_host_drains_total', help: 'Finished host drains by outcome', labelNames: ['outcome'], registers: [registry] });
  return deps.events.subscribe((e: ApiEvent) => {
    switch (e.type) {
      case 'vm-provisioned':
        requests.inc({ outcome: 'provisioned' });
        return;
      case 'vm-provision-failed':
        requests.inc({ outcome: 'failed' });
        return;
      case 'host-drain-completed':
        drains.inc({ outcome: 'completed' });
        return;
      case 'host-drain-failed':
        drains.inc({ outcome: 'failed' });
        return;
      case 'host-drain-cancelled':
        drains.inc({ outcome: 'cancelled' });
        return;
      default:
    }
  });
}
