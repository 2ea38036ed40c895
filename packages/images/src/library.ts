import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PAGE_SIZE_BYTES, isZeroPage, type DirtyLog, type GuestMemory } from '@ferry/memory';
import type { Image } from '@ferry/protocol';
import { BUILT_IN_APPLIANCES, generateAppliance, type ApplianceDefinition } from './appliances.ts';
import { ImageExistsError, ImageLibraryFormatError, MemoryTooSmallError, UnknownImageError } from './errors.ts';
import { GUEST_CONFIG_PAGE, IMAGE_FIRST_PAGE, writeGuestConfig, type GuestConfig, type GuestConfigRecord, type WriteGuestConfigOptions } from './guest-config.ts';
import { withLibraryLock } from './lock.ts';
import { MANIFEST_FORMAT, MANIFEST_VERSION, manifestDir, readManifests, writeManifest, type ImageManifest } from './manifest.ts';
import { PagePool } from './page-pool.ts';

/**
 * The image library: virtual appliances stored as content-addressed pages.
 *
 * Image, instance, VM (the lecture's three objects): an **image** here is durable — VM execution
 * never changes it, and no method rewrites one; `provision` binds a copy of it to run-time
 * configuration (hostname, IP, access rules, login), which makes an **instance**; the **VM** is that
 * instance running on a hypervisor (packages/vm). Capturing a VM's memory makes a new image.
 *
 * Storage: a page pool holds every distinct page once (keyed by xxh64, byte-checked on a hit) and
 * one manifest per image maps guest pages to pool keys, so N appliances built on one base OS cost
 * their unique pages only. Several processes may open one library: writers take a directory lock.
 */
export class ImageLibrary {
  private manifests = new Map<string, ImageManifest>();
  private figures = new Map<string, Image>();

  private constructor(
    /** Directory of the library. */
    readonly dir: string,
    private readonly pool: PagePool,
  ) {}

  /**
   * Opens the library in `dir` (created if absent). Unless `builtIns` is false, generates any
   * missing built-in appliance (deterministic, from its seed) the first time.
   */
  static async open(dir: string, options: { builtIns?: boolean } = {}): Promise<ImageLibrary> {
    await mkdir(manifestDir(dir), { recursive: true });
    const pool = await PagePool.open(dir);
    const library = new ImageLibrary(dir, pool);
    try {
      await library.reload();
      if (options.builtIns !== false && BUILT_IN_APPLIANCES.some((d) => !library.manifests.has(d.id))) {
        await library.locked(async () => {
          for (const def of BUILT_IN_APPLIANCES) if (!library.manifests.has(def.id)) await library.storeAppliance(def);
        });
      }
    } catch (err) {
      await pool.close();
      throw err;
    }
    return library;
  }

  /** Re-reads the pool index and the manifests (images captured by another process since open). */
  async reload(): Promise<void> {
    await this.pool.reload();
    this.manifests = await readManifests(this.dir);
    for (const m of this.manifests.values()) {
      for (const [, key] of m.pages) if (!this.pool.has(key)) throw new ImageLibraryFormatError(join(manifestDir(this.dir), `${m.id}.json`), `page key ${key} is not in the pool`);
    }
    this.computeFigures();
  }

  /** Every image, built-ins first in catalog order, then captured images by id. */
  list(): Image[] {
    const order = (id: string): number => {
      const i = BUILT_IN_APPLIANCES.findIndex((d) => d.id === id);
      return i < 0 ? BUILT_IN_APPLIANCES.length : i;
    };
    return [...this.figures.values()].sort((a, b) => order(a.id) - order(b.id) || a.id.localeCompare(b.id));
  }

  /** One image with its dedup figures. Re-reads the library once before throwing UnknownImageError. */
  async get(imageId: string): Promise<Image> {
    return this.figureOf(await this.manifestOf(imageId));
  }

  /** The manifest of an image (guest page → pool key). Throws UnknownImageError. */
  async manifestOf(imageId: string): Promise<ImageManifest> {
    let m = this.manifests.get(imageId);
    if (!m) {
      await this.reload();
      m = this.manifests.get(imageId);
    }
    if (!m) throw new UnknownImageError(imageId);
    return m;
  }

