import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { agentClusterCodec, coordinatorClusterCodec, type AgentToCoordinatorMessage, type CoordinatorToAgentMessage } from '@ferry/protocol';
import { WsChannel } from './ws-channel.ts';
import { attachWsRoutes, type WsRoutes } from './ws-server.ts';
import { openWsChannel } from './ws-client.ts';
import { hasBearerToken } from './auth.ts';
import { FERRY_CLOSE } from './close-codes.ts';
import { HostilePeer } from './hostile-peer.ts';
import { ReconnectingClient } from './reconnect.ts';
import { ChannelOverflowError, ConnectError } from './errors.ts';
import { forkTs } from './fork-ts.ts';

const TOKEN = 'secret-token';
type ServerChannel = WsChannel<AgentToCoordinatorMessage, CoordinatorToAgentMessage>;

interface TestServer {
  http: Server;
  routes: WsRoutes;
  port: number;
  channels: ServerChannel[];
  frames: Uint8Array[];
  close(): Promise<void>;
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startServer(port = 0, maxPayloadBytes = 1024 * 1024): Promise<TestServer> {
  const http = createServer((_req, res) => res.writeHead(404).end());
  const channels: ServerChannel[] = [];
  const frames: Uint8Array[] = [];
  const routes = attachWsRoutes(http, [
    {
      path: '/agent',
      maxPayloadBytes,
      authenticate: (req) => (hasBearerToken(req, TOKEN) ? true : undefined),
      onConnection: (ws) => {
        const ch: ServerChannel = new WsChannel(ws, { codec: coordinatorClusterCodec, maxControlBytes: 64 * 1024 });
        ch.onFrame((f) => frames.push(Buffer.from(f)));
        ch.onMessage((m) => {
          if (m.type === 'heartbeat') ch.send({ type: 'registered', hostId: `echo-${m.seq}`, heartbeatIntervalMs: 1 });
        });
        channels.push(ch);
      },
    },
  ]);
  http.listen(port, '127.0.0.1');
  await once(http, 'listening');
  const server: TestServer = {
    http,
    routes,
    port: (http.address() as { port: number }).port,
    channels,
    frames,
    close: async () => {
      routes.close();
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    },
  };
  cleanups.push(() => server.close());
  return server;
}

function connectClient(port: number, token = TOKEN) {
  return openWsChannel<CoordinatorToAgentMessage, AgentToCoordinatorMessage>(`ws://127.0.0.1:${port}/agent`, { codec: agentClusterCodec, token });
}

function nextMessage<T>(ch: WsChannel<T, unknown>): Promise<T> {
  return new Promise((resolve) => ch.onMessage(resolve));
}

describe('WsChannel over a real server', () => {
  it('delivers control messages and page frames in order, frames as one unfragmented message', async () => {
    const server = await startServer();
    const client = await connectClient(server.port);
    cleanups.push(() => client.close());
    const reply = nextMessage(client);
    client.send({ type: 'heartbeat', seq: 7, vms: [] });
    expect(await reply).toEqual({ type: 'registered', hostId: 'echo-7', heartbeatIntervalMs: 1 });
    const page = new Uint8Array(new SharedArrayBuffer(8192)).fill(0xab);
    client.sendFrame([Buffer.from([1, 2, 3]), page.subarray(0, 4096), page.subarray(4096)]);
    client.sendFrame([]);
    await new Promise<void>((resolve) => {
      const t = setInterval(() => server.frames.length === 2 && (clearInterval(t), resolve()), 5);
    });
    expect(server.frames[0]!.byteLength).toBe(3 + 8192);
    expect(Buffer.from(server.frames[0]!.subarray(0, 3))).toEqual(Buffer.from([1, 2, 3]));
    expect(server.frames[0]!.every((b, i) => i < 3 || b === 0xab)).toBe(true);
    expect(server.frames[1]!.byteLength).toBe(0);
  });

  it('raw frames (server side, and a zero-mask client) arrive byte-identical for every header length', async () => {
    const server = await startServer(0, 4 * 1024 * 1024);
    const client = await openWsChannel<CoordinatorToAgentMessage, AgentToCoordinatorMessage>(`ws://127.0.0.1:${server.port}/agent`, { codec: agentClusterCodec, token: TOKEN, zeroMask: true, maxPayloadBytes: 4 * 1024 * 1024 });
    cleanups.push(() => client.close());
    const received: Buffer[] = [];
    client.onMessage(() => {});
    client.onFrame((f) => received.push(Buffer.from(f)));
    const guest = new Uint8Array(new SharedArrayBuffer(3 * 65536));
    for (let i = 0; i < guest.length; i++) guest[i] = (i * 31) & 0xff;
    // Payload lengths around the 7-bit, 16-bit and 64-bit length encodings (kind byte included).
    const sizes = [0, 124, 125, 126, 65534, 65535, 65536, 2 * 65536 + 7];
    for (const n of sizes) client.sendFrame([guest.subarray(0, Math.min(n, 65536)), guest.subarray(65536, 65536 + Math.max(0, n - 65536))]);
    await waitUntil(() => server.frames.length === sizes.length);
    server.frames.forEach((f, i) => {
      const n = sizes[i]!;
      const expected = Buffer.concat([Buffer.from(guest.subarray(0, Math.min(n, 65536))), Buffer.from(guest.subarray(65536, 65536 + Math.max(0, n - 65536)))]);
      expect(Buffer.compare(Buffer.from(f), expected), `size ${n}`).toBe(0);
    });
    const serverSide = server.channels[0]!;
    for (const n of sizes) serverSide.sendFrame([guest.subarray(0, n)]);
    await waitUntil(() => received.length === sizes.length);
    received.forEach((f, i) => expect(Buffer.compare(f, Buffer.from(guest.subarray(0, sizes[i]!)))).toBe(0));
  });

  // A 4 KiB read buffer is reused many times within each frame: what goes on to ws (every frame of
  // a masked client) must be copied out of it, what is taken out must be applied before the next read.
  const variants = [
    { takeFrames: true, readBufferBytes: undefined, zeroMask: true },
    { takeFrames: true, readBufferBytes: 4096, zeroMask: true },
    { takeFrames: true, readBufferBytes: 4096, zeroMask: false },
    { takeFrames: true, readBufferBytes: 0, zeroMask: true },
    { takeFrames: false, readBufferBytes: undefined, zeroMask: true },
  ];
  for (const { takeFrames, readBufferBytes, zeroMask } of variants) {
    it(`page frames keep their place among control messages, also when they come before the handlers (takeFrames ${takeFrames}, readBufferBytes ${readBufferBytes ?? 'default'}, zeroMask ${zeroMask})`, async () => {
      const http = createServer((_req, res) => res.writeHead(404).end());
      const log: string[] = [];
      const reused: boolean[] = [];
      const routes = attachWsRoutes(http, [
        {
          path: '/agent',
          maxPayloadBytes: 4 * 1024 * 1024,
          authenticate: (req) => (hasBearerToken(req, TOKEN) ? true : undefined),
          onConnection: (ws) => {
            const ch: ServerChannel = new WsChannel(ws, { codec: coordinatorClusterCodec, takeFrames, ...(readBufferBytes !== undefined ? { readBufferBytes } : {}) });
            reused.push(ch.reusesReadBuffer);
            // Handlers come late: what arrives first is held (a taken frame is copied out of the reused buffer).
            setTimeout(() => {
              ch.onFrame((f) => log.push(`frame ${f.byteLength} ${f[0]} ${f[f.byteLength - 1]}`));
              ch.onMessage((m) => log.push(m.type === 'heartbeat' ? `heartbeat ${m.seq}` : m.type));
            }, 100);
          },
        },
      ]);
      http.listen(0, '127.0.0.1');
      await once(http, 'listening');
      cleanups.push(async () => {
        routes.close();
        http.closeAllConnections();
        await new Promise((r) => http.close(r));
      });
      const port = (http.address() as { port: number }).port;
      const client = await openWsChannel<CoordinatorToAgentMessage, AgentToCoordinatorMessage>(`ws://127.0.0.1:${port}/agent`, { codec: agentClusterCodec, token: TOKEN, zeroMask, maxPayloadBytes: 4 * 1024 * 1024 });
      cleanups.push(() => client.close());
      const expected: string[] = [];
      for (let i = 0; i < 12; i++) {
        client.send({ type: 'heartbeat', seq: i, vms: [] });
        expected.push(`heartbeat ${i}`);
        const bytes = [100, 70_000, 1024 * 1024 + 5][i % 3]!;
        const frame = Buffer.alloc(bytes, i + 1);
        frame[bytes - 1] = 200 + i;
        client.sendFrame([frame]);
        expected.push(`frame ${bytes} ${i + 1} ${200 + i}`);
      }
      await waitUntil(() => log.length === expected.length, 10_000);
      expect(log).toEqual(expected);
      // Node 20 has the internals; if a later Node drops them this says so instead of passing quietly.
      expect(reused).toEqual([takeFrames && readBufferBytes !== 0]);
    });
  }

  it('refuses an upgrade without the right token with HTTP 401', async () => {
    const server = await startServer();
    await expect(connectClient(server.port, 'wrong')).rejects.toMatchObject({ statusCode: 401, code: 'FERRY_ERR_UNAUTHORIZED' });
    const { upgrade, peer } = await HostilePeer.connect(`ws://127.0.0.1:${server.port}/agent`);
    expect(upgrade.status).toBe(401);
    peer.hangUp();
    const ok = await HostilePeer.connect(`ws://127.0.0.1:${server.port}/agent?token=${TOKEN}`);
    expect(ok.upgrade.status).toBe(101);
    ok.peer.hangUp();
  });

  it('closes on a message over maxPayload before allocating it (1009), and on an oversize control message', async () => {
    const server = await startServer(0, 64 * 1024);
    const { peer } = await HostilePeer.connect(`ws://127.0.0.1:${server.port}/agent`, { authorization: `Bearer ${TOKEN}` });
    // Declares 1 GiB and sends 10 bytes: ws refuses on the header.
    peer.sendFrame({ payload: new Uint8Array(10), declaredLength: 2 ** 30 });
    expect(await peer.closedByServer()).toBe(FERRY_CLOSE.MESSAGE_TOO_BIG);
    const server2 = await startServer(0, 1024 * 1024);
    const p2 = (await HostilePeer.connect(`ws://127.0.0.1:${server2.port}/agent`, { authorization: `Bearer ${TOKEN}` })).peer;
    p2.sendControl(new Uint8Array(100 * 1024));
    expect(await p2.closedByServer()).toBe(FERRY_CLOSE.CONTROL_TOO_LARGE);
  });

  it('closes garbage, unknown kinds, text and truncated frames with a Ferry code and keeps serving', async () => {
    const server = await startServer();
    const url = `ws://127.0.0.1:${server.port}/agent`;
    const auth = { authorization: `Bearer ${TOKEN}` };
    const cases: [string, (p: HostilePeer) => void, number | undefined][] = [
      ['msgpack garbage', (p) => p.sendControl(Buffer.from([0xc1, 0xc1, 0xc1])), FERRY_CLOSE.BAD_MESSAGE],
      ['unknown message type', (p) => p.sendControl(Buffer.from([0x81, 0xa4, 0x74, 0x79, 0x70, 0x65, 0xa1, 0x78])), FERRY_CLOSE.BAD_MESSAGE],
      ['kind byte 0', (p) => p.sendFrame({ payload: Buffer.from([0, 1, 2]) }), FERRY_CLOSE.BAD_MESSAGE],
      ['text frame', (p) => p.sendFrame({ payload: Buffer.from('hello'), opcode: 0x1 }), FERRY_CLOSE.BAD_MESSAGE],
      ['unmasked client frame', (p) => p.sendFrame({ payload: Buffer.from([1]), masked: false }), 1002],
      ['raw bytes', (p) => p.sendRaw(Buffer.from('GET / HTTP/1.1\r\n\r\n')), 1002],
    ];
    for (const [name, act, code] of cases) {
      const { peer } = await HostilePeer.connect(url, auth);
      act(peer);
      expect(await peer.closedByServer(), name).toBe(code);
    }
    // A truncated frame then a hang-up: the server just drops the socket.
    const { peer } = await HostilePeer.connect(url, auth);
    peer.sendTruncated({ payload: new Uint8Array(1000) }, 50);
    peer.hangUp();
    // Still serving real clients.
    const client = await connectClient(server.port);
    const reply = nextMessage(client);
    client.send({ type: 'heartbeat', seq: 1, vms: [] });
    expect((await reply).type).toBe('registered');
    client.close();
  });

  it('keeps the send buffer bounded when the peer stops reading', async () => {
    const server = await startServer(0, 32 * 1024 * 1024);
    const client = await openWsChannel<CoordinatorToAgentMessage, AgentToCoordinatorMessage>(`ws://127.0.0.1:${server.port}/agent`, {
      codec: agentClusterCodec,
      token: TOKEN,
      zeroMask: true,
      lowWaterBytes: 256 * 1024,
      highWaterBytes: 1024 * 1024,
      maxBufferedBytes: 4 * 1024 * 1024,
    });
    cleanups.push(() => client.close());
    await new Promise((r) => setTimeout(r, 50));
    const serverSocket = (server.channels[0]!.ws as unknown as { _socket: import('node:net').Socket })._socket;
    serverSocket.pause();
    const chunk = new Uint8Array(256 * 1024).fill(1);
    // A well-behaved sender waits on drained(); it must not get past the high-water mark by more than a frame.
    let maxBuffered = 0;
    const sending = (async () => {
      for (let i = 0; i < 400; i++) {
        if (client.needsDrain) await client.drained();
        client.sendFrame([chunk]);
        maxBuffered = Math.max(maxBuffered, client.bufferedBytes);
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    expect(maxBuffered).toBeLessThanOrEqual(1024 * 1024 + chunk.byteLength + 64);
    // A sender that ignores backpressure is stopped at the hard cap.
    expect(() => {
      for (let i = 0; i < 100; i++) client.sendFrame([chunk]);
    }).toThrow(ChannelOverflowError);
    await expect(sending).rejects.toThrow();
    serverSocket.resume();
  });

  it('reconnects with backoff after the server restarts on the same port', async () => {
    const server = await startServer();
    const port = server.port;
    const connected: number[] = [];
    const client = new ReconnectingClient({
      connect: () => connectClient(port),
      onConnected: () => connected.push(Date.now()),
      backoff: { initialMs: 20, maxMs: 200 },
    });
    cleanups.push(() => client.stop());
    await waitUntil(() => connected.length === 1);
    await server.close();
    cleanups.pop();
    await new Promise((r) => setTimeout(r, 300));
    expect(client.channel).toBeUndefined();
    await startServer(port);
    await waitUntil(() => connected.length === 2);
    expect(client.channel).toBeDefined();
  });

  it('detects a dead peer (SIGSTOP) by heartbeat timeout', async () => {
    const child: ChildProcess = forkTs(fileURLToPath(new URL('./ceiling-peer.ts', import.meta.url)), ['ws-server', '1']);
    cleanups.push(() => child.kill('SIGKILL'));
    const port = await new Promise<number>((resolve) => child.on('message', (m: { event: string; port: number }) => m.event === 'listening' && resolve(m.port)));
    const ch = await openWsChannel(`ws://127.0.0.1:${port}`, { codec: agentClusterCodec, heartbeat: { intervalMs: 50, timeoutMs: 300 } });
    const closed = new Promise<{ code: number }>((resolve) => ch.onClose(resolve));
    await new Promise((r) => setTimeout(r, 200));
    expect(ch.closed).toBe(false);
    child.kill('SIGSTOP');
    const info = await closed;
    child.kill('SIGCONT');
    expect(info.code).toBe(FERRY_CLOSE.HEARTBEAT_TIMEOUT);
  });

  it('reports a refused connection as ConnectError', async () => {
    const server = await startServer();
    const port = server.port;
    await server.close();
    cleanups.pop();
    await expect(connectClient(port)).rejects.toBeInstanceOf(ConnectError);
  });
});

async function waitUntil(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
