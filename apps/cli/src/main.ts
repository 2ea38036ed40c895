import { dirname, join } from 'node:path';
import { runCommand } from './commands.ts';
import { CONSOLE_HISTORY_FILE, startConsole } from './console.ts';
import { resolveConnection } from './connection.ts';

// `ferry ARGS`: one command and exit. `ferry` alone, or `ferry console`, opens the console (with
// only connection flags too: `ferry --state-dir DIR`). Ctrl-C stops `--watch` and `--follow` (the
// migration itself goes on).

const CONNECTION_FLAGS = { '--url': 'url', '--token': 'token', '--state-dir': 'stateDir' } as const;
const argv = process.argv.slice(2);
const rest = argv.filter((a, i) => !(a in CONNECTION_FLAGS) && !(i > 0 && argv[i - 1]! in CONNECTION_FLAGS));
if (rest.length === 0 || rest[0] === 'console') {
  const flags: { url?: string; token?: string; stateDir?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === 'console') continue;
    if (a in CONNECTION_FLAGS && argv[i + 1] !== undefined) flags[CONNECTION_FLAGS[a as keyof typeof CONNECTION_FLAGS]] = argv[++i]!;
    else {
      process.stderr.write(a in CONNECTION_FLAGS ? `error: ${a} needs a value\n` : `error: ferry console takes --url URL, --token T, --state-dir DIR; got "${a}"\n`);
      process.exit(2);
    }
  }
  try {
    const conn = resolveConnection({ ...flags, env: process.env, cwd: process.cwd() });
    // A local cluster's console keeps its history beside its cluster file, as `pnpm cluster` does.
    const historyPath = conn.source.endsWith('.json') ? join(dirname(conn.source), CONSOLE_HISTORY_FILE) : undefined;
    const handle = startConsole({ url: conn.url, token: conn.token, input: process.stdin, output: process.stdout, ...(historyPath ? { historyPath } : {}) });
    await handle.closed;
    process.exit(0);
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    process.exit(2);
  }
} else {
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  const status = await runCommand(argv, {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    env: process.env,
    cwd: process.cwd(),
    signal: abort.signal,
  });
  process.exitCode = status;
}
