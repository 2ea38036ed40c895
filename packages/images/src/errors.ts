import { FerryError } from '@ferry/protocol';

/** Base class of every error the image library throws: a stable `code` and structured context. */
export class ImageError extends FerryError {}

/** No image with this id in the library. */
export class UnknownImageError extends ImageError {
  readonly imageId: string;
  constructor(imageId: string) {
    super('FERRY_ERR_UNKNOWN_IMAGE', `no image "${imageId}" in the library`);
    this.imageId = imageId;
  }
}

/** An image with this id already exists (capture refuses to overwrite: images are durable). */
export class ImageExistsError extends ImageError {
  readonly imageId: string;
  constructor(imageId: string) {
    super('FERRY_ERR_IMAGE_EXISTS', `image "${imageId}" already exists`);
    this.imageId = imageId;
  }
}

/** A pool page whose bytes no longer hash to its key: the library is damaged on disk. */
export class PoolPageCorruptedError extends ImageError {
  readonly key: string;
  readonly slot: number;
  constructor(key: string, slot: number, detail: string) {
    super('FERRY_ERR_IMAGE_CORRUPTED', `pool page ${key} (slot ${slot}) is corrupted: ${detail}`);
    this.key = key;
    this.slot = slot;
  }
}

/** A library file (pool index, manifest) that cannot be read: wrong version, bad JSON, bad fields. */
export class ImageLibraryFormatError extends ImageError {
  readonly path: string;
  constructor(path: string, detail: string, options?: { cause?: unknown }) {
    super('FERRY_ERR_IMAGE_FORMAT', `${path}: ${detail}`, options);
    this.path = path;
  }
}

/** Guest memory too small for the image being provisioned into it. */
export class MemoryTooSmallError extends ImageError {
  readonly imageId: string;
  readonly neededBytes: number;
  readonly givenBytes: number;
  constructor(imageId: string, neededBytes: number, givenBytes: number) {
    super('FERRY_ERR_IMAGE_MEMORY_TOO_SMALL', `image "${imageId}" needs ${neededBytes} bytes of memory, the VM has ${givenBytes}`);
    this.imageId = imageId;
    this.neededBytes = neededBytes;
    this.givenBytes = givenBytes;
  }
}

/** A run-time configuration that cannot be written (too large, bad field) or read (no record, bad checksum, unknown version). */
export class GuestConfigError extends ImageError {
  constructor(message: string) {
    super('FERRY_ERR_GUEST_CONFIG', message);
  }
}

/** Another process held the library lock for longer than we wait. */
export class LibraryLockedError extends ImageError {
  readonly lockPath: string;
  constructor(lockPath: string, waitedMs: number) {
    super('FERRY_ERR_IMAGE_LIBRARY_LOCKED', `image library lock ${lockPath} still held after ${waitedMs} ms`);
    this.lockPath = lockPath;
  }
}
