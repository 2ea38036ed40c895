// Helpers shared by this package's tests (not exported from the package).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VmSpec } from './spec.ts';

/** A fresh temp directory and its cleanup. */
export async function tempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A small VM spec for tests: 4 MiB, one vCPU, uniform writes as fast as allowed. */
export function testSpec(overrides: Partial<VmSpec> = {}): VmSpec {
  return { id: 'vm-test', name: 'test', vcpus: 1, memoryBytes: 4 << 20, workload: { kind: 'uniform', seed: 7 }, ...overrides };
}

/** Whether two byte arrays are equal; on a difference, the first differing page. */
export function firstDifferentPage(a: Uint8Array, b: Uint8Array): number {
  if (a.byteLength !== b.byteLength) return -2;
  const diff = Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  if (diff === 0) return -1;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return Math.floor(i / 4096);
  return -1;
}

/** Polls `condition` every 5 ms until it holds; throws after `timeoutMs` (default 10 s). For progress, not timing. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
