import { xxh64 } from '@node-rs/xxhash';
import { InvalidVmStateError } from './errors.ts';

// Device state: the VM's virtual NIC. Serialised as 48 bytes:
//   u8 version (1) | u8 device count (1) | u8 kind (1 = nic) | u8 reserved | mac[6] | u16 reserved
//   | f64 rxPackets | f64 rxBytes | f64 txPackets | f64 txBytes

const DEVICES_VERSION = 1;
const DEVICE_KIND_NIC = 1;
const DEVICES_BYTES = 48;

/** The virtual NIC: its MAC and traffic counters. The kv workload and the agent count through it. */
export interface NicState {
  /** "02:xx:xx:xx:xx:xx" (locally administered, derived from the VM id). */
  mac: string;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
}

/** All device state of a VM. */
export interface DeviceState {
  nic: NicState;
}

/** Fresh devices for VM `vmId`: a MAC derived from the id, zero counters. */
export function bootDevices(vmId: string): DeviceState {
  const h = xxh64(Buffer.from(vmId, 'utf8'));
  const bytes = [0x02];
  for (let i = 0; i < 5; i++) bytes.push(Number((h >> BigInt(8 * i)) & 0xffn));
  return { nic: { mac: bytes.map((b) => b.toString(16).padStart(2, '0')).join(':'), rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0 } };
}

/** Serialises device state (48 bytes). */
export function encodeDevices(state: DeviceState): Uint8Array {
  const out = new Uint8Array(DEVICES_BYTES);
  const view = new DataView(out.buffer);
  view.setUint8(0, DEVICES_VERSION);
  view.setUint8(1, 1);
  view.setUint8(2, DEVICE_KIND_NIC);
  const mac = state.nic.mac.split(':').map((x) => parseInt(x, 16));
  for (let i = 0; i < 6; i++) view.setUint8(4 + i, mac[i] ?? 0);
  view.setFloat64(16, state.nic.rxPackets, true);
  view.setFloat64(24, state.nic.rxBytes, true);
  view.setFloat64(32, state.nic.txPackets, true);
  view.setFloat64(40, state.nic.txBytes, true);
  return out;
}

/** Parses encodeDevices' bytes; throws InvalidVmStateError on a wrong size, version or kind. */
export function decodeDevices(bytes: Uint8Array): DeviceState {
  if (bytes.byteLength !== DEVICES_BYTES) throw new InvalidVmStateError('devices', `${bytes.byteLength} bytes, expected ${DEVICES_BYTES}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint8(0) !== DEVICES_VERSION) throw new InvalidVmStateError('devices', `version ${view.getUint8(0)}, expected ${DEVICES_VERSION}`);
  if (view.getUint8(1) !== 1 || view.getUint8(2) !== DEVICE_KIND_NIC) throw new InvalidVmStateError('devices', 'expected exactly one NIC');
  const mac: string[] = [];
  for (let i = 0; i < 6; i++) mac.push(view.getUint8(4 + i).toString(16).padStart(2, '0'));
  return {
    nic: {
      mac: mac.join(':'),
      rxPackets: view.getFloat64(16, true),
      rxBytes: view.getFloat64(24, true),
      txPackets: view.getFloat64(32, true),
      txBytes: view.getFloat64(40, true),
    },
  };
}
