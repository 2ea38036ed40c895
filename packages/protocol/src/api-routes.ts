import { API_PREFIX } from './api.ts';

/**
 * Every HTTP route of the API, as `METHOD path` templates with `:id` placeholders. Replies:
 *
 * | route | body | reply |
 * |---|---|---|
 * | GET  /api/v1/hosts | | Host[] |
 * | GET  /api/v1/hosts/:id | | Host |
 * | POST /api/v1/hosts/:id/drain | | HostDrain (202) |
 * | POST /api/v1/hosts/:id/drain/cancel | | HostDrain |
 * | POST /api/v1/hosts/:id/undrain | | Host |
 * | GET  /api/v1/images | | Image[] |
 * | GET  /api/v1/images/:id | | Image |
 * | POST /api/v1/images | ImageCaptureRequest | Image (201) |
 * | GET  /api/v1/images/:id/file | | the image file (application/octet-stream; agents download images they lack) |
 * | PUT  /api/v1/images/:id/file | the image file | Image (201); only for a capture waiting for `:id` (agents upload) |
 * | GET  /api/v1/vms | | Vm[] |
 * | POST /api/v1/vms | RunRequest | Vm (201), state running (or provisioning) |
 * | GET  /api/v1/vms/:id | | Vm |
 * | DELETE /api/v1/vms/:id | | Vm (state deleted) |
 * | POST /api/v1/vms/:id/start | VmPlaceRequest | Vm |
 * | POST /api/v1/vms/:id/stop | VmStopRequest | Vm |
 * | POST /api/v1/vms/:id/suspend | | Vm |
 * | POST /api/v1/vms/:id/resume | VmPlaceRequest | Vm |
 * | POST /api/v1/vms/:id/snapshot | VmSnapshotRequest | VmSnapshot (201) |
 * | POST /api/v1/vms/:id/clone | VmCloneRequest | Vm (201), the new instance |
 * | POST /api/v1/vms/:id/migrate | Omit<MigrateRequest,'vm'> | Migration (202) |
 * | GET  /api/v1/vms/:id/wws?samples=N&intervalMs=M[&bandwidth=RATE&maxDowntimeMs=MS] | | WwsReport (+ prediction) |
 * | GET  /api/v1/migrations | | Migration[] |
 * | POST /api/v1/migrations | MigrateRequest | Migration (202) |
 * | GET  /api/v1/migrations/:id | | Migration |
 * | POST /api/v1/migrations/:id/cancel | | Migration |
 * | GET  /api/v1/events?since=SEQ&limit=N | | ApiEvent[] with seq > SEQ, oldest first |
 * | GET  /api/v1/placement/consolidation | | PlacementPlan (changes nothing) |
 * | GET  /api/v1/placement/rebalance | | PlacementPlan (changes nothing) |
 * | POST /api/v1/placement/consolidation/apply | | PlacementPlanRun, once every step ended |
 * | POST /api/v1/placement/rebalance/apply | | PlacementPlanRun, once every step ended |
 *
 * An action on a VM in the wrong state replies 409 FERRY_ERR_INVALID_STATE and changes nothing.
 */
export const API_ROUTES = {
  hosts: `${API_PREFIX}/hosts`,
  host: `${API_PREFIX}/hosts/:id`,
  hostDrain: `${API_PREFIX}/hosts/:id/drain`,
  hostDrainCancel: `${API_PREFIX}/hosts/:id/drain/cancel`,
  hostUndrain: `${API_PREFIX}/hosts/:id/undrain`,
  images: `${API_PREFIX}/images`,
  image: `${API_PREFIX}/images/:id`,
  imageFile: `${API_PREFIX}/images/:id/file`,
  vms: `${API_PREFIX}/vms`,
  vm: `${API_PREFIX}/vms/:id`,
  vmStart: `${API_PREFIX}/vms/:id/start`,
  vmStop: `${API_PREFIX}/vms/:id/stop`,
  vmSuspend: `${API_PREFIX}/vms/:id/suspend`,
  vmResume: `${API_PREFIX}/vms/:id/resume`,
  vmSnapshot: `${API_PREFIX}/vms/:id/snapshot`,
  vmClone: `${API_PREFIX}/vms/:id/clone`,
  vmMigrate: `${API_PREFIX}/vms/:id/migrate`,
  vmWws: `${API_PREFIX}/vms/:id/wws`,
  migrations: `${API_PREFIX}/migrations`,
  migration: `${API_PREFIX}/migrations/:id`,
  migrationCancel: `${API_PREFIX}/migrations/:id/cancel`,
  events: `${API_PREFIX}/events`,
  placementConsolidation: `${API_PREFIX}/placement/consolidation`,
  placementRebalance: `${API_PREFIX}/placement/rebalance`,
  placementConsolidationApply: `${API_PREFIX}/placement/consolidation/apply`,
  placementRebalanceApply: `${API_PREFIX}/placement/rebalance/apply`,
} as const;

/** A route template of API_ROUTES. */
export type ApiRoute = (typeof API_ROUTES)[keyof typeof API_ROUTES];

/** Fills a route template's `:id` with `id` (URI-encoded). Templates without `:id` come back unchanged. */
export function apiPath(route: ApiRoute, id?: string): string {
  if (!route.includes(':id')) return route;
  if (id === undefined || id === '') throw new TypeError(`route ${route} needs an id`);
  return route.replace(':id', encodeURIComponent(id));
}

/** A matched route: its template and the decoded `:id`, if any. */
export interface ApiRouteMatch {
  readonly route: ApiRoute;
  readonly id?: string;
}

const MATCHERS: readonly { route: ApiRoute; pattern: RegExp }[] = Object.values(API_ROUTES).map((route) => ({
  route,
  pattern: new RegExp(`^${route.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&').replace(':id', '([^/]+)')}/?$`),
}));

/**
 * Which route template a request path (without query string) matches, or undefined. For servers:
 * `matchApiRoute('/api/v1/vms/vm-3/start')` → `{ route: API_ROUTES.vmStart, id: 'vm-3' }`.
 */
export function matchApiRoute(path: string): ApiRouteMatch | undefined {
  for (const { route, pattern } of MATCHERS) {
    const m = pattern.exec(path);
    if (!m) continue;
    if (m[1] === undefined) return { route };
    try {
      return { route, id: decodeURIComponent(m[1]) };
    } catch {
      return undefined;
    }
  }
  return undefined;
}
