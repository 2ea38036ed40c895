/**
 * `tsx apps/agent/src/main.ts --coordinator ws://127.0.0.1:7070 --token T --id host-1 --cpus 8
 *  --memory 16GiB --disk 100GiB [--migration-port 0] [--migration-host 127.0.0.1]
 *  [--advertise-host H] [--log-level info] [--data-dir DIR] [--pcpus 2] [--memory-pool SIZE]
 *  [--on-shutdown suspend|stop]`
 * `--data-dir` holds the image library, suspend files and snapshots (default `.ferry/agents/<id>`);
 * `--pcpus` is the number of pCPU worker threads that run the VMs' vCPUs. `--memory-pool` keeps
 * the memory of departed VMs resident and zeroed for 30 s for the next incoming VM of the same
 * size, which then skips the page faults of fresh memory (default a quarter of --memory; 0: off).
 * `--on-shutdown suspend` (default): SIGINT/SIGTERM suspend every VM into the data dir, and the
 * next start on that data dir brings them back as they were (running, paused or suspended);
 * `stop` stops them instead.
 * `--token-file F` reads the token from a file instead. Prints one JSON line on stdout when the
 * migration port listens: `{"event":"agent-ready","hostId":…,"migrationPort":N,"migrationAddress":…}`;
 * logs go to stderr. Bad flags (e.g. `--memory lots`): a message on stderr, exit 2. A token the
 * coordinator refuses: exit 3. SIGINT/SIGTERM close gracefully.
 */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { parseSize } from '@ferry/protocol';
import { startAgent } from './agent.ts';
import { createLogger } from './logger.ts';

function fail(message: string): never {
  process.stderr.write(`agent: ${message}\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      coordinator: { type: 'string' },
      token: { type: 'string' },
      'token-file': { type: 'string' },
      id: { type: 'string' },
      cpus: { type: 'string' },
      memory: { type: 'string' },
      disk: { type: 'string' },
      'migration-port': { type: 'string' },
      'migration-host': { type: 'string' },
      'advertise-host': { type: 'string' },
      'log-level': { type: 'string' },
      'data-dir': { type: 'string' },
      pcpus: { type: 'string' },
      'memory-pool': { type: 'string' },
      'on-shutdown': { type: 'string' },
    },
    strict: true,
  }));
} catch (err) {
  fail((err as Error).message);
}

function size(flag: string, value: string | undefined, fallback: string): number {
  try {
    const bytes = parseSize(value ?? fallback, `--${flag}`);
    if (bytes <= 0) fail(`--${flag} must be more than 0 bytes`);
    return bytes;
  } catch (err) {
    fail((err as Error).message);
  }
}

if (!values.coordinator) fail('--coordinator URL is required (e.g. ws://127.0.0.1:7070)');
let token = values.token;
if (values['token-file'] !== undefined) {
  try {
    token = readFileSync(values['token-file'], 'utf8').trim();
  } catch (err) {
    fail(`--token-file: ${(err as Error).message}`);
  }
}
if (!token) fail('--token T or --token-file F is required');
const cpus = Number(values.cpus ?? '4');
if (!Number.isSafeInteger(cpus) || cpus < 1 || cpus > 4096) fail(`--cpus must be an integer from 1 to 4096, got "${values.cpus}"`);
const memoryBytes = size('memory', values.memory, '4GiB');
const diskBytes = size('disk', values.disk, '20GiB');
const migrationPort = Number(values['migration-port'] ?? '0');
if (!Number.isSafeInteger(migrationPort) || migrationPort < 0 || migrationPort > 65535) fail(`--migration-port must be 0–65535, got "${values['migration-port']}"`);
if (values.id !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(values.id)) fail(`--id must be 1–63 letters, digits, '.', '_' or '-', got "${values.id}"`);

const pcpus = Number(values.pcpus ?? '2');
if (!Number.isSafeInteger(pcpus) || pcpus < 1 || pcpus > 256) fail(`--pcpus must be an integer from 1 to 256, got "${values.pcpus}"`);
const onShutdown = values['on-shutdown'] ?? 'suspend';
if (onShutdown !== 'suspend' && onShutdown !== 'stop') fail(`--on-shutdown must be suspend or stop, got "${onShutdown}"`);
const memoryPoolBytes = values['memory-pool'] === '0' ? 0 : values['memory-pool'] === undefined ? Math.floor(memoryBytes / 4) : size('memory-pool', values['memory-pool'], '0');

const logger = createLogger('agent', values['log-level'] ?? 'info');
let agent: Awaited<ReturnType<typeof startAgent>>;
try {
  agent = await startAgent({
    coordinatorUrl: values.coordinator,
    token,
    ...(values.id !== undefined ? { hostId: values.id } : {}),
    capacity: { cpus, memoryBytes, diskBytes },
    migrationPort,
    pcpus,
    memoryPoolBytes,
    suspendOnClose: onShutdown === 'suspend',
    ...(values['data-dir'] !== undefined ? { dataDir: values['data-dir'] } : {}),
    ...(values['migration-host'] !== undefined ? { migrationHost: values['migration-host'] } : {}),
    ...(values['advertise-host'] !== undefined ? { advertiseHost: values['advertise-host'] } : {}),
    logger,
    onFatal: (err) => {
      logger.fatal({ event: 'agent-fatal', err: err.message }, 'agent giving up');
      void agent?.close().finally(() => process.exit(3));
    },
  });
} catch (err) {
  if ((err as Error).message.startsWith('coordinator URL')) fail((err as Error).message);
  logger.fatal({ event: 'agent-start-failed', err }, 'agent could not start');
  process.exit(1);
}

process.stdout.write(JSON.stringify({ event: 'agent-ready', hostId: agent.hostId, migrationPort: agent.migrationPort, migrationAddress: agent.migrationAddress, pid: process.pid }) + '\n');

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(130);
    stopping = true;
    logger.info({ event: 'agent-stopping', signal }, 'stopping');
    void agent.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
