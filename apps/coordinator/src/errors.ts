import { FerryError } from '@ferry/protocol';

/** Base class of every coordinator error: a stable `code` and structured context. */
export class CoordinatorError extends FerryError {}

/** A host transition not legal from the host's current state; nothing changed. */
export class InvalidTransitionError extends CoordinatorError {
  readonly hostId: string;
  readonly from: string;
  readonly transition: string;
  constructor(hostId: string, from: string, transition: string) {
    super('FERRY_ERR_HOST_TRANSITION', `host ${hostId}: cannot ${transition} while ${from}`);
    this.hostId = hostId;
    this.from = from;
    this.transition = transition;
  }
}

/** No host with this id. */
export class UnknownHostError extends CoordinatorError {
  readonly hostId: string;
  constructor(hostId: string) {
    super('FERRY_ERR_UNKNOWN_HOST', `no host ${hostId}`);
    this.hostId = hostId;
  }
}

/** A request to an agent that got no reply, failed, or whose agent is not connected. */
export class AgentRequestError extends CoordinatorError {
  readonly hostId: string;
  constructor(hostId: string, code: string, message: string) {
    super(code, `host ${hostId}: ${message}`);
    this.hostId = hostId;
  }
}
