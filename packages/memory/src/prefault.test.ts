import { describe, expect, it } from 'vitest';
import { GuestMemory } from './guest-memory.ts';
import { pageOffset } from './constants.ts';
import { memoryDigest } from './page.ts';
import { startPrefault } from './prefault.ts';

const MiB = 2 ** 20;

describe('startPrefault', () => {
  it('makes the memory resident without changing a byte, even while it is being written', async () => {
    const memory = GuestMemory.ofBytes(96 * MiB);
    const rssBefore = process.memoryUsage().rss;
    const prefault = startPrefault(memory);
    // Write while the worker walks down from the top: every value must survive its touches.
    for (let p = 0; p < memory.pageCount; p += 7) memory.bytes.fill((p % 251) + 1, pageOffset(p), pageOffset(p) + 4096);
    const expected = memoryDigest(memory);
    await prefault.done;
    expect(memoryDigest(memory)).toBe(expected);
    for (let p = 0; p < memory.pageCount; p++) {
      const first = memory.bytes[pageOffset(p)]!;
      expect(first).toBe(p % 7 === 0 ? (p % 251) + 1 : 0);
    }
    // Resident now: most of the 96 MiB was faulted in (by the writes above or by the worker).
    expect(process.memoryUsage().rss - rssBefore).toBeGreaterThan(64 * MiB);
  });

  it('touches only the pages its map names', async () => {
    const memory = GuestMemory.ofBytes(128 * MiB);
    const map = new Uint8Array(memory.pageCount / 8);
    for (let p = 0; p < memory.pageCount; p += 64) map[p >> 3]! |= 1 << (p & 7); // 1 page in 64: 2 MiB
    const rssBefore = process.memoryUsage().rss;
    await startPrefault(memory, map).done;
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(24 * MiB);
  });

  it('stop() ends the walk early and resolves; calling it again is harmless', async () => {
    const memory = GuestMemory.ofBytes(256 * MiB);
    const prefault = startPrefault(memory);
    await prefault.stop();
    await prefault.stop();
    await expect(prefault.done).resolves.toBeUndefined();
  });
});
