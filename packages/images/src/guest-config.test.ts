import { describe, expect, it } from 'vitest';
import { GuestMemory } from '@ferry/memory';
import { GuestConfigError } from './errors.ts';
import { readGuestConfig, verifyCredential, writeGuestConfig } from './guest-config.ts';

const CONFIG = {
  instanceId: 'vm-7',
  imageId: 'lamp',
  hostname: 'db-7',
  ip: '10.1.2.3',
  accessRules: [
    { protocol: 'tcp' as const, port: 22, cidr: '10.0.0.0/8' },
    { protocol: 'icmp' as const, cidr: '0.0.0.0/0' },
  ],
  user: 'admin',
  password: 'hunter2-long',
};

describe('guest config record', () => {
  it('round-trips through page 1 with only a hash of the password', () => {
    const memory = new GuestMemory(4);
    const written = writeGuestConfig(memory, CONFIG);
    const read = readGuestConfig(memory);
    expect(read).toEqual(written);
    expect(read.accessRules).toEqual(CONFIG.accessRules);
    expect(verifyCredential(read.credentialHash, 'hunter2-long')).toBe(true);
    expect(verifyCredential(read.credentialHash, 'hunter3-long')).toBe(false);
    expect(Buffer.from(memory.page(1)).includes('hunter2')).toBe(false);
  });

  it('is deterministic with a given salt', () => {
    const a = new GuestMemory(2);
    const b = new GuestMemory(2);
    const salt = new Uint8Array(16).fill(7);
    writeGuestConfig(a, CONFIG, { salt });
    writeGuestConfig(b, CONFIG, { salt });
    expect(Buffer.compare(Buffer.from(a.page(1)), Buffer.from(b.page(1)))).toBe(0);
  });

  it('refuses a missing, damaged or future-version record', () => {
    const memory = new GuestMemory(2);
    expect(() => readGuestConfig(memory)).toThrow(/no run-time configuration/);
    writeGuestConfig(memory, CONFIG);
    memory.page(1)[40] = memory.page(1)[40]! ^ 0xff;
    expect(() => readGuestConfig(memory)).toThrow(/checksum/);
    writeGuestConfig(memory, CONFIG);
    memory.page(1)[4] = 9;
    expect(() => readGuestConfig(memory)).toThrow(/version 9/);
  });

  it('refuses malformed fields and records too large for a page', () => {
    const memory = new GuestMemory(2);
    expect(() => writeGuestConfig(memory, { ...CONFIG, ip: 'ten' })).toThrow(GuestConfigError);
    expect(() => writeGuestConfig(memory, { ...CONFIG, accessRules: [{ protocol: 'tcp', port: 70000, cidr: '0.0.0.0/0' }] })).toThrow(/port/);
    const many = Array.from({ length: 200 }, (_, i) => ({ protocol: 'tcp' as const, port: i + 1, cidr: '10.0.0.0/24' }));
    expect(() => writeGuestConfig(memory, { ...CONFIG, accessRules: many })).toThrow(/does not fit/);
  });
});
