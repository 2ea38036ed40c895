export { startAgent, agentUrl } from './agent.ts';
export type { AgentOptions, RunningAgent } from './agent.ts';
export { NoVmHost, ReservationBook, InsufficientCapacityError } from './vm-host.ts';
export type { VmHost, Reservation, IncomingMigrationChannel } from './vm-host.ts';
export { startMigrationServer, dialMigration, MIGRATION_WS_PATH } from './migration-server.ts';
export type { MigrationGrant, MigrationServer, OutgoingMigrationChannel } from './migration-server.ts';
export { createLogger } from './logger.ts';
