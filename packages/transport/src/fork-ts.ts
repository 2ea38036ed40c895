/**
 * Starts a TypeScript module as a real child process (node + the tsx loader), for the ceiling
 * measurements and multi-process tests.
 */
import { fork, type ChildProcess, type ForkOptions } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

/** The node flags that let a child process run .ts files (`--import <tsx loader>`). */
export function tsxExecArgv(): string[] {
  const loader = createRequire(import.meta.url).resolve('tsx');
  return ['--import', pathToFileURL(loader).href];
}

/** Forks `modulePath` (a .ts file) with `args` and an IPC channel; stdout/stderr inherited unless `options.stdio` says otherwise. */
export function forkTs(modulePath: string, args: readonly string[], options: ForkOptions = {}): ChildProcess {
  return fork(modulePath, [...args], { execArgv: tsxExecArgv(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'], ...options });
}

/**
 * Resolves with the first JSON line on `child`'s stdout whose `event` equals `event` (Ferry's
 * processes announce readiness that way, e.g. `{"event":"coordinator-ready","port":7070}`).
 * Rejects after `timeoutMs`, or when `exited` settles first; `describe(why)` builds the error
 * message, so callers can add their log excerpt or log path.
 */
export function waitForReadyLine(
  child: ChildProcess,
  event: string,
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
  timeoutMs: number,
  describe: (why: string) => string,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(describe(`no ${event} line within ${timeoutMs} ms`))), timeoutMs);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        let parsed: unknown;
        try {
          parsed = JSON.parse(line);
        } catch {
          continue; // not a JSON line
        }
        if (typeof parsed === 'object' && parsed !== null && (parsed as Record<string, unknown>)['event'] === event) {
          clearTimeout(timer);
          resolve(parsed as Record<string, unknown>);
        }
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(describe(`exited (${code ?? signal}) before ${event}`)));
    });
  });
}
