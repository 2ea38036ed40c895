import { describe, expect, it } from 'vitest';
import { DirtyLog } from './dirty-log.ts';
import { GuestMemory } from './guest-memory.ts';
import { PageOutOfRangeError } from './errors.ts';

describe('DirtyLog', () => {
  it('harvest returns each marked page once, ascending, and clears it', () => {
    const log = new DirtyLog(1000);
    for (const p of [999, 0, 31, 32, 500, 31]) log.mark(p);
    expect(log.count()).toBe(5);
    expect([...log.harvest()]).toEqual([0, 31, 32, 500, 999]);
    expect(log.count()).toBe(0);
    expect(log.harvest().length).toBe(0);
  });

  it('remembers pages ever written across harvests', () => {
    const log = new DirtyLog(64);
    log.mark(3);
    expect(log.isEverWritten(3)).toBe(true);
    log.harvest();
    expect(log.isEverWritten(3)).toBe(true);
    expect(log.isEverWritten(4)).toBe(false);
    expect(log.countEverWritten()).toBe(1);
  });

  it('harvest of a fully dirty log lists every page', () => {
    const log = new DirtyLog(100_000);
    for (let p = 0; p < 100_000; p++) log.mark(p);
    const pages = log.harvest();
    expect(pages.length).toBe(100_000);
    expect(pages[99_999]).toBe(99_999);
  });

  it('lists the pages ever written, ascending: harvested ones and dirty ones, and agrees with the bitmap', () => {
    const log = new DirtyLog(1000);
    for (const p of [999, 3, 64, 31, 32]) log.mark(p);
    log.harvest();
    log.mark(500);
    log.mark(3);
    expect(Array.from(log.everWrittenPages())).toEqual([3, 31, 32, 64, 500, 999]);
    const map = log.everWrittenBitmap();
    const fromMap = Array.from({ length: 1000 }, (_, p) => p).filter((p) => (map[p >> 3]! & (1 << (p & 7))) !== 0);
    expect(fromMap).toEqual([3, 31, 32, 64, 500, 999]);
    expect(new DirtyLog(64).everWrittenPages()).toHaveLength(0);
  });

  it('marks the pages of a page map as ever written, from any byte offset, and refuses a map too short', () => {
    const pageCount = 77; // not a whole number of words or bytes
    const pages = [0, 5, 31, 32, 40, 63, 64, 70, 76];
    const source = new DirtyLog(pageCount);
    source.markEverWritten(pages);
    const map = source.everWrittenBitmap();
    const aligned = new DirtyLog(pageCount);
    aligned.markEverWrittenMap(map);
    expect([...aligned.everWrittenPages()]).toEqual(pages);
    const shifted = new Uint8Array(map.byteLength + 1);
    shifted.set(map, 1);
    const unaligned = new DirtyLog(pageCount);
    unaligned.markEverWrittenMap(shifted.subarray(1));
    expect([...unaligned.everWrittenPages()]).toEqual(pages);
    const padded = new Uint8Array(16).fill(0xff); // bits past the last page are not pages
    const full = new DirtyLog(pageCount);
    full.markEverWrittenMap(padded);
    expect(full.countEverWritten()).toBe(pageCount);
    expect(() => new DirtyLog(pageCount).markEverWrittenMap(new Uint8Array(9))).toThrow(/does not cover 77 pages/);
  });

  it('refuses page indices outside memory', () => {
    const log = new DirtyLog(10);
    expect(() => log.mark(10)).toThrow(PageOutOfRangeError);
    expect(() => log.mark(-1)).toThrow(PageOutOfRangeError);
  });
});

describe('GuestMemory', () => {
  it('page views alias the shared buffer and are bounds-checked', () => {
    const mem = new GuestMemory(4);
    mem.page(2)[0] = 7;
    expect(mem.bytes[2 * 4096]).toBe(7);
    expect(() => mem.page(4)).toThrow(PageOutOfRangeError);
    expect(() => mem.pages(3, 2)).toThrow(PageOutOfRangeError);
  });

  it('addresses pages beyond 2 GiB (byte offsets past 32 bits)', () => {
    const page = 524_288; // the first page at 2 GiB, where a 32-bit shift wraps negative
    const mem = new GuestMemory(page + 2);
    mem.page(page).fill(7);
    mem.writePage(page + 1, new Uint8Array(4096).fill(9));
    expect(mem.bytes[page * 4096]).toBe(7);
    expect(mem.bytes[(page + 1) * 4096 + 4095]).toBe(9);
    expect(mem.pages(page, 2).byteLength).toBe(8192);
  });
});
