/**
 * WebSocket routes on a node:http server: each route has a path, an authenticator run on the
 * upgrade request (before the 101, so a refused client never gets a socket: HTTP 401), and a
 * maxPayload. Unknown paths get 404. Compression is off (page frames do not compress cheaply and
 * raw frame writes need it off).
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { DEFAULT_MAX_PAYLOAD_BYTES } from './ws-channel.ts';

/** One WebSocket route. */
export interface WsRoute<TAuth> {
  /** Exact pathname, e.g. `/agent`. */
  readonly path: string;
  /** Returns what the request is allowed (any non-undefined value) or undefined to refuse with 401. */
  authenticate(req: IncomingMessage): TAuth | undefined;
  /** Cap of one incoming ws message; default DEFAULT_MAX_PAYLOAD_BYTES. */
  readonly maxPayloadBytes?: number;
  /** Called with the open socket. Construct the WsChannel synchronously here. */
  onConnection(ws: WebSocket, req: IncomingMessage, auth: TAuth): void;
}

/** Handle returned by attachWsRoutes. */
export interface WsRoutes {
  /** Every live socket of every route. */
  readonly sockets: ReadonlySet<WebSocket>;
  /** Closes every socket with `code` and stops routing. */
  close(code?: number, reason?: string): void;
}

/** Routes upgrade requests on `server` to `routes`; refuses unauthenticated upgrades with 401. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function attachWsRoutes(server: Server, routes: readonly WsRoute<any>[]): WsRoutes {
  const sockets = new Set<WebSocket>();
  const servers = new Map<string, { route: WsRoute<unknown>; wss: WebSocketServer }>();
  for (const route of routes) {
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: route.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
      perMessageDeflate: false,
      clientTracking: false,
    });
    servers.set(route.path, { route, wss });
  }
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const entry = servers.get(path);
    if (!entry) return refuse(socket, 404, 'Not Found');
    let auth: unknown;
    try {
      auth = entry.route.authenticate(req);
    } catch {
      auth = undefined;
    }
    if (auth === undefined) return refuse(socket, 401, 'Unauthorized');
    entry.wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      ws.on('close', () => sockets.delete(ws));
      entry.route.onConnection(ws, req, auth);
    });
  };
  server.on('upgrade', onUpgrade);
  return {
    sockets,
    close(code = 1001, reason = 'shutting down') {
      server.off('upgrade', onUpgrade);
      for (const ws of sockets) {
        ws.close(code, reason);
        setTimeout(() => ws.terminate(), 1000).unref();
      }
      for (const { wss } of servers.values()) wss.close();
    },
  };
}

function refuse(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
