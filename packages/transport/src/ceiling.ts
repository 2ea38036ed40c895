/**
 * Throughput ceilings between two real processes on loopback, for benchmarks to report beside
 * their own figures in the same run: raw TCP, and ws in either direction with a chosen frame
 * size, mask and send path. This process sends; a forked child (ceiling-peer.ts) receives and
 * reports over IPC when it has every byte. Time runs from the first write to that report.
 */
import { createServer as createNetServer, type Socket } from 'node:net';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { WebSocketServer, WebSocket } from 'ws';
import { forkTs } from './fork-ts.ts';
import { WsChannel } from './ws-channel.ts';
import { zeroMask } from './ws-client.ts';

const PEER = fileURLToPath(new URL('./ceiling-peer.ts', import.meta.url));

/** Options common to the ceiling measurements. */
export interface CeilingOptions {
  /** Bytes to move; default 1 GiB. */
  readonly bytes?: number;
  /** Bytes per write / ws message; default 1 MiB. */
  readonly frameBytes?: number;
}

/** Options of measureWsCeiling. */
export interface WsCeilingOptions extends CeilingOptions {
  /** Who sends: the ws server (unmasked frames) or the client (masked). Default `server-to-client`. */
  readonly direction?: 'server-to-client' | 'client-to-server';
  /** Client masking: `bufferutil` (random key, native XOR) or `zero` (zero key, no XOR). Default `bufferutil`. */
  readonly mask?: 'bufferutil' | 'zero';
  /**
   * Send path: `ws-send` (one ws.send per message, ws's own framing), `raw` (WsChannel.sendFrame
   * corked writev of parts), `fragments` (WsChannel.sendFrame, one ws fragment per part), `copy`
   * (parts copied into one new buffer per frame, then `raw`). Default `raw`.
   */
  readonly sendMode?: 'ws-send' | 'raw' | 'fragments' | 'copy';
  /** With `raw`/`fragments`, split each frame into this many parts (like runs of guest pages). Default 1. */
  readonly partsPerFrame?: number;
}

/** One measurement. */
export interface CeilingResult {
  readonly bytes: number;
  readonly frameBytes: number;
  readonly elapsedMs: number;
  readonly bytesPerSec: number;
}

function waitFor(child: ChildProcess, event: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Record<string, unknown>): void => {
      if (m['event'] === event) {
        child.off('message', onMessage);
        resolve(m);
      }
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`ceiling peer exited with ${code} before ${event}`)));
  });
}

function payload(frameBytes: number): Buffer {
  const buf = Buffer.allocUnsafe(frameBytes);
  for (let i = 0; i < frameBytes; i += 4) buf.writeUInt32LE((i * 2654435761) >>> 0, i);
  return buf;
}

function result(bytes: number, frameBytes: number, t0: bigint): CeilingResult {
  const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;
  return { bytes, frameBytes, elapsedMs, bytesPerSec: bytes / (elapsedMs / 1000) };
}

/** Raw TCP throughput: this process (server) writes `frameBytes` chunks to a child (client) that reads into one reused buffer. */
export async function measureTcpCeiling(options: CeilingOptions = {}): Promise<CeilingResult> {
  const bytes = options.bytes ?? 2 ** 30;
  const frameBytes = options.frameBytes ?? 2 ** 20;
  const server = createNetServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const accepted = once(server, 'connection');
  const child = forkTs(PEER, ['tcp-client', String(port), String(bytes)]);
  try {
    const socket = (await accepted)[0] as Socket;
    await waitFor(child, 'connected');
    const buf = payload(frameBytes);
    const done = waitFor(child, 'received');
    const t0 = process.hrtime.bigint();
    let sent = 0;
    let sinceYield = 0;
    while (sent < bytes) {
      const n = Math.min(frameBytes, bytes - sent);
      const ok = socket.write(n === frameBytes ? buf : buf.subarray(0, n));
      sent += n;
      sinceYield += n;
      if (!ok) await once(socket, 'drain');
      if (sinceYield >= 16 * 2 ** 20) {
        sinceYield = 0;
        await new Promise((r) => setImmediate(r));
      }
    }
    await done;
    const r = result(bytes, frameBytes, t0);
    socket.destroy();
    return r;
  } finally {
    child.kill('SIGKILL');
    server.close();
  }
}

/** ws throughput between this process (sender) and a child (receiver), in the direction and send path asked. */
export async function measureWsCeiling(options: WsCeilingOptions = {}): Promise<CeilingResult> {
  const bytes = options.bytes ?? 2 ** 30;
  const frameBytes = options.frameBytes ?? 2 ** 20;
  const direction = options.direction ?? 'server-to-client';
  const sendMode = options.sendMode ?? 'raw';
  const partsPerFrame = Math.max(1, options.partsPerFrame ?? 1);
  // Every message the child counts is whole; the channel adds one kind byte per frame.
  const perMessage = sendMode === 'ws-send' ? frameBytes : frameBytes + 1;
  const messages = Math.ceil(bytes / frameBytes);
  const wireBytes = messages * perMessage;
  let child: ChildProcess | undefined;
  let http: ReturnType<typeof createServer> | undefined;
  try {
    let ws: WebSocket;
    if (direction === 'server-to-client') {
      http = createServer();
      const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
      http.listen(0, '127.0.0.1');
      await once(http, 'listening');
      const port = (http.address() as { port: number }).port;
      const connected = once(wss, 'connection');
      child = forkTs(PEER, ['ws-client', `ws://127.0.0.1:${port}`, String(wireBytes)]);
      ws = (await connected)[0] as WebSocket;
      await waitFor(child, 'connected');
    } else {
      child = forkTs(PEER, ['ws-server', String(wireBytes)]);
      const { port } = (await waitFor(child, 'listening')) as { port: number };
      ws = new WebSocket(`ws://127.0.0.1:${port}`, {
        perMessageDeflate: false,
        ...(options.mask === 'zero' ? { generateMask: zeroMask } : {}),
      });
      await once(ws, 'open');
    }
    const channel = new WsChannel<never, never>(ws, {
      codec: { encode: () => new Uint8Array(0), decode: () => { throw new Error('no control messages'); } },
      frameMode: sendMode === 'fragments' ? 'fragments' : 'raw',
      zeroMask: options.mask === 'zero',
    });
    const buf = payload(frameBytes);
    const partBytes = Math.ceil(frameBytes / partsPerFrame);
    const parts: Buffer[] = [];
    for (let o = 0; o < frameBytes; o += partBytes) parts.push(buf.subarray(o, Math.min(frameBytes, o + partBytes)));
    const done = waitFor(child, 'received');
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < messages; i++) {
      if (sendMode === 'ws-send') ws.send(buf, { binary: true, compress: false });
      else if (sendMode === 'copy') channel.sendFrame([Buffer.concat(parts, frameBytes)]);
      else channel.sendFrame(parts);
      if (ws.bufferedAmount > 8 * 2 ** 20 || channel.needsDrain) await channel.drained();
      else if ((i & 15) === 15) await new Promise((r) => setImmediate(r));
    }
    await done;
    const r = result(messages * frameBytes, frameBytes, t0);
    ws.terminate();
    return r;
  } finally {
    child?.kill('SIGKILL');
    http?.close();
  }
}
