/**
 * A scriptable misbehaving WebSocket client for tests (NATS's test_server idea, from the client
 * side): it does the HTTP upgrade by hand over a raw TCP socket and then writes whatever bytes a
 * test asks for — garbage, frames with lying lengths, truncated frames, wrong opcodes — and can
 * hang up midway. It records the HTTP status of the upgrade and the close code the server sends.
 */
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { WIRE_KIND } from './ws-channel.ts';

/** A ws frame to write; fields default to a final, masked, binary frame with an honest length. */
export interface RawFrame {
  readonly payload: Uint8Array;
  /** Default 0x2 (binary). */
  readonly opcode?: number;
  /** Default true. */
  readonly fin?: boolean;
  /** Length to put in the header; default payload length (set it to lie). */
  readonly declaredLength?: number;
  /** Client frames must be masked; default true. */
  readonly masked?: boolean;
}

/** The result of the upgrade: `status` 101 when the server accepted. */
export interface HostileUpgrade {
  readonly status: number;
}

/** A raw-socket WebSocket client that can break every rule. */
export class HostilePeer {
  private readonly socket: Socket;
  private received = Buffer.alloc(0);
  private upgraded = false;
  /** Close code from the server's close frame, if one arrived. */
  closeCode: number | undefined;
  /** Resolves when the TCP connection ends (either side). */
  readonly ended: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    this.ended = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      if (this.upgraded) this.parseFrames();
    });
  }

  /** Opens a TCP connection and sends the upgrade for `url` (ws://host:port/path?query) with optional headers. */
  static async connect(url: string, headers: Record<string, string> = {}): Promise<{ peer: HostilePeer; upgrade: HostileUpgrade }> {
    const u = new URL(url);
    const socket = connect(Number(u.port), u.hostname);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const peer = new HostilePeer(socket);
    const lines = [
      `GET ${u.pathname}${u.search} HTTP/1.1`,
      `Host: ${u.host}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
      'Sec-WebSocket-Version: 13',
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ];
    socket.write(lines.join('\r\n') + '\r\n\r\n');
    const status = await peer.readStatus();
    return { peer, upgrade: { status } };
  }

  /** Writes raw bytes as they are. */
  sendRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Writes one ws frame built from `frame` (may lie about its length, may be unmasked). */
  sendFrame(frame: RawFrame): void {
    this.sendRaw(encodeRawFrame(frame));
  }

  /** Writes a Ferry control message: kind byte 1 then `body`, as one binary frame. */
  sendControl(body: Uint8Array): void {
    this.sendFrame({ payload: Buffer.concat([Buffer.from([WIRE_KIND.CONTROL]), body]) });
  }

  /** Writes the first `keepBytes` of a frame and stops (a truncated frame). */
  sendTruncated(frame: RawFrame, keepBytes: number): void {
    this.sendRaw(encodeRawFrame(frame).subarray(0, keepBytes));
  }

  /** Destroys the TCP socket without a close frame. */
  hangUp(): void {
    this.socket.destroy();
  }

  /** Waits until the server ends the connection; resolves with the close code seen (undefined if none). */
  async closedByServer(timeoutMs = 5000): Promise<number | undefined> {
    const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), timeoutMs).unref());
    const r = await Promise.race([this.ended.then(() => 'ended' as const), timer]);
    if (r === 'timeout') throw new Error(`server did not close within ${timeoutMs} ms`);
    return this.closeCode;
  }

  private async readStatus(): Promise<number> {
    for (;;) {
      const end = this.received.indexOf('\r\n\r\n');
      if (end >= 0) {
        const head = this.received.subarray(0, end).toString('latin1');
        this.received = this.received.subarray(end + 4);
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
        this.upgraded = status === 101;
        if (this.upgraded) this.parseFrames();
        return status;
      }
      const more = await Promise.race([
        new Promise<boolean>((resolve) => this.socket.once('data', () => resolve(true))),
        this.ended.then(() => false),
      ]);
      if (!more && this.received.indexOf('\r\n\r\n') < 0) return 0;
    }
  }

  private parseFrames(): void {
    // Server frames are unmasked; only the close frame matters to tests.
    while (this.received.length >= 2) {
      const b1 = this.received[1]! & 0x7f;
      let offset = 2;
      let length = b1;
      if (b1 === 126) {
        if (this.received.length < 4) return;
        length = this.received.readUInt16BE(2);
        offset = 4;
      } else if (b1 === 127) {
        if (this.received.length < 10) return;
        length = Number(this.received.readBigUInt64BE(2));
        offset = 10;
      }
      if (this.received.length < offset + length) return;
      const opcode = this.received[0]! & 0x0f;
      if (opcode === 0x8) {
        if (length >= 2) this.closeCode = this.received.readUInt16BE(offset);
        // Answer a close by hanging up (no close frame back: tests only need the code).
        this.socket.end();
      }
      this.received = this.received.subarray(offset + length);
    }
  }
}

/** Encodes a client ws frame (masked with a random key unless `masked: false`). */
export function encodeRawFrame(frame: RawFrame): Buffer {
  const masked = frame.masked ?? true;
  const opcode = frame.opcode ?? 0x2;
  const length = frame.declaredLength ?? frame.payload.byteLength;
  const parts: Buffer[] = [];
  const head = Buffer.alloc(length < 126 ? 2 : length < 65536 ? 4 : 10);
  head[0] = ((frame.fin ?? true) ? 0x80 : 0) | opcode;
  if (length < 126) head[1] = length;
  else if (length < 65536) {
    head[1] = 126;
    head.writeUInt16BE(length, 2);
  } else {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(length), 2);
  }
  if (masked) head[1] = head[1]! | 0x80;
  parts.push(head);
  const payload = Buffer.from(frame.payload);
  if (masked) {
    const key = randomBytes(4);
    parts.push(key);
    for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ key[i & 3]!;
  }
  parts.push(payload);
  return Buffer.concat(parts);
}
