export {
  PlacementError, NoValidHostError, UnknownHostError, UnknownVmError, DuplicateIdError, HostNotEmptyError,
  GroupPolicyConflictError, InvalidPlacementInputError, InvalidTransitionError, TraceFormatError,
} from './errors.ts';
export { HOST_STATES, GROUP_POLICIES, DEFAULT_ENERGY_MODEL, DEFAULT_OVERCOMMIT, DEFAULT_SOFT_WEIGHTS } from './types.ts';
export type {
  Resources, HostState, GroupPolicy, PlacementGroupRef, HostSpec, PlacementRequest, VmPlacement, PlacementResult,
  Migration, OvercommitRatios, SoftWeights, EnergyModel,
} from './types.ts';
export { STRATEGIES, FILTERS } from './select.ts';
export type { StrategyName } from './select.ts';
export { Scheduler } from './scheduler.ts';
export type { SchedulerOptions, HostView, VmView } from './scheduler.ts';
export type { DrainPlan, ConsolidationPlan, RebalancePlan, ConsolidationOptions, RebalanceOptions } from './plans.ts';
export type { EnergyReport } from './metrics.ts';
export { TRACE_MAGIC, DEFAULT_MIX, seededRandom, generateTrace, sortDecreasing, formatTrace, parseTrace, writeTraceFile, readTraceFile } from './trace.ts';
export type { Trace, TraceType, TraceEvent, ArriveEvent, DepartEvent, TraceOptions } from './trace.ts';
export { uniformHosts, replayTrace } from './simulate.ts';
export type { ReplayOptions, ReplayReport } from './simulate.ts';
