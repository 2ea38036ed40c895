import { describe, expect, it } from 'vitest';
import { FrameSplitter } from './frame-splitter.ts';

const KIND_FRAME = 2;
const MAX_PAYLOAD = 4096;

/** A client ws frame: FIN/opcode byte, mask bit and length, key, payload masked with the key. */
function wsFrame(opts: { fin?: boolean; opcode?: number; rsv?: number; key?: number[] | null; payload: Buffer; length64?: boolean }): Buffer {
  const { fin = true, opcode = 2, rsv = 0, key = [0, 0, 0, 0], payload } = opts;
  const n = payload.length;
  const lenBytes = opts.length64 ? 8 : n < 126 ? 0 : n < 65536 ? 2 : 8;
  const header = Buffer.alloc(2 + lenBytes + (key ? 4 : 0));
  header[0] = (fin ? 0x80 : 0) | rsv | opcode;
  header[1] = (key ? 0x80 : 0) | (lenBytes === 0 ? n : lenBytes === 2 ? 126 : 127);
  if (lenBytes === 2) header.writeUInt16BE(n, 2);
  if (lenBytes === 8) header.writeBigUInt64BE(BigInt(n), 2);
  const body = Buffer.from(payload);
  if (key) {
    Buffer.from(key).copy(header, 2 + lenBytes);
    for (let i = 0; i < body.length; i++) body[i]! ^= key[i & 3]!;
  }
  return Buffer.concat([header, body]);
}

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function payloadOf(random: () => number, kind: number, bytes: number): Buffer {
  const p = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) p[i] = Math.floor(random() * 256);
  p[0] = kind;
  return p;
}

interface Expected {
  readonly bytes: Buffer;
  /** The payload after the kind byte when the splitter must take the frame out; undefined when ws gets it. */
  readonly taken: Buffer | undefined;
}

/** A random stream of frames the splitter must take out or forward, with what each must become. */
function randomStream(random: () => number): Expected[] {
  const frames: Expected[] = [];
  const count = 1 + Math.floor(random() * 12);
  for (let i = 0; i < count; i++) {
    const pick = Math.floor(random() * 8);
    const size = 1 + Math.floor(random() * (random() < 0.5 ? 120 : 3000));
    if (pick <= 2) {
      const p = payloadOf(random, KIND_FRAME, size);
      frames.push({ bytes: wsFrame({ payload: p, length64: random() < 0.1 }), taken: p.subarray(1) });
    } else if (pick === 3) {
      frames.push({ bytes: wsFrame({ payload: payloadOf(random, 1, size) }), taken: undefined }); // control message
    } else if (pick === 4) {
      frames.push({ bytes: wsFrame({ payload: payloadOf(random, KIND_FRAME, size), key: [1, 2, 3, 4] }), taken: undefined }); // masked: ws unmasks
    } else if (pick === 5) {
      frames.push({ bytes: wsFrame({ opcode: 0x9, payload: Buffer.from('ping') }), taken: undefined });
    } else if (pick === 6) {
      // A fragmented message whose fragments look like page frames: ws must get all of it.
      frames.push({ bytes: wsFrame({ fin: false, payload: payloadOf(random, KIND_FRAME, size) }), taken: undefined });
      frames.push({ bytes: wsFrame({ opcode: 0x9, payload: Buffer.alloc(0) }), taken: undefined });
      frames.push({ bytes: wsFrame({ opcode: 0x0, payload: payloadOf(random, KIND_FRAME, size) }), taken: undefined });
    } else {
      const oddity = Math.floor(random() * 3);
      if (oddity === 0) frames.push({ bytes: wsFrame({ payload: payloadOf(random, KIND_FRAME, MAX_PAYLOAD + 1) }), taken: undefined }); // over the cap
      else if (oddity === 1) frames.push({ bytes: wsFrame({ rsv: 0x40, payload: payloadOf(random, KIND_FRAME, size) }), taken: undefined }); // RSV1
      else frames.push({ bytes: wsFrame({ key: null, payload: payloadOf(random, KIND_FRAME, size) }), taken: undefined }); // unmasked client frame
    }
  }
  return frames;
}

