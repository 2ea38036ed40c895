import { appendFileSync, readFileSync } from 'node:fs';
import { createInterface, type Interface } from 'node:readline';
import { API_ROUTES, GROUP_POLICIES, RATE_LIMIT_KINDS, type Host, type Image, type Vm } from '@ferry/protocol';
import { ApiClient } from './client.ts';
import { PLAN_NAMES } from './plan-command.ts';
import { COMMAND_NAMES, HOST_ARG_COMMANDS, HOST_OPTIONS, VM_ARG_COMMANDS, runCommand } from './commands.ts';

// The coordinator console: an interactive REPL over the same command code as the one-shot CLI.
// Each line is parsed like a shell line and run by runCommand; Tab completes command names, VM ids
// and host ids (fetched from the coordinator, cached briefly); Up/Down walk the history; Ctrl-C
// stops a running `--watch`/`--follow` command, or closes the console at the prompt.

/** The console's history file in a local cluster's state dir. */
export const CONSOLE_HISTORY_FILE = 'console-history';

/** What `help` adds in the console to the command list. */
export const CONSOLE_HELP =
  '\nIn the console: `help COMMAND` for its options; Tab completes commands, VM ids and host ids; Up/Down walk the history;\n' +
  'Ctrl-C stops a running --watch/--follow; exit, quit, Ctrl-C at the prompt or Ctrl-D leave (under `pnpm cluster`: stop the cluster).\n';

/** Options of startConsole. `terminal` defaults to the output being a TTY. */
export interface ConsoleOptions {
  readonly url: string;
  readonly token: string | undefined;
  readonly input: NodeJS.ReadableStream;
  readonly output: NodeJS.WritableStream;
  readonly prompt?: string;
  readonly terminal?: boolean;
  /** Earlier history, newest first (readline's order). */
  readonly history?: readonly string[];
  /** A file to load history from and append each line to (e.g. `.ferry/console-history`). */
  readonly historyPath?: string;
  /** Prints a banner line on start (default true). */
  readonly banner?: boolean;
}

/** A running console. */
export interface ConsoleHandle {
  /** Resolves when the console has closed (exit, quit, end of input, Ctrl-C at the prompt) and its last command ended. */
  readonly closed: Promise<void>;
  /** Closes the console. */
  close(): void;
  /** History so far, newest first. */
  history(): string[];
}

/** Ids the completer offers. */
export interface CompletionIds {
  readonly vms: readonly string[];
  readonly hosts: readonly string[];
  readonly images?: readonly string[];
}

/** Splits a console line into words: whitespace-separated, with '…' and "…" quoting and \ escapes. */
export function splitLine(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) word += line[++i];
      else word += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/**
 * Completions for the word under the cursor at the end of `line`, readline style: `[matches,
 * word]`. First word: command names (and exit, quit). After a VM command: VM ids; after drain or
 * undrain: host ids; after --to or --host: host ids; after show: both; after plan: its plan names;
 * after --policy: group policies.
 */
export function completeLine(line: string, ids: CompletionIds): [string[], string] {
  const words = splitLine(line);
  const current = /\s$/.test(line) || line === '' ? '' : (words.pop() ?? '');
  let candidates: readonly string[];
  if (words.length === 0) {
    candidates = [...COMMAND_NAMES, 'exit', 'quit'];
  } else {
    const command = words[0]!;
    const previous = words[words.length - 1]!;
    const positional = words.slice(1).filter((w, i, all) => !w.startsWith('-') && !(i > 0 && all[i - 1]!.startsWith('--') && !['--watch', '--json', '--follow', '--force', '--auto-converge', '--affinity', '--anti-affinity', '--cancel', '--wait', '--apply'].includes(all[i - 1]!)));
    if (HOST_OPTIONS.includes(previous)) candidates = ids.hosts;
    else if (previous === '--image') candidates = ids.images ?? [];
    else if (previous === '--rate-limit') candidates = RATE_LIMIT_KINDS;
    else if (previous === '--policy') candidates = GROUP_POLICIES;
    else if (command === 'help') candidates = COMMAND_NAMES;
    else if (command === 'plan' && positional.length === 0 && !current.startsWith('-')) candidates = Object.keys(PLAN_NAMES);
    else if (positional.length > 0 || current.startsWith('-')) candidates = [];
    else if (VM_ARG_COMMANDS.includes(command)) candidates = ids.vms;
    else if (HOST_ARG_COMMANDS.includes(command)) candidates = ids.hosts;
    else if (command === 'show') candidates = [...ids.vms, ...ids.hosts];
    else candidates = [];
  }
  const hits = candidates.filter((c) => c.startsWith(current));
  return [hits.length > 0 ? [...hits].sort() : [], current];
}

