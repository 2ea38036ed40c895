import { PAGE_SIZE_BYTES } from '@ferry/memory';
import { describe, expect, it } from 'vitest';
import { GUEST_INFO_SLOTS_OFFSET, GUEST_INFO_SLOT_BYTES, MAX_VCPUS, PAGE_BYTES, REGISTER_SLOT_BYTES, REG_WORKLOAD_I32, WORKLOAD_REGISTER_COUNT } from './layout.ts';

describe('shared layouts', () => {
  it('the worker bundle page size agrees with @ferry/memory', () => {
    expect(PAGE_BYTES).toBe(PAGE_SIZE_BYTES);
  });
  it('every vCPU slot fits in the guest-info page and the register slot', () => {
    expect(GUEST_INFO_SLOTS_OFFSET + MAX_VCPUS * GUEST_INFO_SLOT_BYTES).toBeLessThanOrEqual(PAGE_BYTES);
    expect((REG_WORKLOAD_I32 + WORKLOAD_REGISTER_COUNT) * 4).toBeLessThanOrEqual(REGISTER_SLOT_BYTES);
  });
});
