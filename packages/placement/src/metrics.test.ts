import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  Scheduler, formatTrace, generateTrace, parseTrace, readTraceFile, replayTrace, sortDecreasing, uniformHosts, writeTraceFile,
} from './index.ts';
import type { HostSpec } from './index.ts';

const GIB = 1024 ** 3;
const host = (id: string, cpus = 4, memGib = 8): HostSpec => ({ id, state: 'up', capacity: { cpus, memoryBytes: memGib * GIB, diskBytes: 100 * GIB } });

describe('fragmentation', () => {
  it('is the share of free memory that cannot host the most common request', () => {
    // Two 8 GiB hosts; the most common type (m) takes 4 GiB.
    const s = new Scheduler([host('a', 64), host('b', 64)]);
    s.addVm({ vmId: 'x', hostId: 'a', demand: { cpus: 1, memoryBytes: 4 * GIB, diskBytes: 0 }, instanceType: 'm' });
    s.addVm({ vmId: 'y', hostId: 'b', demand: { cpus: 1, memoryBytes: 4 * GIB, diskBytes: 0 }, instanceType: 'm' });
    s.addVm({ vmId: 'z', hostId: 'b', demand: { cpus: 1, memoryBytes: 1 * GIB, diskBytes: 0 }, instanceType: 's' });
    // Free: a 4 GiB (one 4 GiB slot), b 3 GiB (none): 3 of 7 GiB stranded.
    expect(s.fragmentation()).toBeCloseTo(3 / 7);
    expect(s.fragmentation({ cpus: 1, memoryBytes: GIB, diskBytes: 0 })).toBeCloseTo(0);
  });
  it('is 0 on an empty cluster and 0 when nothing is free', () => {
    const s = new Scheduler([host('a')]);
    expect(s.fragmentation()).toBe(0);
    s.addVm({ vmId: 'x', hostId: 'a', demand: { cpus: 1, memoryBytes: 8 * GIB, diskBytes: 0 } });
    expect(s.fragmentation()).toBe(0);
  });
});

describe('energy', () => {
  it('counts only hosts with VMs, linear in CPU use between idle and peak', () => {
    const s = new Scheduler([host('a', 4), host('b', 4)], [], { energy: { idleWatts: 100, peakWatts: 200, vcpuUtilization: 1 } });
    expect(s.energy(3600)).toEqual({ hostsPowered: 0, watts: 0, kwh: 0 });
    s.addVm({ vmId: 'x', hostId: 'a', demand: { cpus: 2, memoryBytes: GIB, diskBytes: 0 } });
    const e = s.energy(3600);
    expect(e.hostsPowered).toBe(1);
    expect(e.watts).toBeCloseTo(150);
    expect(e.kwh).toBeCloseTo(0.15);
    s.addVm({ vmId: 'y', hostId: 'a', demand: { cpus: 8, memoryBytes: GIB, diskBytes: 0 } });
    expect(s.energy().watts).toBeCloseTo(200); // capped at peak
  });
});

describe('lower bound', () => {
  it('is the total demand over one host, per resource, rounded up, max over resources', () => {
    const s = new Scheduler([host('a', 4, 8), host('b', 4, 8), host('c', 4, 8)]);
    s.addVm({ vmId: 'x', hostId: 'a', demand: { cpus: 1, memoryBytes: 6 * GIB, diskBytes: 0 } });
    s.addVm({ vmId: 'y', hostId: 'b', demand: { cpus: 1, memoryBytes: 6 * GIB, diskBytes: 0 } });
    expect(s.lowerBound()).toBe(2);
    expect(s.hostsUsed()).toBe(2);
  });
});

describe('trace files', () => {
  it('round-trip through text and a file unchanged', () => {
    const trace = generateTrace({ seed: 3, arrivals: 200, meanLifetimeSec: 50, groupShare: 0.2, images: ['ubuntu', 'alpine'] });
    expect(parseTrace(formatTrace(trace))).toEqual(trace);
    const dir = mkdtempSync(join(tmpdir(), 'ferry-trace-'));
    try {
      writeTraceFile(join(dir, 't.trace'), trace);
      expect(readTraceFile(join(dir, 't.trace'))).toEqual(trace);
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });
  it('the same seed gives the same trace, another seed another one', () => {
    expect(generateTrace({ seed: 1, arrivals: 50, meanLifetimeSec: 10 })).toEqual(generateTrace({ seed: 1, arrivals: 50, meanLifetimeSec: 10 }));
    expect(generateTrace({ seed: 1, arrivals: 50 })).not.toEqual(generateTrace({ seed: 2, arrivals: 50 }));
  });
  it('malformed lines are refused with their line number', () => {
    expect(() => parseTrace('nope\n')).toThrow(/line 1/);
    expect(() => parseTrace('ferry-placement-trace 1\ntype s 1 2 3\na 1 vm-1 huge\n')).toThrow(/line 3: unknown instance type huge/);
    expect(() => parseTrace('ferry-placement-trace 1\ntype s 1 2 3\na 5 v s\na 4 w s\n')).toThrow(/line 4: time 4 goes backwards/);
    expect(() => parseTrace('ferry-placement-trace 1\ntype s 1 -2 3\n')).toThrow(/line 2/);
  });
});

describe('replay', () => {
  const capacity = { cpus: 16, memoryBytes: 64 * GIB, diskBytes: 1024 * GIB };
  it('best-fit decreasing on a static trace stays within 11/9 of the lower bound', () => {
    const trace = sortDecreasing(generateTrace({ seed: 7, arrivals: 1500 }), capacity);
    const s = new Scheduler(uniformHosts(200, capacity), [], { strategy: 'best-fit' });
    const r = replayTrace(s, trace);
    expect(r.acceptanceRate).toBe(1);
    expect(r.hostsUsed).toBeLessThanOrEqual(Math.ceil((11 / 9) * r.lowerBound));
  });
  it('departures free capacity and energy accrues only while hosts are powered', () => {
    const trace = generateTrace({ seed: 9, arrivals: 400, meanLifetimeSec: 100 });
    const s = new Scheduler(uniformHosts(50, capacity));
    const r = replayTrace(s, trace);
    const alive = trace.events.filter((e) => e.kind === 'arrive').length - trace.events.filter((e) => e.kind === 'depart').length;
    expect(s.vmCount).toBe(alive);
    expect(r.energyKwh).toBeGreaterThan(0);
    expect(r.energyKwh).toBeLessThan((50 * 250 * r.durationSec) / 3.6e6);
  });
});
