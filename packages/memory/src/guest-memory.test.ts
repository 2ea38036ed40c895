import { describe, expect, it } from 'vitest';
import { GuestMemory } from './guest-memory.ts';
import { InvalidMemorySizeError, PageOutOfRangeError } from './errors.ts';

describe('GuestMemory.writePages', () => {
  it('copies whole pages into place, from any Uint8Array view, and touches nothing else', () => {
    const memory = new GuestMemory(8);
    const source = new Uint8Array(5 * 4096);
    for (let i = 0; i < source.length; i++) source[i] = (i * 7 + 1) & 0xff;
    // A view that starts inside its buffer, like a run inside a received frame.
    memory.writePages(2, source.subarray(4096, 3 * 4096));
    expect(Buffer.compare(Buffer.from(memory.bytes.subarray(2 * 4096, 4 * 4096)), Buffer.from(source.subarray(4096, 3 * 4096)))).toBe(0);
    expect(memory.bytes.subarray(0, 2 * 4096).every((b) => b === 0)).toBe(true);
    expect(memory.bytes.subarray(4 * 4096).every((b) => b === 0)).toBe(true);
  });

  it('refuses a partial page or a range past the end, before copying anything', () => {
    const memory = new GuestMemory(4);
    expect(() => memory.writePages(0, new Uint8Array(4095))).toThrow(InvalidMemorySizeError);
    expect(() => memory.writePages(0, new Uint8Array(0))).toThrow(InvalidMemorySizeError);
    expect(() => memory.writePages(3, new Uint8Array(2 * 4096).fill(9))).toThrow(PageOutOfRangeError);
    expect(memory.bytes.every((b) => b === 0)).toBe(true);
  });
});