const ID_CACHE_MS = 2000;

/**
 * Starts the console on `input`/`output`, talking to the coordinator at `url` with `token`. Each
 * line runs the same command code as `ferry ARGS`; lines run one at a time, in order.
 */
export function startConsole(options: ConsoleOptions): ConsoleHandle {
  const client = new ApiClient({ url: options.url, token: options.token, timeoutMs: 10_000 });
  const out = (text: string): void => void options.output.write(text);
  const terminal = options.terminal ?? (options.output as { isTTY?: boolean }).isTTY === true;
  let cache: { at: number; ids: CompletionIds } | undefined;
  const fetchIds = async (): Promise<CompletionIds> => {
    if (cache && Date.now() - cache.at < ID_CACHE_MS) return cache.ids;
    const [vms, hosts, images] = await Promise.all([
      client.get<Vm[]>(API_ROUTES.vms).catch(() => [] as Vm[]),
      client.get<Host[]>(API_ROUTES.hosts).catch(() => [] as Host[]),
      client.get<Image[]>(API_ROUTES.images).catch(() => [] as Image[]),
    ]);
    const ids = { vms: vms.filter((v) => v.state !== 'deleted').map((v) => v.id), hosts: hosts.map((h) => h.id), images: images.map((i) => i.id) };
    cache = { at: Date.now(), ids };
    return ids;
  };
  // End of input (a pipe, a script) lets queued and running commands finish; only exit, Ctrl-C
  // or close() abort a running one. Registered before readline's own 'end' listener so it runs first.
  let inputEnded = false;
  options.input.once('end', () => (inputEnded = true));
  const loaded = options.historyPath ? loadHistory(options.historyPath) : [];
  const initialHistory = [...(options.history ?? []), ...loaded];
  const rl: Interface = createInterface({
    input: options.input,
    output: options.output,
    terminal,
    prompt: options.prompt ?? 'ferry> ',
    history: [...initialHistory],
    historySize: 1000,
    removeHistoryDuplicates: true,
    completer: (line: string, callback: (err: Error | null, result: [string[], string]) => void) => {
      fetchIds().then(
        (ids) => callback(null, completeLine(line, ids)),
        () => callback(null, completeLine(line, { vms: [], hosts: [] })),
      );
    },
  });
  const history: string[] = [...initialHistory];
  let running: AbortController | undefined;
  let queue = Promise.resolve();
  let closing = false;

  const runLine = async (line: string): Promise<void> => {
    const words = splitLine(line);
    if (words.length === 0) return;
    if (words[0] === 'exit' || words[0] === 'quit') {
      rl.close();
      return;
    }
    running = new AbortController();
    try {
      await runCommand(words[0] === 'help' && words.length === 1 ? ['--help'] : words, {
        out,
        err: out,
        connection: { url: options.url, token: options.token },
        signal: running.signal,
      });
      if (words[0] === 'help' && words.length === 1) out(CONSOLE_HELP);
      if (words[0] !== 'show' && words[0] !== 'hosts' && words[0] !== 'vms') cache = undefined; // ids may have changed
    } finally {
      running = undefined;
    }
  };

  rl.on('line', (line) => {
    const trimmed = line.trim();
    if (trimmed && history[0] !== trimmed) {
      history.unshift(trimmed);
      if (options.historyPath) {
        try {
          appendFileSync(options.historyPath, `${trimmed.replace(/\n/g, ' ')}\n`);
        } catch {
          // history is a convenience: an unwritable file must not stop the console
        }
      }
    }
    queue = queue.then(() => runLine(trimmed)).then(() => {
      if (!closing) rl.prompt();
    });
  });
  rl.on('SIGINT', () => {
    if (running) {
      running.abort();
      out('^C\n');
    } else {
      out('\n');
      rl.close();
    }
  });
  const closed = new Promise<void>((resolve) => {
    rl.on('close', () => {
      closing = true;
      if (!inputEnded) running?.abort();
      queue.then(() => resolve());
    });
  });
  if (options.banner !== false) out(`Ferry console on ${options.url}. Type help for commands, Tab to complete, exit to leave.\n`);
  rl.prompt();
  return { closed, close: () => rl.close(), history: () => [...history] };
}

/** Lines of a history file, newest first; empty if it cannot be read. Keeps the last 1000. */
function loadHistory(path: string): string[] {
  try {
    return readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '').slice(-1000).reverse();
  } catch {
    return [];
  }
}