  /** Storage figures of the whole library: pages as images see them versus pages stored. */
  stats(): LibraryStats {
    let logicalPages = 0;
    for (const m of this.manifests.values()) logicalPages += m.pages.length;
    const storedPages = this.pool.size;
    return {
      images: this.manifests.size,
      logicalPages,
      storedPages,
      logicalBytes: logicalPages * PAGE_SIZE_BYTES,
      storedBytes: storedPages * PAGE_SIZE_BYTES,
      savedBytes: (logicalPages - storedPages) * PAGE_SIZE_BYTES,
      dedupRatio: storedPages === 0 ? 1 : logicalPages / storedPages,
    };
  }

  /**
   * Provisions a new VM's memory from an image (the lecture's step 4: copy the appliance, then
   * configure it at boot): copies every image page into `memory` (which must be freshly allocated,
   * all zero, and at least the image's memoryBytes), marks them ever-written in `dirtyLog` so a
   * migration knows they hold data, then writes the run-time configuration record into page 1.
   * Every page read is verified against its pool key (PoolPageCorruptedError).
   */
  async provision(imageId: string, memory: GuestMemory, dirtyLog: DirtyLog, config: Omit<GuestConfig, 'imageId'>, options: WriteGuestConfigOptions = {}): Promise<ProvisionReport> {
    const written = await this.copyInto(imageId, memory);
    const record = writeGuestConfig(memory, { ...config, imageId }, options);
    written.push(GUEST_CONFIG_PAGE);
    dirtyLog.markEverWritten(written);
    const pagesCopied = written.length - 1;
    return { imageId, pagesCopied, bytesCopied: pagesCopied * PAGE_SIZE_BYTES, writtenPages: written, config: record };
  }

  /**
   * Copies an image's pages into `memory` (fresh, all zero, at least the image's memoryBytes)
   * without any run-time configuration; returns the guest pages written, ascending. For exporting
   * an image and for callers that configure the guest themselves.
   */
  async copyInto(imageId: string, memory: GuestMemory): Promise<number[]> {
    const manifest = await this.manifestOf(imageId);
    if (memory.byteLength < manifest.memoryBytes) throw new MemoryTooSmallError(imageId, manifest.memoryBytes, memory.byteLength);
    const last = manifest.pages.at(-1);
    if (last && last[0] >= memory.pageCount) throw new MemoryTooSmallError(imageId, (last[0] + 1) * PAGE_SIZE_BYTES, memory.byteLength);
    const written: number[] = manifest.pages.map(([guestPage]) => guestPage);
    await this.pool.readMany(
      manifest.pages.map(([, key]) => key),
      (i, bytes) => memory.writePage(written[i]!, bytes),
    );
    return written;
  }

  /**
   * Captures a VM's memory as a new image (a user-made appliance): every non-zero page from page 2
   * on (pages 0 and 1 hold guest-info and run-time config, which belong to the instance), stored
   * with dedup against the pool. Pass `dirtyLog` to skip never-written pages without reading them.
   * Capture from a paused VM for a consistent image. Throws ImageExistsError if the id is taken.
   */
  async capture(memory: GuestMemory, options: CaptureOptions): Promise<CaptureReport> {
    return this.locked(async () => {
      await this.reload();
      if (this.manifests.has(options.id)) throw new ImageExistsError(options.id);
      const pages: Uint8Array[] = [];
      const guestPages: number[] = [];
      let zeroPagesSkipped = 0;
      for (let p = IMAGE_FIRST_PAGE; p < memory.pageCount; p++) {
        if (options.dirtyLog && !options.dirtyLog.isEverWritten(p)) {
          zeroPagesSkipped++;
          continue;
        }
        const page = memory.page(p);
        if (isZeroPage(page)) {
          zeroPagesSkipped++;
          continue;
        }
        pages.push(page);
        guestPages.push(p);
      }
      const { keys, newPages } = await this.pool.put(pages);
      const manifest: ImageManifest = {
        format: MANIFEST_FORMAT,
        version: MANIFEST_VERSION,
        id: options.id,
        name: options.name ?? options.id,
        description: options.description ?? '',
        memoryBytes: memory.byteLength,
        diskBytes: options.diskBytes ?? 0,
        builtIn: false,
        pages: guestPages.map((p, i) => [p, keys[i]!] as const),
      };
      await writeManifest(this.dir, manifest);
      this.manifests.set(manifest.id, manifest);
      this.computeFigures();
      return { image: this.figureOf(manifest), pagesScanned: memory.pageCount - IMAGE_FIRST_PAGE, zeroPagesSkipped, newPages, dedupedPages: pages.length - newPages };
    });
  }

