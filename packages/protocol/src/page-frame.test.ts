import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  FRAME_PAGE_BYTES,
  MAX_RUN_PAGES,
  PAGE_ENCODING,
  PAGE_FRAME_HEADER_BYTES,
  PageFrameBuilder,
  joinFrameParts,
  readPageFrame,
  type PageEncoding,
} from './page-frame.ts';

const PAGES = 512;

function sourceMemory(): Uint8Array {
  const bytes = new Uint8Array(PAGES * FRAME_PAGE_BYTES);
  for (let p = 0; p < PAGES; p++) bytes.fill((p % 251) + 1, p * FRAME_PAGE_BYTES, (p + 1) * FRAME_PAGE_BYTES);
  return bytes;
}

/** Applies a frame to `target` the way a receiver does. */
function apply(frame: Uint8Array, target: Uint8Array, pageCount = PAGES): ReturnType<typeof readPageFrame> {
  return readPageFrame(frame, pageCount, (first, count, encoding, offset) => {
    if (encoding === PAGE_ENCODING.raw) target.set(frame.subarray(offset, offset + count * FRAME_PAGE_BYTES), first * FRAME_PAGE_BYTES);
    else target.fill(0, first * FRAME_PAGE_BYTES, (first + count) * FRAME_PAGE_BYTES);
  });
}

describe('page frame', () => {
  it('round-trips any set of raw and zero pages into identical memory', () => {
    const source = sourceMemory();
    fc.assert(
      fc.property(fc.uniqueArray(fc.record({ page: fc.integer({ min: 0, max: PAGES - 1 }), zero: fc.boolean() }), { selector: (x) => x.page, maxLength: 300, minLength: 1 }), (pages) => {
        const builder = new PageFrameBuilder(source);
        const expected = new Uint8Array(source.byteLength).fill(0xee);
        const target = new Uint8Array(source.byteLength).fill(0xee);
        for (const { page, zero } of pages) {
          builder.add(page, zero ? PAGE_ENCODING.zero : PAGE_ENCODING.raw);
          if (zero) expected.fill(0, page * FRAME_PAGE_BYTES, (page + 1) * FRAME_PAGE_BYTES);
          else expected.set(source.subarray(page * FRAME_PAGE_BYTES, (page + 1) * FRAME_PAGE_BYTES), page * FRAME_PAGE_BYTES);
        }
        const summary = apply(joinFrameParts(builder.take(7)!), target);
        expect(summary.round).toBe(7);
        expect(summary.rawPages + summary.zeroPages).toBe(pages.length);
        expect(Buffer.from(target).equals(Buffer.from(expected))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('sends a contiguous run as one view of the source, without copying', () => {
    const source = sourceMemory();
    const builder = new PageFrameBuilder(source);
    for (let p = 100; p < 356; p++) builder.add(p, PAGE_ENCODING.raw);
    const parts = builder.take(1)!;
    expect(parts).toHaveLength(2);
    expect(parts[1]!.buffer).toBe(source.buffer);
    expect(parts[1]!.byteOffset).toBe(100 * FRAME_PAGE_BYTES);
    expect(parts[0]!.byteLength).toBe(PAGE_FRAME_HEADER_BYTES + 8);
    expect(builder.take(2)).toBeUndefined();
  });

  it('splits runs longer than MAX_RUN_PAGES', () => {
    const big = new Uint8Array((MAX_RUN_PAGES + 10) * FRAME_PAGE_BYTES);
    const builder = new PageFrameBuilder(big);
    for (let p = 0; p < MAX_RUN_PAGES + 10; p++) builder.add(p, PAGE_ENCODING.zero);
    const frame = joinFrameParts(builder.take(1)!);
    expect(readPageFrame(frame, MAX_RUN_PAGES + 10, () => {}).runCount).toBe(2);
  });

  describe('refuses before copying anything', () => {
    const source = sourceMemory();
    const valid = (): Uint8Array => {
      const b = new PageFrameBuilder(source);
      for (const p of [1, 2, 3, 9]) b.add(p, PAGE_ENCODING.raw);
      b.add(20, PAGE_ENCODING.zero);
      return joinFrameParts(b.take(1)!);
    };
    const cases: [string, (f: Uint8Array) => Uint8Array, string][] = [
      ['over the size cap', (f) => f, 'FERRY_ERR_FRAME_TOO_LARGE'],
      ['shorter than a header', (f) => f.subarray(0, 10), 'FERRY_ERR_FRAME_TRUNCATED'],
      ['bad magic', (f) => (f[0] = 0, f), 'FERRY_ERR_FRAME_INVALID'],
      ['kind 0', (f) => (f[2] = 0, f), 'FERRY_ERR_FRAME_INVALID'],
      ['unknown kind', (f) => (f[2] = 9, f), 'FERRY_ERR_FRAME_INVALID'],
      ['no runs', (f) => (new DataView(f.buffer).setUint32(8, 0, true), f), 'FERRY_ERR_FRAME_INVALID'],
      ['a run table longer than the frame', (f) => (new DataView(f.buffer).setUint32(8, 1e6, true), f), 'FERRY_ERR_FRAME_TRUNCATED'],
      ['data cut short', (f) => f.subarray(0, f.byteLength - 1), 'FERRY_ERR_FRAME_TRUNCATED'],
      ['trailing bytes', (f) => joinFrameParts([f, new Uint8Array(3)]), 'FERRY_ERR_FRAME_INVALID'],
      ['a run past the last page', (f) => (new DataView(f.buffer).setUint32(16, PAGES - 1, true), f), 'FERRY_ERR_FRAME_PAGE_RANGE'],
      ['a run of zero pages', (f) => (new DataView(f.buffer).setUint16(20, 0, true), f), 'FERRY_ERR_FRAME_INVALID'],
      ['encoding 0', (f) => (f[22] = 0, f), 'FERRY_ERR_FRAME_ENCODING'],
      ['hash reference (reserved)', (f) => (f[22] = PAGE_ENCODING.hashRef, f), 'FERRY_ERR_FRAME_ENCODING'],
      ['delta (reserved)', (f) => (f[22] = PAGE_ENCODING.delta, f), 'FERRY_ERR_FRAME_ENCODING'],
      ['unknown encoding', (f) => (f[22] = 200, f), 'FERRY_ERR_FRAME_ENCODING'],
      ['reserved byte set', (f) => (f[23] = 1, f), 'FERRY_ERR_FRAME_INVALID'],
      ['a zero run turned raw (data length disagrees)', (f) => (f[16 + 2 * 8 + 6] = PAGE_ENCODING.raw, f), 'FERRY_ERR_FRAME_INVALID'],
    ];
    for (const [name, corrupt, code] of cases) {
      it(`${name}: ${code}`, () => {
        const frame = corrupt(valid());
        let visited = 0;
        const cap = name === 'over the size cap' ? 100 : undefined;
        expect(() => readPageFrame(frame, PAGES, () => visited++, cap)).toThrow(expect.objectContaining({ code }));
        expect(visited).toBe(0);
      });
    }
  });

  it('random bytes never get past validation into a visit with bad bounds', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          readPageFrame(bytes, PAGES, (first, count, encoding: PageEncoding, offset) => {
            expect(first + count).toBeLessThanOrEqual(PAGES);
            if (encoding === PAGE_ENCODING.raw) expect(offset + count * FRAME_PAGE_BYTES).toBeLessThanOrEqual(bytes.byteLength);
          });
        } catch (err) {
          expect((err as { code?: string }).code).toMatch(/^FERRY_ERR_FRAME_/);
        }
      }),
    );
  });
});
