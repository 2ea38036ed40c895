import { GuestMemory, readSnapshotFile, writeSnapshotFile, type SnapshotFileInfo } from '@ferry/memory';
import { ImageLibraryFormatError } from './errors.ts';
import type { CaptureReport, ImageLibrary } from './library.ts';

// An image as one portable file: the appliance's guest memory in the snapshot file format of
// @ferry/memory (sparse, fixed page offsets, digests; the lecture's "image file"), with the image's
// metadata in the spec blob and empty register and device blocks (an image has no running state).
// Exporting materialises the image from the pool; importing stores it back with dedup, so moving
// an appliance between libraries (say to an agent on another machine) costs only its new pages.

/** `kind` of the spec blob of an image file. */
export const IMAGE_FILE_KIND = 'ferry-image';

interface ImageFileSpec {
  readonly kind: typeof IMAGE_FILE_KIND;
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly diskBytes: number;
}

/** Writes image `imageId` of `library` to `path` (atomically). Returns the file's figures. */
export async function exportImageFile(library: ImageLibrary, imageId: string, path: string): Promise<SnapshotFileInfo> {
  const image = await library.get(imageId);
  const memory = GuestMemory.ofBytes(image.memoryBytes);
  const written = new Set(await library.copyInto(imageId, memory));
  const spec: ImageFileSpec = { kind: IMAGE_FILE_KIND, id: image.id, name: image.name, description: image.description, diskBytes: image.diskBytes };
  return writeSnapshotFile(path, memory, { spec: new TextEncoder().encode(JSON.stringify(spec)), registers: new Uint8Array(0), devices: new Uint8Array(0) }, (p) => !written.has(p));
}

/**
 * Reads an image file made by exportImageFile (its digests checked by the snapshot reader) and
 * stores it in `library` as image `id` (default: the id in the file), with dedup against the pool.
 * Throws ImageLibraryFormatError if the file is a snapshot but not an image, ImageExistsError if the id is taken.
 */
export async function importImageFile(library: ImageLibrary, path: string, options: { id?: string } = {}): Promise<CaptureReport> {
  const loaded = await readSnapshotFile(path);
  let spec: Partial<ImageFileSpec>;
  try {
    spec = JSON.parse(new TextDecoder().decode(loaded.spec)) as Partial<ImageFileSpec>;
  } catch (err) {
    throw new ImageLibraryFormatError(path, 'spec blob is not JSON', { cause: err });
  }
  if (spec.kind !== IMAGE_FILE_KIND || typeof spec.id !== 'string') throw new ImageLibraryFormatError(path, `not an image file (a VM snapshot?)`);
  return library.capture(loaded.memory, {
    id: options.id ?? spec.id,
    name: options.id ?? spec.name ?? spec.id,
    description: spec.description ?? '',
    diskBytes: spec.diskBytes ?? 0,
  });
}
