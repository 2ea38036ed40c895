import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirtyLog, GuestMemory, memoryDigest, writeSnapshotFile } from '@ferry/memory';
import { ImageLibraryFormatError } from './errors.ts';
import { exportImageFile, importImageFile } from './image-file.ts';
import { ImageLibrary } from './library.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-image-file-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function imageMemory(lib: ImageLibrary, id: string): Promise<GuestMemory> {
  const memory = GuestMemory.ofBytes((await lib.get(id)).memoryBytes);
  await lib.copyInto(id, memory);
  return memory;
}

describe('image files', () => {
  it('export then import into another library reproduces the image byte for byte, storing only new pages', async () => {
    const source = await ImageLibrary.open(join(dir, 'a'));
    const info = await exportImageFile(source, 'redis', join(dir, 'redis.vmss'));
    expect(info.storedPages).toBe((await source.get('redis')).pages);

    const empty = await ImageLibrary.open(join(dir, 'b'), { builtIns: false });
    const fresh = await importImageFile(empty, join(dir, 'redis.vmss'));
    expect(fresh.newPages).toBe(fresh.image.pages);
    expect(memoryDigest(await imageMemory(empty, 'redis'))).toBe(memoryDigest(await imageMemory(source, 'redis')));

    const again = await importImageFile(source, join(dir, 'redis.vmss'), { id: 'redis-copy' });
    expect(again.newPages).toBe(0);
    expect(again.dedupedPages).toBe(again.image.pages);
    await Promise.all([source.close(), empty.close()]);
  });

  it('refuses a VM snapshot that is not an image file', async () => {
    const lib = await ImageLibrary.open(dir, { builtIns: false });
    const memory = new GuestMemory(8);
    memory.page(3).fill(1);
    const path = join(dir, 'vm.vmss');
    await writeSnapshotFile(path, memory, { spec: new TextEncoder().encode('{"id":"vm-1"}'), registers: new Uint8Array(8), devices: new Uint8Array(0) });
    await expect(importImageFile(lib, path)).rejects.toBeInstanceOf(ImageLibraryFormatError);
    expect(lib.list()).toHaveLength(0);
    await lib.close();
  });

  it('provision reports the pages it wrote, config page last', async () => {
    const lib = await ImageLibrary.open(dir);
    const memory = GuestMemory.ofBytes(2 * 1024 * 1024);
    const report = await lib.provision('minimal', memory, new DirtyLog(memory.pageCount), { instanceId: 'vm-1', hostname: 'm', ip: '10.0.0.2', accessRules: [], user: 'u', password: 'pw' });
    expect(report.writtenPages).toHaveLength(report.pagesCopied + 1);
    expect(report.writtenPages.at(-1)).toBe(1);
    expect(report.writtenPages[0]).toBe(2);
    await lib.close();
  });
});
