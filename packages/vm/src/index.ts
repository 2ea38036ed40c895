export { Vm, type VmState, type VmCapturedState, type WrittenPagesOption, type SuspendReport, type ResumeReport, type VmIdentity } from './vm.ts';
export { CpuPool, type CpuPoolOptions, type PlacedVcpus } from './cpu-pool.ts';
export { type VmStateChanged, type VmEventMap } from './vm-events.ts';
export { normalizeSpec, encodeSpec, decodeSpec, WORKLOAD_KINDS, type VmSpec, type NormalizedVmSpec, type WorkloadSpec, type WorkloadKind } from './spec.ts';
export { type LiveSnapshotOptions, type LiveSnapshotReport, type LiveSnapshotRound } from './live-snapshot.ts';
export { RegisterBlock, seedRng } from './registers.ts';
export { bootDevices, encodeDevices, decodeDevices, type DeviceState, type NicState } from './devices.ts';
export { readGuestInfo, readHeartbeatMs, readMaxStepGapMs, type GuestInfo, type VcpuGuestInfo } from './guest-info.ts';
export { RESERVED_PAGES, GUEST_INFO_PAGE, CONFIG_PAGE, MAX_VCPUS, REGISTER_SLOT_BYTES, WORKLOAD_REGISTER_COUNT } from './layout.ts';
export {
  BUILTIN_WORKLOADS,
  idleWorkload,
  uniformWorkload,
  hotsetWorkload,
  scanWorkload,
  vcpuPageCount,
  vcpuPage,
  nextRandom,
  isWorkload,
  type Workload,
  type WorkloadContext,
  type WorkloadProgram,
} from './workloads.ts';
export {
  VmError,
  InvalidTransitionError,
  InvalidVmSpecError,
  InvalidVmStateError,
  WorkloadLoadError,
  VcpuFaultError,
  MemoryReleasedError,
  InvalidThrottleError,
  PoolClosedError,
  SnapshotInconsistentError,
} from './errors.ts';
export { sampleWritableWorkingSet, predictPrecopy, dirtiedWithinMs, isSamplingDirtyLog, WwsBusyError, WwsOptionsError, type WwsSource, type WwsOptions, type WwsSampling, type PredictOptions, type PredictedRound, type PrecopyPrediction } from './wws.ts';
