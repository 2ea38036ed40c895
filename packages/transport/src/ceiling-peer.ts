/**
 * Child-process side of the ceiling measurements (run by ceiling.ts through forkTs): a receiver
 * that counts bytes and reports over IPC. argv: `tcp-client <port>` | `ws-server` | `ws-client <url>`, then total bytes.
 * TCP reads into one reused 1 MiB buffer (`onread`), so the receiver allocates nothing per read.
 */
import { connect } from 'node:net';
import { WebSocketServer, WebSocket } from 'ws';

const [role, arg1, arg2] = process.argv.slice(2);
const send = (m: object): void => void process.send?.(m);
process.on('disconnect', () => process.exit(0));

function counter(total: number): (n: number) => void {
  let received = 0;
  return (n) => {
    received += n;
    if (received >= total) {
      send({ event: 'received', bytes: received });
      received = 0;
    }
  };
}

if (role === 'tcp-client') {
  // `onread` exists only on client sockets, so the TCP receiver is the client.
  const count = counter(Number(arg2));
  const buffer = Buffer.allocUnsafe(1024 * 1024);
  const socket = connect({ port: Number(arg1), host: '127.0.0.1', onread: { buffer, callback: (n: number) => (count(n), true) } });
  socket.on('connect', () => send({ event: 'connected' }));
} else if (role === 'ws-server') {
  const count = counter(Number(arg1));
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 64 * 1024 * 1024, perMessageDeflate: false });
  wss.on('connection', (ws) => ws.on('message', (data: Buffer) => count(data.byteLength)));
  wss.on('listening', () => send({ event: 'listening', port: (wss.address() as { port: number }).port }));
} else if (role === 'ws-client') {
  const count = counter(Number(arg2));
  const ws = new WebSocket(arg1!, { maxPayload: 64 * 1024 * 1024, perMessageDeflate: false });
  ws.binaryType = 'nodebuffer';
  ws.on('message', (data: Buffer) => count(data.byteLength));
  ws.on('open', () => send({ event: 'connected' }));
} else {
  process.stderr.write(`ceiling-peer: unknown role ${role}\n`);
  process.exit(2);
}
