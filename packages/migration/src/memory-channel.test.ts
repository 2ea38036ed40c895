import { describe, expect, it } from 'vitest';
import { migrationReceiverCodec, migrationSenderCodec, type SourceMessage } from '@ferry/protocol';
import { createMemoryChannelPair } from './memory-channel.ts';

function pair(options = {}) {
  return createMemoryChannelPair(migrationSenderCodec, migrationReceiverCodec, options);
}

describe('in-memory channel pair', () => {
  it('delivers messages and frames asynchronously, in order, through the real codecs', async () => {
    const { a, b } = pair();
    const seen: string[] = [];
    b.onMessage((m: SourceMessage) => seen.push(m.type));
    b.onFrame((f) => seen.push(`frame ${f.byteLength}`));
    a.send({ type: 'start-round', round: 1, final: false });
    a.sendFrame([new Uint8Array(3), new Uint8Array(5)]);
    a.send({ type: 'activate' });
    expect(seen).toEqual([]); // nothing synchronous
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(['start-round', 'frame 8', 'activate']);
  });

  it('counts buffered bytes until delivered and resolves drained() below the low-water mark', async () => {
    const { a, b } = pair({ lowWaterBytes: 1000, bytesPerTurn: 1500 });
    b.onFrame(() => {});
    for (let i = 0; i < 4; i++) a.sendFrame([new Uint8Array(1000)]);
    expect(a.bufferedBytes).toBe(4000);
    await a.drained();
    expect(a.bufferedBytes).toBeLessThanOrEqual(1000);
  });

  it('cuts off a sender that ignores backpressure (4009) instead of queueing without bound', async () => {
    const { a, b } = pair({ maxBufferedBytes: 10_000 });
    const closes: number[] = [];
    a.onClose((i) => closes.push(i.code));
    b.onClose((i) => closes.push(i.code));
    for (let i = 0; i < 11; i++) {
      if (!a.closed) a.sendFrame([new Uint8Array(1000)]);
    }
    expect(a.closed).toBe(true);
    // Close handlers run on later turns of the event loop (the peer's one turn after ours).
    for (let i = 0; i < 100 && closes.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
    expect(closes).toEqual([4009, 4009]);
  });

  it('closes both ends with the error code when a message fails validation', async () => {
    const { a, b } = pair();
    const reasons: string[] = [];
    a.onClose((i) => reasons.push(i.reason));
    b.onClose((i) => reasons.push(i.reason));
    a.sendRawMessage(new Uint8Array([0xc1]));
    for (let i = 0; i < 100 && reasons.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
    expect(reasons.sort()).toEqual(['FERRY_ERR_MESSAGE_INVALID', 'FERRY_ERR_MESSAGE_INVALID']);
    expect(() => a.send({ type: 'activate' })).toThrow(expect.objectContaining({ code: 'FERRY_ERR_CHANNEL_CLOSED' }));
  });
});
