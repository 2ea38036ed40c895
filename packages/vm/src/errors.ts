import { FerryError } from '@ferry/protocol';

/** Base class of every error this package throws: a stable `code` and structured context. */
export class VmError extends FerryError {}

/** A lifecycle action asked of a VM in a state where it is not legal. Nothing was changed. */
export class InvalidTransitionError extends VmError {
  readonly vmId: string;
  readonly from: string;
  readonly action: string;
  constructor(vmId: string, from: string, action: string, detail?: string) {
    super('FERRY_ERR_VM_TRANSITION', `vm ${vmId}: cannot ${action} while ${from}${detail ? ` (${detail})` : ''}`);
    this.vmId = vmId;
    this.from = from;
    this.action = action;
  }
}

/** A VM spec (or a field of one) that cannot describe a VM. `field` names the offending field. */
export class InvalidVmSpecError extends VmError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('FERRY_ERR_VM_SPEC', `vm spec ${field}: ${message}`);
    this.field = field;
  }
}

/** A register block or device-state blob that does not decode (wrong magic, version or size). */
export class InvalidVmStateError extends VmError {
  readonly part: 'registers' | 'devices';
  constructor(part: 'registers' | 'devices', message: string) {
    super('FERRY_ERR_VM_STATE', `${part}: ${message}`);
    this.part = part;
  }
}

/** A workload module that could not be loaded or does not export a Workload. */
export class WorkloadLoadError extends VmError {
  readonly workload: string;
  constructor(workload: string, message: string, options?: { cause?: unknown }) {
    super('FERRY_ERR_WORKLOAD_LOAD', `workload ${workload}: ${message}`, options);
    this.workload = workload;
  }
}

/** A vCPU whose workload threw; the vCPU is parked for good and the VM reports it by event. */
export class VcpuFaultError extends VmError {
  readonly vmId: string;
  readonly vcpu: number;
  constructor(vmId: string, vcpu: number, message: string) {
    super('FERRY_ERR_VCPU_FAULT', `vm ${vmId} vcpu ${vcpu}: ${message}`);
    this.vmId = vmId;
    this.vcpu = vcpu;
  }
}

/** Guest memory asked of a VM that has none (created-and-deleted, suspended, stopped). */
export class MemoryReleasedError extends VmError {
  readonly vmId: string;
  readonly state: string;
  constructor(vmId: string, state: string) {
    super('FERRY_ERR_VM_MEMORY_RELEASED', `vm ${vmId} holds no guest memory while ${state}`);
    this.vmId = vmId;
    this.state = state;
  }
}

/** A throttle outside 0..99 percent. */
export class InvalidThrottleError extends VmError {
  readonly percent: number;
  constructor(percent: number) {
    super('FERRY_ERR_VM_THROTTLE', `throttle must be an integer percent from 0 to 99, got ${percent}`);
    this.percent = percent;
  }
}

/** Work asked of a CpuPool after close(). */
export class PoolClosedError extends VmError {
  constructor() {
    super('FERRY_ERR_POOL_CLOSED', 'the CPU pool is closed');
  }
}

/** A live snapshot whose file does not match guest memory at its final pause (`verify: true`). */
export class SnapshotInconsistentError extends VmError {
  readonly vmId: string;
  readonly path: string;
  constructor(vmId: string, path: string, fileDigest: string, memoryDigest: string) {
    super('FERRY_ERR_SNAPSHOT_INCONSISTENT', `vm ${vmId}: snapshot ${path} has digest ${fileDigest}, memory at pause ${memoryDigest}`);
    this.vmId = vmId;
    this.path = path;
  }
}
