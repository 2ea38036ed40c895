import { xxh64, Xxh64 } from '@node-rs/xxhash';
import { PAGE_SIZE_BYTES, pageOffset } from './constants.ts';
import type { GuestMemory } from './guest-memory.ts';

// Page hashing is xxh64 from @node-rs/xxhash: measured here at 10.5 GB/s streaming and 4.2 GB/s
// one 4 KiB page per call (the N-API call dominates), against sha256 at ~1.2 GB/s and
// zlib.crc32 at 4.2 GB/s streaming (PERF-NOTES.md). Digests are not security boundaries: tokens
// authenticate peers, digests catch lost or corrupted pages.

const PAGE_WORDS = PAGE_SIZE_BYTES / 8;
const MASK_64 = (1n << 64n) - 1n;

/**
 * Whether a 4 KiB page is all zero. Checks the first and last words first (almost every non-zero
 * page fails there), then every 64-bit word. `page` must be 8-byte aligned (every page view is).
 */
export function isZeroPage(page: Uint8Array): boolean {
  const words = new BigUint64Array(page.buffer, page.byteOffset, PAGE_WORDS);
  if (words[0] !== 0n || words[PAGE_WORDS - 1] !== 0n) return false;
  const ints = new Int32Array(page.buffer, page.byteOffset, PAGE_SIZE_BYTES / 4);
  for (let i = 0; i < ints.length; i += 4) {
    if ((ints[i]! | ints[i + 1]! | ints[i + 2]! | ints[i + 3]!) !== 0) return false;
  }
  return true;
}

/** The xxh64 digest of one page's bytes (seed 0). Used for reference-by-hash and page-level checks. */
export function pageDigest(page: Uint8Array): bigint {
  return xxh64(page);
}

/**
 * The digest of all guest memory: xxh64 streamed over every byte, 4 MiB at a time. Hex, 16 digits.
 * Both ends of a migration compute it over the paused image; equal digests mean equal memory.
 */
export function memoryDigest(memory: GuestMemory): string {
  const hasher = new Xxh64(0n);
  const chunk = 1 << 22;
  for (let offset = 0; offset < memory.byteLength; offset += chunk) {
    hasher.update(memory.bytes.subarray(offset, Math.min(offset + chunk, memory.byteLength)));
  }
  return hasher.digest().toString(16).padStart(16, '0');
}

/**
 * An order-independent digest of memory built from per-page digests: the sum mod 2^64 of
 * xxh64(page, seed = index + 1). Because it is a sum, it can be kept up to date page by page
 * (subtract the old page's term, add the new one) by a sender and a receiver that each touch a
 * page anyway, and still equals the full recomputation. Hex, 16 digits.
 */
export function pageSumDigest(memory: GuestMemory): string {
  let sum = 0n;
  for (let p = 0; p < memory.pageCount; p++) sum += pageSumTerm(memory.bytes.subarray(pageOffset(p), pageOffset(p + 1)), p);
  return (sum & MASK_64).toString(16).padStart(16, '0');
}

/** One page's term of pageSumDigest: xxh64 of its bytes seeded with its index + 1. */
export function pageSumTerm(page: Uint8Array, index: number): bigint {
  return xxh64(page, BigInt(index + 1));
}
