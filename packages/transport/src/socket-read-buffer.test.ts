import { afterEach, describe, expect, it } from 'vitest';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { readIntoReusedBuffer } from './socket-read-buffer.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A loopback server and a connected client; resolves with both ends. */
async function socketPair(): Promise<{ accepted: Socket; client: Socket }> {
  const server: Server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const acceptedP = once(server, 'connection') as Promise<[Socket]>;
  const client = connect((server.address() as { port: number }).port, '127.0.0.1');
  const [accepted] = await acceptedP;
  cleanups.push(() => {
    client.destroy();
    accepted.destroy();
    return new Promise((r) => server.close(r));
  });
  return { accepted, client };
}

const until = async (cond: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('readIntoReusedBuffer', () => {
  it('delivers every byte in order through one buffer, and no data events', async () => {
    const { accepted, client } = await socketPair();
    const seen: Buffer[] = [];
    const buffers = new Set<ArrayBufferLike>();
    let dataEvents = 0;
    accepted.on('data', () => dataEvents++);
    expect(
      readIntoReusedBuffer(accepted, 4096, (chunk) => {
        buffers.add(chunk.buffer);
        seen.push(Buffer.from(chunk)); // valid only during the call
      }),
    ).toBe(true);
    const sent = randomBytes(3 * 1024 * 1024 + 17);
    for (let at = 0; at < sent.length; at += 100_000) client.write(sent.subarray(at, at + 100_000));
    await until(() => seen.reduce((n, b) => n + b.length, 0) === sent.length);
    expect(Buffer.concat(seen).equals(sent)).toBe(true);
    expect(seen.length).toBeGreaterThan(sent.length / 4096 - 1);
    expect(buffers.size).toBe(1);
    expect(dataEvents).toBe(0);
  });

  it('stops reading while paused, resumes, and still ends', async () => {
    const { accepted, client } = await socketPair();
    let received = 0;
    readIntoReusedBuffer(accepted, 65536, (chunk) => {
      received += chunk.length;
    });
    client.write(Buffer.alloc(1000));
    await until(() => received === 1000);
    accepted.pause();
    client.write(Buffer.alloc(5000));
    await new Promise((r) => setTimeout(r, 100));
    expect(received).toBe(1000);
    const ended = once(accepted, 'end');
    accepted.resume();
    await until(() => received === 6000);
    client.end();
    await ended;
  });

  it('refuses a socket already reading into a buffer of its own', async () => {
    const { accepted } = await socketPair();
    expect(readIntoReusedBuffer(accepted, 4096, () => {})).toBe(true);
    expect(readIntoReusedBuffer(accepted, 4096, () => {})).toBe(false);
  });
});
