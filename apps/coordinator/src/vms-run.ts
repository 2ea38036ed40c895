/**
 * The EC2-style request (`POST /api/v1/vms`), step by step as the lecture numbers it:
 *
 * 1. request-received: the request is valid (sizes, image in the catalog, memory ≥ the image's).
 * 2. placement-decided: the scheduler chose a host and claimed the VM's demand there.
 * 3. dispatched-to-host: the instance record (state `provisioning`, IP, credential) is journaled
 *    and `vm-create` goes to the host's agent.
 * 4. appliance-copied, vm-booted: the agent copied the appliance into the new VM's memory,
 *    wrote the run-time configuration (hostname, IP, access rules, login) and booted it.
 * 5. credentials-issued: the login is the user's.
 * 6. vm-provisioned: the instance (id, host, IP, state, credentials) is the reply.
 *
 * A failure at any step undoes the ones before it (claim released, record and address dropped,
 * a half-created VM deleted on its agent): a bad request changes nothing.
 */
import { nanoid } from 'nanoid';
import { WORKLOAD_KINDS } from '@ferry/vm';
import { ApiValidationError, validateRunRequest, type RunSpec, type WorkloadSpec, type WorkloadWire, type AccessRuleWire } from '@ferry/protocol';
import type { VmRecord } from './vms-journal.ts';
import { toApiVm } from './vms.ts';
import { askAgent, type CloudDeps } from './cloud-deps.ts';

/** Login user of every instance. */
export const INSTANCE_USER = 'ferry';
/** Length of generated passwords (nanoid alphabet: 64 symbols, 6 bits each → 144 bits). */
export const PASSWORD_LENGTH = 24;
/** How long an agent may take to copy an appliance and boot the VM. */
export const VM_CREATE_TIMEOUT_MS = 30_000;
/** Page writes per second of a workload named without a rate (keeps a demo cluster light). */
export const DEFAULT_WORKLOAD_RATE = 2000;
/** Access rules written into every guest: ssh from anywhere, ICMP. */
export const DEFAULT_ACCESS_RULES: readonly AccessRuleWire[] = [
  { protocol: 'tcp', port: 22, cidr: '0.0.0.0/0' },
  { protocol: 'icmp', cidr: '0.0.0.0/0' },
];

/** API workload (`{ kind, ...params }`) → the VM spec's workload; throws ApiValidationError (400) on an unknown kind or a non-numeric parameter. */
export function workloadWireOf(w: WorkloadSpec | undefined): WorkloadWire {
  if (w === undefined) return { kind: 'idle' };
  if (!(WORKLOAD_KINDS as readonly string[]).includes(w.kind) || w.kind === 'module') {
    throw new ApiValidationError('workload.kind', `workload.kind must be one of ${WORKLOAD_KINDS.filter((k) => k !== 'module').join(', ')}, got ${JSON.stringify(w.kind)}`);
  }
  const params: Record<string, number> = {};
  let seed: number | undefined;
  let rate: number | undefined;
  for (const [key, value] of Object.entries(w)) {
    if (key === 'kind') continue;
    if (key === 'params' && typeof value === 'object' && value !== null) {
      for (const [k, v] of Object.entries(value)) params[k] = numberParam(`workload.params.${k}`, v);
    } else if (key === 'seed') seed = numberParam('workload.seed', value);
    else if (key === 'rate') rate = numberParam('workload.rate', value);
    else params[key] = numberParam(`workload.${key}`, value);
  }
  return { kind: w.kind, seed: seed ?? 1, rate: rate ?? (w.kind === 'idle' ? 0 : DEFAULT_WORKLOAD_RATE), params };
}

function numberParam(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new ApiValidationError(field, `${field} must be a number ≥ 0, got ${JSON.stringify(value)}`);
  return value;
}

/** Checks a run request against the catalog; returns the spec and the normalized workload. Throws 400/404, changes nothing. */
export async function checkRunRequest(deps: CloudDeps, body: unknown): Promise<{ spec: RunSpec; workload: WorkloadWire }> {
  const spec = validateRunRequest(body);
  const image = await deps.images.get(spec.image);
  if (spec.memoryBytes < image.memoryBytes) {
    throw new ApiValidationError('memory', `image ${image.id} needs at least ${image.memoryBytes} bytes of memory, got ${spec.memoryBytes}`, 'FERRY_ERR_INVALID_SIZE');
  }
  const workload = workloadWireOf(spec.workload);
  if (spec.host !== undefined && !deps.hosts.find(spec.host)) throw Object.assign(new ApiValidationError('host', `no host ${spec.host}`, 'FERRY_ERR_UNKNOWN_HOST'), { status: 404 });
  return { spec, workload };
}

