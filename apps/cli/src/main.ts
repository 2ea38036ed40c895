import { runCommand } from './commands.ts';
import { startConsole } from './console.ts';
import { resolveConnection } from './connection.ts';

// `ferry ARGS`: one command and exit. `ferry` alone, or `ferry console`, opens the console.
// Ctrl-C stops `--watch` and `--follow` (the migration itself goes on).

const argv = process.argv.slice(2);
if (argv.length === 0 || argv[0] === 'console') {
  let url: string | undefined;
  let token: string | undefined;
  for (let i = 1; i < argv.length; i++) {
    if (argv[i] === '--url') url = argv[++i];
    else if (argv[i] === '--token') token = argv[++i];
  }
  try {
    const conn = resolveConnection({ ...(url !== undefined ? { url } : {}), ...(token !== undefined ? { token } : {}), env: process.env, cwd: process.cwd() });
    const handle = startConsole({ url: conn.url, token: conn.token, input: process.stdin, output: process.stdout });
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
