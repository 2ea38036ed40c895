import { describe, expect, it } from 'vitest';
import { pack } from 'msgpackr';
import { agentClusterCodec, coordinatorClusterCodec } from './cluster-codec.ts';
import { MessageInvalidError, MessageTooLargeError } from './errors.ts';
import type { AgentToCoordinatorMessage, CoordinatorToAgentMessage } from './cluster-messages.ts';

const register: AgentToCoordinatorMessage = {
  type: 'register',
  protocolVersion: 1,
  hostId: 'host-1',
  capacity: { cpus: 8, memoryBytes: 16 * 2 ** 30, diskBytes: 100 * 2 ** 30 },
  migrationAddress: 'ws://127.0.0.1:9000',
  vms: [{ vmId: 'vm-1', state: 'running', memoryBytes: 2 ** 26, cpus: 2 }],
};

describe('cluster codec', () => {
  it('round-trips every agent message through encode and validated decode', () => {
    const msgs: AgentToCoordinatorMessage[] = [
      register,
      { type: 'heartbeat', seq: 3, vms: [] },
      { type: 'migration-reserved', requestId: 'r1', migrationId: 'm1', token: 't', migrationAddress: 'ws://x:1', expiresAtMs: 5 },
      { type: 'request-failed', requestId: 'r1', code: 'FERRY_ERR_X', message: 'no' },
    ];
    for (const m of msgs) expect(coordinatorClusterCodec.decode(agentClusterCodec.encode(m))).toEqual(m);
  });

  it('round-trips every coordinator message', () => {
    const msgs: CoordinatorToAgentMessage[] = [
      { type: 'registered', hostId: 'h', heartbeatIntervalMs: 500 },
      { type: 'register-refused', code: 'FERRY_ERR_X', message: 'bad version' },
      { type: 'reserve-migration', requestId: 'r', migrationId: 'm', vmId: 'v', memoryBytes: 4096, cpus: 1, ttlMs: 1000 },
      { type: 'release-reservation', migrationId: 'm' },
    ];
    for (const m of msgs) expect(agentClusterCodec.decode(coordinatorClusterCodec.encode(m))).toEqual(m);
  });

  it('carries a migration policy with and without its rate limit, and refuses a malformed rate limit', () => {
    const start = (policy: unknown): Uint8Array =>
      pack({ type: 'migration-start', requestId: 'r', migrationId: 'm', vmId: 'v', destinationHostId: 'h2', address: 'ws://x:1/migrate', token: 't', policy, decisionTimeoutMs: 1000 });
    const base = { maxDowntimeMs: 300, maxRounds: 30, bandwidthLimit: 0, autoConverge: false };
    const xen = { kind: 'xen', startBytesPerSec: 12_500_000, stepBytesPerSec: 6_250_000, maxBytesPerSec: 62_500_000, stopBelowBytes: 262_144 };
    expect(agentClusterCodec.decode(start(base))).toMatchObject({ policy: base });
    expect((agentClusterCodec.decode(start(base)) as { policy: object }).policy).not.toHaveProperty('rateLimit');
    expect(agentClusterCodec.decode(start({ ...base, rateLimit: xen }))).toMatchObject({ policy: { ...base, rateLimit: xen } });
    for (const rateLimit of [{ ...xen, kind: 'qemu' }, { ...xen, startBytesPerSec: 0 }, { ...xen, startBytesPerSec: 70_000_000 }, { ...xen, maxBytesPerSec: undefined }, 'xen']) {
      expect(() => agentClusterCodec.decode(start({ ...base, rateLimit })), JSON.stringify(rateLimit)).toThrow(MessageInvalidError);
    }
  });

  it('drops fields that are not part of the variant', () => {
    const decoded = coordinatorClusterCodec.decode(pack({ type: 'heartbeat', seq: 1, vms: [], evil: { a: 1 } }));
    expect(decoded).toEqual({ type: 'heartbeat', seq: 1, vms: [] });
  });

  it('rejects garbage, unknown types, wrong field types and negative sizes', () => {
    const bad = [
      new Uint8Array([0xc1, 0xff, 0x00]),
      pack(42),
      pack({ type: 'launch-missiles' }),
      pack({ ...register, capacity: { cpus: -1, memoryBytes: 1, diskBytes: 1 } }),
      pack({ ...register, hostId: '' }),
      pack({ ...register, vms: 'none' }),
      pack({ type: 'heartbeat', seq: 1.5, vms: [] }),
      pack({ ...register, hostId: 'x'.repeat(5000) }),
    ];
    for (const b of bad) expect(() => coordinatorClusterCodec.decode(b)).toThrow(MessageInvalidError);
  });

  it('refuses an oversized message before unpacking it', () => {
    expect(() => coordinatorClusterCodec.decode(new Uint8Array(1024 * 1024 + 1))).toThrow(MessageTooLargeError);
  });
});

