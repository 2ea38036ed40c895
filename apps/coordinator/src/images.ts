/**
 * The coordinator's image catalog: an @ferry/images ImageLibrary in `<stateDir>/images`. The
 * built-in appliances are generated deterministically from their seeds, so the catalog the
 * coordinator shows and the libraries the agents copy from hold byte-identical images without
 * any transfer. `run` checks requests against this catalog before placing anything.
 */
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

/** The image catalog. */
export class ImageCatalog {
  private constructor(readonly library: ImageLibrary) {}

  /** Opens (and on first start generates) the catalog in `<stateDir>/images`. */
  static async open(stateDir: string): Promise<ImageCatalog> {
    return new ImageCatalog(await ImageLibrary.open(join(stateDir, IMAGE_CATALOG_DIR)));
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
