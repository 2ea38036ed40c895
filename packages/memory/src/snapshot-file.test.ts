import { mkdtemp, open, readdir, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GuestMemory } from './guest-memory.ts';
import { memoryDigest } from './page.ts';
import { SnapshotFileError } from './snapshot-errors.ts';
import { readSnapshotFile, SnapshotWriter, SNAPSHOT_HEADER_BYTES, writeSnapshotFile } from './snapshot-file.ts';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-snapshot-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const state = {
  spec: new TextEncoder().encode(JSON.stringify({ id: 'vm-1', vcpus: 2 })),
  registers: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]),
  devices: Uint8Array.from([9, 9, 9]),
};

/** Memory with a pattern in scattered runs of pages, the rest zero. */
function patterned(pageCount: number): GuestMemory {
  const mem = new GuestMemory(pageCount);
  for (let p = 0; p < pageCount; p++) {
    if (p % 7 === 3 || (p >= 100 && p < 180)) mem.page(p).fill((p * 31) & 0xff || 1);
  }
  mem.bytes[(pageCount - 1) * 4096 + 4095] = 0x5a; // last byte of memory
  return mem;
}

async function expectRefused(path: string, problem: string): Promise<SnapshotFileError> {
  const err = await readSnapshotFile(path).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SnapshotFileError);
  const e = err as SnapshotFileError;
  expect(e.problem).toBe(problem);
  expect(e.path).toBe(path);
  expect(e.message).toContain(path);
  return e;
}

describe('snapshot file', () => {
  it('round trip is byte-identical and stores only non-zero pages', async () => {
    const mem = patterned(1000);
    const path = join(dir, 'round.vmss');
    const info = await writeSnapshotFile(path, mem, state);
    const loaded = await readSnapshotFile(path);
    expect(Buffer.compare(Buffer.from(loaded.memory.bytes), Buffer.from(mem.bytes))).toBe(0);
    expect(loaded.memoryDigest).toBe(memoryDigest(mem));
    expect(info.memoryDigest).toBe(memoryDigest(mem));
    expect([...loaded.spec]).toEqual([...state.spec]);
    expect([...loaded.registers]).toEqual([...state.registers]);
    expect([...loaded.devices]).toEqual([...state.devices]);
    const nonZero = [...Array(1000).keys()].filter((p) => mem.page(p).some((b) => b !== 0));
    expect([...loaded.storedPageList]).toEqual(nonZero);
    expect((await stat(path)).size).toBe(info.fileBytes);
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('a live writer that rewrites pages in place stores the final contents', async () => {
    const mem = patterned(300);
    const path = join(dir, 'live.vmss');
    const w = await SnapshotWriter.create(path, mem.pageCount);
    await w.writeRun(mem, 0, mem.pageCount);
    mem.page(5).fill(0xee);
    mem.page(6).fill(0);
    await w.writePages(mem, Uint32Array.from([5, 6, 7, 250]));
    const info = await w.finish(state);
    expect(info.memoryDigest).toBe(memoryDigest(mem));
    const loaded = await readSnapshotFile(path);
    expect(Buffer.compare(Buffer.from(loaded.memory.bytes), Buffer.from(mem.bytes))).toBe(0);
  });

  it('refuses a truncated file, naming it', async () => {
    const path = join(dir, 'trunc.vmss');
    const info = await writeSnapshotFile(path, patterned(64), state);
    await truncate(path, info.fileBytes - 10);
    await expectRefused(path, 'truncated');
    await truncate(path, 20);
    await expectRefused(path, 'truncated');
  });

  it('refuses a file whose header page count was damaged, saying what the header claims', async () => {
    const path = join(dir, 'count.vmss');
    await writeSnapshotFile(path, patterned(60), state);
    await patchByte(path, 20, () => 62); // page count 60 -> 62 (same map size): the file is short of it
    const short = await expectRefused(path, 'truncated');
    expect(short.message).toContain('62 pages');
    await patchByte(path, 20, () => 58); // 58: the file is longer than it claims
    const long = await expectRefused(path, 'corrupted');
    expect(long.message).toContain('58 pages');
  });

  it('refuses a file with one flipped bit in a page', async () => {
    const path = join(dir, 'flip.vmss');
    await writeSnapshotFile(path, patterned(64), state);
    await patchByte(path, SNAPSHOT_HEADER_BYTES + 3 * 4096 + 100, (b) => b ^ 1);
    const e = await expectRefused(path, 'corrupted');
    expect(e.code).toBe('FERRY_ERR_SNAPSHOT_CORRUPTED');
  });

  it('refuses a file with a corrupted trailer', async () => {
    const path = join(dir, 'meta.vmss');
    await writeSnapshotFile(path, patterned(64), state);
    await patchByte(path, SNAPSHOT_HEADER_BYTES + 64 * 4096 + 2, (b) => b ^ 0x40); // inside the spec JSON
    await expectRefused(path, 'corrupted');
  });

  it('refuses a wrong-version file and a non-snapshot file', async () => {
    const path = join(dir, 'version.vmss');
    await writeSnapshotFile(path, patterned(16), state);
    await patchByte(path, 8, () => 99);
    const e = await expectRefused(path, 'version');
    expect(e.code).toBe('FERRY_ERR_SNAPSHOT_VERSION');
    expect(e.message).toContain('version 99');
    await patchByte(path, 0, () => 0x41);
    await expectRefused(path, 'not-a-snapshot');
  });
});

async function patchByte(path: string, position: number, f: (b: number) => number): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, position);
    b[0] = f(b[0]!);
    await fh.write(b, 0, 1, position);
  } finally {
    await fh.close();
  }
}
