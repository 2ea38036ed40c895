import { describe, expect, it } from 'vitest';
import { GuestMemory } from './guest-memory.ts';
import { isZeroPage, memoryDigest, pageSumDigest, pageSumTerm } from './page.ts';

describe('page utilities', () => {
  it('isZeroPage finds a single set byte anywhere in the page', () => {
    const mem = new GuestMemory(1);
    expect(isZeroPage(mem.page(0))).toBe(true);
    for (const at of [0, 1, 7, 8, 2048, 4095]) {
      mem.bytes.fill(0);
      mem.bytes[at] = 1;
      expect(isZeroPage(mem.page(0))).toBe(false);
    }
  });

  it('memoryDigest changes when one byte changes', () => {
    const mem = new GuestMemory(8);
    const before = memoryDigest(mem);
    mem.bytes[5 * 4096 + 17] = 9;
    expect(memoryDigest(mem)).not.toBe(before);
  });

  it('pageSumDigest can be kept up to date page by page', () => {
    const mem = new GuestMemory(16);
    for (let i = 0; i < mem.byteLength; i += 97) mem.bytes[i] = i & 0xff;
    let sum = BigInt('0x' + pageSumDigest(mem));
    const oldTerm = pageSumTerm(mem.page(3), 3);
    mem.page(3).fill(0xab);
    sum = (sum - oldTerm + pageSumTerm(mem.page(3), 3)) & ((1n << 64n) - 1n);
    expect(sum.toString(16).padStart(16, '0')).toBe(pageSumDigest(mem));
  });

  it('pageSumDigest tells apart memories whose pages are swapped', () => {
    const a = new GuestMemory(2);
    const b = new GuestMemory(2);
    a.page(0).fill(1);
    b.page(1).fill(1);
    expect(pageSumDigest(a)).not.toBe(pageSumDigest(b));
  });
});
