import { migrationReceiverCodec, migrationSenderCodec, type DestinationMessage, type SourceMessage } from '@ferry/protocol';
import { createMemoryChannelPair, type MemoryChannel, type MemoryChannelOptions } from '../memory-channel.ts';
import { MigrationReceiver, expectToken, type MigrationReceiverOptions } from '../receiver.ts';
import { MigrationSender, type MigrationSenderOptions } from '../sender.ts';
import type { ReceivedVm } from '../source-vm.ts';

/** A sender and a receiver joined by an in-memory channel pair, for tests and benchmarks. */
export interface MigrationHarness {
  readonly sender: MigrationSender;
  readonly receiver: MigrationReceiver;
  readonly source: MemoryChannel<DestinationMessage, SourceMessage>;
  readonly destination: MemoryChannel<SourceMessage, DestinationMessage>;
  /** What the receiver's activate hook was given, once called. */
  activated: ReceivedVm | undefined;
}

/** Builds a harness around `vm` with token checking; override any sender or receiver option. */
export function createHarness(
  senderOptions: Omit<MigrationSenderOptions, 'channel' | 'migrationId' | 'token' | 'vmInfo'> & Partial<Pick<MigrationSenderOptions, 'migrationId' | 'token'>>,
  receiverOptions: Partial<Omit<MigrationReceiverOptions, 'channel'>> = {},
  channelOptions: MemoryChannelOptions = {},
): MigrationHarness {
  const { a: source, b: destination } = createMemoryChannelPair(migrationSenderCodec, migrationReceiverCodec, channelOptions);
  const harness: { -readonly [K in keyof MigrationHarness]: MigrationHarness[K] } = { activated: undefined } as MigrationHarness;
  harness.source = source;
  harness.destination = destination;
  harness.receiver = new MigrationReceiver({
    channel: destination,
    authorize: expectToken('mig-1', 'token-1'),
    activate: (vm) => {
      harness.activated = vm;
    },
    ...receiverOptions,
  });
  harness.sender = new MigrationSender({ migrationId: 'mig-1', token: 'token-1', vmInfo: { vmId: 'vm-1', cpus: 1 }, channel: source, ...senderOptions });
  return harness;
}
