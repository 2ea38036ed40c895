/**
 * The VM journal: every instance record (spec, owner host, state, credentials) and every saved
 * snapshot, in `<stateDir>/vms.json`. Written whole, synchronously, on every change, with
 * temp file + fsync + rename + directory fsync (writeFileAtomic), so the file a restart reads is
 * either the one before a change or the one after it, never a torn one. The coordinator replies
 * to a request only after its journal write returned: a reply the user saw survives a crash.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VM_STATES, type Vm, type VmSnapshot, type VmState } from '@ferry/protocol';
import { CoordinatorError } from './errors.ts';
import { writeFileAtomic } from './state-dir.ts';

/** File name of the journal inside the state directory. */
export const VM_JOURNAL_FILE = 'vms.json';
/** Version of the journal format. */
export const VM_JOURNAL_VERSION = 1;

/** One instance as the coordinator keeps it: the API `Vm` plus bookkeeping the API does not show. */
export interface VmRecord extends Vm {
  /** State before the VM was marked `lost` (restored if its host comes back with it). */
  readonly stateBeforeLost?: VmState;
  /** The VM was reported by an agent but was not in the journal: adopted with what the report told. */
  readonly adopted?: boolean;
}

/** What the journal file holds. */
export interface VmJournalContents {
  readonly version: typeof VM_JOURNAL_VERSION;
  /** Next number for `vm-<n>` ids (never reused, even after delete). */
  readonly nextVmNumber: number;
  /** Next number for `snap-<n>` ids. */
  readonly nextSnapshotNumber: number;
  readonly vms: readonly VmRecord[];
  readonly snapshots: readonly VmSnapshot[];
}

/** The journal file is not a VM journal this coordinator can read; nothing is overwritten. */
export class VmJournalFormatError extends CoordinatorError {
  readonly path: string;
  constructor(path: string, problem: string) {
    super('FERRY_ERR_STATE_FORMAT', `${path}: ${problem}`);
    this.path = path;
  }
}

/** Reads and writes `vms.json` in a state directory. */
export class VmJournal {
  /** Path of the journal file. */
  readonly path: string;

  constructor(stateDir: string) {
    this.path = join(stateDir, VM_JOURNAL_FILE);
  }

  /** The journal's contents; an empty journal when the file does not exist. A corrupt file throws VmJournalFormatError (never silently dropped). */
  load(): VmJournalContents {
    if (!existsSync(this.path)) return { version: VM_JOURNAL_VERSION, nextVmNumber: 1, nextSnapshotNumber: 1, vms: [], snapshots: [] };
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(this.path, 'utf8'));
    } catch (err) {
      throw new VmJournalFormatError(this.path, `not JSON (${(err as Error).message})`);
    }
    const o = parsed as Partial<VmJournalContents>;
    if (o.version !== VM_JOURNAL_VERSION) throw new VmJournalFormatError(this.path, `journal version ${String(o.version)}, this coordinator reads ${VM_JOURNAL_VERSION}`);
    if (!Array.isArray(o.vms) || !Array.isArray(o.snapshots)) throw new VmJournalFormatError(this.path, 'vms and snapshots must be arrays');
    if (!Number.isSafeInteger(o.nextVmNumber) || !Number.isSafeInteger(o.nextSnapshotNumber)) throw new VmJournalFormatError(this.path, 'nextVmNumber and nextSnapshotNumber must be integers');
    for (const vm of o.vms) {
      if (typeof vm?.id !== 'string' || !(VM_STATES as readonly string[]).includes(vm.state) || typeof vm.credentials?.password !== 'string') {
        throw new VmJournalFormatError(this.path, `bad VM record ${JSON.stringify(vm).slice(0, 120)}`);
      }
    }
    return o as VmJournalContents;
  }

  /** Replaces the journal with `contents`, atomically and durably (mode 0600: it holds passwords). */
  save(contents: VmJournalContents): void {
    writeFileAtomic(this.path, JSON.stringify(contents) + '\n', 0o600);
  }
}
