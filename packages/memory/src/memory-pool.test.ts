import { describe, expect, it } from 'vitest';
import { GuestMemory } from './guest-memory.ts';
import { MemoryPool } from './memory-pool.ts';

const MiB = 2 ** 20;

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('MemoryPool', () => {
  it('hands a given buffer back zeroed, for exactly its page count, once', async () => {
    const pool = new MemoryPool({ maxBytes: 64 * MiB });
    const old = GuestMemory.ofBytes(8 * MiB);
    old.bytes.fill(0xab);
    expect(pool.give(old)).toBe(true);
    expect(pool.stats.readyBytes).toBe(0); // still being zeroed (a worker starts first)
    expect(pool.take(old.pageCount + 1)).toBeUndefined(); // never another size
    const reused = await pool.take(old.pageCount); // waits for the zeroing
    expect(reused!.buffer).toBe(old.buffer);
    expect(reused!.bytes.every((b) => b === 0)).toBe(true);
    expect(pool.take(old.pageCount)).toBeUndefined(); // handed out once
    expect(pool.stats).toMatchObject({ heldBytes: 0, readyBytes: 0, given: 1, taken: 1 });
    pool.close();
  });

  it('with a written-pages map zeroes only those pages and faults nothing else in', async () => {
    const pool = new MemoryPool({ maxBytes: 256 * MiB });
    const old = GuestMemory.ofBytes(128 * MiB);
    const map = new Uint8Array(old.pageCount / 8);
    for (const p of [0, 1, 2, 500, old.pageCount - 1]) {
      old.bytes.fill(7, p * 4096, (p + 1) * 4096);
      map[p >> 3]! |= 1 << (p & 7);
    }
    const rssBefore = process.memoryUsage().rss;
    pool.give(old, map);
    const reused = await pool.take(old.pageCount);
    expect(reused!.bytes.every((b) => b === 0)).toBe(true); // reading maps untouched pages to the zero page: no RSS
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(32 * MiB);
    pool.close();
  });

  it('clear() drops what it holds; a later give() is kept again', async () => {
    const pool = new MemoryPool({ maxBytes: 8 * MiB });
    pool.give(GuestMemory.ofBytes(4 * MiB));
    pool.clear();
    expect(pool.stats).toMatchObject({ heldBytes: 0, evicted: 1 });
    expect(pool.take(1024)).toBeUndefined();
    expect(pool.give(GuestMemory.ofBytes(4 * MiB))).toBe(true);
    pool.close();
  });

  it('keeps nothing past maxBytes, or after close', () => {
    const pool = new MemoryPool({ maxBytes: 8 * MiB });
    expect(pool.give(GuestMemory.ofBytes(4 * MiB))).toBe(true);
    expect(pool.give(GuestMemory.ofBytes(8 * MiB))).toBe(false);
    expect(pool.stats).toMatchObject({ heldBytes: 4 * MiB, refused: 1 });
    pool.close();
    expect(pool.stats.heldBytes).toBe(0);
    expect(pool.give(GuestMemory.ofBytes(MiB))).toBe(false);
  });

  it('drops a buffer nobody took after idleMs and says so', async () => {
    let drops = 0;
    const pool = new MemoryPool({ maxBytes: 8 * MiB, idleMs: 30, onDrop: () => drops++ });
    pool.give(GuestMemory.ofBytes(MiB));
    await until(() => pool.stats.evicted === 1);
    expect(pool.stats.heldBytes).toBe(0);
    expect(drops).toBe(1);
    expect(pool.take(MiB / 4096)).toBeUndefined();
  });
});