/** Feeds `stream` in random chunks; returns what the sinks saw, as one ordered event list. */
function split(stream: Buffer, random: () => number): { forwarded: Buffer; events: { taken: Buffer; forwardedBefore: number }[] } {
  const forwardedParts: Buffer[] = [];
  let forwardedBytes = 0;
  const events: { taken: Buffer; forwardedBefore: number }[] = [];
  const splitter = new FrameSplitter(
    {
      forward: (b) => {
        forwardedParts.push(Buffer.from(b));
        forwardedBytes += b.length;
      },
      frame: (p) => events.push({ taken: Buffer.from(p), forwardedBefore: forwardedBytes }),
    },
    { kindByte: KIND_FRAME, maxPayloadBytes: MAX_PAYLOAD },
  );
  for (let at = 0; at < stream.length; ) {
    const n = Math.min(stream.length - at, 1 + Math.floor(random() * (random() < 0.3 ? 8 : 5000)));
    splitter.push(stream.subarray(at, at + n));
    at += n;
  }
  return { forwarded: Buffer.concat(forwardedParts), events };
}

describe('FrameSplitter', () => {
  it('takes out exactly the unfragmented zero-key page frames, and forwards every other byte to ws unchanged and in order, however the reads split', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const random = rng(seed);
      const frames = randomStream(random);
      const { forwarded, events } = split(Buffer.concat(frames.map((f) => f.bytes)), random);
      const expectedForwarded = Buffer.concat(frames.filter((f) => !f.taken).map((f) => f.bytes));
      expect(forwarded.equals(expectedForwarded), `seed ${seed}`).toBe(true);
      const taken = frames.flatMap((f, i) => (f.taken ? [{ i, payload: f.taken }] : []));
      expect(events.length, `seed ${seed}`).toBe(taken.length);
      taken.forEach((t, k) => {
        expect(events[k]!.taken.equals(t.payload), `seed ${seed} frame ${t.i}`).toBe(true);
        // Ordered: everything before this frame in the stream was forwarded before it was delivered.
        const before = frames.slice(0, t.i).filter((f) => !f.taken).reduce((a, f) => a + f.bytes.length, 0);
        expect(events[k]!.forwardedBefore, `seed ${seed} frame ${t.i}`).toBe(before);
      });
    }
  });

  it('a frame inside one read is delivered as a view of it; one spread over reads is assembled', () => {
    const payload = payloadOf(rng(3), KIND_FRAME, 1000);
    const bytes = wsFrame({ payload });
    const seen: Buffer[] = [];
    const splitter = new FrameSplitter({ forward: () => {}, frame: (p) => seen.push(p) }, { kindByte: KIND_FRAME, maxPayloadBytes: MAX_PAYLOAD });
    splitter.push(bytes);
    expect(seen[0]!.buffer).toBe(bytes.buffer);
    splitter.push(bytes.subarray(0, 500));
    splitter.push(bytes.subarray(500));
    expect(seen[1]!.buffer).not.toBe(bytes.buffer);
    expect(seen[1]!.equals(payload.subarray(1))).toBe(true);
  });

  it('a length past 2^53 goes to ws with everything after it (ws refuses it and closes)', () => {
    const forwarded: Buffer[] = [];
    const taken: Buffer[] = [];
    const splitter = new FrameSplitter({ forward: (b) => forwarded.push(Buffer.from(b)), frame: (p) => taken.push(p) }, { kindByte: KIND_FRAME, maxPayloadBytes: MAX_PAYLOAD });
    const huge = Buffer.from([0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    const after = wsFrame({ payload: payloadOf(rng(4), KIND_FRAME, 10) });
    splitter.push(Buffer.concat([huge, after]));
    expect(taken).toEqual([]);
    expect(Buffer.concat(forwarded).equals(Buffer.concat([huge, after]))).toBe(true);
  });
});
