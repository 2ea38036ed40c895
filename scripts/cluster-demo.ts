/**
 * The local cluster's first minutes: wait until every agent has registered, then boot a few demo
 * VMs (different appliances and workloads, two in an anti-affinity group) through the same API
 * the CLI uses, unless the cluster already has VMs (a restart keeps the ones it had).
 */
import { API_ROUTES, type Host, type LocalClusterFile, type RunRequest, type Vm } from '@ferry/protocol';
import { ApiClient } from '../apps/cli/src/index.ts';

/** The demo instances. Small, so a laptop (and CI) runs them without noticing. */
export const DEMO_VMS: readonly RunRequest[] = [
  { name: 'web-1', image: 'lamp', cpus: 2, memory: '64MiB', disk: '4GiB', workload: { kind: 'hotset', rate: 4000, params: { hotsetPages: 1024, hotPercent: 90 } }, group: { name: 'web', policy: 'anti-affinity' } },
  { name: 'web-2', image: 'lamp', cpus: 2, memory: '64MiB', disk: '4GiB', workload: { kind: 'hotset', rate: 4000, params: { hotsetPages: 1024, hotPercent: 90 } }, group: { name: 'web', policy: 'anti-affinity' } },
  { name: 'cache-1', image: 'redis', cpus: 1, memory: '32MiB', disk: '2GiB', workload: { kind: 'uniform', rate: 2000 } },
  { name: 'base-1', image: 'base-os', cpus: 1, memory: '16MiB', disk: '1GiB', workload: { kind: 'idle' } },
];

/**
 * Polls until every host in `hostIds` has registered (default 30 s): any state but `down`, so a
 * host the last run left in maintenance (kept in the state dir) counts once its agent is back.
 */
export async function waitForHosts(cluster: LocalClusterFile, hostIds: readonly string[], timeoutMs = 30_000): Promise<Host[]> {
  const client = new ApiClient({ url: cluster.url, token: cluster.token, timeoutMs: 5000 });
  const deadline = Date.now() + timeoutMs;
  const registered = (hosts: readonly Host[], id: string): boolean => hosts.some((h) => h.id === id && h.state !== 'down');
  for (;;) {
    const hosts = await client.get<Host[]>(API_ROUTES.hosts).catch(() => [] as Host[]);
    if (hostIds.every((id) => registered(hosts, id))) return hosts;
    if (Date.now() > deadline) throw new Error(`agents not registered within ${timeoutMs} ms: ${hostIds.filter((id) => !registered(hosts, id)).join(', ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Boots DEMO_VMS unless the cluster has live (not lost) VMs already; prints one line per VM. A VM that fails is reported and skipped. */
export async function bootDemoVms(cluster: LocalClusterFile, out: (line: string) => void): Promise<Vm[]> {
  const client = new ApiClient({ url: cluster.url, token: cluster.token, timeoutMs: 60_000 });
  const existing = await client.get<Vm[]>(API_ROUTES.vms);
  const lost = existing.filter((v) => v.state === 'lost');
  if (lost.length > 0) out(`${lost.length} VMs of the last run did not survive their hosts' restart (lost): ${lost.map((v) => v.id).join(', ')}; \`delete ID\` forgets one`);
  if (existing.length > lost.length) {
    out(`${existing.length - lost.length} VMs from the last run: ${existing.filter((v) => v.state !== 'lost').map((v) => `${v.id} (${v.state} on ${v.host ?? '-'})`).join(', ')}`);
    return existing;
  }
  const booted: Vm[] = [];
  for (const request of DEMO_VMS) {
    try {
      const vm = await client.post<Vm>(API_ROUTES.vms, request);
      booted.push(vm);
      out(`demo VM ${vm.id} ${vm.name}: ${vm.image} on ${vm.host}, ${vm.ip}, ${vm.state} (login ${vm.credentials.user} / ${vm.credentials.password})`);
    } catch (err) {
      out(`demo VM ${request.name}: not booted: ${(err as Error).message}`);
    }
  }
  return booted;
}
