import { open, readdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { ImageLibraryFormatError } from './errors.ts';

// An image manifest: which pool page sits at which guest page. Zero pages are not listed (a new
// VM's memory is zero). One JSON file per image in `<library>/images/<id>.json`, written to a
// temporary file, fsynced and renamed, so a reader sees the old manifest or the new, never half.

/** Format tag and version of manifest files. */
export const MANIFEST_FORMAT = 'ferry-image';
export const MANIFEST_VERSION = 1;

/** One image's manifest. `pages` holds `[guestPage, poolKey]` pairs in ascending guest page order. */
export interface ImageManifest {
  readonly format: typeof MANIFEST_FORMAT;
  readonly version: number;
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly memoryBytes: number;
  readonly diskBytes: number;
  /** True for the generated catalog appliances, false for images captured from VMs. */
  readonly builtIn: boolean;
  readonly pages: readonly (readonly [number, string])[];
}

/** Directory of manifests inside a library. */
export function manifestDir(libraryDir: string): string {
  return join(libraryDir, 'images');
}

/** Writes a manifest atomically (temp file, fsync, rename). */
export async function writeManifest(libraryDir: string, manifest: ImageManifest): Promise<void> {
  const path = join(manifestDir(libraryDir), `${manifest.id}.json`);
  const tmp = `${path}.${process.pid}.tmp`;
  const file = await open(tmp, 'w');
  try {
    await file.writeFile(JSON.stringify(manifest));
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(tmp, path);
}

function checkManifest(path: string, value: unknown): ImageManifest {
  const m = value as Partial<ImageManifest>;
  if (typeof m !== 'object' || m === null || m.format !== MANIFEST_FORMAT) throw new ImageLibraryFormatError(path, 'not a ferry image manifest');
  if (m.version !== MANIFEST_VERSION) throw new ImageLibraryFormatError(path, `manifest version ${String(m.version)} is not accepted (accepted: ${MANIFEST_VERSION})`);
  if (typeof m.id !== 'string' || typeof m.name !== 'string' || typeof m.description !== 'string') throw new ImageLibraryFormatError(path, 'id, name and description must be strings');
  if (!Number.isSafeInteger(m.memoryBytes) || !Number.isSafeInteger(m.diskBytes)) throw new ImageLibraryFormatError(path, 'memoryBytes and diskBytes must be integers');
  if (!Array.isArray(m.pages)) throw new ImageLibraryFormatError(path, 'pages must be a list');
  let last = -1;
  for (const entry of m.pages) {
    if (!Array.isArray(entry) || entry.length !== 2 || !Number.isSafeInteger(entry[0]) || typeof entry[1] !== 'string' || entry[0] <= last) {
      throw new ImageLibraryFormatError(path, `bad page entry ${JSON.stringify(entry).slice(0, 60)}`);
    }
    last = entry[0];
  }
  return m as ImageManifest;
}

/** Reads every manifest in the library, keyed by image id. Ignores temporary files. */
export async function readManifests(libraryDir: string): Promise<Map<string, ImageManifest>> {
  const dir = manifestDir(libraryDir);
  const out = new Map<string, ImageManifest>();
  for (const name of (await readdir(dir)).sort()) {
    if (!name.endsWith('.json')) continue;
    const path = join(dir, name);
    let value: unknown;
    try {
      value = JSON.parse(await readFile(path, 'utf8'));
    } catch (err) {
      throw new ImageLibraryFormatError(path, 'not valid JSON', { cause: err });
    }
    const manifest = checkManifest(path, value);
    out.set(manifest.id, manifest);
  }
  return out;
}
