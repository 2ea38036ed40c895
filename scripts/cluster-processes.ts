/**
 * Child processes of a local cluster: the coordinator (`node --import tsx <main.ts>`) and the
 * agents (`node <bundle>`, see bundledEntry in @ferry/transport: ~38 MiB less RSS each), logs appended to `<stateDir>/logs/<name>.log`, started when their one-line JSON
 * ready announcement arrives on stdout, stopped with SIGTERM (then SIGKILL after a grace period).
 * Every child is also killed when this process exits, whatever the reason, so none is orphaned.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundledEntry, tsxExecArgv, waitForReadyLine } from '@ferry/transport';

/** The repository root. */
export const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
/** The coordinator's entry point. */
export const COORDINATOR_MAIN = join(REPO_ROOT, 'apps/coordinator/src/main.ts');
/** The agent's entry point. */
export const AGENT_MAIN = join(REPO_ROOT, 'apps/agent/src/main.ts');

/** A started child with its ready line. */
export interface ClusterChild {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly ready: Record<string, unknown>;
  readonly logPath: string;
  /** Resolves when the child has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs` (default 5000); resolves once it exited. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/**
 * Spawns `node --import tsx <modulePath> args` (with `bundle`, `node <bundle of modulePath> args`)
 * with logs to `<logDir>/<name>.log`; resolves with the parsed `readyEvent` line.
 */
export async function startChild(name: string, modulePath: string, args: readonly string[], logDir: string, readyEvent: string, options: { readyTimeoutMs?: number; bundle?: boolean } = {}): Promise<ClusterChild> {
  const entry = options.bundle ? [await bundledEntry(modulePath)] : [...tsxExecArgv(), modulePath];
  mkdirSync(logDir, { recursive: true });
  const logPath = join(logDir, `${name}.log`);
  const logFd = openSync(logPath, 'a');
  const child = spawn(process.execPath, [...entry, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', logFd], env: { ...process.env, FORCE_COLOR: '0' } });
  closeSync(logFd);
  live.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once('exit', (code, signal) => {
      live.delete(child);
      done({ code, signal });
    }),
  );
  const ready = await waitForReadyLine(child, readyEvent, exited, options.readyTimeoutMs ?? 30_000, (why) => `${name}: ${why} (see ${logPath})`).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
  return {
    name,
    child,
    pid: child.pid!,
    ready,
    logPath,
    exited,
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/** True when a process with this pid exists. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
