import { memoryDigest, SnapshotWriter, PAGES_PER_WORD } from '@ferry/memory';
import type { DirtyLog, GuestMemory, SnapshotFileInfo, SnapshotState } from '@ferry/memory';
import { SnapshotInconsistentError } from './errors.ts';

/** Options of Vm.snapshot. */
export interface LiveSnapshotOptions {
  /** Most copy rounds before the final pause (the first round copies every written page). Default 8. */
  readonly maxRounds?: number;
  /** Pause for the last pages once a round finds at most this many dirty pages. Default 256. */
  readonly stopBelowPages?: number;
  /** Also digest memory during the pause and check the file against it (longer pause). Default false. */
  readonly verify?: boolean;
}

/** One copy round of a live snapshot. */
export interface LiveSnapshotRound {
  readonly round: number;
  /** Pages written to the file this round. */
  readonly pages: number;
  readonly durationMs: number;
}

/** What a live snapshot did. `pauseMs` is the time the vCPUs were parked (0 if the VM was already paused). */
export interface LiveSnapshotReport extends SnapshotFileInfo {
  readonly rounds: readonly LiveSnapshotRound[];
  /** Pages written during the final pause. */
  readonly finalPages: number;
  readonly pauseMs: number;
  readonly durationMs: number;
  /** Whether the file was checked against memory digested at the pause (options.verify). */
  readonly verified: boolean;
}

/** What the snapshot needs of the VM. */
export interface LiveSnapshotHost {
  readonly vmId: string;
  readonly memory: GuestMemory;
  readonly dirtyLog: DirtyLog;
  /** Whether the vCPUs run now (then they are parked for the last round). */
  readonly running: boolean;
  park(): Promise<void>;
  unpark(): void;
  /** Spec, registers and devices; called while parked. */
  state(): SnapshotState;
}

/**
 * A point-in-time copy of a running VM into `path`: round 1 writes every page ever written, each
 * next round the pages dirtied during the previous one (pwritten in place), until few remain or
 * maxRounds; then the vCPUs park for the last dirty pages and the register block, and run again
 * before the file is digested and published. The dirty log is left as a superset of what it was:
 * every bit the snapshot harvested is set again at the end, so a log consumer (a migration) misses
 * nothing.
 */
export async function takeLiveSnapshot(host: LiveSnapshotHost, path: string, options: LiveSnapshotOptions = {}): Promise<LiveSnapshotReport> {
  const maxRounds = options.maxRounds ?? 8;
  const stopBelowPages = options.stopBelowPages ?? 256;
  const { memory, dirtyLog } = host;
  const started = performance.now();
  const taken = new Int32Array(Math.ceil(memory.pageCount / PAGES_PER_WORD));
  const harvest = (): Uint32Array => {
    const pages = dirtyLog.harvest();
    for (let i = 0; i < pages.length; i++) {
      const p = pages[i]!;
      taken[p >>> 5] = taken[p >>> 5]! | (1 << (p & 31));
    }
    return Uint32Array.from(pages);
  };
  const writer = await SnapshotWriter.create(path, memory.pageCount);
  const rounds: LiveSnapshotRound[] = [];
  let parked = false;
  try {
    let t = performance.now();
    harvest();
    const written: number[] = [];
    for (let p = 0; p < memory.pageCount; p++) if (dirtyLog.isEverWritten(p)) written.push(p);
    await writer.writePages(memory, written);
    rounds.push({ round: 1, pages: written.length, durationMs: performance.now() - t });
    while (host.running && rounds.length < maxRounds) {
      if (dirtyLog.count() <= stopBelowPages) break;
      t = performance.now();
      const dirty = harvest();
      await writer.writePages(memory, dirty);
      rounds.push({ round: rounds.length + 1, pages: dirty.length, durationMs: performance.now() - t });
    }
    const pauseStart = performance.now();
    if (host.running) {
      await host.park();
      parked = true;
    }
    const last = harvest();
    await writer.writePages(memory, last);
    const state = host.state();
    const atPause = options.verify ? memoryDigest(memory) : undefined;
    let pauseMs = 0;
    if (parked) {
      host.unpark();
      parked = false;
      pauseMs = performance.now() - pauseStart;
    }
    const info = await writer.finish(state);
    if (atPause !== undefined && atPause !== info.memoryDigest) throw new SnapshotInconsistentError(host.vmId, path, info.memoryDigest, atPause);
    return { ...info, rounds, finalPages: last.length, pauseMs, durationMs: performance.now() - started, verified: atPause !== undefined };
  } catch (err) {
    if (parked) host.unpark();
    await writer.abort();
    throw err;
  } finally {
    const words = new Int32Array(dirtyLog.buffer);
    for (let w = 0; w < taken.length; w++) if (taken[w] !== 0) Atomics.or(words, w, taken[w]!);
  }
}
