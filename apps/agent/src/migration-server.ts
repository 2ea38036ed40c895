/**
 * The agent's migration port: a WebSocket server (path `/migrate`) that accepts only a one-time
 * token the coordinator had this agent issue for one migration (`reserve-migration`). The token is
 * consumed at the upgrade (a reused or expired token gets HTTP 401, before any byte of the
 * protocol), and the open channel goes to the VM host with its reservation.
 *
 * Stream direction: the destination listens and the source dials in, so the source is the ws
 * client. Its frames are sent with the zero mask (`openWsChannel(…, { zeroMask: true })`) and
 * `WsChannel.sendFrame` writes them as raw corked frames: no XOR pass, no copy of guest memory;
 * the ceiling bench measures this path against server→client.
 */
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { migrationReceiverCodec, MIGRATION_MAX_MESSAGE_BYTES, DEFAULT_MAX_PAGE_FRAME_BYTES } from '@ferry/protocol';
import { attachWsRoutes, presentedToken, WsChannel, FERRY_CLOSE, type OneTimeTokenRegistry, type WsRoutes } from '@ferry/transport';
import type { IncomingMigrationChannel, Reservation, ReservationBook, VmHost } from './vm-host.ts';
import type { Logger } from './logger.ts';

/** Path of the migration WebSocket on the agent's migration port. */
export const MIGRATION_WS_PATH = '/migrate';

/** What a one-time migration token grants. */
export interface MigrationGrant {
  readonly migrationId: string;
}

/** A listening migration server. */
export interface MigrationServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Starts the migration port on `host:port` (0 = any free port). */
export async function startMigrationServer(options: {
  host: string;
  port: number;
  tokens: OneTimeTokenRegistry<MigrationGrant>;
  reservations: ReservationBook;
  vmHost: VmHost;
  logger: Logger;
}): Promise<MigrationServer> {
  const { tokens, reservations, vmHost, logger } = options;
  const server: Server = createServer((_req, res) => res.writeHead(404).end());
  const routes: WsRoutes = attachWsRoutes(server, [
    {
      path: MIGRATION_WS_PATH,
      maxPayloadBytes: Math.max(DEFAULT_MAX_PAGE_FRAME_BYTES, MIGRATION_MAX_MESSAGE_BYTES) + 64,
      authenticate: (req): Reservation | undefined => {
        const token = presentedToken(req);
        const grant = token === undefined ? undefined : tokens.consume(token);
        const reservation = grant && reservations.get(grant.migrationId);
        if (!reservation) logger.warn({ event: 'migration-connection-refused', remote: req.socket.remoteAddress }, 'migration connection without a valid one-time token');
        return reservation;
      },
      onConnection: (ws, _req, reservation: Reservation) => {
        const channel: IncomingMigrationChannel = new WsChannel(ws, {
          codec: migrationReceiverCodec,
          maxControlBytes: MIGRATION_MAX_MESSAGE_BYTES,
          heartbeat: { intervalMs: 1000, timeoutMs: 5000 },
        });
        logger.info({ event: 'migration-connection-accepted', migrationId: reservation.migrationId, vmId: reservation.vmId }, 'migration stream accepted');
        try {
          vmHost.acceptIncomingMigration(channel, reservation);
        } catch (err) {
          logger.error({ event: 'migration-accept-failed', migrationId: reservation.migrationId, err }, 'VM host refused the stream');
          channel.close(FERRY_CLOSE.MIGRATION_ABORTED, (err as Error).message);
        }
      },
    },
  ]);
  server.listen(options.port, options.host);
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err as Error))]);
  return {
    port: (server.address() as { port: number }).port,
    async close() {
      routes.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
