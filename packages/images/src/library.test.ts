import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirtyLog, GuestMemory, PAGE_SIZE_BYTES, isZeroPage } from '@ferry/memory';
import { BUILT_IN_APPLIANCES, generateAppliance } from './appliances.ts';
import { ImageExistsError, MemoryTooSmallError, PoolPageCorruptedError, UnknownImageError } from './errors.ts';
import { readGuestConfig, verifyCredential } from './guest-config.ts';
import { ImageLibrary } from './library.ts';

const CONFIG = { instanceId: 'vm-1', hostname: 'web-1', ip: '10.0.0.5', accessRules: [{ protocol: 'tcp' as const, port: 22, cidr: '0.0.0.0/0' }], user: 'ferry', password: 's3cret-pw' };

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-images-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The distinct non-zero page contents across all built-in appliances, computed independently of the pool. */
function distinctBuiltInPages(): { logical: number; distinct: number } {
  const seen = new Set<string>();
  let logical = 0;
  for (const def of BUILT_IN_APPLIANCES) {
    generateAppliance(def, (_p, bytes) => {
      if (isZeroPage(bytes)) return;
      logical++;
      seen.add(Buffer.from(bytes).toString('base64'));
    });
  }
  return { logical, distinct: seen.size };
}

describe('ImageLibrary', () => {
  it('stores the built-in appliances at the cost of their distinct pages only', async () => {
    const lib = await ImageLibrary.open(dir);
    const expected = distinctBuiltInPages();
    const stats = lib.stats();
    expect(stats.images).toBe(BUILT_IN_APPLIANCES.length);
    expect(stats.logicalPages).toBe(expected.logical);
    expect(stats.storedPages).toBe(expected.distinct);
    expect(stats.dedupRatio).toBeGreaterThan(2);
    const { size } = await stat(join(dir, 'pool.bin'));
    expect(size).toBe(expected.distinct * PAGE_SIZE_BYTES);
    const lamp = await lib.get('lamp');
    const base = await lib.get('base-os');
    expect(lamp.pages).toBe(lamp.uniquePages + lamp.sharedPages);
    expect(lamp.sharedPages).toBeGreaterThanOrEqual(base.pages - 1); // all base-os layers, not the header
    expect(lib.list().map((i) => i.id)).toEqual(BUILT_IN_APPLIANCES.map((d) => d.id));
    await lib.close();
  });

  it('reopening generates nothing new and is deterministic across libraries', async () => {
    const a = await ImageLibrary.open(dir);
    const before = a.stats();
    await a.close();
    const again = await ImageLibrary.open(dir);
    expect(again.stats()).toEqual(before);
    await again.close();
    const other = await mkdtemp(join(tmpdir(), 'ferry-images-'));
    try {
      const b = await ImageLibrary.open(other);
      expect(await readFile(join(other, 'pool.idx'), 'utf8')).toBe(await readFile(join(dir, 'pool.idx'), 'utf8'));
      await b.close();
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it('provision copies exactly the appliance pages, marks them written, and writes the config to page 1', async () => {
    const lib = await ImageLibrary.open(dir);
    const def = BUILT_IN_APPLIANCES.find((d) => d.id === 'redis')!;
    const memory = GuestMemory.ofBytes(def.memoryBytes);
    const log = new DirtyLog(memory.pageCount);
    const report = await lib.provision('redis', memory, log, CONFIG);
    const expected = new Map<number, Buffer>();
    generateAppliance(def, (p, bytes) => {
      if (!isZeroPage(bytes)) expected.set(p, Buffer.from(bytes));
    });
    expect(report.pagesCopied).toBe(expected.size);
    for (let p = 0; p < memory.pageCount; p++) {
      if (p === 1) continue;
      const want = expected.get(p);
      if (want) expect(Buffer.compare(Buffer.from(memory.page(p)), want)).toBe(0);
      else expect(isZeroPage(memory.page(p))).toBe(true);
      expect(log.isEverWritten(p)).toBe(want !== undefined);
    }
    expect(log.isEverWritten(1)).toBe(true);
    expect(log.count()).toBe(0);
    const record = readGuestConfig(memory);
    expect(record).toMatchObject({ instanceId: 'vm-1', imageId: 'redis', hostname: 'web-1', ip: '10.0.0.5', user: 'ferry', accessRules: CONFIG.accessRules });
    expect(Buffer.from(memory.page(1)).includes('s3cret-pw')).toBe(false);
    expect(verifyCredential(record.credentialHash, 's3cret-pw')).toBe(true);
    await lib.close();
  });

  it('refuses unknown images and memory smaller than the image', async () => {
    const lib = await ImageLibrary.open(dir);
    const small = GuestMemory.ofBytes(1024 * 1024);
    await expect(lib.provision('nope', small, new DirtyLog(small.pageCount), CONFIG)).rejects.toBeInstanceOf(UnknownImageError);
    await expect(lib.provision('lamp', small, new DirtyLog(small.pageCount), CONFIG)).rejects.toBeInstanceOf(MemoryTooSmallError);
    expect(isZeroPage(small.page(1))).toBe(true);
    await lib.close();
  });

  it('captures a VM as a new image, deduplicating against the pool, and provisions it back byte for byte', async () => {
    const lib = await ImageLibrary.open(dir);
    const memory = GuestMemory.ofBytes(4 * 1024 * 1024);
    const log = new DirtyLog(memory.pageCount);
    await lib.provision('base-os', memory, log, CONFIG);
    const base = lib.stats().storedPages;
    for (let p = 600; p < 610; p++) {
      memory.page(p).fill(p & 0xff);
      log.mark(p);
    }
    const report = await lib.capture(memory, { id: 'my-app', description: 'base-os plus data', dirtyLog: log });
    expect(report.newPages).toBe(10);
    expect(report.dedupedPages).toBe(report.image.pages - 10);
    expect(lib.stats().storedPages).toBe(base + 10);
    await expect(lib.capture(memory, { id: 'my-app' })).rejects.toBeInstanceOf(ImageExistsError);

    const reopened = await ImageLibrary.open(dir);
    const copy = GuestMemory.ofBytes(4 * 1024 * 1024);
    await reopened.provision('my-app', copy, new DirtyLog(copy.pageCount), CONFIG);
    for (let p = 2; p < memory.pageCount; p++) expect(Buffer.compare(Buffer.from(copy.page(p)), Buffer.from(memory.page(p)))).toBe(0);
    await reopened.close();
    await lib.close();
  });

  it('detects a corrupted pool page on provision and on verify', async () => {
    const lib = await ImageLibrary.open(dir);
    const manifest = await lib.manifestOf('minimal');
    await lib.close();
    const file = await open(join(dir, 'pool.bin'), 'r+');
    await file.write(Buffer.from([0xde, 0xad]), 0, 2, 5 * PAGE_SIZE_BYTES + 100); // slot 5 belongs to 'minimal' (generated first)
    await file.close();
    const damaged = await ImageLibrary.open(dir);
    const verify = await damaged.verify();
    expect(verify.corruptedKeys).toHaveLength(1);
    expect(verify.imagesAffected).toContain('minimal');
    expect(manifest.pages.some(([, key]) => key === verify.corruptedKeys[0])).toBe(true);
    const memory = GuestMemory.ofBytes(2 * 1024 * 1024);
    await expect(damaged.provision('minimal', memory, new DirtyLog(memory.pageCount), CONFIG)).rejects.toBeInstanceOf(PoolPageCorruptedError);
    await damaged.close();
  });

  it('two libraries opening one directory at once generate the appliances once', async () => {
    const [a, b] = await Promise.all([ImageLibrary.open(dir), ImageLibrary.open(dir)]);
    await a.reload();
    await b.reload();
    expect(a.stats()).toEqual(b.stats());
    expect(a.stats().storedPages).toBe(distinctBuiltInPages().distinct);
    await a.close();
    await b.close();
  });
});
