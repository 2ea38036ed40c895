/**
 * HTTP on the coordinator's port: `/api/v1/hosts`, `/api/v1/hosts/:id`, `/api/v1/events`,
 * `/api/v1/placement/{consolidation,rebalance}[/apply]` (placement-plans.ts) (JSON,
 * bearer token), `/metrics` (Prometheus text, bearer token too), `/healthz` (no token, no data).
 * Modules are offered every authenticated `/api/v1` request first. Errors are
 * `{ error: { code, message } }` with the status of api-errors.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { API_PREFIX, apiErrorStatus } from '@ferry/protocol';
import { hasBearerToken } from '@ferry/transport';
import { toApiHost, type HostRegistry } from './hosts.ts';
import type { EventBus } from './events.ts';
import type { CoordinatorModule } from './modules.ts';
import type { Logger } from './logger.ts';
import { placementPlanRoute } from './placement-plans.ts';

/** What the HTTP handler serves from. */
export interface HttpApiDeps {
  readonly token: string;
  readonly hosts: HostRegistry;
  readonly events: EventBus;
  readonly metrics: Registry;
  readonly modules: readonly CoordinatorModule[];
  readonly logger: Logger;
}

/** Writes a JSON reply. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Writes the error body with the status its code maps to (or `status`). */
export function sendError(res: ServerResponse, code: string, message: string, status = apiErrorStatus(code)): void {
  sendJson(res, status, { error: { code, message } });
}

/** The request handler for the coordinator's HTTP server. */
export function createHttpHandler(deps: HttpApiDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    handle(deps, req, res).catch((err: unknown) => {
      deps.logger.error({ event: 'http-request-failed', err, url: req.url }, 'request failed');
      if (!res.headersSent) sendError(res, (err as { code?: string }).code ?? 'FERRY_ERR_INTERNAL', (err as Error).message ?? 'internal error');
      else res.destroy();
    });
  };
}

async function handle(deps: HttpApiDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://coordinator');
  if (url.pathname === '/healthz') return sendJson(res, 200, { ok: true });
  if (!hasBearerToken(req, deps.token)) return sendError(res, 'FERRY_ERR_UNAUTHORIZED', 'missing or wrong bearer token', 401);
  if (url.pathname === '/metrics' && req.method === 'GET') {
    const body = await deps.metrics.metrics();
    res.writeHead(200, { 'content-type': deps.metrics.contentType });
    res.end(body);
    return;
  }
  if (url.pathname.startsWith(API_PREFIX + '/') || url.pathname === API_PREFIX) {
    for (const m of deps.modules) if (m.handleHttp && (await m.handleHttp(req, res, url))) return;
    const plan = await placementPlanRoute(deps.modules, req.method ?? 'GET', url.pathname);
    if (plan) return sendJson(res, plan.status, plan.body);
    const rest = url.pathname.slice(API_PREFIX.length);
    if (req.method === 'GET' && rest === '/hosts') return sendJson(res, 200, deps.hosts.list().map(toApiHost));
    const hostMatch = /^\/hosts\/([^/]+)$/.exec(rest);
    if (req.method === 'GET' && hostMatch) {
      const host = deps.hosts.find(decodeURIComponent(hostMatch[1]!));
      if (!host) return sendError(res, 'FERRY_ERR_UNKNOWN_HOST', `no host ${hostMatch[1]}`, 404);
      return sendJson(res, 200, toApiHost(host));
    }
    if (req.method === 'GET' && rest === '/events') {
      const since = Number(url.searchParams.get('since') ?? 0);
      const limit = Number(url.searchParams.get('limit') ?? 1000);
      if (!Number.isSafeInteger(since) || since < 0 || !Number.isSafeInteger(limit) || limit <= 0) {
        return sendError(res, 'FERRY_ERR_BAD_REQUEST', 'since and limit must be non-negative integers', 400);
      }
      return sendJson(res, 200, deps.events.since(since, limit));
    }
  }
  sendError(res, 'FERRY_ERR_NOT_FOUND', `no route ${req.method} ${url.pathname}`, 404);
}
