import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageCatalog } from './images.ts';
import { receiveImageUpload, sendImageFile } from './images-transfer.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A catalog in a temp state dir behind a real HTTP server: PUT receives an upload, GET sends a file. */
async function serve(): Promise<{ catalog: ImageCatalog; url: string; transferDir: string }> {
  const stateDir = mkdtempSync(join(tmpdir(), 'ferry-transfer-test-'));
  cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
  const catalog = await ImageCatalog.open(stateDir);
  cleanups.push(() => catalog.close());
  const server: Server = createServer((req, res) => {
    const id = decodeURIComponent(req.url!.slice(1));
    const work = req.method === 'PUT' ? receiveImageUpload(catalog, id, req).then((image) => res.writeHead(201).end(JSON.stringify(image))) : sendImageFile(catalog, id, res);
    work.catch((err: { code?: string; status?: number }) => {
      req.resume();
      if (!res.headersSent) res.writeHead(err.status ?? 500, { connection: 'close' }).end(JSON.stringify({ code: err.code }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => new Promise((r) => server.close(r)));
  return { catalog, url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, transferDir: catalog.transferDir };
}

describe('image file transfers', () => {
  it('an exported image uploads into a waiting capture and comes back byte-identical; the temp files are gone', async () => {
    const { catalog, url, transferDir } = await serve();
    const file = await fetch(`${url}/redis`);
    expect(file.status).toBe(200);
    const bytes = new Uint8Array(await file.arrayBuffer());
    const { done } = await catalog.expectUpload('redis-copy', 'vm-1', bytes.length);
    const put = await fetch(`${url}/redis-copy`, { method: 'PUT', body: bytes });
    expect(put.status).toBe(201);
    done();
    const copy = await catalog.library.manifestOf('redis-copy');
    const original = await catalog.library.manifestOf('redis');
    expect(copy.pages).toEqual(original.pages);
    expect(readdirSync(transferDir)).toEqual([]);
  });

  it('refuses an upload larger than its bound, with or without a declared length, and a file that is not an image; the catalog holds nothing new', async () => {
    const { catalog, url, transferDir } = await serve();
    const bytes = new Uint8Array(await (await fetch(`${url}/minimal`)).arrayBuffer());
    const before = catalog.list().map((i) => i.id);
    const { upload, done } = await catalog.expectUpload('small', 'vm-1', bytes.length - 1);
    const declared = await fetch(`${url}/small`, { method: 'PUT', body: bytes });
    expect(declared.status).toBe(413);
    // No declared length: cut off once past the bound (the socket is dropped, or a 413 arrives).
    const chunks = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(bytes);
        c.close();
      },
    });
    const streamed = await fetch(`${url}/small`, { method: 'PUT', body: chunks, duplex: 'half' } as RequestInit).then((r) => r.status, () => 'reset');
    expect([413, 'reset']).toContain(streamed);
    expect(upload.imported).toBe(false);
    done();
    const { done: done2 } = await catalog.expectUpload('junk', 'vm-1', 1 << 20);
    const junk = await fetch(`${url}/junk`, { method: 'PUT', body: new Uint8Array(8192).fill(9) });
    expect(junk.status).toBe(400);
    expect(((await junk.json()) as { code: string }).code).toBe('FERRY_ERR_UPLOAD_INVALID');
    done2();
    expect(catalog.list().map((i) => i.id)).toEqual(before);
    await new Promise((r) => setTimeout(r, 50)); // the cut-off upload's cleanup
    expect(readdirSync(transferDir)).toEqual([]);
  });

  it('a second capture of one id is refused while the first waits', async () => {
    const { catalog } = await serve();
    const { done } = await catalog.expectUpload('twice', 'vm-1', 1000);
    await expect(catalog.expectUpload('twice', 'vm-2', 1000)).rejects.toMatchObject({ code: 'FERRY_ERR_IMAGE_EXISTS', status: 409 });
    done();
    const again = await catalog.expectUpload('twice', 'vm-2', 1000);
    again.done();
  });
});
