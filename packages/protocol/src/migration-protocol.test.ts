import { describe, expect, it } from 'vitest';
import { pack } from 'msgpackr';
import { decodeMessage, encodeMessage } from './codec.ts';
import {
  MIGRATION_MAX_MESSAGE_BYTES,
  MIGRATION_MAX_PRELUDE_BYTES,
  SOURCE_MESSAGE_VALIDATORS,
  migrationReceiverCodec,
  migrationSenderCodec,
  type DestinationMessage,
  type SourceMessage,
} from './migration-protocol.ts';

const hello: SourceMessage = { type: 'hello', protocolVersion: 1, migrationId: 'm', token: 't', vm: { vmId: 'v', cpus: 2, memoryBytes: 8192 }, pageCount: 2 };

describe('migration control messages', () => {
  it('round-trip every source message through encode and validated decode', () => {
    const msgs: SourceMessage[] = [
      hello,
      { ...hello, prelude: new Uint8Array([7, 8]) },
      { type: 'start-round', round: 1, final: false },
      { type: 'end-round', round: 1, pagesSent: 10, bytesSent: 40960 },
      { type: 'transfer-state', registers: new Uint8Array([1, 2, 3]), devices: new Uint8Array(0), pausedAtMs: 1234.5 },
      { type: 'verify-memory', algorithm: 'page-sum', digest: '00ff00ff00ff00ff' },
      { type: 'activate' },
      { type: 'cancel', code: 'FERRY_ERR_MIGRATION_CANCELLED', reason: 'asked' },
      { type: 'error', code: 'FERRY_ERR_X', message: 'no' },
    ];
    for (const m of msgs) {
      const back = migrationReceiverCodec.decode(migrationSenderCodec.encode(m));
      expect({ ...back, ...('registers' in back ? { registers: [...back.registers], devices: [...back.devices] } : {}), ...('prelude' in back ? { prelude: [...back.prelude!] } : {}) }).toEqual({
        ...m,
        ...('registers' in m ? { registers: [...m.registers], devices: [...m.devices] } : {}),
        ...('prelude' in m ? { prelude: [...m.prelude!] } : {}),
      });
    }
  });

  it('round-trip every destination message', () => {
    const msgs: DestinationMessage[] = [
      { type: 'hello-accepted', protocolVersion: 1 },
      { type: 'hello-refused', code: 'FERRY_ERR_MIGRATION_VERSION', message: 'v2', versionsAccepted: [1] },
      { type: 'ready', digest: '0123456789abcdef' },
      { type: 'activated', resumedAtMs: 17.25 },
      { type: 'error', code: 'FERRY_ERR_MIGRATION_DIGEST', message: 'mismatch' },
    ];
    for (const m of msgs) expect(migrationSenderCodec.decode(migrationReceiverCodec.encode(m))).toEqual(m);
  });

  it('drop fields that are not part of the variant', () => {
    expect(migrationReceiverCodec.decode(pack({ type: 'activate', evil: { deep: 1 } }))).toEqual({ type: 'activate' });
  });

  it('refuse bad fields naming the field', () => {
    const bad: [object, string][] = [
      [{ ...hello, pageCount: 0 }, 'pageCount'],
      [{ ...hello, token: '' }, 'token'],
      [{ ...hello, vm: 'x' }, 'vm'],
      [{ ...hello, vm: { vmId: 'v', cpus: 0, memoryBytes: 1 } }, 'cpus'],
      [{ ...hello, prelude: 'spec' }, 'prelude'],
      [{ ...hello, prelude: new Uint8Array(MIGRATION_MAX_PRELUDE_BYTES + 1) }, 'prelude'],
      [{ type: 'start-round', round: 0, final: false }, 'round'],
      [{ type: 'start-round', round: 1 }, 'final'],
      [{ type: 'verify-memory', algorithm: 'md5', digest: '0123456789abcdef' }, 'algorithm'],
      [{ type: 'verify-memory', algorithm: 'xxh64', digest: 'XYZ' }, 'digest'],
      [{ type: 'transfer-state', registers: 'abc', devices: new Uint8Array(0), pausedAtMs: 1 }, 'registers'],
      [{ type: 'nope' }, 'type'],
      [{ type: 7 }, 'type'],
    ];
    for (const [m, field] of bad) {
      expect(() => migrationReceiverCodec.decode(pack(m))).toThrow(expect.objectContaining({ code: 'FERRY_ERR_MESSAGE_INVALID', field }));
    }
  });

  it('refuse non-maps and non-msgpack', () => {
    for (const bytes of [pack([1, 2]), pack('hello'), pack(null), pack(new Uint8Array(3)), new Uint8Array([0xc1]), new Uint8Array(0)]) {
      expect(() => migrationReceiverCodec.decode(bytes)).toThrow(expect.objectContaining({ code: 'FERRY_ERR_MESSAGE_INVALID' }));
    }
  });

  it('refuse oversized messages before unpacking them', () => {
    const big = new Uint8Array(MIGRATION_MAX_MESSAGE_BYTES + 1);
    expect(() => migrationReceiverCodec.decode(big)).toThrow(expect.objectContaining({ code: 'FERRY_ERR_MESSAGE_TOO_LARGE' }));
    expect(() => decodeMessage(encodeMessage(hello), SOURCE_MESSAGE_VALIDATORS, 10)).toThrow(expect.objectContaining({ code: 'FERRY_ERR_MESSAGE_TOO_LARGE' }));
  });
});
