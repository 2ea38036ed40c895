import { PAGE_SIZE_BYTES } from '@ferry/memory';
import { IMAGE_FIRST_PAGE } from './guest-config.ts';

// The built-in virtual appliances. Each is generated deterministically from a seed the first time
// a library is opened (no downloads): the same bytes on every machine, every run. An appliance is
// a stack of layers, like a real software stack on a base OS: every appliance but `minimal`
// carries the full base OS layers, so most of their pages are shared and stored once.
//
// Guest layout of an appliance: page 2 is its boot header (magic, name, page count), layers follow
// from page 3 in order. Pages 0 and 1 stay out of images (guest-info and run-time config).

/** One layer of an appliance: `pages` pages of content generated from the layer's `component` name. */
export interface ApplianceLayer {
  readonly component: string;
  readonly pages: number;
  /** Fraction of each page that holds data (the rest is zero), 0..1; default 1. */
  readonly fill?: number;
}

/** A built-in appliance definition. */
export interface ApplianceDefinition {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly memoryBytes: number;
  readonly diskBytes: number;
  readonly layers: readonly ApplianceLayer[];
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const BASE_OS: readonly ApplianceLayer[] = [
  { component: 'kernel', pages: 192 },
  { component: 'libc', pages: 96 },
  { component: 'coreutils', pages: 96, fill: 0.6 },
  { component: 'init', pages: 64, fill: 0.4 },
  { component: 'etc-base', pages: 16, fill: 0.1 },
];

/** The built-in catalog, in listing order. */
export const BUILT_IN_APPLIANCES: readonly ApplianceDefinition[] = [
  {
    id: 'minimal',
    name: 'minimal',
    description: 'Kernel and libc only: the smallest bootable guest',
    memoryBytes: 2 * MiB,
    diskBytes: 256 * MiB,
    layers: BASE_OS.slice(0, 2),
  },
  {
    id: 'base-os',
    name: 'base-os',
    description: 'Base operating system: kernel, libc, coreutils, init',
    memoryBytes: 4 * MiB,
    diskBytes: 1 * GiB,
    layers: BASE_OS,
  },
  {
    id: 'lamp',
    name: 'lamp',
    description: 'LAMP stack on base-os: Apache, MySQL, PHP',
    memoryBytes: 8 * MiB,
    diskBytes: 4 * GiB,
    layers: [...BASE_OS, { component: 'apache', pages: 128 }, { component: 'mysql', pages: 160 }, { component: 'php', pages: 96, fill: 0.8 }, { component: 'etc-lamp', pages: 8, fill: 0.1 }],
  },
  {
    id: 'redis',
    name: 'redis',
    description: 'Redis key-value server on base-os',
    memoryBytes: 4 * MiB,
    diskBytes: 2 * GiB,
    layers: [...BASE_OS, { component: 'redis', pages: 112 }, { component: 'etc-redis', pages: 4, fill: 0.1 }],
  },
];

/** Magic at the start of an appliance's boot header page: 'FERRYIMG'. */
export const APPLIANCE_HEADER_MAGIC = 'FERRYIMG';

/** FNV-1a 32-bit hash of a string: the seed of a layer's generator. */
function seedOf(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Fills `page` with the deterministic content of page `index` of `layer`: a mulberry32 stream, then zeros past the layer's fill. */
function fillLayerPage(page: Uint8Array, layer: ApplianceLayer, index: number): void {
  let state = seedOf(`${layer.component}/${index}`);
  const words = new Uint32Array(page.buffer, page.byteOffset, PAGE_SIZE_BYTES / 4);
  const used = Math.max(1, Math.round(words.length * (layer.fill ?? 1)));
  for (let w = 0; w < used; w++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    words[w] = (t ^ (t >>> 14)) >>> 0;
  }
  words.fill(0, used);
}

/** Number of content pages (header included) an appliance occupies. */
export function appliancePageCount(def: ApplianceDefinition): number {
  return 1 + def.layers.reduce((n, l) => n + l.pages, 0);
}

/**
 * Generates every page of an appliance, calling `emit(guestPage, bytes)` in ascending page order
 * from IMAGE_FIRST_PAGE. `bytes` is a reused 4096-byte buffer, valid only during the call.
 */
export function generateAppliance(def: ApplianceDefinition, emit: (guestPage: number, bytes: Uint8Array) => void): void {
  const page = new Uint8Array(PAGE_SIZE_BYTES);
  const header = new TextEncoder().encode(`${APPLIANCE_HEADER_MAGIC}\n${JSON.stringify({ id: def.id, pages: appliancePageCount(def), layers: def.layers.map((l) => l.component) })}\n`);
  page.set(header.subarray(0, PAGE_SIZE_BYTES));
  let guestPage = IMAGE_FIRST_PAGE;
  emit(guestPage++, page);
  for (const layer of def.layers) {
    for (let i = 0; i < layer.pages; i++) {
      page.fill(0);
      fillLayerPage(page, layer, i);
      emit(guestPage++, page);
    }
  }
}
