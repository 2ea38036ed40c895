import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, statSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { once } from 'node:events';
import type { ApiServerMessage } from '@ferry/protocol';
import { agentClusterCodec, type CoordinatorToAgentMessage } from '@ferry/protocol';
import { openWsChannel, FERRY_CLOSE } from '@ferry/transport';
import { startCoordinator } from './coordinator.ts';
import { writeFileAtomic } from './state-dir.ts';
import type { CoordinatorModule } from './modules.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ferry-coord-test-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

describe('coordinator state directory', () => {
  it('creates the token once, mode 0600, and keeps it across restarts', async () => {
    const dir = tempDir();
    const a = await startCoordinator({ port: 0, stateDir: dir });
    await a.close();
    expect(statSync(join(dir, 'token')).mode & 0o777).toBe(0o600);
    const b = await startCoordinator({ port: 0, stateDir: dir });
    cleanups.push(() => b.close());
    expect(b.token).toBe(a.token);
    expect(a.token.length).toBeGreaterThanOrEqual(40);
  });

  it('atomic writes leave no temp files and replace the content whole', () => {
    const dir = tempDir();
    const p = join(dir, 'f.json');
    writeFileAtomic(p, '{"a":1}');
    writeFileAtomic(p, '{"a":2}');
    expect(readFileSync(p, 'utf8')).toBe('{"a":2}');
    expect(readdirSync(dir)).toEqual(['f.json']);
  });

  it('refuses a corrupt state file instead of starting empty', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'state.json'), '{"version": 7}');
    await expect(startCoordinator({ port: 0, stateDir: dir })).rejects.toThrow(/version 1/);
  });

  it('persists module state and offers it back after a restart', async () => {
    const dir = tempDir();
    let seen: unknown;
    const mod = (value: unknown): CoordinatorModule => ({
      name: 'migrations',
      start: (ctx) => {
        seen = ctx.persisted('migrations');
      },
      saveState: () => value,
    });
    const a = await startCoordinator({ port: 0, stateDir: dir, modules: [mod({ open: ['m-1'] })] });
    await a.close();
    const b = await startCoordinator({ port: 0, stateDir: dir, modules: [mod(null)] });
    cleanups.push(() => b.close());
    expect(seen).toEqual({ open: ['m-1'] });
  });
});

describe('coordinator /api stream and HTTP', () => {
  it('streams events to an authenticated console and routes module HTTP first', async () => {
    const mod: CoordinatorModule = {
      name: 'echo',
      handleHttp: (req, res, url) => {
        if (url.pathname !== '/api/v1/echo') return false;
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"echo":true}');
        return true;
      },
    };
    const c = await startCoordinator({ port: 0, stateDir: tempDir(), modules: [mod] });
    cleanups.push(() => c.close());
    const auth = { authorization: `Bearer ${c.token}` };
    expect(await (await fetch(`${c.url}/api/v1/echo`, { headers: auth })).json()).toEqual({ echo: true });
    expect((await fetch(`${c.url}/api/v1/echo`)).status).toBe(401);
    expect((await fetch(`${c.url}/api/v1/nothing`, { headers: auth })).status).toBe(404);

    const ws = new WebSocket(`ws://127.0.0.1:${c.port}/api`, { headers: auth });
    const messages: ApiServerMessage[] = [];
    ws.on('message', (d) => messages.push(JSON.parse(String(d)) as ApiServerMessage));
    await once(ws, 'open');
    c.events.emit('host-registered', { host: 'before' });
    ws.send(JSON.stringify({ type: 'subscribe', since: 0 }));
    ws.send(JSON.stringify({ type: 'bogus' }));
    ws.send(JSON.stringify({ type: 'ping', id: 9 }));
    await new Promise((r) => setTimeout(r, 100));
    c.events.emit('host-down', { host: 'h1' }, { reason: 'test' });
    await new Promise((r) => setTimeout(r, 100));
    ws.close();
    expect(messages[0]).toMatchObject({ type: 'hello' });
    expect(messages.map((m) => m.type)).toEqual(['hello', 'subscribed', 'error', 'pong', 'event']);
    expect(messages.at(-1)).toMatchObject({ type: 'event', event: { type: 'host-down', host: 'h1', data: { reason: 'test' } } });
  });
});

describe('coordinator /agent registration', () => {
  it('refuses a wrong protocol version with register-refused and PROTOCOL_VERSION, and a first message that is not register', async () => {
    const c = await startCoordinator({ port: 0, stateDir: tempDir() });
    cleanups.push(() => c.close());
    const url = `ws://127.0.0.1:${c.port}/agent`;
    const ch = await openWsChannel(url, { codec: agentClusterCodec, token: c.token });
    const got: CoordinatorToAgentMessage[] = [];
    ch.onMessage((m) => got.push(m));
    const closed = new Promise<{ code: number }>((r) => ch.onClose(r));
    ch.send({ type: 'register', protocolVersion: 99, hostId: 'h', capacity: { cpus: 1, memoryBytes: 1, diskBytes: 1 }, migrationAddress: 'ws://x:1/migrate', vms: [] });
    expect((await closed).code).toBe(FERRY_CLOSE.PROTOCOL_VERSION);
    expect(got).toMatchObject([{ type: 'register-refused', code: 'FERRY_ERR_CLUSTER_VERSION' }]);
    const ch2 = await openWsChannel(url, { codec: agentClusterCodec, token: c.token });
    ch2.onMessage(() => {});
    const closed2 = new Promise<{ code: number }>((r) => ch2.onClose(r));
    ch2.send({ type: 'heartbeat', seq: 1, vms: [] });
    expect((await closed2).code).toBe(FERRY_CLOSE.BAD_MESSAGE);
    expect(c.hosts.list()).toEqual([]);
  });
});
