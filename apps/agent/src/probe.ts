/**
 * The probe path: how a client watches a VM's availability through the agents, e.g. every
 * millisecond during a migration (the downtime lab).
 *
 * Endpoint: WebSocket `ws://<agent migration host:port>/probe`, authenticated with the CLUSTER token
 * (`Authorization: Bearer T` or `?token=T`; 401 otherwise). Text frames, JSON:
 * - request  `{ "id": 7, "vm": "vm-1", "afterMs": 1732460000123.4, "timeoutMs"?: 5000 }`
 *   `afterMs` is the client's clock when it sent the probe: `performance.timeOrigin + performance.now()`
 *   (comparable across processes on one machine; the guest stamps its heartbeat with that clock).
 * - reply    `{ "id": 7, "status": "ok", "host": "host-1", "heartbeatMs": 1732460000124.1 }` sent only
 *   once the guest's heartbeat is newer than `afterMs` (the guest ran after the probe was sent; a
 *   paused VM does not answer until it resumes);
 *   `{ "id": 7, "status": "not-here", "host": "host-1" }` when the VM is not (or no longer) running on
 *   this agent — after a migration the client asks the next agent;
 *   `{ "id": 7, "status": "timeout", … }` after `timeoutMs` (default 5000, max 60000) without a newer heartbeat;
 *   `{ "id": null, "status": "error", "message": … }` for a malformed request.
 * Many probes may be in flight on one socket; replies come in completion order. The VM must run
 * with `heartbeat: true` (the default). ProbeClient below is a ready client.
 */
import WebSocket from 'ws';
import type { IncomingMessage } from 'node:http';
import { hasBearerToken } from '@ferry/transport';

/** Path of the probe WebSocket on the agent's migration port. */
export const PROBE_WS_PATH = '/probe';
/** Default and largest probe wait, ms. */
export const PROBE_DEFAULT_TIMEOUT_MS = 5000;
export const PROBE_MAX_TIMEOUT_MS = 60_000;

/** What a VM host answers for one probe. */
export type ProbeResult = { readonly status: 'ok'; readonly heartbeatMs: number } | { readonly status: 'not-here' } | { readonly status: 'timeout' };

/** A probe reply on the wire. */
export interface ProbeReply {
  readonly id: number | null;
  readonly status: 'ok' | 'not-here' | 'timeout' | 'error';
  readonly host?: string;
  readonly heartbeatMs?: number;
  readonly message?: string;
}

/** The side of a VM host the probe server needs. */
export interface ProbeTarget {
  probe(vmId: string, afterMs: number, timeoutMs: number): Promise<ProbeResult>;
}

/** Whether a probe upgrade presents the cluster token. */
export function probeAuthenticator(clusterToken: string): (req: IncomingMessage) => true | undefined {
  return (req) => (hasBearerToken(req, clusterToken) ? true : undefined);
}

/** Serves probes on one accepted socket. */
export function serveProbes(ws: WebSocket, target: ProbeTarget, hostId: string): void {
  const reply = (r: ProbeReply): void => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(r));
  };
  ws.on('message', (data, isBinary) => {
    let req: { id?: unknown; vm?: unknown; afterMs?: unknown; timeoutMs?: unknown };
    try {
      if (isBinary) throw new Error('binary');
      req = JSON.parse(String(data)) as typeof req;
    } catch {
      reply({ id: null, status: 'error', host: hostId, message: 'a probe is a JSON text frame {id, vm, afterMs}' });
      return;
    }
    const { id, vm, afterMs } = req;
    const timeoutMs = req.timeoutMs === undefined ? PROBE_DEFAULT_TIMEOUT_MS : req.timeoutMs;
    if (typeof id !== 'number' || typeof vm !== 'string' || vm.length === 0 || vm.length > 256 || typeof afterMs !== 'number' || !Number.isFinite(afterMs) || typeof timeoutMs !== 'number' || !(timeoutMs >= 0 && timeoutMs <= PROBE_MAX_TIMEOUT_MS)) {
      reply({ id: typeof id === 'number' ? id : null, status: 'error', host: hostId, message: 'probe needs numeric id, string vm, numeric afterMs and timeoutMs 0..60000' });
      return;
    }
    target.probe(vm, afterMs, timeoutMs).then(
      (r) => reply({ id, host: hostId, ...r }),
      (err: unknown) => reply({ id, status: 'error', host: hostId, message: (err as Error).message }),
    );
  });
  ws.on('error', () => {});
}

/**
 * A probe client for one agent: `await ProbeClient.connect(address, token)` where address is the
 * agent's migration address (`ws://h:p/migrate` or `ws://h:p`); `probe(vm)` resolves with the reply.
 */
export class ProbeClient {
  private readonly ws: WebSocket;
  private nextId = 1;
  private readonly pending = new Map<number, (r: ProbeReply) => void>();

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data) => {
      const r = JSON.parse(String(data)) as ProbeReply;
      if (r.id === null) return;
      const p = this.pending.get(r.id);
      this.pending.delete(r.id);
      p?.(r);
    });
    ws.on('close', () => {
      for (const [id, p] of this.pending) p({ id, status: 'error', message: 'probe socket closed' });
      this.pending.clear();
    });
  }

  /** Opens the probe socket of the agent at `address` (its migration address or base URL). */
  static connect(address: string, clusterToken: string): Promise<ProbeClient> {
    const u = new URL(address);
    u.pathname = PROBE_WS_PATH;
    const ws = new WebSocket(u.toString(), { headers: { authorization: `Bearer ${clusterToken}` }, perMessageDeflate: false });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new ProbeClient(ws)));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`probe upgrade refused: HTTP ${res.statusCode}`), { statusCode: res.statusCode })));
    });
  }

  /** Sends one probe stamped now; resolves with the agent's reply. */
  probe(vmId: string, timeoutMs = PROBE_DEFAULT_TIMEOUT_MS): Promise<ProbeReply> {
    const id = this.nextId++;
    const afterMs = performance.timeOrigin + performance.now();
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.ws.send(JSON.stringify({ id, vm: vmId, afterMs, timeoutMs }));
    });
  }

  /** Closes the socket. */
  close(): void {
    this.ws.close();
  }
}
