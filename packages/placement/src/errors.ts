import { FerryError } from '@ferry/protocol';

/** Base class of every error this package throws: a stable `code` and structured context. */
export class PlacementError extends FerryError {}

/** No host passes every filter for a request. `rejectedBy` counts, per filter, the hosts it rejected. */
export class NoValidHostError extends PlacementError {
  readonly vmId: string;
  readonly rejectedBy: Readonly<Record<string, number>>;
  constructor(vmId: string, rejectedBy: Record<string, number>) {
    const why = Object.entries(rejectedBy)
      .filter(([, n]) => n > 0)
      .map(([f, n]) => `${f}: ${n}`)
      .join(', ');
    super('FERRY_ERR_PLACEMENT_NO_VALID_HOST', `no valid host for ${vmId}${why ? ` (rejected by ${why})` : ''}`);
    this.vmId = vmId;
    this.rejectedBy = rejectedBy;
  }
}

/** A host id the scheduler does not know. */
export class UnknownHostError extends PlacementError {
  readonly hostId: string;
  constructor(hostId: string) {
    super('FERRY_ERR_PLACEMENT_UNKNOWN_HOST', `unknown host ${hostId}`);
    this.hostId = hostId;
  }
}

/** A VM id the scheduler does not know. */
export class UnknownVmError extends PlacementError {
  readonly vmId: string;
  constructor(vmId: string) {
    super('FERRY_ERR_PLACEMENT_UNKNOWN_VM', `unknown vm ${vmId}`);
    this.vmId = vmId;
  }
}

/** A host or VM id that is already registered. */
export class DuplicateIdError extends PlacementError {
  readonly id: string;
  constructor(kind: 'host' | 'vm', id: string) {
    super('FERRY_ERR_PLACEMENT_DUPLICATE_ID', `${kind} ${id} already exists`);
    this.id = id;
  }
}

/** Removing a host that still holds VMs (move or release them first). */
export class HostNotEmptyError extends PlacementError {
  readonly hostId: string;
  readonly vmCount: number;
  constructor(hostId: string, vmCount: number) {
    super('FERRY_ERR_PLACEMENT_HOST_NOT_EMPTY', `host ${hostId} still holds ${vmCount} vm(s)`);
    this.hostId = hostId;
    this.vmCount = vmCount;
  }
}

/** A placement group referenced with a policy different from the one it was created with. */
export class GroupPolicyConflictError extends PlacementError {
  readonly group: string;
  constructor(group: string, existing: string, requested: string) {
    super('FERRY_ERR_PLACEMENT_GROUP_POLICY', `group ${group} has policy ${existing}, not ${requested}`);
    this.group = group;
  }
}

/** A setting or input outside what is allowed (unknown strategy, negative demand, bad ratio). */
export class InvalidPlacementInputError extends PlacementError {
  constructor(message: string) {
    super('FERRY_ERR_PLACEMENT_INPUT', message);
  }
}

/** A migration transition that is not legal in the VM's current migration state. */
export class InvalidTransitionError extends PlacementError {
  readonly vmId: string;
  constructor(vmId: string, message: string) {
    super('FERRY_ERR_PLACEMENT_TRANSITION', `vm ${vmId}: ${message}`);
    this.vmId = vmId;
  }
}

/** A line of a trace file that does not parse. */
export class TraceFormatError extends PlacementError {
  readonly line: number;
  constructor(line: number, message: string) {
    super('FERRY_ERR_PLACEMENT_TRACE_FORMAT', `trace line ${line}: ${message}`);
    this.line = line;
  }
}