/** Runs an instance: validate, place, provision on the agent, reply. See the file comment for the steps. */
export async function runInstance(deps: CloudDeps, body: unknown): Promise<VmRecord> {
  const { spec, workload } = await checkRunRequest(deps, body);
  const id = deps.vms.newVmId();
  const name = spec.name ?? id;
  const log = deps.logger.child({ vmId: id });
  deps.events.emit('request-received', { vm: id }, { step: 1, image: spec.image, cpus: spec.cpus, memoryBytes: spec.memoryBytes, diskBytes: spec.diskBytes, name, ...(spec.group ? { group: spec.group } : {}) });
  const base = { id, cpus: spec.cpus, memoryBytes: spec.memoryBytes, diskBytes: spec.diskBytes, image: spec.image, ...(spec.group ? { group: spec.group } : {}) };
  const hostId = deps.placement.place(base, spec.host);
  deps.events.emit('placement-decided', { vm: id, host: hostId }, { step: 2, host: hostId, strategy: deps.placement.scheduler.strategy, ...(spec.host !== undefined ? { pinned: true } : {}) });
  log.info({ event: 'placement-decided', hostId, strategy: deps.placement.scheduler.strategy }, 'placed');
  let ip: string | undefined;
  let added = false;
  let dispatched = false;
  try {
    ip = deps.vms.allocateIp();
    const credentials = { user: INSTANCE_USER, password: nanoid(PASSWORD_LENGTH) };
    const record: VmRecord = {
      ...base,
      name,
      host: hostId,
      ip,
      state: 'provisioning',
      workload: spec.workload ?? { kind: 'idle' },
      credentials,
      createdAt: new Date().toISOString(),
    };
    deps.vms.add(record);
    added = true;
    deps.events.emit('dispatched-to-host', { vm: id, host: hostId }, { step: 3, host: hostId, ip });
    dispatched = true;
    const reply = await askAgent(
      deps.agents,
      hostId,
      {
        type: 'vm-create',
        spec: { id, name, vcpus: spec.cpus, memoryBytes: spec.memoryBytes, workload },
        image: spec.image,
        config: { instanceId: id, hostname: name, ip, accessRules: [...DEFAULT_ACCESS_RULES], user: credentials.user, password: credentials.password },
        start: true,
      },
      'vm-created',
      VM_CREATE_TIMEOUT_MS,
    );
    deps.events.emit('appliance-copied', { vm: id, host: hostId }, { step: 4, image: spec.image, pages: reply.imagePages, bytes: reply.imagePages * 4096 });
    deps.events.emit('vm-booted', { vm: id, host: hostId }, { step: 4, state: reply.vm.state });
    const running = deps.vms.update(id, { state: apiStateOf(reply.vm.state) ?? 'running' });
    deps.events.emit('credentials-issued', { vm: id }, { step: 5, user: credentials.user });
    deps.placement.noteHostImage(hostId, spec.image); // the host now has the image: later instances of it prefer this host
    deps.events.emit('vm-provisioned', { vm: id, host: hostId }, { step: 6, ...toApiVm(running, false) });
    log.info({ event: 'vm-provisioned', hostId, ip, image: spec.image, memory_bytes: spec.memoryBytes }, 'instance provisioned');
    return running;
  } catch (err) {
    deps.placement.release(id);
    if (added) deps.vms.remove(id);
    else if (ip !== undefined) deps.vms.releaseIp(ip);
    if (dispatched && deps.agents.isConnected(hostId)) {
      // The agent may have created the VM before the failure (a timeout): make sure it does not linger.
      askAgent(deps.agents, hostId, { type: 'vm-action', vmId: id, action: 'delete' }, 'vm-updated').catch(() => {});
    }
    const code = (err as { code?: string }).code ?? 'FERRY_ERR_INTERNAL';
    deps.events.emit('vm-provision-failed', { vm: id, host: hostId }, { error: { code, message: (err as Error).message } });
    log.warn({ event: 'vm-provision-failed', hostId, code, err: (err as Error).message }, 'provisioning failed; undone');
    throw err;
  }
}

/** An agent's VM state name → the API's, or undefined for one with no API meaning. */
export function apiStateOf(agentState: string): VmRecord['state'] | undefined {
  switch (agentState) {
    case 'running':
    case 'paused':
    case 'suspended':
    case 'stopped':
    case 'deleted':
      return agentState;
    case 'created':
      return 'stopped';
    case 'migrating-in':
    case 'migrating-out':
      return 'migrating';
    default:
      return undefined;
  }
}
