/**
 * `tsx apps/coordinator/src/main.ts [--port 7070] [--host 127.0.0.1] [--state-dir .ferry]
 *  [--heartbeat-interval-ms 1000] [--failure-timeout-ms 3000] [--log-level info]
 *  [--placement best-fit] [--drain-max-per-host 2] [--drain-max-per-cluster 4]`
 * Runs the cloud manager (VM registry, images, placement, lifecycle, drains) and the migration
 * orchestrator as modules.
 * Prints one JSON line on stdout when ready: `{"event":"coordinator-ready","port":N,"url":…,"stateDir":…}`
 * (the token is in `<stateDir>/token`); logs go to stderr. SIGINT/SIGTERM close gracefully.
 * Bad flags: a message on stderr and exit code 2.
 * Env `FERRY_FAILPOINTS` (fault tests only): comma-separated failpoints where the process crashes
 * itself with SIGKILL, e.g. `crash-after-commit-record` (see failpoints.ts); an unknown name exits 2.
 */
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { STRATEGIES } from '@ferry/placement';
import { startCoordinator } from './coordinator.ts';
import { createCloudModules } from './cloud.ts';
import { isStrategyName } from './placement.ts';
import { createLogger } from './logger.ts';
import { failpointHooks } from './failpoints.ts';

function fail(message: string): never {
  process.stderr.write(`coordinator: ${message}\n`);
  process.exit(2);
}

function intFlag(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) fail(`--${name} must be an integer ≥ ${min}, got "${value}"`);
  return n;
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'state-dir': { type: 'string' },
      'heartbeat-interval-ms': { type: 'string' },
      'failure-timeout-ms': { type: 'string' },
      'log-level': { type: 'string' },
      placement: { type: 'string' },
      'drain-max-per-host': { type: 'string' },
      'drain-max-per-cluster': { type: 'string' },
    },
    strict: true,
  }));
} catch (err) {
  fail((err as Error).message);
}

const port = intFlag('port', values.port, 0) ?? 7070;
if (port > 65535) fail(`--port must be ≤ 65535, got ${port}`);
const strategy = values.placement ?? 'best-fit';
if (!isStrategyName(strategy)) fail(`--placement must be one of ${STRATEGIES.join(', ')}, got "${strategy}"`);
const stateDir = resolve(values['state-dir'] ?? '.ferry');
let failpoints: ReturnType<typeof failpointHooks> = {};
try {
  failpoints = failpointHooks(process.env['FERRY_FAILPOINTS']);
} catch (err) {
  fail((err as Error).message);
}
const { modules } = createCloudModules({
  ...failpoints,
  stateDir,
  strategy,
  drain: {
    maxPerHost: intFlag('drain-max-per-host', values['drain-max-per-host'], 1) ?? 2,
    maxPerCluster: intFlag('drain-max-per-cluster', values['drain-max-per-cluster'], 1) ?? 4,
  },
});
const logger = createLogger('coordinator', values['log-level'] ?? 'info');
const coordinator = await startCoordinator({
  port,
  ...(values.host !== undefined ? { host: values.host } : {}),
  stateDir,
  modules,
  ...(values['heartbeat-interval-ms'] !== undefined ? { heartbeatIntervalMs: intFlag('heartbeat-interval-ms', values['heartbeat-interval-ms'], 10)! } : {}),
  ...(values['failure-timeout-ms'] !== undefined ? { failureTimeoutMs: intFlag('failure-timeout-ms', values['failure-timeout-ms'], 10)! } : {}),
  logger,
}).catch((err: unknown) => {
  logger.fatal({ event: 'coordinator-start-failed', err }, 'coordinator could not start');
  process.exit(1);
});

process.stdout.write(JSON.stringify({ event: 'coordinator-ready', port: coordinator.port, url: coordinator.url, stateDir: coordinator.stateDir, pid: process.pid }) + '\n');

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(130);
    stopping = true;
    logger.info({ event: 'coordinator-stopping', signal }, 'stopping');
    void coordinator.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
