import { describe, expect, it } from 'vitest';
import { API_ROUTES, apiPath, matchApiRoute } from './api-routes.ts';
import { ApiError, InvalidSizeError } from './api-errors.ts';
import { formatSize, parseRate, parseSize } from './api-size.ts';
import { validateMigrateRequest, validateRunRequest } from './api-validate.ts';
import { DEFAULT_XEN_RATE_LIMIT } from './api.ts';
import { apiEventMatches, parseApiClientMessage } from './api-ws.ts';

describe('sizes', () => {
  it('reads binary units, short forms and plain bytes', () => {
    expect(parseSize('16GiB')).toBe(16 * 2 ** 30);
    expect(parseSize('512MiB')).toBe(512 * 2 ** 20);
    expect(parseSize('1.5G')).toBe(1.5 * 2 ** 30);
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize(8192)).toBe(8192);
    expect(parseSize(' 64 kib ')).toBe(65536);
    expect(parseRate('100MiB/s')).toBe(100 * 2 ** 20);
    expect(parseRate('1Gps')).toBe(2 ** 30);
  });

  it('refuses malformed sizes with a clear, coded error', () => {
    for (const bad of ['lots', '-1G', '12XB', '', '1..5G', 'G']) {
      expect(() => parseSize(bad, 'memory')).toThrow(InvalidSizeError);
    }
    try {
      parseSize('lots', 'memory');
    } catch (err) {
      expect((err as ApiError).code).toBe('FERRY_ERR_INVALID_SIZE');
      expect((err as ApiError).status).toBe(400);
      expect((err as Error).message).toContain('memory');
      expect((err as Error).message).toContain('"lots"');
    }
    expect(() => parseSize(-1)).toThrow(InvalidSizeError);
    expect(() => parseSize(1.5)).toThrow(InvalidSizeError);
  });

  it('formats sizes that parse back to the same value when whole', () => {
    expect(formatSize(512)).toBe('512 B');
    expect(formatSize(16 * 2 ** 30)).toBe('16 GiB');
    expect(formatSize(1.5 * 2 ** 30)).toBe('1.5 GiB');
    for (const n of [4096, 2 ** 20, 3 * 2 ** 30]) expect(parseSize(formatSize(n).replace(' ', ''))).toBe(n);
  });
});

describe('routes', () => {
  it('fills and matches templates with ids', () => {
    expect(apiPath(API_ROUTES.vmStart, 'vm-3')).toBe('/api/v1/vms/vm-3/start');
    expect(apiPath(API_ROUTES.hosts)).toBe('/api/v1/hosts');
    expect(matchApiRoute('/api/v1/vms/vm-3/start')).toEqual({ route: API_ROUTES.vmStart, id: 'vm-3' });
    expect(matchApiRoute('/api/v1/hosts/h1/drain/cancel')).toEqual({ route: API_ROUTES.hostDrainCancel, id: 'h1' });
    expect(matchApiRoute('/api/v1/vms')).toEqual({ route: API_ROUTES.vms });
    expect(matchApiRoute('/api/v1/nope')).toBeUndefined();
    expect(() => apiPath(API_ROUTES.vm)).toThrow(TypeError);
  });
});

describe('request validation', () => {
  it('normalises a run request and rounds memory up to whole pages', () => {
    const spec = validateRunRequest({ image: 'lamp', cpus: 2, memory: '1.3M', disk: '1GiB', group: { name: 'web', policy: 'anti-affinity' }, workload: { kind: 'hotset', pages: 10 } });
    expect(spec.memoryBytes % 4096).toBe(0);
    expect(spec.memoryBytes).toBeGreaterThanOrEqual(1.3 * 2 ** 20);
    expect(spec.diskBytes).toBe(2 ** 30);
    expect(spec.group).toEqual({ name: 'web', policy: 'anti-affinity' });
    expect(spec.workload).toEqual({ kind: 'hotset', pages: 10 });
  });

  it('refuses bad run requests naming the field', () => {
    expect(() => validateRunRequest({ image: 'lamp', cpus: 1, memory: 'lots', disk: 0 })).toThrow(/memory/);
    expect(() => validateRunRequest({ image: 'lamp', cpus: 0, memory: '1G', disk: 0 })).toThrow(/cpus/);
    expect(() => validateRunRequest({ image: 'lamp', cpus: 1, memory: '1G', disk: 0, extra: 1 })).toThrow(/extra/);
    expect(() => validateRunRequest({ image: 'lamp', cpus: 1, memory: '1G', disk: 0, group: { name: 'g', policy: 'near' } })).toThrow(/group.policy/);
    expect(() => validateRunRequest('x')).toThrow(/object/);
  });

  it('fills migration policy defaults and reads rate strings', () => {
    const spec = validateMigrateRequest({ vm: 'vm-1', to: 'host-2', policy: { bandwidthLimit: '50MiB/s', autoConverge: true } });
    expect(spec.policy).toEqual({ maxDowntimeMs: 300, maxRounds: 30, bandwidthLimit: 50 * 2 ** 20, autoConverge: true });
    expect(() => validateMigrateRequest({ to: 'x' }, 'vm-1')).not.toThrow();
    expect(() => validateMigrateRequest({ vm: 'vm-2' }, 'vm-1')).toThrow(/path/);
  });
});

