import { InvalidArgumentError, type Command } from 'commander';
import { API_ROUTES, formatSize, type PlacementPlan, type PlacementPlanKind, type PlacementPlanRun } from '@ferry/protocol';
import type { ApiClient } from './client.ts';
import * as r from './render.ts';

// `ferry plan consolidate|rebalance [--apply]`: the scheduler's cluster-wide plans
// (GET /api/v1/placement/consolidation|rebalance) as an aligned table, or the PlacementPlan with
// --json; --apply runs the plan's migrations in order on the coordinator (POST …/apply) and prints
// the PlacementPlanRun.

/** The plan names the command takes, and the API's plan kind of each. */
export const PLAN_NAMES: Readonly<Record<string, PlacementPlanKind>> = { consolidate: 'consolidation', rebalance: 'rebalance' };

/** How long `plan --apply` waits for the coordinator to run every step (each one a live migration). */
export const PLAN_APPLY_TIMEOUT_MS = 30 * 60_000;

/** What `ferry plan` needs from the program (see registerBenchCommand). */
export interface PlanCommandDeps {
  readonly clientOf: (cmd: Command, timeoutMs?: number) => ApiClient;
  readonly print: (cmd: Command, value: unknown, text: () => string) => void;
  /** Called with EXIT_FAILED's value when an applied plan stopped at a failed step. */
  readonly failed: () => void;
}

function planName(value: string): PlacementPlanKind {
  const kind = PLAN_NAMES[value];
  if (!kind) throw new InvalidArgumentError(`one of ${Object.keys(PLAN_NAMES).join(', ')}.`);
  return kind;
}

/** Adds `plan` to the program. */
export function registerPlanCommand(program: Command, deps: PlanCommandDeps): void {
  program
    .command('plan')
    .argument('<plan>', `${Object.keys(PLAN_NAMES).join(' or ')}: empty as many hosts as possible (PABFD), or narrow the spread of load`, planName)
    .option('--apply', 'run the migrations in order, one at a time, and wait for them (stops at the first failure)')
    .description('show (or apply) a cluster-wide placement plan: which VMs to live-migrate where, and what it gains')
    .action(async (kind: PlacementPlanKind, o: { apply?: boolean }, cmd: Command) => {
      if (!o.apply) {
        const plan = await deps.clientOf(cmd).get<PlacementPlan>(kind === 'consolidation' ? API_ROUTES.placementConsolidation : API_ROUTES.placementRebalance);
        deps.print(cmd, plan, () => renderPlan(plan));
        return;
      }
      const route = kind === 'consolidation' ? API_ROUTES.placementConsolidationApply : API_ROUTES.placementRebalanceApply;
      const run = await deps.clientOf(cmd, PLAN_APPLY_TIMEOUT_MS).post<PlacementPlanRun>(route);
      deps.print(cmd, run, () => renderPlanRun(run));
      if (run.state !== 'completed') deps.failed();
    });
}

/** A plan: its migrations as an aligned table (in execution order), then what it changes. */
export function renderPlan(plan: PlacementPlan): string {
  const table = r.renderTable(
    plan.migrations.map((m, i) => ({ ...m, step: i + 1 })),
    [
      { header: 'step', cell: (m) => String(m.step), align: 'right' },
      { header: 'vm', cell: (m) => m.vm },
      { header: 'from', cell: (m) => m.from },
      { header: 'to', cell: (m) => m.to },
      { header: 'cost', cell: (m) => formatSize(m.costBytes), align: 'right' },
    ],
  );
  const percent = (share: number): string => `${(share * 100).toFixed(1)}%`;
  return (
    `${plan.kind} plan: ${plan.migrations.length === 0 ? 'nothing to move' : `${plan.migrations.length} migration${plan.migrations.length === 1 ? '' : 's'}`}\n` +
    (plan.migrations.length > 0 ? table : '') +
    r.renderFields([
      ['hosts used', `${plan.hostsBefore} → ${plan.hostsAfter}`],
      ['hosts emptied', plan.hostsEmptied.length > 0 ? plan.hostsEmptied.join(', ') : '-'],
      ['load spread', `${percent(plan.spreadBefore)} → ${percent(plan.spreadAfter)}`],
      ['total cost', `${formatSize(plan.costBytes)} to send`],
    ])
  );
}

/** An applied plan: the plan, then how far it got. */
export function renderPlanRun(run: PlacementPlanRun): string {
  return (
    renderPlan(run.plan) +
    r.renderFields([
      ['applied', run.state],
      ['vms moved', `${run.vmsMoved} of ${run.plan.migrations.length}`],
      ['migrations', run.migrations.length > 0 ? run.migrations.join(', ') : '-'],
      ...(run.error ? [['error', `${run.error.message} [${run.error.code}]`] as const] : []),
    ])
  );
}
