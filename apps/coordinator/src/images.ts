/**
 * The coordinator's image catalog: an @ferry/images ImageLibrary in `<stateDir>/images`. The
 * built-in appliances are generated deterministically from their seeds, so the catalog the
 * coordinator shows and the libraries the agents copy from hold byte-identical images without
 * any transfer. `run` checks requests against this catalog before placing anything. Captured
 * images travel as image files (images-transfer.ts): the capturing agent uploads one, which is
 * accepted only while a capture of that id waits for it (`expectUpload`); agents that lack an
 * image download it.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ImageLibrary, UnknownImageError } from '@ferry/images';
import type { Image } from '@ferry/protocol';
import { CoordinatorError } from './errors.ts';

/** Directory of the catalog inside the state directory. */
export const IMAGE_CATALOG_DIR = 'images';

/** A request names an image the catalog does not hold (404). */
export class UnknownImageIdError extends CoordinatorError {
  readonly imageId: string;
  constructor(imageId: string) {
    super('FERRY_ERR_UNKNOWN_IMAGE', `no image ${imageId} (see GET /api/v1/images)`);
    this.imageId = imageId;
  }
}

/** Directory of image files in transit (uploads, downloads) inside the state directory; emptied at open. */
export const IMAGE_TRANSFER_DIR = 'image-transfers';

/** An image id that is taken in the catalog, or by a capture in progress (409). */
export class ImageIdTakenError extends CoordinatorError {
  readonly imageId: string;
  readonly status = 409;
  constructor(imageId: string, detail = 'exists already') {
    super('FERRY_ERR_IMAGE_EXISTS', `image ${imageId} ${detail}`);
    this.imageId = imageId;
  }
}

/** A capture the agent could not finish or upload (502); the VM keeps running and the catalog holds nothing new. */
export class ImageCaptureFailedError extends CoordinatorError {
  readonly imageId: string;
  readonly status = 502;
  constructor(imageId: string, message: string, options?: { cause?: unknown }) {
    super('FERRY_ERR_IMAGE_CAPTURE_FAILED', `capture of image ${imageId} failed: ${message}`, options);
    this.imageId = imageId;
  }
}

/** A capture waiting for its image file (see ImageCatalog.expectUpload). */
export interface PendingUpload {
  readonly imageId: string;
  readonly vmId: string;
  /** Largest upload accepted, bytes. */
  readonly maxBytes: number;
  /** Set once the upload was imported into the catalog. */
  imported: boolean;
  /** An upload is being received now (a second one is refused). */
  receiving: boolean;
}

/** The image catalog. */
export class ImageCatalog {
  private readonly pending = new Map<string, PendingUpload>();

  private constructor(
    readonly library: ImageLibrary,
    /** Where image files in transit are written (`<stateDir>/image-transfers`). */
    readonly transferDir: string,
  ) {}

  /** Opens (and on first start generates) the catalog in `<stateDir>/images`; removes transfers a crash left. */
  static async open(stateDir: string): Promise<ImageCatalog> {
    const transferDir = join(stateDir, IMAGE_TRANSFER_DIR);
    await rm(transferDir, { recursive: true, force: true });
    await mkdir(transferDir, { recursive: true });
    return new ImageCatalog(await ImageLibrary.open(join(stateDir, IMAGE_CATALOG_DIR)), transferDir);
  }

  /** Whether the catalog holds `imageId` (re-reads the library once before answering no). */
  async has(imageId: string): Promise<boolean> {
    try {
      await this.library.get(imageId);
      return true;
    } catch (err) {
      if (err instanceof UnknownImageError) return false;
      throw err;
    }
  }

  /**
   * Registers a capture of `imageId` waiting for its upload of at most `maxBytes`; the returned
   * function withdraws it. Throws ImageIdTakenError if the id is in the catalog or another capture
   * of it is in progress.
   */
  async expectUpload(imageId: string, vmId: string, maxBytes: number): Promise<{ upload: PendingUpload; done: () => void }> {
    if (this.pending.has(imageId)) throw new ImageIdTakenError(imageId, 'is being captured already');
    if (await this.has(imageId)) throw new ImageIdTakenError(imageId);
    if (this.pending.has(imageId)) throw new ImageIdTakenError(imageId, 'is being captured already');
    const upload: PendingUpload = { imageId, vmId, maxBytes, imported: false, receiving: false };
    this.pending.set(imageId, upload);
    return { upload, done: () => void (this.pending.get(imageId) === upload && this.pending.delete(imageId)) };
  }

  /** The capture waiting for an upload of `imageId`, if any. */
  pendingUpload(imageId: string): PendingUpload | undefined {
    return this.pending.get(imageId);
  }

  /** Every image, built-ins first. */
  list(): Image[] {
    return this.library.list();
  }

  /** One image; throws UnknownImageIdError (404). */
  async get(imageId: string): Promise<Image> {
    try {
      return await this.library.get(imageId);
    } catch (err) {
      if (err instanceof UnknownImageError) throw new UnknownImageIdError(imageId);
      throw err;
    }
  }

  /** Closes the library. */
  async close(): Promise<void> {
    await this.library.close();
  }
}
