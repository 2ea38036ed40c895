import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Scheduler } from './index.ts';
import type { HostSpec, Migration, Resources } from './index.ts';

const GIB = 1024 ** 3;
const host = (id: string, cpus = 4, memGib = 8): HostSpec => ({ id, state: 'up', capacity: { cpus, memoryBytes: memGib * GIB, diskBytes: 100 * GIB } });
const mem = (gib: number): Resources => ({ cpus: 1, memoryBytes: gib * GIB, diskBytes: 5 * GIB });

/** Runs a plan through the real scheduler, one reserved-then-committed migration at a time. */
function execute(s: Scheduler, migrations: readonly Migration[]): void {
  for (const m of migrations) {
    expect(s.vm(m.vmId)?.hostId).toBe(m.fromHostId);
    const r = s.beginMigration(m.vmId, m.toHostId);
    if (!r.ok) throw new Error(`step ${m.vmId} ${m.fromHostId}→${m.toHostId} does not fit: ${r.error.message}`);
    s.completeMigration(m.vmId);
  }
}

describe('drain plan', () => {
  it('moves every VM off the host, spread over targets rather than piled on one', () => {
    const s = new Scheduler([host('src', 8, 32), host('t1', 8, 32), host('t2', 8, 32), host('t3', 8, 32)]);
    for (let i = 0; i < 6; i++) s.addVm({ vmId: `v${i}`, hostId: 'src', demand: mem(2) });
    const plan = s.planDrain('src');
    expect(plan.unplaced).toEqual([]);
    expect(plan.migrations).toHaveLength(6);
    expect(plan.costBytes).toBe(12 * GIB);
    const perTarget = new Map<string, number>();
    for (const m of plan.migrations) perTarget.set(m.toHostId, (perTarget.get(m.toHostId) ?? 0) + 1);
    expect([...perTarget.values()].sort()).toEqual([2, 2, 2]);
    expect(s.host('src').vmCount).toBe(6); // planning changes nothing
    s.updateHost('src', { state: 'draining' });
    execute(s, plan.migrations);
    expect(s.host('src').vmCount).toBe(0);
  });

  it('reports VMs no host can take, and keeps anti-affinity', () => {
    const s = new Scheduler([host('src'), host('t1'), host('t2')]);
    const group = { name: 'g', policy: 'anti-affinity' as const };
    s.addVm({ vmId: 'g1', hostId: 'src', demand: mem(1), group });
    s.addVm({ vmId: 'g2', hostId: 't1', demand: mem(1), group });
    s.addVm({ vmId: 'g3', hostId: 't2', demand: mem(1), group });
    s.addVm({ vmId: 'x', hostId: 'src', demand: mem(2) });
    const plan = s.planDrain('src');
    expect(plan.unplaced).toEqual(['g1']);
    expect(plan.migrations.map((m) => m.vmId)).toEqual(['x']);
  });

  it('moves a hard-affinity group as one unit to one host', () => {
    const s = new Scheduler([host('src', 8, 32), host('t1', 8, 32), host('t2', 8, 32)]);
    const group = { name: 'db', policy: 'affinity' as const };
    for (let i = 0; i < 3; i++) s.addVm({ vmId: `d${i}`, hostId: 'src', demand: mem(4), group });
    const plan = s.planDrain('src');
    expect(plan.migrations).toHaveLength(3);
    expect(new Set(plan.migrations.map((m) => m.toHostId)).size).toBe(1);
    // Executable one migration at a time: the first member leads the group off the draining host.
    s.updateHost('src', { state: 'draining' });
    execute(s, plan.migrations);
    expect(new Set(s.vms().map((v) => v.hostId))).toEqual(new Set([plan.migrations[0]!.toHostId]));
  });

  it('a hard-affinity member may not leave its group on an up host, but leads it off a draining one', () => {
    const s = new Scheduler([host('src', 8, 32), host('t1', 8, 32)]);
    const group = { name: 'db', policy: 'affinity' as const };
    s.addVm({ vmId: 'd0', hostId: 'src', demand: mem(4), group });
    s.addVm({ vmId: 'd1', hostId: 'src', demand: mem(4), group });
    const refused = s.beginMigration('d0', 't1');
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.error.code).toBe('FERRY_ERR_PLACEMENT_NO_VALID_HOST');
    s.updateHost('src', { state: 'draining' });
    expect(s.beginMigration('d0', 't1')).toMatchObject({ ok: true, hostId: 't1' });
    // The rest of the group follows the leader, and only there (even while the leader is in flight).
    expect(s.beginMigration('d1')).toMatchObject({ ok: true, hostId: 't1' });
  });
});

