/**
 * A TCP proxy a test can cut: it listens on one address and forwards every connection to another,
 * byte for byte, until `cut()` resets every connection it carries (both sides see the socket die
 * mid-stream, as when a cable is pulled or a middlebox drops the flow). New connections are still
 * forwarded after a cut.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Resets every open connection (RST to both ends). */
  cut(): void;
  close(): Promise<void>;
}

/** A free TCP port on `host` (bound, then released). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

export async function startTcpProxy(listen: { host: string; port: number }, target: { host: string; port: number }): Promise<TcpProxy> {
  const open = new Set<Socket>();
  let accepted = 0;
  const track = (s: Socket): void => {
    open.add(s);
    s.on('close', () => open.delete(s)).on('error', () => undefined);
  };
  const server: Server = createServer((client) => {
    accepted++;
    const upstream = connect(target.port, target.host);
    track(client);
    track(upstream);
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(listen.port, listen.host, resolve));
  return {
    port: (server.address() as { port: number }).port,
    get accepted() {
      return accepted;
    },
    cut() {
      for (const s of open) s.resetAndDestroy();
    },
    close() {
      for (const s of open) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
