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
