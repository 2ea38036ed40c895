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
