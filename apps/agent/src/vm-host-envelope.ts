/**
 * The VM envelope: what travels in the migration's `transfer-state.devices` field besides the
 * device bytes — the VM's spec (name, workload, step limit), its image id, and whether it runs on
 * arrival. The migration engine treats the field as opaque bytes; the destination needs the spec
 * to rebuild the VM with `Vm.restore`. msgpack, validated like every message that enters.
 */
import { createMessageCodec, field, MessageInvalidError, MIGRATION_MAX_DEVICE_BYTES, type MessageValidators, type RawMessage } from '@ferry/protocol';
import type { VmSpec, WorkloadKind } from '@ferry/vm';

/** Envelope contents. */
export interface VmEnvelope {
  readonly type: 'vm-envelope';
  readonly version: 1;
  readonly spec: VmSpec;
  readonly image?: string;
  /** Resume the VM on arrival (false: it arrives paused, as it was). */
  readonly run: boolean;
  /** The VM's device state bytes (packages/vm encodeDevices). */
  readonly devices: Uint8Array;
}

const validators: MessageValidators<VmEnvelope> = {
  'vm-envelope': (raw: RawMessage) => {
    if (field.integer(raw, 'version') !== 1) throw new MessageInvalidError('vm envelope: unknown version', { field: 'version' });

    const s = field.map(raw, 'spec');
    const w = field.map(s, 'workload');
    const params: Record<string, number> = {};
    if (w['params'] !== undefined) {
      const p = field.map(w, 'params');
      for (const k of Object.keys(p).slice(0, 64)) params[k] = field.number(p, k);
    }
    const spec: VmSpec = {
      id: field.string(s, 'id', { nonEmpty: true, maxLength: 128 }),
      name: field.string(s, 'name', { maxLength: 256 }),
      vcpus: field.integer(s, 'vcpus', 1, 64),
      memoryBytes: field.integer(s, 'memoryBytes', 1),
      workload: {
        kind: field.string(w, 'kind', { nonEmpty: true, maxLength: 64 }) as WorkloadKind,
        ...(w['seed'] !== undefined ? { seed: field.integer(w, 'seed', 0, 0xffffffff) } : {}),
        ...(w['rate'] !== undefined ? { rate: field.number(w, 'rate', 0) } : {}),
        ...(w['modulePath'] !== undefined ? { modulePath: field.string(w, 'modulePath') } : {}),
        params,
      },
      ...(s['heartbeat'] !== undefined ? { heartbeat: field.boolean(s, 'heartbeat') } : {}),
      ...(s['stepLimit'] !== undefined ? { stepLimit: field.integer(s, 'stepLimit') } : {}),
    };
    return {
      type: 'vm-envelope',
      version: 1,
      spec,
      ...(raw['image'] !== undefined ? { image: field.string(raw, 'image', { nonEmpty: true, maxLength: 256 }) } : {}),
      run: field.boolean(raw, 'run'),
      devices: field.bytes(raw, 'devices', 64 * 1024),
    };
  },
};

const codec = createMessageCodec<VmEnvelope>(validators, MIGRATION_MAX_DEVICE_BYTES);

/** Packs an envelope (fits in transfer-state.devices). */
export function encodeEnvelope(envelope: Omit<VmEnvelope, 'type' | 'version'>): Uint8Array {
  return codec.encode({ type: 'vm-envelope', version: 1, ...envelope });
}

/** Unpacks and validates an envelope; throws MessageInvalidError / MessageTooLargeError. */
export function decodeEnvelope(bytes: Uint8Array): VmEnvelope {
  return codec.decode(bytes);
}