  /** Checks every pool page against its key. Returns the corrupted keys and the images that use them. */
  async verify(): Promise<VerifyReport> {
    const corrupted = await this.pool.verify();
    const bad = new Set(corrupted);
    const images = [...this.manifests.values()].filter((m) => m.pages.some(([, key]) => bad.has(key))).map((m) => m.id);
    return { pagesChecked: this.pool.size, corruptedKeys: corrupted, imagesAffected: images };
  }

  /** Closes the pool file. The library is unusable afterwards. */
  async close(): Promise<void> {
    await this.pool.close();
  }

  private async storeAppliance(def: ApplianceDefinition): Promise<void> {
    const pages: Uint8Array[] = [];
    const guestPages: number[] = [];
    generateAppliance(def, (guestPage, bytes) => {
      if (isZeroPage(bytes)) return;
      pages.push(bytes.slice());
      guestPages.push(guestPage);
    });
    const { keys } = await this.pool.put(pages);
    const manifest: ImageManifest = {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      id: def.id,
      name: def.name,
      description: def.description,
      memoryBytes: def.memoryBytes,
      diskBytes: def.diskBytes,
      builtIn: true,
      pages: guestPages.map((p, i) => [p, keys[i]!] as const),
    };
    await writeManifest(this.dir, manifest);
    this.manifests.set(def.id, manifest);
    this.computeFigures();
  }

  private async locked<T>(fn: () => Promise<T>): Promise<T> {
    return withLibraryLock(join(this.dir, 'lock'), async () => {
      await this.pool.reload();
      return fn();
    });
  }

  private computeFigures(): void {
    const users = new Map<string, Set<string>>();
    for (const m of this.manifests.values()) {
      for (const [, key] of m.pages) {
        let set = users.get(key);
        if (!set) users.set(key, (set = new Set()));
        set.add(m.id);
      }
    }
    this.figures = new Map();
    for (const m of this.manifests.values()) {
      let unique = 0;
      for (const [, key] of m.pages) if (users.get(key)!.size === 1) unique++;
      this.figures.set(m.id, {
        id: m.id,
        name: m.name,
        description: m.description,
        memoryBytes: m.memoryBytes,
        diskBytes: m.diskBytes,
        pages: m.pages.length,
        uniquePages: unique,
        sharedPages: m.pages.length - unique,
      });
    }
  }

  private figureOf(manifest: ImageManifest): Image {
    const figure = this.figures.get(manifest.id);
    if (!figure) throw new UnknownImageError(manifest.id);
    return figure;
  }
}

/** Whole-library storage figures. `dedupRatio` = logicalPages / storedPages. */
export interface LibraryStats {
  readonly images: number;
  readonly logicalPages: number;
  readonly storedPages: number;
  readonly logicalBytes: number;
  readonly storedBytes: number;
  readonly savedBytes: number;
  readonly dedupRatio: number;
}

/** What provision did. `config` is the record written to page 1 (password hashed). */
export interface ProvisionReport {
  readonly imageId: string;
  readonly pagesCopied: number;
  readonly bytesCopied: number;
  /** Guest pages written, ascending, page 1 (the config) last: pass to Vm.restore's `writtenPages`. */
  readonly writtenPages: readonly number[];
  readonly config: GuestConfigRecord;
}

/** Options of capture. `name` defaults to `id`; `diskBytes` to 0. */
export interface CaptureOptions {
  readonly id: string;
  readonly name?: string;
  readonly description?: string;
  readonly diskBytes?: number;
  readonly dirtyLog?: DirtyLog;
}

/** What capture did: the new image, pages it looked at, zero pages left out, and how many were new to the pool. */
export interface CaptureReport {
  readonly image: Image;
  readonly pagesScanned: number;
  readonly zeroPagesSkipped: number;
  readonly newPages: number;
  readonly dedupedPages: number;
}

/** Result of verify. */
export interface VerifyReport {
  readonly pagesChecked: number;
  readonly corruptedKeys: readonly string[];
  readonly imagesAffected: readonly string[];
}