describe('consolidation plan', () => {
  it('empties the lightly loaded hosts onto the others with few migrations', () => {
    // Four 8 GiB hosts at 6, 6, 2, 2 GiB: the two 2 GiB hosts can be emptied with 2 migrations.
    const s = new Scheduler([host('a'), host('b'), host('c'), host('d')]);
    s.addVm({ vmId: 'a1', hostId: 'a', demand: mem(6) });
    s.addVm({ vmId: 'b1', hostId: 'b', demand: mem(6) });
    s.addVm({ vmId: 'c1', hostId: 'c', demand: mem(2) });
    s.addVm({ vmId: 'd1', hostId: 'd', demand: mem(2) });
    const plan = s.planConsolidation();
    expect(plan.hostsBefore).toBe(4);
    expect(plan.hostsAfter).toBe(2);
    expect(plan.migrations).toHaveLength(2);
    expect([...plan.hostsEmptied].sort()).toEqual(['c', 'd']);
    expect(s.outcome()).toEqual({ hostsUsed: ['a', 'b', 'c', 'd'], spread: s.loadSpread() });
    expect(s.outcome(plan.migrations).hostsUsed).toEqual(['a', 'b']); // worked out on a copy: nothing moved yet
    expect(s.hostsUsed()).toBe(4);
    execute(s, plan.migrations);
    expect(s.hostsUsed()).toBe(2);
    expect(s.outcome()).toEqual(s.outcome([{ vmId: 'nope', fromHostId: 'a', toHostId: 'b', costBytes: 0 }])); // a move the model refuses is left out
  });

  it('never powers on an empty host nor moves a VM twice', () => {
    const s = new Scheduler([host('a'), host('b'), host('e')]);
    s.addVm({ vmId: 'a1', hostId: 'a', demand: mem(5) });
    s.addVm({ vmId: 'b1', hostId: 'b', demand: mem(5) });
    const plan = s.planConsolidation();
    expect(plan.migrations).toEqual([]);
  });
});

describe('rebalance plan', () => {
  it('narrows the spread of load', () => {
    const s = new Scheduler([host('a', 8, 32), host('b', 8, 32)]);
    for (let i = 0; i < 8; i++) s.addVm({ vmId: `v${i}`, hostId: 'a', demand: mem(2) });
    const plan = s.planRebalance({ targetSpread: 0 });
    expect(plan.spreadBefore).toBeCloseTo(0.5);
    expect(plan.spreadAfter).toBeCloseTo(0);
    expect(s.outcome(plan.migrations).spread).toBeCloseTo(plan.spreadAfter);
    expect(plan.migrations).toHaveLength(4);
    execute(s, plan.migrations);
    expect(s.loadSpread()).toBeCloseTo(0);
  });
});

// ---- properties over random clusters --------------------------------------------------------

interface RandomCluster { hosts: HostSpec[]; vms: { hostIdx: number; memGib: number; cpus: number; group: number }[] }

const clusterArb: fc.Arbitrary<RandomCluster> = fc.record({
  hosts: fc.array(fc.record({ cpus: fc.integer({ min: 1, max: 8 }), memGib: fc.integer({ min: 4, max: 32 }), state: fc.constantFrom('up', 'up', 'up', 'draining', 'down') }), { minLength: 2, maxLength: 12 })
    .map((hs) => hs.map((h, i) => ({ id: `h${i}`, state: h.state as HostSpec['state'], capacity: { cpus: h.cpus, memoryBytes: h.memGib * GIB, diskBytes: 200 * GIB } }))),
  vms: fc.array(fc.record({ hostIdx: fc.nat(), memGib: fc.integer({ min: 1, max: 8 }), cpus: fc.integer({ min: 1, max: 4 }), group: fc.integer({ min: 0, max: 4 }) }), { maxLength: 40 }),
});

/** Builds a scheduler and adds the random VMs where they fit (with their anti-affinity groups). */
function build(c: RandomCluster, strategy: 'best-fit' | 'worst-fit' | 'first-fit' | 'alignment' | 'segregation' = 'best-fit'): Scheduler {
  const s = new Scheduler(c.hosts, [], { strategy });
  c.vms.forEach((v, i) => {
    s.place({ vmId: `v${i}`, demand: { cpus: v.cpus, memoryBytes: v.memGib * GIB, diskBytes: GIB }, instanceType: `t${v.memGib}`,
      ...(v.group > 0 ? { group: { name: `g${v.group}`, policy: v.group % 2 === 0 ? 'anti-affinity' : 'affinity' } } : {}) });
  });
  return s;
}

