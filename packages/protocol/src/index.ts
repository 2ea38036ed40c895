export type { Channel, ChannelCloseInfo, MessageCodec } from './channel.ts';
export {
  CLUSTER_PROTOCOL_VERSION,
  CLUSTER_PROTOCOL_VERSIONS_ACCEPTED,
  AGENT_TO_COORDINATOR_TYPES,
  COORDINATOR_TO_AGENT_TYPES,
} from './cluster-messages.ts';
export type {
  HostCapacity,
  VmReport,
  RegisterMessage,
  HeartbeatMessage,
  MigrationReservedMessage,
  RequestFailedMessage,
  RegisteredMessage,
  RegisterRefusedMessage,
  ReserveMigrationMessage,
  ReleaseReservationMessage,
  AgentToCoordinatorMessage,
  CoordinatorToAgentMessage,
} from './cluster-messages.ts';
export {
  ClusterMessageInvalidError,
  CLUSTER_MAX_STRING_LENGTH,
  CLUSTER_MAX_VMS_PER_REPORT,
  coordinatorClusterCodec,
  agentClusterCodec,
  validateAgentToCoordinator,
  validateCoordinatorToAgent,
} from './cluster-codec.ts';
