import { describe, expect, it } from 'vitest';
import { OneTimeTokenRegistry, tokensEqual, generateToken } from './auth.ts';
import { backoffDelayMs } from './reconnect.ts';
import { closeCodeName, FERRY_CLOSE } from './close-codes.ts';

describe('one-time tokens', () => {
  it('a token is consumed at most once', () => {
    const reg = new OneTimeTokenRegistry<{ migrationId: string }>();
    const { token } = reg.issue({ migrationId: 'm1' }, 1000);
    expect(reg.consume(token)).toEqual({ migrationId: 'm1' });
    expect(reg.consume(token)).toBeUndefined();
    expect(reg.consume('made-up')).toBeUndefined();
  });

  it('a token expires after its ttl', () => {
    let now = 0;
    const reg = new OneTimeTokenRegistry<string>({ nowMs: () => now });
    const a = reg.issue('a', 100);
    const b = reg.issue('b', 300);
    now = 150;
    expect(reg.size).toBe(1);
    expect(reg.consume(a.token)).toBeUndefined();
    expect(reg.consume(b.token)).toBe('b');
  });

  it('revoke drops matching tokens; the registry is bounded', () => {
    const reg = new OneTimeTokenRegistry<string>({ maxLiveTokens: 2 });
    const a = reg.issue('m1', 1000);
    reg.issue('m2', 1000);
    expect(() => reg.issue('m3', 1000)).toThrow(RangeError);
    expect(reg.revoke((c) => c === 'm1')).toBe(1);
    expect(reg.consume(a.token)).toBeUndefined();
  });

  it('tokens compare in constant time and differ', () => {
    const t = generateToken();
    expect(tokensEqual(t, t)).toBe(true);
    expect(tokensEqual(t, generateToken())).toBe(false);
    expect(tokensEqual(t, 'short')).toBe(false);
  });
});

describe('backoff and close codes', () => {
  it('backoff grows and is capped', () => {
    const d = (n: number) => backoffDelayMs(n, { initialMs: 100, maxMs: 1000, jitter: 0 });
    expect([d(0), d(1), d(2), d(10)]).toEqual([100, 200, 400, 1000]);
  });
  it('close codes have stable names', () => {
    expect(closeCodeName(FERRY_CLOSE.BAD_MESSAGE)).toBe('BAD_MESSAGE');
    expect(closeCodeName(4999)).toBe('CODE_4999');
  });

  it('generated tokens can be passed as a command-line value (never start with a dash)', () => {
    for (let i = 0; i < 200; i++) expect(generateToken()).toMatch(/^[0-9a-f]{64}$/);
  });
});
