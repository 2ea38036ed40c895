/**
 * The pino logger of a Ferry process (coordinator, agent): JSON lines on stderr (stdout carries
 * only the machine-readable ready line), pretty when stderr is a terminal. Child loggers bind
 * `hostId`, `vmId`, `migrationId`; every line has a kebab-case `event` field.
 */
import { pino, destination, type Logger } from 'pino';
import pretty from 'pino-pretty';

/** Creates the process logger. `level` default `info`; `silent` for in-process tests. */
export function createLogger(name: string, level = 'info', prettyOutput = process.stderr.isTTY === true): Logger {
  if (prettyOutput) return pino({ name, level }, pretty({ destination: 2, sync: true }));
  return pino({ name, level }, destination({ fd: 2, sync: false }));
}

export type { Logger } from 'pino';
