// `pnpm bench <name> [flags]`: runs scripts/bench/<name>.ts, whose `main(args)` prints a table,
// or one JSON object with --json. Each bench re-measures its ceiling in the same run.
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'main.ts' && !f.includes('.test.') && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
  .sort();

const [name, ...args] = process.argv.slice(2);
if (!name || !available.includes(name)) {
  process.stderr.write(`usage: pnpm bench <${available.join('|')}> [--json] [--quick]\n`);
  process.exit(name ? 2 : 0);
}
const bench = (await import(`./${name}.ts`)) as { main: (args: string[]) => Promise<void> };
await bench.main(args);
