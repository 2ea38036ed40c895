// A coordinator process for migration tests, benchmarks and the downtime lab: the core plus the
// migration orchestrator over a ReportedVmDirectory and the raw `/api/v1/lab/*` VM routes
// (apps/coordinator/src/migrations-lab.ts), without the cloud manager.
//
// `tsx scripts/bench/migrate-coordinator.ts [--port 0] [--state-dir DIR] [--heartbeat-interval-ms 200]
//  [--failure-timeout-ms 600] [--log-level warn]`
// Prints one JSON line on stdout when ready: `{"event":"coordinator-ready","port":N,"url":…,"token":…,"stateDir":…,"pid":…}`.
// SIGINT/SIGTERM close gracefully. `pnpm bench migrate-coordinator` runs it too.
// Env `FERRY_FAILPOINTS` (fault tests only): comma-separated failpoints where the process crashes
// itself with SIGKILL, e.g. `crash-after-commit-record` (apps/coordinator/src/failpoints.ts).
import { parseArgs } from 'node:util';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCoordinator, createMigrationLab, createLogger, failpointHooks } from '../../apps/coordinator/src/index.ts';

/** Starts the lab coordinator with `args` (flags above) and keeps it running until a signal. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: 'string' },
      'state-dir': { type: 'string' },
      'heartbeat-interval-ms': { type: 'string' },
      'failure-timeout-ms': { type: 'string' },
      'log-level': { type: 'string' },
      'decision-timeout-ms': { type: 'string' },
    },
    strict: true,
  });
  const stateDir = resolve(values['state-dir'] ?? '.ferry/migrate-lab');
  const { modules } = createMigrationLab({
    journalPath: join(stateDir, 'migrations.journal.json'),
    ...failpointHooks(process.env['FERRY_FAILPOINTS']),
    ...(values['decision-timeout-ms'] !== undefined ? { decisionTimeoutMs: Number(values['decision-timeout-ms']) } : {}),
  });
  const logger = createLogger('coordinator', values['log-level'] ?? 'warn');
  const heartbeatIntervalMs = Number(values['heartbeat-interval-ms'] ?? 200);
  const coordinator = await startCoordinator({
    port: Number(values.port ?? 0),
    stateDir,
    modules,
    heartbeatIntervalMs,
    failureTimeoutMs: Number(values['failure-timeout-ms'] ?? 3 * heartbeatIntervalMs),
    logger,
  });
  process.stdout.write(JSON.stringify({ event: 'coordinator-ready', port: coordinator.port, url: coordinator.url, token: coordinator.token, stateDir: coordinator.stateDir, pid: process.pid }) + '\n');
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) process.exit(130);
      stopping = true;
      void coordinator.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main(process.argv.slice(2));
