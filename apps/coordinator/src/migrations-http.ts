/**
 * HTTP routes of the migration orchestrator (migrations.ts): GET/POST /api/v1/migrations,
 * GET /api/v1/migrations/:id, POST /api/v1/migrations/:id/cancel, POST /api/v1/vms/:id/migrate.
 * Errors are `{ error: { code, message } }` with the status of the code (api-errors.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { API_PREFIX, ApiError, validateMigrateRequest } from '@ferry/protocol';
import { sendError, sendJson } from './http-api.ts';
import type { MigrationOrchestrator } from './migrations.ts';

/** Answers the migration routes; returns false for any other path. */
export async function handleMigrationRoutes(orchestrator: MigrationOrchestrator, req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
  const rest = url.pathname.slice(API_PREFIX.length);
  const vmMigrate = /^\/vms\/([^/]+)\/migrate$/.exec(rest);
  const one = /^\/migrations\/([^/]+)$/.exec(rest);
  const cancel = /^\/migrations\/([^/]+)\/cancel$/.exec(rest);
  if (rest !== '/migrations' && !vmMigrate && !one && !cancel) return false;
  try {
    if (rest === '/migrations' && req.method === 'GET') sendJson(res, 200, orchestrator.list());
    else if ((rest === '/migrations' || vmMigrate) && req.method === 'POST') {
      const spec = validateMigrateRequest(await readJson(req), vmMigrate ? decodeURIComponent(vmMigrate[1]!) : undefined);
      sendJson(res, 202, orchestrator.migrate({ vmId: spec.vm, ...(spec.to !== undefined ? { to: spec.to } : {}), policy: spec.policy }));
    } else if (one && req.method === 'GET') sendJson(res, 200, orchestrator.require(decodeURIComponent(one[1]!)));
    else if (cancel && req.method === 'POST') sendJson(res, 200, orchestrator.cancel(decodeURIComponent(cancel[1]!)));
    else sendError(res, 'FERRY_ERR_METHOD_NOT_ALLOWED', `${req.method} not allowed on ${url.pathname}`, 405);
  } catch (err) {
    const e = err as { code?: string; message?: string; status?: number };
    sendError(res, e.code ?? 'FERRY_ERR_INTERNAL', e.message ?? String(err), e.status);
  }
  return true;
}

/** Reads a JSON request body (at most 64 KiB; empty = {}); throws FERRY_ERR_BAD_REQUEST. */
export async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 64 * 1024) throw new ApiError('FERRY_ERR_BAD_REQUEST', 'request body over 64 KiB');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError('FERRY_ERR_BAD_REQUEST', 'request body is not JSON');
  }
}
