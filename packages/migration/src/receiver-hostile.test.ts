import { describe, expect, it } from 'vitest';
import { pack } from 'msgpackr';
import {
  MIGRATION_MAX_MESSAGE_BYTES,
  MIGRATION_PROTOCOL_VERSION,
  MIGRATION_PROTOCOL_VERSIONS_ACCEPTED,
  PAGE_ENCODING,
  PageFrameBuilder,
  joinFrameParts,
  migrationReceiverCodec,
  migrationSenderCodec,
  type DestinationMessage,
  type HelloMessage,
  type SourceMessage,
} from '@ferry/protocol';
import { createMemoryChannelPair, type MemoryChannel } from './memory-channel.ts';
import { MigrationReceiver, expectToken } from './receiver.ts';

const PAGES = 256;
const hello: HelloMessage = {
  type: 'hello',
  protocolVersion: MIGRATION_PROTOCOL_VERSION,
  migrationId: 'mig-1',
  token: 'token-1',
  vm: { vmId: 'vm-1', cpus: 1, memoryBytes: PAGES * 4096 },
  pageCount: PAGES,
};

/** A scriptable hostile source: raw access to the channel into a real receiver. */
function setup(): { peer: MemoryChannel<DestinationMessage, SourceMessage>; receiver: MigrationReceiver; replies: DestinationMessage[]; activated: () => boolean } {
  const { a: peer, b } = createMemoryChannelPair(migrationSenderCodec, migrationReceiverCodec);
  const replies: DestinationMessage[] = [];
  peer.onMessage((m) => replies.push(m));
  let activated = false;
  const receiver = new MigrationReceiver({ channel: b, authorize: expectToken('mig-1', 'token-1'), activate: () => void (activated = true), maxFrameBytes: 64 * 1024 });
  return { peer, receiver, replies, activated: () => activated };
}

function frameOf(pages: number[], round = 1): Uint8Array {
  const source = new Uint8Array(PAGES * 4096).fill(7);
  const b = new PageFrameBuilder(source);
  for (const p of pages) b.add(p, PAGE_ENCODING.raw);
  return joinFrameParts(b.take(round)!);
}

async function refused(receiver: MigrationReceiver, code: string): Promise<void> {
  await expect(receiver.done).rejects.toMatchObject({ code });
  expect(receiver.state).toBe('failed');
  expect(receiver.hasMemory).toBe(false);
}

/** Waits (bounded) until `done()`: replies cross the in-memory channel on later event-loop turns. */
async function settled(done: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 5));
}

async function inRound(peer: MemoryChannel<DestinationMessage, SourceMessage>, replies: DestinationMessage[]): Promise<void> {
  peer.send(hello);
  while (replies.length === 0) await new Promise((r) => setTimeout(r, 1)); // a sender waits for hello-accepted
  expect(replies[0]!.type).toBe('hello-accepted');
  peer.send({ type: 'start-round', round: 1, final: false });
  await new Promise((r) => setTimeout(r, 5));
}

