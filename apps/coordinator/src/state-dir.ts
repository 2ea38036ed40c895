/**
 * The coordinator's state directory: the cluster token (created on first start, mode 0600) and
 * the state file reloaded after a restart. Every write is temp file + fsync + rename + directory
 * fsync, so a crash leaves either the old or the new file, never a torn one.
 */
import { mkdirSync, openSync, writeSync, fsyncSync, closeSync, renameSync, readFileSync, existsSync, chmodSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { generateToken } from '@ferry/transport';

/** Writes `data` to `path` atomically and durably with `mode` (default 0600). */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): void {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dirFd = openSync(dirname(path), 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

/** Paths inside a state directory. */
export interface StateDirPaths {
  readonly dir: string;
  readonly tokenFile: string;
  readonly stateFile: string;
}

/** Creates the state directory (mode 0700) if needed and returns its file paths. */
export function openStateDir(dir: string): StateDirPaths {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return { dir, tokenFile: join(dir, 'token'), stateFile: join(dir, 'state.json') };
}

/** Reads the cluster token, generating and saving one (0600) on first start. */
export function loadOrCreateToken(paths: StateDirPaths): { token: string; created: boolean } {
  if (existsSync(paths.tokenFile)) {
    chmodSync(paths.tokenFile, 0o600);
    const token = readFileSync(paths.tokenFile, 'utf8').trim();
    if (token.length >= 16) return { token, created: false };
  }
  const token = generateToken();
  writeFileAtomic(paths.tokenFile, token + '\n');
  return { token, created: true };
}

/** What the coordinator keeps across restarts. Modules add their own sections under `modules`. */
export interface PersistedState {
  readonly version: 1;
  /** Hosts ever seen, with the operator-set state (draining/maintenance survive a restart). */
  readonly hosts: readonly PersistedHost[];
  /** Each coordinator module's own state, by module name. */
  readonly modules: Readonly<Record<string, unknown>>;
}

/** One host as persisted. */
export interface PersistedHost {
  readonly id: string;
  readonly adminState: 'up' | 'draining' | 'maintenance';
  readonly lastSeenAtMs: number;
}

/** Reads the state file; a missing file is an empty state, a corrupt one an error (never silently dropped). */
export function loadState(paths: StateDirPaths): PersistedState {
  if (!existsSync(paths.stateFile)) return { version: 1, hosts: [], modules: {} };
  const parsed = JSON.parse(readFileSync(paths.stateFile, 'utf8')) as Partial<PersistedState>;
  if (parsed.version !== 1 || !Array.isArray(parsed.hosts)) throw new Error(`${paths.stateFile}: not a Ferry state file of version 1`);
  return { version: 1, hosts: parsed.hosts, modules: parsed.modules ?? {} };
}

/** Writes the state file atomically. */
export function saveState(paths: StateDirPaths, state: PersistedState): void {
  writeFileAtomic(paths.stateFile, JSON.stringify(state, null, 2) + '\n');
}
