import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { DEFAULT_COORDINATOR_URL, LOCAL_CLUSTER_FILE, LOCAL_STATE_DIR, type LocalClusterFile } from '@ferry/protocol';
import { UsageError } from './errors.ts';

/** Where the CLI sends its requests, and how it learned that. */
export interface Connection {
  readonly url: string;
  readonly token: string | undefined;
  /** `flags`, `env`, a cluster file path, or `default`. */
  readonly source: string;
}

/** Flags and environment a connection may come from. */
export interface ConnectionInputs {
  readonly url?: string;
  readonly token?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
}

/** The nearest `.ferry/cluster.json` from `cwd` upward, parsed; undefined if none. Throws UsageError if one exists but is malformed. */
export function findLocalCluster(cwd: string): { path: string; file: LocalClusterFile } | undefined {
  let dir = resolve(cwd);
  for (;;) {
    const path = join(dir, LOCAL_STATE_DIR, LOCAL_CLUSTER_FILE);
    let text: string | undefined;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      text = undefined;
    }
    if (text !== undefined) {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        throw new UsageError(`${path} is not valid JSON`);
      }
      const v = value as Partial<LocalClusterFile>;
      if (typeof v?.url !== 'string' || typeof v.token !== 'string') throw new UsageError(`${path} must hold { "url": string, "token": string }`);
      return { path, file: { url: v.url, token: v.token } };
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/**
 * Resolves the coordinator URL and token: each from `--url`/`--token`, else FERRY_URL/FERRY_TOKEN,
 * else the local cluster file (`.ferry/cluster.json` from cwd upward), else the default URL and no token.
 */
export function resolveConnection(inputs: ConnectionInputs): Connection {
  const env = inputs.env ?? {};
  const fromFlags = inputs.url ?? inputs.token;
  const url0 = inputs.url ?? env['FERRY_URL'];
  const token0 = inputs.token ?? env['FERRY_TOKEN'];
  if (url0 !== undefined && token0 !== undefined) return { url: trimUrl(url0), token: token0, source: fromFlags !== undefined ? 'flags' : 'env' };
  const local = findLocalCluster(inputs.cwd ?? process.cwd());
  const url = url0 ?? local?.file.url ?? DEFAULT_COORDINATOR_URL;
  const token = token0 ?? local?.file.token;
  return { url: trimUrl(url), token, source: local ? local.path : url0 !== undefined || token0 !== undefined ? 'env' : 'default' };
}

function trimUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
  } catch {
    throw new UsageError(`--url must be an http(s) URL such as http://127.0.0.1:7070, got "${url}"`);
  }
  return url.replace(/\/+$/, '');
}