describe('cluster codec: VM operations and migration orchestration', () => {
  const vm = { vmId: 'vm-1', state: 'running', memoryBytes: 2 ** 24, cpus: 1, name: 'web', image: 'base-os', workload: { kind: 'hotset', seed: 3, rate: 1000, params: { hotsetPages: 64 } }, totalSteps: 12 };
  const round = { round: 1, pagesSent: 10, bytesSent: 40960, dirtyPages: 2, dirtyRatePagesPerSec: 20, bandwidthBytesPerSec: 1e9, expectedDowntimeMs: 0.5, throttlePercent: 0, pagesLeft: 2, final: false, durationMs: 3.5, zeroPagesSent: 1 };
  const report = { migrationId: 'm1', totalMs: 10, setupMs: 1, downtimeMs: 0.4, pausedAtMs: 1e12, rounds: 3, stopReason: 'converged', bytesOnWire: 100, vmBytes: 2 ** 24, pageBytesSent: 80, zeroPagesSkipped: 4, digestAlgorithm: 'page-sum-xxh64', digest: 'ab', digestVerified: true, finalThrottlePercent: 0, switchoverMs: 0.2, switchoverMeasuredMs: 7.5 };

  it('round-trips every new agent message', () => {
    const msgs: AgentToCoordinatorMessage[] = [
      { type: 'heartbeat', seq: 1, vms: [vm, { vmId: 'vm-2', state: 'migrating-out', memoryBytes: 8192 * 3, cpus: 1, migrationId: 'm1' }] },
      { type: 'vm-created', requestId: 'r', vm, imagePages: 7 },
      { type: 'vm-updated', requestId: 'r', vm },
      { type: 'snapshot-taken', requestId: 'r', vmId: 'vm-1', snapshotId: 's1', memoryBytes: 1, fileBytes: 2, durationMs: 3, pauseMs: 0.5 },
      { type: 'wws-sampled', requestId: 'r', vmId: 'vm-1', samples: [{ atMs: 1, intervalMs: 100, dirtyPages: 5, dirtyRatePagesPerSec: 50 }], wwsPages: 5, memoryBytes: 2 ** 24 },
      { type: 'vm-digested', requestId: 'r', vmId: 'vm-1', digest: 'ff00', state: 'running', totalSteps: 9 },
      { type: 'vm-state-changed', vm, reason: 'migrated in' },
      { type: 'migration-accepted', requestId: 'r', migrationId: 'm1' },
      { type: 'migration-progress', migrationId: 'm1', round },
      { type: 'migration-ready', migrationId: 'm1', vmId: 'vm-1', digest: 'ab' },
      { type: 'migration-finished', migrationId: 'm1', vmId: 'vm-1', role: 'source', outcome: 'completed', report },
      { type: 'migration-finished', migrationId: 'm1', vmId: 'vm-1', role: 'destination', outcome: 'failed', error: { code: 'FERRY_ERR_X', message: 'cut' }, vm },
    ];
    for (const m of msgs) expect(coordinatorClusterCodec.decode(agentClusterCodec.encode(m))).toEqual(m);
  });

  it('round-trips every new coordinator message', () => {
    const msgs: CoordinatorToAgentMessage[] = [
      {
        type: 'vm-create',
        requestId: 'r',
        spec: { id: 'vm-1', name: 'web', vcpus: 2, memoryBytes: 2 ** 24, workload: { kind: 'idle' }, heartbeat: false, stepLimit: 100 },
        image: 'base-os',
        config: { instanceId: 'vm-1', hostname: 'web', ip: '10.0.0.2', accessRules: [{ protocol: 'tcp', port: 22, cidr: '0.0.0.0/0' }, { protocol: 'icmp', cidr: '10.0.0.0/8' }], user: 'ferry', password: 'pw' },
        start: true,
      },
      { type: 'vm-create', requestId: 'r', spec: { id: 'vm-2', name: '', vcpus: 1, memoryBytes: 2 ** 20, workload: { kind: 'scan', rate: 0 } }, start: false },
      { type: 'vm-action', requestId: 'r', vmId: 'vm-1', action: 'suspend' },
      { type: 'vm-snapshot', requestId: 'r', vmId: 'vm-1', snapshotId: 'snap-1' },
      { type: 'vm-clone', requestId: 'r', snapshotId: 'snap-1', newVmId: 'vm-3', name: 'copy', start: true },
      { type: 'vm-wws', requestId: 'r', vmId: 'vm-1', samples: 5, intervalMs: 100 },
      { type: 'vm-digest', requestId: 'r', vmId: 'vm-1' },
      { type: 'migration-start', requestId: 'r', migrationId: 'm1', vmId: 'vm-1', destinationHostId: 'h2', address: 'ws://127.0.0.1:1/migrate', token: 't', policy: { maxDowntimeMs: 300, maxRounds: 30, bandwidthLimit: 0, autoConverge: false }, decisionTimeoutMs: 30_000 },
      { type: 'migration-decision', migrationId: 'm1', decision: 'commit' },
      { type: 'migration-cancel', migrationId: 'm1', reason: 'operator' },
    ];
    for (const m of msgs) expect(agentClusterCodec.decode(coordinatorClusterCodec.encode(m))).toEqual(m);
  });

  it('refuses a snapshot id that could escape the data dir and an unknown action', () => {
    expect(() => agentClusterCodec.decode(pack({ type: 'vm-snapshot', requestId: 'r', vmId: 'v', snapshotId: '../etc' }))).toThrow(MessageInvalidError);
    expect(() => agentClusterCodec.decode(pack({ type: 'vm-action', requestId: 'r', vmId: 'v', action: 'explode' }))).toThrow(MessageInvalidError);
  });
});
