/**
 * A TypeScript entry point as one plain-JS ES module, so that a child process runs it with plain
 * `node` instead of `node --import tsx`. Why: tsx's loader thread and the transpiled sources it
 * keeps cost every process about 38 MiB of RSS (an idle agent: 115 MiB under tsx, 77 MiB
 * bundled, this machine), and an agent's memory during a migration is held to the VM's size plus
 * 10% (issue #3), of which Node itself already takes most.
 *
 * - Workspace sources are bundled. Third-party packages stay external, imported by the absolute
 *   URL esbuild resolved them to (with Node's import conditions), so the bundle works from any
 *   directory and native add-ons load as they would under tsx.
 * - `import.meta.url` in a bundled file becomes that file's own URL, so paths relative to it (the
 *   pCPU worker's source, createRequire) resolve exactly as they do under tsx.
 * - Written to the OS temp dir under the hash of its contents (~0.1 s to build, once per process
 *   and entry), so concurrent launchers share one file and never see a half-written one. Bundles
 *   of the same entry older than a day are removed (a running process has loaded its own already).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';

const built = new Map<string, Promise<string>>();

const STALE_MS = 24 * 3600_000;

/** The path of `modulePath` (a .ts entry) bundled for plain node; built once per process (again if its file went). */
export async function bundledEntry(modulePath: string): Promise<string> {
  const known = built.get(modulePath);
  if (known) {
    const path = await known.catch(() => undefined);
    if (path !== undefined && existsSync(path)) return path;
  }
  const path = bundle(modulePath);
  built.set(modulePath, path);
  path.catch(() => built.delete(modulePath)); // a failed build (a syntax error being fixed) is retried next time
  return path;
}

async function bundle(modulePath: string): Promise<string> {
  const out = await build({
    entryPoints: [modulePath],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    keepNames: true,
    logLevel: 'silent',
    plugins: [workspaceOnly(), ownImportMetaUrl()],
  });
  const code = out.outputFiles[0]!.contents;
  const dir = join(tmpdir(), 'ferry-bundles');
  mkdirSync(dir, { recursive: true });
  const name = basename(modulePath, '.ts').replace(/[^\w.-]/g, '_');
  const file = join(dir, `${name}-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`);
  if (!existsSync(file) || !readFileSync(file).equals(code)) {
    const temp = `${file}.${process.pid}.tmp`;
    writeFileSync(temp, code);
    renameSync(temp, file);
    removeStale(dir, name, file);
  }
  return file;
}

/** Removes other bundles of the entry `name` older than STALE_MS (best effort). */
function removeStale(dir: string, name: string, keep: string): void {
  const now = Date.now();
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (path === keep || !entry.startsWith(`${name}-`) || !entry.endsWith('.mjs')) continue;
    try {
      if (now - statSync(path).mtimeMs > STALE_MS) rmSync(path, { force: true });
    } catch {
      // gone meanwhile, or not ours to remove
    }
  }
}

/** Bare imports that resolve into node_modules stay external, by absolute URL; workspace packages are bundled. */
function workspaceOnly(): Plugin {
  const again = Symbol('resolving');
  return {
    name: 'ferry-workspace-only',
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.pluginData === again) return undefined;
        const r = await b.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: again });
        if (r.errors.length > 0) return { errors: r.errors };
        if (r.external) return { path: args.path, external: true }; // node: builtins
        if (r.path.includes(`${sep}node_modules${sep}`)) return { path: pathToFileURL(r.path).href, external: true };
        return r;
      });
    },
  };
}

/** Replaces `import.meta.url` in every bundled .ts file with that file's URL. */
function ownImportMetaUrl(): Plugin {
  return {
    name: 'ferry-own-import-meta-url',
    setup(b) {
      b.onLoad({ filter: /\.ts$/ }, (args) => ({
        contents: readFileSync(args.path, 'utf8').replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)),
        loader: 'ts',
      }));
    },
  };
}