describe('websocket messages', () => {
  it('parses subscribe and refuses unknown types', () => {
    expect(parseApiClientMessage('{"type":"subscribe","since":4,"filter":{"migration":"m-1"}}')).toEqual({ type: 'subscribe', since: 4, filter: { migration: 'm-1' } });
    expect(() => parseApiClientMessage('{"type":"boom"}')).toThrow(/unknown message type/);
    expect(() => parseApiClientMessage('nope')).toThrow(/JSON/);
    const ev = { seq: 1, at: '', type: 'migration-completed' as const, migration: 'm-1', data: {} };
    expect(apiEventMatches(ev, { migration: 'm-1', types: ['migration-completed'] })).toBe(true);
    expect(apiEventMatches(ev, { vm: 'vm-1' })).toBe(false);
  });
});

describe('migration rate limit (Xen dynamic rate limiting) in a migrate request', () => {
  it('reads bit rates with decimal prefixes as links are quoted', () => {
    expect(parseRate('100Mbit/s')).toBe(12_500_000);
    expect(parseRate('1Gbit')).toBe(125_000_000);
    expect(parseRate('500 kbits/s')).toBe(62_500);
    expect(parseRate('50Mbps')).toBe(50 * 2 ** 20); // byte units keep their meaning
    expect(() => parseRate('100Mbot/s')).toThrow(InvalidSizeError);
  });

  it('fills the paper\'s defaults (100 → 500 Mbit/s, +50 Mbit/s) from "xen" and from a partial object', () => {
    expect(validateMigrateRequest({ vm: 'a', policy: { rateLimit: 'xen' } }).policy.rateLimit).toEqual({ ...DEFAULT_XEN_RATE_LIMIT });
    expect(DEFAULT_XEN_RATE_LIMIT).toEqual({ kind: 'xen', startBytesPerSec: 12_500_000, stepBytesPerSec: 6_250_000, maxBytesPerSec: 62_500_000, stopBelowBytes: 262_144 });
    const custom = validateMigrateRequest({ vm: 'a', policy: { rateLimit: { kind: 'xen', startBytesPerSec: '8Mbit/s', maxBytesPerSec: '4MiB', stopBelowBytes: '64KiB' } } }).policy;
    expect(custom.rateLimit).toEqual({ kind: 'xen', startBytesPerSec: 1_000_000, stepBytesPerSec: 6_250_000, maxBytesPerSec: 4 * 2 ** 20, stopBelowBytes: 65_536 });
    expect(custom.bandwidthLimit).toBe(0);
    expect(validateMigrateRequest({ vm: 'a' }).policy.rateLimit).toBeUndefined();
  });

  it('refuses an unknown kind, unknown fields, zero or inverted rates, and a bandwidth limit beside it, naming the field', () => {
    const bad: [unknown, string][] = [
      [{ rateLimit: 'qemu' }, 'policy.rateLimit.kind'],
      [{ rateLimit: { kind: 'xen', speed: 1 } }, 'speed'],
      [{ rateLimit: { kind: 'xen', startBytesPerSec: 0 } }, 'policy.rateLimit.startBytesPerSec'],
      [{ rateLimit: { kind: 'xen', startBytesPerSec: '600Mbit/s' } }, 'policy.rateLimit.startBytesPerSec'],
      [{ rateLimit: { kind: 'xen', maxBytesPerSec: 'fast' } }, 'policy.rateLimit.maxBytesPerSec'],
      [{ rateLimit: 'xen', bandwidthLimit: '1G/s' }, 'policy.rateLimit'],
    ];
    for (const [policy, field] of bad) {
      let caught: unknown;
      try {
        validateMigrateRequest({ vm: 'a', policy });
      } catch (err) {
        caught = err;
      }
      expect(caught, JSON.stringify(policy)).toBeInstanceOf(ApiError);
      expect((caught as ApiError).status).toBe(400);
      expect((caught as Error).message).toContain(field.split('.').at(-1)!);
    }
  });
});
