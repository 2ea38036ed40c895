/**
 * Cluster-wide placement plans from the coordinator: the scheduler's consolidation (PABFD) and
 * rebalance plans in API form (`GET /api/v1/placement/consolidation|rebalance`), and their
 * execution (`POST …/apply`): the steps run one after another, in the plan's order, as ordinary
 * live migrations through the migration orchestrator, stopping at the first step that fails.
 *
 * Only running, paused and suspended VMs move (what a live migration can take); stopped,
 * provisioning, migrating or lost ones keep their place and their claims. A plan is computed
 * afresh for every request and changes nothing; applying recomputes it first.
 */
import { API_ROUTES, apiErrorStatus, matchApiRoute, type PlacementPlan, type PlacementPlanKind, type PlacementPlanRun, type PlannedMigration } from '@ferry/protocol';
import type { Migration } from '@ferry/placement';
import type { CloudDeps } from './cloud-deps.ts';
import { MOVABLE_STATES } from './drain.ts';
import { CoordinatorError } from './errors.ts';
import type { CoordinatorModule } from './modules.ts';

const applying = new WeakSet<CloudDeps>();

/** The current plan of `kind` in API form. Changes nothing. */
export function placementPlanOf(deps: CloudDeps, kind: PlacementPlanKind): PlacementPlan {
  const fixed = new Set(deps.vms.list().filter((v) => !MOVABLE_STATES.includes(v.state)).map((v) => v.id));
  const raw = kind === 'consolidation' ? deps.placement.planConsolidation(fixed) : deps.placement.planRebalance(fixed);
  const before = deps.placement.scheduler.outcome();
  const after = deps.placement.scheduler.outcome(raw.migrations);
  const usedAfter = new Set(after.hostsUsed);
  return {
    kind,
    migrations: raw.migrations.map(toPlanned),
    hostsBefore: before.hostsUsed.length,
    hostsAfter: after.hostsUsed.length,
    hostsEmptied: before.hostsUsed.filter((h) => !usedAfter.has(h)),
    spreadBefore: before.spread,
    spreadAfter: after.spread,
    costBytes: raw.costBytes,
  };
}

function toPlanned(m: Migration): PlannedMigration {
  return { vm: m.vmId, from: m.fromHostId, to: m.toHostId, costBytes: m.costBytes };
}

/**
 * Computes the plan of `kind` and runs its migrations one at a time, in order, through the
 * migration orchestrator (each to the host the plan names). Resolves when every step has ended:
 * `completed`, or `failed` at the first step that was refused or did not complete (later steps are
 * not started; the VMs moved so far stay moved). Throws FERRY_ERR_INVALID_STATE (409) when live
 * migration is not wired or another plan is being applied.
 */
export async function applyPlacementPlan(deps: CloudDeps, kind: PlacementPlanKind): Promise<PlacementPlanRun> {
  const starter = deps.migrations;
  if (!starter) throw new CoordinatorError('FERRY_ERR_INVALID_STATE', `cannot apply the ${kind} plan: live migration is not available`);
  if (applying.has(deps)) throw new CoordinatorError('FERRY_ERR_INVALID_STATE', 'a placement plan is being applied already; try again when it has ended');
  applying.add(deps);
  const plan = placementPlanOf(deps, kind);
  const ids: string[] = [];
  let moved = 0;
  const log = deps.logger.child({ plan: kind });
  log.info({ event: 'placement-plan-apply-started', steps: plan.migrations.map((m) => `${m.vm}:${m.from}→${m.to}`), cost_bytes: plan.costBytes }, 'applying placement plan');
  try {
    for (const step of plan.migrations) {
      const vm = deps.vms.find(step.vm);
      if (!vm || vm.host !== step.from || !MOVABLE_STATES.includes(vm.state)) {
        throw new CoordinatorError('FERRY_ERR_INVALID_STATE', `${step.vm} is no longer ${vm ? `movable on ${step.from} (it is ${vm.state} on ${vm.host ?? 'no host'})` : 'known'}; compute the plan again`);
      }
      const started = await starter.start({ vm: step.vm, to: step.to });
      ids.push(started.id);
      const final = await starter.whenFinished(started.id);
      if (final.state !== 'completed') {
        throw new CoordinatorError(final.error?.code ?? 'FERRY_ERR_MIGRATION_FAILED', `${step.vm} → ${step.to}: migration ${final.id} ${final.state}${final.error ? `: ${final.error.message}` : ''}`);
      }
      moved++;
    }
    log.info({ event: 'placement-plan-apply-completed', vms_moved: moved }, 'placement plan applied');
    return { plan, state: 'completed', migrations: ids, vmsMoved: moved };
  } catch (err) {
    const error = { code: (err as { code?: string }).code ?? 'FERRY_ERR_MIGRATION_FAILED', message: (err as Error).message };
    log.warn({ event: 'placement-plan-apply-failed', vms_moved: moved, err: error.message }, 'placement plan stopped');
    return { plan, state: 'failed', migrations: ids, vmsMoved: moved, error };
  } finally {
    applying.delete(deps);
  }
}

const PLAN_ROUTES: Readonly<Record<string, { kind: PlacementPlanKind; method: 'GET' | 'POST' }>> = {
  [API_ROUTES.placementConsolidation]: { kind: 'consolidation', method: 'GET' },
  [API_ROUTES.placementRebalance]: { kind: 'rebalance', method: 'GET' },
  [API_ROUTES.placementConsolidationApply]: { kind: 'consolidation', method: 'POST' },
  [API_ROUTES.placementRebalanceApply]: { kind: 'rebalance', method: 'POST' },
};

/** The cloud module's shared parts among `modules` (the `vms` module, once started), or undefined. */
function cloudDepsOf(modules: readonly CoordinatorModule[]): CloudDeps | undefined {
  for (const m of modules) {
    if (m.name !== 'vms' || !('deps' in m)) continue;
    try {
      return (m as { readonly deps: CloudDeps }).deps;
    } catch {
      return undefined; // not started
    }
  }
  return undefined;
}

/**
 * Answers the placement plan routes (an authenticated request's method and path): the reply's
 * status and JSON body, or undefined when the path is not one of them. Errors are
 * `{ error: { code, message } }`: 405 for a wrong method, 404 without a `vms` module.
 */
export async function placementPlanRoute(modules: readonly CoordinatorModule[], method: string, pathname: string): Promise<{ status: number; body: unknown } | undefined> {
  const match = matchApiRoute(pathname);
  const route = match && PLAN_ROUTES[match.route];
  if (!route) return undefined;
  const fail = (code: string, message: string, status = apiErrorStatus(code)): { status: number; body: unknown } => ({ status, body: { error: { code, message } } });
  if (method !== route.method) return fail('FERRY_ERR_METHOD_NOT_ALLOWED', `${method} not allowed on ${pathname} (use ${route.method})`, 405);
  const deps = cloudDepsOf(modules);
  if (!deps) return fail('FERRY_ERR_NOT_FOUND', 'placement plans need the vms module', 404);
  try {
    return { status: 200, body: route.method === 'GET' ? placementPlanOf(deps, route.kind) : await applyPlacementPlan(deps, route.kind) };
  } catch (err) {
    return fail((err as { code?: string }).code ?? 'FERRY_ERR_INTERNAL', (err as Error).message);
  }
}