function checkInvariants(s: Scheduler): void {
  for (const h of s.hosts()) {
    expect(h.used.cpus).toBeLessThanOrEqual(h.effectiveCapacity.cpus + 1e-9);
    expect(h.used.memoryBytes).toBeLessThanOrEqual(h.effectiveCapacity.memoryBytes);
    expect(h.used.diskBytes).toBeLessThanOrEqual(h.effectiveCapacity.diskBytes);
  }
  const byGroup = new Map<string, { policy: string; hosts: string[] }>();
  for (const vm of s.vms()) {
    if (!vm.group) continue;
    const g = byGroup.get(vm.group.name) ?? { policy: vm.group.policy, hosts: [] };
    g.hosts.push(vm.hostId);
    byGroup.set(vm.group.name, g);
  }
  for (const g of byGroup.values()) {
    if (g.policy === 'anti-affinity') expect(new Set(g.hosts).size).toBe(g.hosts.length);
    if (g.policy === 'affinity') expect(new Set(g.hosts).size).toBe(1);
  }
}

describe('properties over random clusters', () => {
  it('no host over capacity and hard group rules never broken, for every strategy and any mix of place and release', () => {
    fc.assert(fc.property(clusterArb, fc.constantFrom('best-fit', 'worst-fit', 'first-fit', 'alignment', 'segregation') , fc.array(fc.nat(), { maxLength: 20 }), (c, strategy, releases) => {
      const s = build(c, strategy);
      checkInvariants(s);
      const ids = s.vms().map((v) => v.vmId);
      for (const r of releases) if (ids.length > 0) s.release(ids[r % ids.length]!);
      c.vms.forEach((v, i) => s.place({ vmId: `again${i}`, demand: { cpus: v.cpus, memoryBytes: v.memGib * GIB, diskBytes: GIB },
        ...(v.group > 0 ? { group: { name: `g${v.group}`, policy: v.group % 2 === 0 ? 'anti-affinity' : 'affinity' } } : {}) }));
      checkInvariants(s);
    }), { numRuns: 150 });
  });

  it('many requests placed before any completes never double-book (claims are made on decision)', () => {
    fc.assert(fc.property(clusterArb, (c) => {
      const s = new Scheduler(c.hosts);
      const group = { name: 'spread', policy: 'anti-affinity' as const };
      // 30 requests in flight at once: each decision already sees the claims of the ones before.
      const results = Array.from({ length: 30 }, (_, i) => s.place({ vmId: `r${i}`, demand: { cpus: 1, memoryBytes: 2 * GIB, diskBytes: GIB }, ...(i % 3 === 0 ? { group } : {}) }));
      const ok = results.filter((r) => r.ok);
      const upHosts = c.hosts.filter((h) => h.state === 'up').length;
      expect(results.filter((r, i) => r.ok && i % 3 === 0).length).toBeLessThanOrEqual(upHosts);
      expect(s.vmCount).toBe(ok.length);
      checkInvariants(s);
    }), { numRuns: 150 });
  });

  it('every drain, consolidation and rebalance plan is executable in its order and keeps the invariants', () => {
    fc.assert(fc.property(clusterArb, fc.nat(), (c, pick) => {
      const s = build(c); // anti-affinity and hard-affinity groups both
      const ids = s.hosts().map((h) => h.id);
      const consolidation = s.planConsolidation();
      const rebalance = s.planRebalance({ targetSpread: 0 });
      const hostId = ids[pick % ids.length]!;
      const drain = s.planDrain(hostId);
      const a = new Scheduler(c.hosts, s.vms());
      execute(a, consolidation.migrations);
      checkInvariants(a);
      expect(a.hostsUsed()).toBe(consolidation.hostsAfter);
      const b = new Scheduler(c.hosts, s.vms());
      execute(b, rebalance.migrations);
      checkInvariants(b);
      expect(b.loadSpread()).toBeLessThanOrEqual(rebalance.spreadBefore + 1e-9);
      const d = new Scheduler(c.hosts, s.vms());
      d.updateHost(hostId, { state: 'draining' });
      execute(d, drain.migrations);
      checkInvariants(d);
      expect(d.host(hostId).vmCount).toBe(drain.unplaced.length);
    }), { numRuns: 150 });
  });
});

