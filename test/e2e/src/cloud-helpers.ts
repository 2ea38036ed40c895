/**
 * Helpers for the cloud manager's end-to-end tests: the `pnpm cluster` launcher as a real child
 * process with its stdin as a pipe (the console reads commands from it), its output split into
 * console replies, the pids it started, and checks that processes and ports are gone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { tsxExecArgv } from '@ferry/transport';
import { REPO_ROOT, processExists } from './harness.ts';

const CLUSTER_MAIN = join(REPO_ROOT, 'scripts/cluster.ts');
const CLI_MAIN = join(REPO_ROOT, 'apps/cli/src/main.ts');

/** A running `scripts/cluster.ts`. */
export interface ClusterProcess {
  readonly child: ChildProcess;
  /** Everything it wrote on stdout so far. */
  output(): string;
  /** Everything it wrote on stderr so far. */
  errors(): string;
  /** Resolves once stdout matches `pattern` (rejects after `timeoutMs`, default 60 s, or if it exits first). */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Writes console lines to its stdin; `end` closes stdin after them. */
  send(lines: readonly string[], end?: boolean): void;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const started = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of started) c.kill('SIGKILL');
});

/** Spawns `node --import tsx scripts/cluster.ts ...args` with piped stdin in `cwd` (default the repo root). */
export function spawnCluster(args: readonly string[], cwd = REPO_ROOT): ClusterProcess {
  const child = spawn(process.execPath, [...tsxExecArgv(), CLUSTER_MAIN, ...args], { cwd, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' } });
  started.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.once('exit', (code, signal) => {
      started.delete(child);
      res({ code, signal });
    }),
  );
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  return {
    child,
    output: () => out,
    errors: () => err,
    exited,
    async waitForOutput(pattern, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = out.match(pattern);
        if (m) return m;
        if (hasExited) throw new Error(`cluster exited before printing ${pattern}\nstdout:\n${out}\nstderr:\n${err}`);
        if (Date.now() > deadline) throw new Error(`cluster did not print ${pattern} within ${timeoutMs} ms\nstdout:\n${out}\nstderr:\n${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    send(lines, end = false) {
      child.stdin!.write(lines.map((l) => l + '\n').join(''));
      if (end) child.stdin!.end();
    },
  };
}

/** The pids the launcher reports (`… (pid N)` in its start-up lines). */
export function pidsIn(output: string): number[] {
  return [...output.matchAll(/\(pid (\d+)\)/g)].map((m) => Number(m[1]));
}

/** The console's replies: the output after each `ferry> ` prompt (the first entry is the banner). */
export function consoleReplies(output: string): string[] {
  return output.split('ferry> ').slice(1);
}

/**
 * The JSON values the console printed (`--json` replies, pretty-printed: each starts at a line
 * beginning with `{` or `[`), in order. Tables and messages in between are skipped. With piped
 * input the console prints no prompt between replies, so values are found by parsing, not by prompts.
 */
export function jsonReplies(output: string): unknown[] {
  const values: unknown[] = [];
  let pending: string[] | undefined;
  for (const raw of output.split('\n')) {
    const line = raw.replace(/^(ferry> )+/, '');
    if (pending === undefined) {
      if (!line.startsWith('{') && !line.startsWith('[')) continue;
      pending = [];
    }
    const lines: string[] = pending;
    lines.push(line);
    try {
      values.push(JSON.parse(lines.join('\n')));
      pending = undefined;
    } catch {
      if (lines.length > 100_000) pending = undefined;
    }
  }
  return values;
}

/** True when nothing accepts connections on 127.0.0.1:`port`. */
export function portClosed(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

/** Polls until none of `pids` exists (default 10 s); returns the ones still alive. */
export async function waitGone(pids: readonly number[], timeoutMs = 10_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const alive = pids.filter((p) => processExists(p));
    if (alive.length === 0 || Date.now() > deadline) return alive;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs the real `ferry` CLI (`tsx apps/cli/src/main.ts args`) in `cwd`; resolves with its exit code and output. */
export function runFerry(args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    if (env['FERRY_URL'] === undefined) delete childEnv['FERRY_URL'];
    if (env['FERRY_TOKEN'] === undefined) delete childEnv['FERRY_TOKEN'];
    const child = spawn(process.execPath, [...tsxExecArgv(), CLI_MAIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: childEnv });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Temp dirs of detached `pnpm cluster` runs, cleaned after each test: a cluster a failed test left
 * running is stopped (the supervisor's pid is in `cluster.pid` of its state dir, `stateDirOf(dir)`),
 * then the dir is removed. Push every dir you create onto the returned array.
 */
export function detachedClusterDirs(stateDirOf: (dir: string) => string = (dir) => dir): string[] {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) {
      const pidFile = join(stateDirOf(d), 'cluster.pid');
      if (existsSync(pidFile)) {
        try {
          process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGTERM');
        } catch {
          /* gone already */
        }
      }
      rmSync(d, { recursive: true, force: true });
    }
  });
  return dirs;
}
