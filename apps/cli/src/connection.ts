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
  /** A local cluster's state dir (`pnpm cluster --state-dir DIR`): its `cluster.json` gives URL and token. */
  readonly stateDir?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
}

/** Reads a local cluster file; undefined if there is none at `path`. Throws UsageError if it is malformed. */
export function readLocalClusterFile(path: string): LocalClusterFile | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`${path} is not valid JSON`);
  }
  const v = value as Partial<LocalClusterFile>;
  if (typeof v?.url !== 'string' || typeof v.token !== 'string') throw new UsageError(`${path} must hold { "url": string, "token": string }`);
  return { url: v.url, token: v.token };
}

/** The nearest `.ferry/cluster.json` from `cwd` upward, parsed; undefined if none. Throws UsageError if one exists but is malformed. */
export function findLocalCluster(cwd: string): { path: string; file: LocalClusterFile } | undefined {
  let dir = resolve(cwd);
  for (;;) {
    const path = join(dir, LOCAL_STATE_DIR, LOCAL_CLUSTER_FILE);
    const file = readLocalClusterFile(path);
    if (file !== undefined) return { path, file };
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/**
 * Resolves the coordinator URL and token: each from `--url`/`--token`, else FERRY_URL/FERRY_TOKEN,
 * else the local cluster file: `<stateDir>/cluster.json` when `--state-dir` or FERRY_STATE_DIR
 * names one (a UsageError if no cluster runs there), else `.ferry/cluster.json` from cwd upward;
 * else the default URL and no token.
 */
export function resolveConnection(inputs: ConnectionInputs): Connection {
  const env = inputs.env ?? {};
  const fromFlags = inputs.url ?? inputs.token;
  const url0 = inputs.url ?? env['FERRY_URL'];
  const token0 = inputs.token ?? env['FERRY_TOKEN'];
  if (url0 !== undefined && token0 !== undefined) return { url: trimUrl(url0), token: token0, source: fromFlags !== undefined ? 'flags' : 'env' };
  const stateDir = inputs.stateDir ?? (env['FERRY_STATE_DIR'] || undefined);
  let local: { path: string; file: LocalClusterFile } | undefined;
  if (stateDir !== undefined) {
    const path = join(resolve(inputs.cwd ?? process.cwd(), stateDir), LOCAL_CLUSTER_FILE);
    const file = readLocalClusterFile(path);
    if (file === undefined) throw new UsageError(`no cluster runs from ${dirname(path)} (no ${LOCAL_CLUSTER_FILE} there); start one with: pnpm cluster --detach --state-dir ${stateDir}`);
    local = { path, file };
  } else {
    local = findLocalCluster(inputs.cwd ?? process.cwd());
  }
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