describe('MigrationReceiver refuses hostile input with a specific code and keeps nothing', () => {
  it('wrong protocol version: hello-refused FERRY_ERR_MIGRATION_VERSION', async () => {
    const { peer, receiver, replies } = setup();
    peer.send({ ...hello, protocolVersion: 99 });
    await refused(receiver, 'FERRY_ERR_MIGRATION_VERSION');
    await settled(() => replies.length > 0);
    expect(replies[0]).toMatchObject({ type: 'hello-refused', code: 'FERRY_ERR_MIGRATION_VERSION', versionsAccepted: [...MIGRATION_PROTOCOL_VERSIONS_ACCEPTED] });
    expect(peer.closed).toBe(true);
  });

  it('wrong token: FERRY_ERR_MIGRATION_TOKEN, no memory allocated', async () => {
    const { peer, receiver, replies } = setup();
    peer.send({ ...hello, token: 'token-2' });
    await refused(receiver, 'FERRY_ERR_MIGRATION_TOKEN');
    await settled(() => replies.length > 0);
    expect(replies[0]).toMatchObject({ type: 'hello-refused', code: 'FERRY_ERR_MIGRATION_TOKEN' });
  });

  it('unknown migration id: FERRY_ERR_MIGRATION_UNKNOWN', async () => {
    const { peer, receiver } = setup();
    peer.send({ ...hello, migrationId: 'mig-other' });
    await refused(receiver, 'FERRY_ERR_MIGRATION_UNKNOWN');
  });

  it('garbage bytes: FERRY_ERR_MESSAGE_INVALID', async () => {
    const { peer, receiver } = setup();
    peer.sendRawMessage(new Uint8Array([0xc1, 0xff, 0x00, 0x13, 0x37]));
    await refused(receiver, 'FERRY_ERR_MESSAGE_INVALID');
  });

  it('a well-formed map with a bad field: FERRY_ERR_MESSAGE_INVALID', async () => {
    const { peer, receiver } = setup();
    peer.sendRawMessage(pack({ ...hello, pageCount: -5 }));
    await refused(receiver, 'FERRY_ERR_MESSAGE_INVALID');
  });

  it('an oversized message: FERRY_ERR_MESSAGE_TOO_LARGE', async () => {
    const { peer, receiver } = setup();
    peer.sendRawMessage(new Uint8Array(MIGRATION_MAX_MESSAGE_BYTES + 1));
    await refused(receiver, 'FERRY_ERR_MESSAGE_TOO_LARGE');
  });

  it('a frame before hello: FERRY_ERR_MIGRATION_UNEXPECTED', async () => {
    const { peer, receiver } = setup();
    peer.sendRawFrame(frameOf([1, 2, 3]));
    await refused(receiver, 'FERRY_ERR_MIGRATION_UNEXPECTED');
  });

  it('a truncated frame: FERRY_ERR_FRAME_TRUNCATED, the partial VM is dropped', async () => {
    const { peer, receiver, activated, replies } = setup();
    await inRound(peer, replies);
    expect(receiver.hasMemory).toBe(true);
    const frame = frameOf([10, 11, 12, 40]);
    peer.sendRawFrame(frame.subarray(0, frame.byteLength - 100));
    await refused(receiver, 'FERRY_ERR_FRAME_TRUNCATED');
    expect(activated()).toBe(false);
  });

  it('a page index out of range: FERRY_ERR_FRAME_PAGE_RANGE', async () => {
    const { peer, receiver, replies } = setup();
    await inRound(peer, replies);
    const frame = frameOf([10]);
    new DataView(frame.buffer).setUint32(16, PAGES, true); // first page = page count
    peer.sendRawFrame(frame);
    await refused(receiver, 'FERRY_ERR_FRAME_PAGE_RANGE');
  });

  it('a page map of the wrong size, or outside round 1: FERRY_ERR_MIGRATION_UNEXPECTED, nothing kept', async () => {
    for (const start of [
      { type: 'start-round', round: 1, final: false, pageMap: new Uint8Array(PAGES / 8 + 1).fill(255) }, // claims pages past the end
      { type: 'start-round', round: 1, final: false, pageMap: new Uint8Array(3) },
      { type: 'start-round', round: 1, final: true, pageMap: new Uint8Array(PAGES / 8) },
    ] as const) {
      const { peer, receiver, replies, activated } = setup();
      peer.send(hello);
      while (replies.length === 0) await new Promise((r) => setTimeout(r, 1));
      peer.send(start);
      await refused(receiver, 'FERRY_ERR_MIGRATION_UNEXPECTED');
      expect(receiver.hasMemory).toBe(false);
      expect(activated()).toBe(false);
    }
  });

  it('an oversized frame: FERRY_ERR_FRAME_TOO_LARGE', async () => {
    const { peer, receiver, replies } = setup();
    await inRound(peer, replies);
    peer.sendRawFrame(frameOf(Array.from({ length: 32 }, (_, i) => i)));
    await refused(receiver, 'FERRY_ERR_FRAME_TOO_LARGE');
  });

  it('a reserved page encoding: FERRY_ERR_FRAME_ENCODING', async () => {
    const { peer, receiver, replies } = setup();
    await inRound(peer, replies);
    const frame = frameOf([3]);
    new DataView(frame.buffer).setUint8(16 + 6, PAGE_ENCODING.delta);
    peer.sendRawFrame(frame);
    await refused(receiver, 'FERRY_ERR_FRAME_ENCODING');
  });

  it('start-round before hello-accepted (pipelined): FERRY_ERR_MIGRATION_UNEXPECTED', async () => {
    const { peer, receiver } = setup();
    peer.send(hello);
    peer.send({ type: 'start-round', round: 1, final: false });
    await refused(receiver, 'FERRY_ERR_MIGRATION_UNEXPECTED');
  });

  it('activate before ready: FERRY_ERR_MIGRATION_UNEXPECTED and never activated', async () => {
    const { peer, receiver, activated, replies } = setup();
    await inRound(peer, replies);
    peer.send({ type: 'activate' });
    await refused(receiver, 'FERRY_ERR_MIGRATION_UNEXPECTED');
    expect(activated()).toBe(false);
  });

  it('a wrong digest: FERRY_ERR_MIGRATION_DIGEST, never ready', async () => {
    const { peer, receiver, replies } = setup();
    await inRound(peer, replies);
    const frame = frameOf([5, 6]);
    peer.sendRawFrame(frame);
    peer.send({ type: 'end-round', round: 1, pagesSent: 2, bytesSent: frame.byteLength });
    peer.send({ type: 'start-round', round: 2, final: true });
    peer.send({ type: 'end-round', round: 2, pagesSent: 0, bytesSent: 0 });
    peer.send({ type: 'transfer-state', registers: new Uint8Array(8), devices: new Uint8Array(0), pausedAtMs: 1 });
    peer.send({ type: 'verify-memory', algorithm: 'page-sum', digest: '0123456789abcdef' });
    await refused(receiver, 'FERRY_ERR_MIGRATION_DIGEST');
    await settled(() => replies.length >= 3);
    expect(replies.map((m) => m.type)).toEqual(['hello-accepted', 'round-applied', 'error']);
  });

  it('state before the final round: FERRY_ERR_MIGRATION_UNEXPECTED', async () => {
    const { peer, receiver, replies } = setup();
    await inRound(peer, replies);
    peer.send({ type: 'end-round', round: 1, pagesSent: 0, bytesSent: 0 });
    peer.send({ type: 'transfer-state', registers: new Uint8Array(8), devices: new Uint8Array(0), pausedAtMs: 1 });
    await refused(receiver, 'FERRY_ERR_MIGRATION_UNEXPECTED');
  });

  it('a round whose counts disagree with what arrived: FERRY_ERR_MIGRATION_ROUND', async () => {
    const { peer, receiver, replies } = setup();
    await inRound(peer, replies);
    peer.sendRawFrame(frameOf([5]));
    peer.send({ type: 'end-round', round: 1, pagesSent: 2, bytesSent: 1 });
    await refused(receiver, 'FERRY_ERR_MIGRATION_ROUND');
  });
});
