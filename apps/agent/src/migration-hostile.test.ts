// A hostile peer on a real agent's migration port (real sockets, the real VM host): wrong and
// reused tokens, a wrong protocol version, garbage, a truncated frame, a page index out of range,
// an oversized frame, a hello for another migration. Each connection is closed with a clear code,
// the agent keeps running and registered, and nothing is half-created (no VM, no reservation kept).
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeMessage, PAGE_FRAME_MAGIC, PAGE_FRAME_VERSION, FRAME_KIND, PAGE_ENCODING, MIGRATION_PROTOCOL_VERSION } from '@ferry/protocol';
import { HostilePeer, FERRY_CLOSE } from '@ferry/transport';
// The coordinator is imported by path: apps/agent does not depend on apps/coordinator, only this test does.
import { startCoordinator, type RunningCoordinator } from '../../coordinator/src/index.ts';
import { startAgent, type RunningAgent } from './agent.ts';
import { encodeEnvelope } from './vm-host-envelope.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const MiB = 2 ** 20;

async function cluster(): Promise<{ coord: RunningCoordinator; agent: RunningAgent }> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-hostile-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const coord = await startCoordinator({ port: 0, stateDir: join(dir, 'c'), heartbeatIntervalMs: 100, failureTimeoutMs: 5000 });
  cleanups.push(() => coord.close());
  const agent = await startAgent({ coordinatorUrl: `ws://127.0.0.1:${coord.port}`, token: coord.token, hostId: 'h1', capacity: { cpus: 4, memoryBytes: 256 * MiB, diskBytes: 2 ** 30 }, dataDir: join(dir, 'h1'), pcpus: 1 });
  cleanups.push(() => agent.close());
  await agent.whenRegistered();
  return { coord, agent };
}

let seq = 0;
async function reserved(coord: RunningCoordinator): Promise<{ migrationId: string; url: string }> {
  const migrationId = `m-${++seq}`;
  const r = await coord.agents.reserveMigration('h1', { migrationId, vmId: 'vm-1', memoryBytes: 4 * MiB, cpus: 1, ttlMs: 10_000 });
  return { migrationId, url: `${r.migrationAddress}?token=${r.token}` };
}

function hello(migrationId: string, overrides: Record<string, unknown> = {}): Uint8Array {
  return encodeMessage({ type: 'hello', protocolVersion: MIGRATION_PROTOCOL_VERSION, migrationId, token: 'x', vm: { vmId: 'vm-1', cpus: 1, memoryBytes: 4 * MiB }, pageCount: 1024, ...overrides });
}

/** A page frame (kind byte 2, then the header, one run, its data) for one page at `page`. */
function pageFrame(page: number, round = 1): Uint8Array {
  const out = Buffer.alloc(1 + 16 + 8 + 4096);
  out[0] = 2;
  out.writeUInt16LE(PAGE_FRAME_MAGIC, 1);
  out.writeUInt8(FRAME_KIND.pages, 3);
  out.writeUInt8(PAGE_FRAME_VERSION, 4);
  out.writeUInt32LE(round, 5);
  out.writeUInt32LE(1, 9);
  out.writeUInt32LE(4096, 13);
  out.writeUInt32LE(page, 17);
  out.writeUInt16LE(1, 21);
  out.writeUInt8(PAGE_ENCODING.raw, 23);
  out.fill(7, 25);
  return out;
}

async function stillHealthy(agent: RunningAgent, migrationId?: string): Promise<void> {
  await new Promise((r) => setTimeout(r, 50));
  expect(agent.registered).toBe(true);
  expect(agent.vmHost.listVms()).toEqual([]);
  if (migrationId) expect(agent.reservations.get(migrationId)).toBeUndefined();
}

