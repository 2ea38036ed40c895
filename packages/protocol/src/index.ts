export type { Channel, ChannelCloseInfo, MessageCodec } from './channel.ts';
export {
  CLUSTER_PROTOCOL_VERSION,
  CLUSTER_PROTOCOL_VERSIONS_ACCEPTED,
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
  CLUSTER_MAX_MESSAGE_BYTES,
  CLUSTER_MAX_VMS_PER_REPORT,
  AGENT_TO_COORDINATOR_VALIDATORS,
  COORDINATOR_TO_AGENT_VALIDATORS,
  coordinatorClusterCodec,
  agentClusterCodec,
} from './cluster-codec.ts';
export { API_PREFIX, API_WS_PATH, DEFAULT_COORDINATOR_URL, LOCAL_STATE_DIR, LOCAL_CLUSTER_FILE, HOST_STATES, VM_STATES, GROUP_POLICIES, VM_ACTIONS, MIGRATION_STATES, FINAL_MIGRATION_STATES, DEFAULT_MIGRATION_POLICY, RATE_LIMIT_KINDS, DEFAULT_XEN_RATE_LIMIT, API_EVENT_TYPES } from './api.ts';
export type { LocalClusterFile, HostState, ResourceAmounts, Host, HostDrain, Image, ImageCaptureRequest, VmState, GroupPolicy, PlacementGroupRef, WorkloadSpec, Credentials, Vm, RunRequest, RunSpec, VmAction, VmPlaceRequest, VmStopRequest, VmSnapshotRequest, VmCloneRequest, VmSnapshot, WwsSample, WwsReport, WwsPrediction, MigrationState, MigrationPolicy, RateLimitKind, XenRateLimit, MigrationRateLimit, MigrationRateLimitRequest, TimelineRound, MigrationTimeline, RoundStats, MigrationReport, Migration, MigrationPolicyRequest, MigrateRequest, MigrateSpec, ApiEventType, ApiEvent, ApiErrorInfo, ApiErrorBody } from './api.ts';
export { PLACEMENT_PLAN_KINDS } from './api.ts';
export type { PlacementPlanKind, PlannedMigration, PlacementPlan, PlacementPlanRun } from './api.ts';
export { API_ROUTES, apiPath, matchApiRoute } from './api-routes.ts';
export type { ApiRoute, ApiRouteMatch } from './api-routes.ts';
export { API_ERROR_STATUS, ApiError, ApiValidationError, InvalidSizeError, apiErrorStatus, apiErrorInfoOf } from './api-errors.ts';
export type { ApiErrorCode } from './api-errors.ts';
export { parseSize, parseRate, formatSize, formatRate } from './api-size.ts';
export { MAX_NAME_LENGTH, MAX_VM_CPUS, validateName, validateGroup, validateWorkload, validateRunRequest, validateMigrationPolicy, validateRateLimit, validateMigrateRequest, validatePlaceRequest, validateStopRequest, validateSnapshotRequest, validateCloneRequest, validateImageCaptureRequest, validateSinceParam } from './api-validate.ts';
export { MAX_API_CLIENT_MESSAGE_BYTES, parseApiClientMessage, apiEventMatches } from './api-ws.ts';
export type { ApiEventFilter, ApiSubscribeMessage, ApiUnsubscribeMessage, ApiPingMessage, ApiClientMessage, ApiHelloMessage, ApiSubscribedMessage, ApiEventMessage, ApiPongMessage, ApiErrorMessage, ApiServerMessage } from './api-ws.ts';
export { ProtocolError, MessageTooLargeError, MessageInvalidError, ProtocolVersionError, FrameTooLargeError, FrameInvalidError, FrameTruncatedError, FramePageRangeError, FrameEncodingError } from './errors.ts';
export { DEFAULT_MAX_STRING_LENGTH, encodeMessage, decodeMessage, createMessageCodec, field } from './codec.ts';
export type { RawMessage, MessageValidators } from './codec.ts';
export { FRAME_PAGE_BYTES, PAGE_FRAME_MAGIC, PAGE_FRAME_VERSION, PAGE_FRAME_HEADER_BYTES, PAGE_RUN_HEADER_BYTES, MAX_RUN_PAGES, DEFAULT_MAX_PAGE_FRAME_BYTES, FRAME_KIND, PAGE_ENCODING, readPageFrame, PageFrameBuilder, joinFrameParts } from './page-frame.ts';
export type { PageEncoding, PageFrameSummary, PageRunVisitor } from './page-frame.ts';
export { MIGRATION_PROTOCOL_VERSION, MIGRATION_PROTOCOL_VERSIONS_ACCEPTED, MIGRATION_MAX_MESSAGE_BYTES, MIGRATION_MAX_REGISTER_BYTES, MIGRATION_MAX_DEVICE_BYTES, MIGRATION_MAX_PRELUDE_BYTES, MIGRATION_MAX_PAGE_COUNT, MIGRATION_CLOSE_CODE, DIGEST_ALGORITHMS, SOURCE_MESSAGE_VALIDATORS, DESTINATION_MESSAGE_VALIDATORS, migrationReceiverCodec, migrationSenderCodec } from './migration-protocol.ts';
export type { DigestAlgorithm, MigrationVmSummary, HelloMessage, StartRoundMessage, EndRoundMessage, TransferStateMessage, VerifyMemoryMessage, ActivateMessage, CancelMessage, HelloAcceptedMessage, HelloRefusedMessage, RoundAppliedMessage, ReadyMessage, ActivatedMessage, MigrationErrorMessage, SourceMessage, DestinationMessage } from './migration-protocol.ts';
export { VM_HOST_ACTIONS, MIGRATION_OUTCOMES } from './cluster-messages.ts';
export type { WorkloadWire, VmSpecWire, AccessRuleWire, GuestConfigWire, MigrationPolicyWire, MigrationRoundWire, MigrationReportWire, ErrorInfoWire, VmHostAction, MigrationOutcome, AgentReplyMessage, VmCreateMessage, VmActionMessage, VmSnapshotMessage, VmCloneMessage, VmWwsMessage, VmDigestMessage, VmCreatedMessage, VmUpdatedMessage, SnapshotTakenMessage, WwsSampleWire, WwsSampledMessage, VmDigestedMessage, VmCaptureMessage, VmCapturedMessage, CapturedImageWire, VmStateChangedMessage, MigrationStartMessage, MigrationAcceptedMessage, MigrationDecisionMessage, MigrationCancelMessage, MigrationProgressMessage, MigrationStoppingMessage, MigrationReadyMessage, MigrationFinishedMessage } from './cluster-messages.ts';
export { CLUSTER_MAX_WWS_SAMPLES } from './cluster-codec.ts';
export { FerryError } from './ferry-error.ts';
