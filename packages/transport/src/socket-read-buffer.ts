import type { Socket } from 'node:net';

/**
 * Makes a socket read into one reused buffer: Node's `onread` mode, which `net.connect` offers
 * only to sockets it creates, never to a server's accepted ones (the migration port's).
 *
 * Why: by default every read gets a fresh 64 KiB ArrayBuffer. Receiving 1 GiB that is 16,384 of
 * them, counted as external memory, so V8 runs a mark-compact about every 64 MiB, and glibc hands
 * the freed heap back and faults it in again. On this machine that was more than half of a
 * migration receiver's CPU: 1.0 s against 0.4 s per GiB, and 1.2 against 2.2 GB/s end to end
 * (two processes on loopback, the pipeline measurement in the session notes).
 *
 * `onChunk` gets a view of the buffer that is valid only during the call: copy what must outlive
 * it. Reading stops and starts with `socket.pause()` and `socket.resume()` as before; 'end',
 * 'close' and 'error' are unchanged; 'data' is no longer emitted for new reads (bytes the stream
 * had already queued, such as what came with a WebSocket upgrade, still are, and before any new
 * read, since they are emitted on the next tick).
 *
 * Uses Node internals (`_handle.useUserBuffer` and the socket's kBuffer/kBufferCb slots, which
 * `onread` fills): returns false and changes nothing when they are not there.
 */
export function readIntoReusedBuffer(socket: Socket, bytes: number, onChunk: (chunk: Buffer) => void): boolean {
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: (buffer: Uint8Array) => void } | null })._handle;
  const symbols = Object.getOwnPropertySymbols(socket);
  const kBuffer = symbols.find((s) => s.description === 'kBuffer');
  const kBufferCb = symbols.find((s) => s.description === 'kBufferCb');
  if (!handle || typeof handle.useUserBuffer !== 'function' || !kBuffer || !kBufferCb) return false;
  const slots = socket as unknown as Record<symbol, unknown>;
  if (slots[kBuffer] !== null || slots[kBufferCb] !== null) return false; // already in onread mode, or not the slots this was written against
  const buffer = Buffer.allocUnsafe(bytes);
  slots[kBuffer] = buffer;
  slots[kBufferCb] = (nread: number, into: Buffer): void => onChunk(into.subarray(0, nread));
  handle.useUserBuffer(buffer);
  return true;
}