describe('hostile peer on the migration port', () => {
  it('wrong and reused tokens get 401 before any protocol byte', async () => {
    const { coord, agent } = await cluster();
    const { url } = await reserved(coord);
    const wrong = await HostilePeer.connect(url.replace(/token=[^&]+/, 'token=nope'));
    expect(wrong.upgrade.status).toBe(401);
    wrong.peer.hangUp();
    const first = await HostilePeer.connect(url);
    expect(first.upgrade.status).toBe(101);
    first.peer.hangUp();
    const reused = await HostilePeer.connect(url);
    expect(reused.upgrade.status).toBe(401);
    reused.peer.hangUp();
    await stillHealthy(agent);
  });

  it('a wrong protocol version is refused with PROTOCOL_VERSION', async () => {
    const { coord, agent } = await cluster();
    const { url, migrationId } = await reserved(coord);
    const { peer } = await HostilePeer.connect(url);
    peer.sendControl(hello(migrationId, { protocolVersion: 99 }));
    expect(await peer.closedByServer()).toBe(FERRY_CLOSE.PROTOCOL_VERSION);
    await stillHealthy(agent, migrationId);
  });

  it('a hello for another migration is refused with REFUSED', async () => {
    const { coord, agent } = await cluster();
    const { url, migrationId } = await reserved(coord);
    const { peer } = await HostilePeer.connect(url);
    peer.sendControl(hello('some-other-migration'));
    expect(await peer.closedByServer()).toBe(FERRY_CLOSE.REFUSED);
    await stillHealthy(agent, migrationId);
  });

  it('garbage bytes and a truncated frame close the connection; the agent keeps running', async () => {
    const { coord, agent } = await cluster();
    const a = await reserved(coord);
    const g = await HostilePeer.connect(a.url);
    g.peer.sendRaw(Buffer.from('this is not a websocket frame at all, just garbage\r\n'.repeat(8)));
    const code = await g.peer.closedByServer();
    expect(code === undefined || code >= 1002).toBe(true);
    const b = await reserved(coord);
    const t = await HostilePeer.connect(b.url);
    t.peer.sendControl(hello(b.migrationId));
    t.peer.sendTruncated({ payload: pageFrame(5) }, 40);
    t.peer.hangUp();
    await stillHealthy(agent, b.migrationId);
  });

  it('a page index out of range closes with BAD_MESSAGE and drops the partial VM', async () => {
    const { coord, agent } = await cluster();
    const { url, migrationId } = await reserved(coord);
    const { peer } = await HostilePeer.connect(url);
    peer.sendControl(hello(migrationId));
    peer.sendControl(encodeMessage({ type: 'start-round', round: 1, final: false }));
    peer.sendFrame({ payload: pageFrame(5_000_000) });
    expect(await peer.closedByServer()).toBe(FERRY_CLOSE.BAD_MESSAGE);
    await stillHealthy(agent, migrationId);
  });

  it("a hello's prelude places the vCPUs while pages arrive; a peer that hangs up mid-round leaves none placed; a garbage prelude is only ignored", async () => {
    const { coord, agent } = await cluster();
    const host = agent.vmHost as unknown as { pool: { vcpusPerPcpu(): number[] } };
    const placed = (): number => host.pool.vcpusPerPcpu().reduce((a, b) => a + b, 0);
    const until = async (what: string, ok: () => boolean): Promise<void> => {
      for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
      expect(ok(), what).toBe(true);
    };
    const a = await reserved(coord);
    const first = await HostilePeer.connect(a.url);
    const prelude = encodeEnvelope({ spec: { id: 'vm-1', name: 'one', vcpus: 1, memoryBytes: 4 * MiB, workload: { kind: 'uniform' } }, run: true, devices: new Uint8Array(0) });
    first.peer.sendControl(hello(a.migrationId, { prelude }));
    await until('the vCPU placed during round 1', () => placed() === 1);
    first.peer.sendControl(encodeMessage({ type: 'start-round', round: 1, final: false }));
    first.peer.sendFrame({ payload: pageFrame(5) });
    first.peer.hangUp();
    await until('the early VM dropped', () => placed() === 0);
    await stillHealthy(agent, a.migrationId);

    const b = await reserved(coord);
    const second = await HostilePeer.connect(b.url);
    second.peer.sendControl(hello(b.migrationId, { prelude: new Uint8Array([0xc1, 1, 2, 3]) }));
    second.peer.sendControl(encodeMessage({ type: 'start-round', round: 1, final: false }));
    second.peer.sendFrame({ payload: pageFrame(5) });
    await expect(second.peer.closedByServer(300)).rejects.toThrow(/did not close/); // still receiving: the prelude was a hint
    expect(placed()).toBe(0);
    second.peer.hangUp();
    await stillHealthy(agent, b.migrationId);
  });

  it('an oversized frame is refused (1009 too big) without buffering it', async () => {
    const { coord, agent } = await cluster();
    const { url, migrationId } = await reserved(coord);
    const { peer } = await HostilePeer.connect(url);
    peer.sendControl(hello(migrationId));
    peer.sendFrame({ payload: new Uint8Array(64), declaredLength: 512 * MiB });
    expect(await peer.closedByServer()).toBe(1009);
    await stillHealthy(agent, migrationId);
  });
});
