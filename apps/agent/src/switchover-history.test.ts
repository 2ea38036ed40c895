import { describe, expect, it } from 'vitest';
import { SWITCHOVER_SAMPLES, SwitchoverHistory } from './switchover-history.ts';

describe('SwitchoverHistory', () => {
  it('has no estimate for a destination it has not measured', () => {
    const h = new SwitchoverHistory();
    h.record('h2', 8);
    expect(h.estimate('h3')).toBeUndefined();
  });

  it('estimates the median of the recent measurements, per destination', () => {
    const h = new SwitchoverHistory();
    for (const ms of [9, 7, 30]) h.record('h2', ms);
    h.record('h3', 2);
    expect(h.estimate('h2')).toBe(9); // one slow switch-over does not move it
    expect(h.estimate('h3')).toBe(2);
    h.record('h2', 8);
    expect(h.estimate('h2')).toBe(8.5);
  });

  it(`keeps only the last ${SWITCHOVER_SAMPLES} measurements`, () => {
    const h = new SwitchoverHistory();
    for (let i = 0; i < SWITCHOVER_SAMPLES; i++) h.record('h2', 100);
    for (let i = 0; i < SWITCHOVER_SAMPLES; i++) h.record('h2', 5);
    expect(h.estimate('h2')).toBe(5);
  });

  it('ignores a missing, negative or non-finite measurement', () => {
    const h = new SwitchoverHistory();
    h.record('h2', undefined);
    h.record('h2', -1);
    h.record('h2', Number.POSITIVE_INFINITY);
    expect(h.estimate('h2')).toBeUndefined();
  });
});
