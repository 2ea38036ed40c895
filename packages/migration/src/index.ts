export {
  MigrationError,
  InvalidTransitionError,
  MigrationOptionsError,
  MigrationTokenError,
  UnknownMigrationError,
  MigrationSizeError,
  UnexpectedMessageError,
  MigrationRemoteError,
  MigrationChannelClosedError,
  MigrationDigestError,
  MigrationCancelledError,
  MigrationAbortedError,
  MigrationTimeoutError,
  SourceVmError,
  errorCodeOf,
} from './errors.ts';
export { DEFAULT_SENDER_POLICY, resolveSenderPolicy } from './policy.ts';
export type { MigrationSenderPolicy, VerifyMode } from './policy.ts';
export { wallClockMs } from './source-vm.ts';
export type { SourceVm, VmState, ReceivedVm } from './source-vm.ts';
export { PageSumTracker, pageTermSum, isZeroPageAt } from './page-sum.ts';
export { TokenBucket } from './rate-limiter.ts';
export { MigrationSender } from './sender.ts';
export type { SenderState, StopReason, CommitDecision, CommitRequest, SenderRoundStats, MigrationSenderReport, CompletedMigration, MigrationSenderEvents, MigrationSenderOptions } from './sender.ts';
export { MigrationReceiver, expectToken } from './receiver.ts';
export type { ReceiverState, ReceiverStats, ActivatedMigration, MigrationReceiverOptions } from './receiver.ts';
export { MemoryChannel, MemoryChannelClosedError, createMemoryChannelPair } from './memory-channel.ts';
export type { MemoryChannelOptions } from './memory-channel.ts';
export { xenRateLimit, XEN_RATE_LIMIT_DEFAULTS } from './round-rate-limit.ts';
export type { RoundRateLimit, XenRateLimitOptions } from './round-rate-limit.ts';
