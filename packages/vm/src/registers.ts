import { InvalidVmStateError } from './errors.ts';
import { REG_STEPS_F64, REG_WORKLOAD_I32, REGISTER_SLOT_BYTES, WORKLOAD_REGISTER_COUNT } from './layout.ts';

// The register block: per vCPU a 64-byte slot in one SharedArrayBuffer, written by the vCPU's
// pCPU worker at every step and read by the hypervisor when the VM is paused. Slot layout:
//   f64 steps | i32 × 8 workload registers ([0] RNG state, [1] cursor, [2..7] workload's own) | reserved
// Serialised (captureState, snapshot files) behind a 16-byte header:
//   "FRRG" | u16 version | u16 vcpus | u32 slot bytes | u32 reserved

const REGISTERS_MAGIC = 0x47525246; // "FRRG"
const REGISTERS_VERSION = 1;
const HEADER_BYTES = 16;

/** The vCPUs' register slots in shared memory. */
export class RegisterBlock {
  readonly vcpus: number;
  readonly buffer: SharedArrayBuffer;
  private readonly f64: Float64Array;
  private readonly i32: Int32Array;

  /** A zeroed block for `vcpus` vCPUs, or one over `buffer`. */
  constructor(vcpus: number, buffer?: SharedArrayBuffer) {
    this.vcpus = vcpus;
    this.buffer = buffer ?? new SharedArrayBuffer(vcpus * REGISTER_SLOT_BYTES);
    this.f64 = new Float64Array(this.buffer);
    this.i32 = new Int32Array(this.buffer);
  }

  /** Boot state: zero steps, cursor 0, each vCPU's RNG seeded from `seed` and its index. */
  static boot(vcpus: number, seed: number): RegisterBlock {
    const block = new RegisterBlock(vcpus);
    for (let k = 0; k < vcpus; k++) block.i32[(k * REGISTER_SLOT_BYTES) / 4 + REG_WORKLOAD_I32] = seedRng(seed, k);
    return block;
  }

  /** Steps vCPU `k` has executed. */
  steps(k: number): number {
    return this.f64[(k * REGISTER_SLOT_BYTES) / 8 + REG_STEPS_F64]!;
  }

  /** Steps over all vCPUs. */
  totalSteps(): number {
    let n = 0;
    for (let k = 0; k < this.vcpus; k++) n += this.steps(k);
    return n;
  }

  /** A copy of vCPU `k`'s workload registers. */
  workloadRegisters(k: number): Int32Array {
    const at = (k * REGISTER_SLOT_BYTES) / 4 + REG_WORKLOAD_I32;
    return this.i32.slice(at, at + WORKLOAD_REGISTER_COUNT);
  }

  /** Serialises the block (header + slots). Take it while the vCPUs are parked. */
  encode(): Uint8Array {
    const out = new Uint8Array(HEADER_BYTES + this.buffer.byteLength);
    const view = new DataView(out.buffer);
    view.setUint32(0, REGISTERS_MAGIC, true);
    view.setUint16(4, REGISTERS_VERSION, true);
    view.setUint16(6, this.vcpus, true);
    view.setUint32(8, REGISTER_SLOT_BYTES, true);
    out.set(new Uint8Array(this.buffer), HEADER_BYTES);
    return out;
  }

  /** A new block from encode()'s bytes; throws InvalidVmStateError unless it holds `vcpus` slots. */
  static decode(bytes: Uint8Array, vcpus: number): RegisterBlock {
    const block = new RegisterBlock(vcpus);
    block.load(bytes);
    return block;
  }

  /** Overwrites this block, in place, with encode()'s bytes (the same checks as decode; nothing changes when they fail). */
  load(bytes: Uint8Array): void {
    const vcpus = this.vcpus;
    if (bytes.byteLength < HEADER_BYTES) throw new InvalidVmStateError('registers', `${bytes.byteLength} bytes is shorter than the header`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (view.getUint32(0, true) !== REGISTERS_MAGIC) throw new InvalidVmStateError('registers', 'bad magic');
    const version = view.getUint16(4, true);
    if (version !== REGISTERS_VERSION) throw new InvalidVmStateError('registers', `version ${version}, expected ${REGISTERS_VERSION}`);
    const count = view.getUint16(6, true);
    const slotBytes = view.getUint32(8, true);
    if (count !== vcpus || slotBytes !== REGISTER_SLOT_BYTES || bytes.byteLength !== HEADER_BYTES + count * slotBytes) {
      throw new InvalidVmStateError('registers', `holds ${count} slots of ${slotBytes} bytes in ${bytes.byteLength} bytes; expected ${vcpus} of ${REGISTER_SLOT_BYTES}`);
    }
    new Uint8Array(this.buffer).set(bytes.subarray(HEADER_BYTES));
  }
}

/** A non-zero xorshift32 state for vCPU `k` from `seed` (splitmix-style mixing). */
export function seedRng(seed: number, k: number): number {
  let x = (seed ^ Math.imul(k + 1, 0x9e3779b9)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  x ^= x >>> 16;
  return x === 0 ? 0x6d2b79f5 : x | 0;
}
