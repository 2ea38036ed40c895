import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IMAGE_FIRST_PAGE } from '@ferry/images';
import type { GuestMemory } from '@ferry/memory';
import type { Host, Image, Vm, VmActionMessage, VmDigestMessage } from '@ferry/protocol';
// The agent is imported by path: apps/coordinator does not depend on apps/agent, only this test does.
import { startAgent, type RunningAgent } from '../../agent/src/index.ts';
import { LocalVmHost } from '../../agent/src/vm-host-local.ts';
import { createLogger } from '../../agent/src/logger.ts';
import { createCloudModules } from './cloud.ts';
import { startCoordinator, type RunningCoordinator } from './coordinator.ts';
import { IMAGE_TRANSFER_DIR } from './images.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const MiB = 2 ** 20;

interface Cluster {
  readonly coord: RunningCoordinator;
  readonly agents: Map<string, RunningAgent>;
  readonly dir: string;
}

/** `badToken`: hosts whose VM host gets a wrong token for image transfers (their registration uses the right one). */
async function cluster(hostIds: string[], badToken: readonly string[] = []): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-capture-test-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const stateDir = join(dir, 'coord');
  const { modules } = createCloudModules({ stateDir });
  const coord = await startCoordinator({ port: 0, stateDir, heartbeatIntervalMs: 100, failureTimeoutMs: 10_000, modules });
  cleanups.push(() => coord.close());
  const agents = new Map<string, RunningAgent>();
  for (const id of hostIds) {
    const coordinatorUrl = `ws://127.0.0.1:${coord.port}`;
    const vmHost = new LocalVmHost({ dataDir: join(dir, id), pcpus: 1, logger: createLogger('agent', 'silent', false), coordinator: { url: coordinatorUrl, token: badToken.includes(id) ? 'wrong-token' : coord.token } });
    const agent = await startAgent({ coordinatorUrl, token: coord.token, hostId: id, capacity: { cpus: 4, memoryBytes: 256 * MiB, diskBytes: 2 ** 34 }, vmHost });
    cleanups.push(() => agent.close());
    await agent.whenRegistered();
    agents.set(id, agent);
  }
  return { coord, agents, dir };
}

