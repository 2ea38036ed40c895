/**
 * Image files over HTTP between the coordinator's catalog and the agents' libraries:
 *
 * - `PUT /api/v1/images/:id/file` — a capturing agent uploads the image file (the body, raw bytes).
 *   Accepted only while a capture of `:id` waits for it (409 FERRY_ERR_UPLOAD_NOT_EXPECTED
 *   otherwise), at most the capture's bound (413 FERRY_ERR_UPLOAD_TOO_LARGE); written to a temp file
 *   in the state dir, imported into the catalog under `:id` (its digests checked), the temp file
 *   deleted either way (400 FERRY_ERR_UPLOAD_INVALID for a damaged file). Replies the catalog's Image (201).
 * - `GET /api/v1/images/:id/file` — an agent that lacks an image downloads it: the image exported
 *   from the catalog to a temp file and streamed (404 for an unknown id); the temp file is deleted
 *   once sent.
 *
 * Both need the cluster bearer token (the HTTP front checks it before any module sees a request).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { nanoid } from 'nanoid';
import { ImageExistsError, exportImageFile, importImageFile } from '@ferry/images';
import type { Image } from '@ferry/protocol';
import { CoordinatorError } from './errors.ts';
import { ImageIdTakenError, type ImageCatalog } from './images.ts';

/** An upload no capture waits for (409), or one already being received. */
export class UploadNotExpectedError extends CoordinatorError {
  readonly status = 409;
  constructor(imageId: string) {
    super('FERRY_ERR_UPLOAD_NOT_EXPECTED', `no capture of image ${imageId} is waiting for an upload`);
  }
}

/** An upload larger than its capture's bound (413). */
export class UploadTooLargeError extends CoordinatorError {
  readonly status = 413;
  constructor(imageId: string, maxBytes: number) {
    super('FERRY_ERR_UPLOAD_TOO_LARGE', `the upload of image ${imageId} is larger than ${maxBytes} bytes`);
  }
}

/** An upload that is not a readable image file (bad header, digests, spec) (400). */
export class UploadInvalidError extends CoordinatorError {
  readonly status = 400;
  constructor(imageId: string, detail: string, options?: { cause?: unknown }) {
    super('FERRY_ERR_UPLOAD_INVALID', `the upload of image ${imageId} is not a valid image file: ${detail}`, options);
  }
}

/** A temp file path in the catalog's transfer dir for `imageId`. */
function transferPath(catalog: ImageCatalog, imageId: string, kind: 'upload' | 'download'): string {
  return join(catalog.transferDir, `${imageId}.${kind}.${nanoid(8)}.tmp`);
}

/**
 * Receives the upload of a pending capture of `imageId` from `req` and imports it into the
 * catalog; returns the catalog's Image. Throws UploadNotExpectedError, UploadTooLargeError, or the
 * import's error (a damaged file); the catalog then holds nothing new and no temp file remains.
 */
export async function receiveImageUpload(catalog: ImageCatalog, imageId: string, req: IncomingMessage): Promise<Image> {
  const upload = catalog.pendingUpload(imageId);
  if (!upload || upload.imported || upload.receiving) throw new UploadNotExpectedError(imageId);
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > upload.maxBytes) throw new UploadTooLargeError(imageId, upload.maxBytes);
  upload.receiving = true;
  const path = transferPath(catalog, imageId, 'upload');
  try {
    let bytes = 0;
    const bound = new Transform({
      transform(chunk: Buffer, _enc, done) {
        bytes += chunk.length;
        if (bytes > upload.maxBytes) done(new UploadTooLargeError(imageId, upload.maxBytes));
        else done(null, chunk);
      },
    });
    await pipeline(req, bound, createWriteStream(path));
    try {
      await importImageFile(catalog.library, path, { id: imageId });
    } catch (err) {
      if (err instanceof ImageExistsError) throw new ImageIdTakenError(imageId);
      const code = (err as { code?: string }).code;
      // The file's own faults (format, digests); anything else (the library's disk, lock) stays a 500.
      if (code !== undefined && /^FERRY_ERR_(SNAPSHOT|IMAGE_FORMAT|IMAGE_MEMORY)/.test(code)) throw new UploadInvalidError(imageId, (err as Error).message, { cause: err });
      throw err;
    }
    upload.imported = true;
    return await catalog.get(imageId);
  } finally {
    upload.receiving = false;
    await rm(path, { force: true });
  }
}

/** Streams image `imageId` of the catalog as an image file to `res` (200, octet-stream). Throws UnknownImageIdError (404) before sending anything. */
export async function sendImageFile(catalog: ImageCatalog, imageId: string, res: ServerResponse): Promise<void> {
  await catalog.get(imageId);
  const path = transferPath(catalog, imageId, 'download');
  try {
    await exportImageFile(catalog.library, imageId, path);
    const { size } = await stat(path);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    // Headers are out: a failure now can only cut the body short (the agent sees a short file).
    await pipeline(createReadStream(path), res).catch(() => res.destroy());
  } finally {
    await rm(path, { force: true });
  }
}