async function api(coord: RunningCoordinator, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${coord.url}/api/v1${path}`, { method, headers: { authorization: `Bearer ${coord.token}`, 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, body: await res.json() };
}

async function steps(coord: RunningCoordinator, hostId: string, vmId: string): Promise<number> {
  const reply = await coord.agents.request<VmDigestMessage>(hostId, { type: 'vm-digest', vmId }, 10_000);
  if (reply.type !== 'vm-digested') throw new Error(reply.type);
  return reply.totalSteps;
}

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) throw new Error(`${what} not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function memoryOf(c: Cluster, hostId: string, vmId: string): GuestMemory {
  return (c.agents.get(hostId)!.vmHost as LocalVmHost).vms.get(vmId)!.vm.memory;
}

/** Guest pages from IMAGE_FIRST_PAGE on that differ between two memories of one size. */
function differingPages(a: GuestMemory, b: GuestMemory): number[] {
  expect(a.pageCount).toBe(b.pageCount);
  const out: number[] = [];
  for (let p = IMAGE_FIRST_PAGE; p < a.pageCount; p++) if (!Buffer.from(a.page(p)).equals(b.page(p))) out.push(p);
  return out;
}

function noTransfersLeft(c: Cluster): void {
  expect(readdirSync(join(c.dir, 'coord', IMAGE_TRANSFER_DIR))).toEqual([]);
  for (const id of c.agents.keys()) expect(readdirSync(join(c.dir, id, 'image-transfers'))).toEqual([]);
}

describe('image capture through the coordinator', () => {
  it('captures a running VM without stopping it, and a VM run from a captured image on another host holds the captured bytes', async () => {
    const c = await cluster(['host-1', 'host-2']);
    const { coord } = c;
    const run = await api(coord, 'POST', '/vms', { image: 'base-os', cpus: 1, memory: '16MiB', disk: '1GiB', host: 'host-1', workload: { kind: 'hotset', rate: 2000 } });
    expect(run.status, JSON.stringify(run.body)).toBe(201);
    const source = (run.body as Vm).id;
    await until(async () => (await steps(coord, 'host-1', source)) > 50, 'the source VM runs');

    const captured = await api(coord, 'POST', '/images', { vm: source, name: 'web-golden', description: 'base-os with a hot set' });
    expect(captured.status, JSON.stringify(captured.body)).toBe(201);
    const image = captured.body as Image;
    expect(image).toMatchObject({ id: 'web-golden', name: 'web-golden', description: 'base-os with a hot set', memoryBytes: 16 * MiB });
    expect(image.pages).toBeGreaterThan(0);
    expect(image.pages).toBe(image.uniquePages + image.sharedPages);
    expect(image.uniquePages).toBeGreaterThan(0); // the hot set's pages: not in base-os
    const listed = (await api(coord, 'GET', '/images')).body as Image[];
    expect(listed.find((i) => i.id === 'web-golden')).toEqual(image);
    // The VM kept running: it is resumed after the capture and its steps advance.
    const after = await steps(coord, 'host-1', source);
    await until(async () => (await steps(coord, 'host-1', source)) > after + 20, 'steps advance after the capture');
    expect((await api(coord, 'GET', `/vms/${source}`)).body).toMatchObject({ state: 'running', host: 'host-1' });

    // Capture from a paused VM, so its memory can be compared with the copy the new VM gets.
    const paused = await coord.agents.request<VmActionMessage>('host-1', { type: 'vm-action', vmId: source, action: 'pause' }, 10_000);
    expect(paused.type).toBe('vm-updated');
    const frozen = await api(coord, 'POST', '/images', { vm: source, name: 'web-frozen' });
    expect(frozen.status, JSON.stringify(frozen.body)).toBe(201);
    expect((c.agents.get('host-2')!.vmHost as LocalVmHost).vms.size).toBe(0);
    await expect((await (c.agents.get('host-2')!.vmHost as LocalVmHost).images()).get('web-frozen')).rejects.toThrow(/no image/);

    const copy = await api(coord, 'POST', '/vms', { image: 'web-frozen', cpus: 1, memory: '16MiB', disk: '1GiB', host: 'host-2', workload: { kind: 'idle' } });
    expect(copy.status, JSON.stringify(copy.body)).toBe(201);
    const copyId = (copy.body as Vm).id;
    expect(copy.body).toMatchObject({ state: 'running', host: 'host-2', image: 'web-frozen' });
    // host-2 never ran the source: every byte from page 2 on came through the coordinator.
    expect(differingPages(memoryOf(c, 'host-1', source), memoryOf(c, 'host-2', copyId))).toEqual([]);
    expect((await (await (c.agents.get('host-2')!.vmHost as LocalVmHost).images()).get('web-frozen')).pages).toBe((frozen.body as Image).pages);
    noTransfersLeft(c);
  }, 30_000);

  it('refuses an unknown VM, a taken name, and an upload no capture waits for; nothing is added and both ends keep serving', async () => {
    const c = await cluster(['host-1', 'host-2'], ['host-2']);
    const { coord } = c;
    const run = await api(coord, 'POST', '/vms', { image: 'minimal', cpus: 1, memory: '8MiB', disk: '256MiB', host: 'host-1', workload: { kind: 'uniform', rate: 1000 } });
    expect(run.status, JSON.stringify(run.body)).toBe(201);
    const vmId = (run.body as Vm).id;
    const before = ((await api(coord, 'GET', '/images')).body as Image[]).map((i) => i.id);

    const unknown = await api(coord, 'POST', '/images', { vm: 'vm-nope', name: 'x1' });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('FERRY_ERR_UNKNOWN_VM');
    const taken = await api(coord, 'POST', '/images', { vm: vmId, name: 'base-os' });
    expect(taken.status).toBe(409);
    expect(taken.body.error.code).toBe('FERRY_ERR_IMAGE_EXISTS');
    expect((await api(coord, 'POST', '/images', { vm: vmId, name: 'bad name!' })).status).toBe(400);

    const upload = await fetch(`${coord.url}/api/v1/images/sneaky/file`, { method: 'PUT', headers: { authorization: `Bearer ${coord.token}` }, body: new Uint8Array(64 * 1024).fill(7) });
    expect(upload.status).toBe(409);
    expect(((await upload.json()) as { error: { code: string } }).error.code).toBe('FERRY_ERR_UPLOAD_NOT_EXPECTED');
    const noToken = await fetch(`${coord.url}/api/v1/images/base-os/file`);
    expect(noToken.status).toBe(401);
    await noToken.body?.cancel();
    const missing = await fetch(`${coord.url}/api/v1/images/sneaky/file`, { headers: { authorization: `Bearer ${coord.token}` } });
    expect(missing.status).toBe(404);
    await missing.body?.cancel();
    expect((await api(coord, 'GET', '/images/sneaky')).status).toBe(404);
    expect((await api(coord, 'POST', '/vms', { image: 'sneaky', cpus: 1, memory: '8MiB', disk: '256MiB' })).status).toBe(404);

    // An upload the coordinator refuses (host-2 holds a wrong token): a 502, the VM resumed, nothing added.
    const other = await api(coord, 'POST', '/vms', { image: 'minimal', cpus: 1, memory: '8MiB', disk: '256MiB', host: 'host-2', workload: { kind: 'uniform', rate: 1000 } });
    expect(other.status, JSON.stringify(other.body)).toBe(201);
    const otherId = (other.body as Vm).id;
    const failed = await api(coord, 'POST', '/images', { vm: otherId, name: 'never' });
    expect(failed.status, JSON.stringify(failed.body)).toBe(502);
    expect(failed.body.error.code).toBe('FERRY_ERR_IMAGE_CAPTURE_FAILED');
    expect(failed.body.error.message).toMatch(/FERRY_ERR_UNAUTHORIZED/);
    const stepsThen = await steps(coord, 'host-2', otherId);
    await until(async () => (await steps(coord, 'host-2', otherId)) > stepsThen + 10, 'the VM runs on after a failed capture');
    expect((await (c.agents.get('host-2')!.vmHost as LocalVmHost).images()).list().map((i) => i.id)).toEqual(before);

    expect(((await api(coord, 'GET', '/images')).body as Image[]).map((i) => i.id)).toEqual(before);
    expect(((await api(coord, 'GET', '/hosts')).body as Host[]).map((h) => h.state)).toEqual(['up', 'up']);
    const again = await api(coord, 'POST', '/images', { vm: vmId, name: 'after-refusals' });
    expect(again.status, JSON.stringify(again.body)).toBe(201);
    expect((await api(coord, 'GET', `/vms/${vmId}`)).body).toMatchObject({ state: 'running' });
    noTransfersLeft(c);
  }, 30_000);
});
