import { describe, expect, it } from 'vitest';
import { NoValidHostError, Scheduler } from './index.ts';
import type { HostSpec, Resources, StrategyName } from './index.ts';

const GIB = 1024 ** 3;
const host = (id: string, cpus = 4, memGib = 8, diskGib = 100, extra: Partial<HostSpec> = {}): HostSpec =>
  ({ id, state: 'up', capacity: { cpus, memoryBytes: memGib * GIB, diskBytes: diskGib * GIB }, ...extra });
const small: Resources = { cpus: 1, memoryBytes: 2 * GIB, diskBytes: 10 * GIB };
const large: Resources = { cpus: 2, memoryBytes: 4 * GIB, diskBytes: 20 * GIB };

function placed(s: Scheduler, vmId: string, demand: Resources, extra = {}): string {
  const r = s.place({ vmId, demand, ...extra });
  if (!r.ok) throw r.error;
  return r.hostId;
}

describe('filters', () => {
  it('capacity filter counts memory with ratio 1.0 and cpus with overcommit 4.0 by default', () => {
    const s = new Scheduler([host('a', 1, 8)]);
    // 4 vCPUs fit on 1 core at 4.0; a fifth does not.
    for (let i = 0; i < 4; i++) placed(s, `v${i}`, { cpus: 1, memoryBytes: GIB, diskBytes: 0 });
    const r = s.place({ vmId: 'v4', demand: { cpus: 1, memoryBytes: GIB, diskBytes: 0 } });
    expect(r.ok).toBe(false);
    if (!r.ok) expect((r.error as NoValidHostError).rejectedBy['capacity']).toBe(1);
    // Memory is not overcommitted: 8 GiB host, 4 GiB used, 5 GiB request rejected.
    expect(s.place({ vmId: 'big', demand: { cpus: 0, memoryBytes: 5 * GIB, diskBytes: 0 } }).ok).toBe(false);
  });

  it('overcommit ratios are settings', () => {
    const s = new Scheduler([host('a', 1, 8)], [], { overcommit: { cpu: 1, memory: 2 } });
    expect(s.place({ vmId: 'm', demand: { cpus: 1, memoryBytes: 16 * GIB, diskBytes: 0 } }).ok).toBe(true);
    expect(s.place({ vmId: 'c', demand: { cpus: 1, memoryBytes: 0, diskBytes: 0 } }).ok).toBe(false);
  });

  it('disk is a resource of its own', () => {
    const s = new Scheduler([host('a', 8, 64, 30), host('b', 8, 64, 100)]);
    expect(placed(s, 'v', { cpus: 1, memoryBytes: GIB, diskBytes: 50 * GIB })).toBe('b');
  });

  it('only up hosts take VMs (not down, draining or maintenance)', () => {
    const s = new Scheduler([host('d', 4, 8, 100, { state: 'down' }), host('r', 4, 8, 100, { state: 'draining' }),
      host('m', 4, 8, 100, { state: 'maintenance' }), host('u')]);
    expect(placed(s, 'v', small)).toBe('u');
    s.updateHost('u', { state: 'maintenance' });
    const r = s.place({ vmId: 'w', demand: small });
    expect(r.ok).toBe(false);
    if (!r.ok) expect((r.error as NoValidHostError).rejectedBy['host-state']).toBe(4);
  });

  it('hard anti-affinity puts members on distinct hosts and refuses when hosts run out', () => {
    const s = new Scheduler([host('a'), host('b'), host('c')], [], { strategy: 'best-fit' });
    const group = { name: 'web', policy: 'anti-affinity' as const };
    const hosts = ['1', '2', '3'].map((i) => placed(s, `w${i}`, small, { group }));
    expect(new Set(hosts).size).toBe(3);
    const r = s.place({ vmId: 'w4', demand: small, group });
    expect(r.ok).toBe(false);
    if (!r.ok) expect((r.error as NoValidHostError).rejectedBy['anti-affinity']).toBe(3);
  });

  it('hard affinity keeps members on the first member\'s host, and refuses when it is full', () => {
    const s = new Scheduler([host('a'), host('b')], [], { strategy: 'worst-fit' });
    const group = { name: 'db', policy: 'affinity' as const };
    const first = placed(s, 'd1', large, { group });
    expect(placed(s, 'd2', large, { group })).toBe(first);
    expect(s.place({ vmId: 'd3', demand: large, group }).ok).toBe(false); // 8 GiB host already full
  });

  it('a group keeps its first policy', () => {
    const s = new Scheduler([host('a')]);
    placed(s, 'x', small, { group: { name: 'g', policy: 'affinity' } });
    const r = s.place({ vmId: 'y', demand: small, group: { name: 'g', policy: 'anti-affinity' } });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('FERRY_ERR_PLACEMENT_GROUP_POLICY');
  });

  it('image locality is a preference: it wins between otherwise equal hosts, never over capacity', () => {
    const s = new Scheduler([host('a'), host('b', 4, 8, 100, { images: ['ubuntu'] })], [], { strategy: 'worst-fit' });
    expect(placed(s, 'v1', small, { image: 'ubuntu' })).toBe('b');
    expect(placed(s, 'v2', small, { image: 'debian' })).toBe('a');
    placed(s, 'fill', { cpus: 0, memoryBytes: 6 * GIB, diskBytes: 0 }, { image: 'ubuntu' }); // b now full
    expect(placed(s, 'v3', small, { image: 'ubuntu' })).toBe('a');
  });

  it('at most maxIncomingMigrations concurrent migrations land on one host', () => {
    const s = new Scheduler([host('src', 8, 32), host('dst', 8, 32)], [], { maxIncomingMigrations: 2 });
    for (let i = 0; i < 3; i++) s.addVm({ vmId: `v${i}`, hostId: 'src', demand: small });
    expect(s.beginMigration('v0')).toMatchObject({ ok: true, hostId: 'dst' });
    expect(s.beginMigration('v1', 'dst')).toMatchObject({ ok: true, hostId: 'dst' });
    const third = s.beginMigration('v2', 'dst');
    expect(third.ok).toBe(false);
    if (!third.ok) expect((third.error as NoValidHostError).rejectedBy['incoming-migrations']).toBe(1);
    s.completeMigration('v0');
    expect(s.beginMigration('v2', 'dst').ok).toBe(true);
    expect(s.host('dst').incomingMigrations).toBe(2);
  });
});

describe('an operator\'s choice of host', () => {
  it('placeOn and beginMigration to a named host run the same filters there and say why that host refused', () => {
    const s = new Scheduler([host('a'), host('b'), host('c', 4, 8, 100, { state: 'maintenance' })]);
    s.addVm({ vmId: 'fill', hostId: 'b', demand: { cpus: 1, memoryBytes: 7 * GIB, diskBytes: GIB } });
    expect(s.placeOn({ vmId: 'p', demand: small }, 'a')).toMatchObject({ ok: true, hostId: 'a' });
    const full = s.placeOn({ vmId: 'q', demand: small }, 'b');
    expect(full.ok).toBe(false);
    if (!full.ok) expect(full.error.message).toBe('no valid host for q (rejected by capacity: 1)');
    const down = s.placeOn({ vmId: 'q', demand: small }, 'c');
    if (!down.ok) expect(down.error.message).toBe('no valid host for q (rejected by host-state: 1)');
    expect(down.ok).toBe(false);
    const moved = s.beginMigration('p', 'b');
    expect(moved.ok).toBe(false);
    if (!moved.ok) expect((moved.error as NoValidHostError).rejectedBy).toMatchObject({ capacity: 1, excluded: 0, "host-state": 0 });
    expect(s.vmCount).toBe(2); // refusals claim nothing
  });
});

describe('migration reservations', () => {
  it('a reserved destination holds the claim until complete or abort', () => {
    const s = new Scheduler([host('a'), host('b')]);
    s.addVm({ vmId: 'v', hostId: 'a', demand: large });
    expect(s.beginMigration('v')).toMatchObject({ ok: true, hostId: 'b' });
    expect(s.host('b').used.memoryBytes).toBe(4 * GIB);
    expect(s.host('a').used.memoryBytes).toBe(4 * GIB);
    expect(s.beginMigration('v').ok).toBe(false);
    s.abortMigration('v');
    expect(s.host('b').used.memoryBytes).toBe(0);
    s.beginMigration('v', 'b');
    s.completeMigration('v');
    expect(s.vm('v')?.hostId).toBe('b');
    expect(s.host('a').used.memoryBytes).toBe(0);
    expect(() => s.completeMigration('v')).toThrow(/not migrating/);
  });
});

describe('strategies on a cluster where the answer is known', () => {
  // a: 4 GiB free, b: 6 GiB free, c: 8 GiB free (empty); all 4 cores, 8 GiB, 100 GiB.
  function cluster(strategy: StrategyName): Scheduler {
    const s = new Scheduler([host('a'), host('b'), host('c')], [], { strategy });
    s.addVm({ vmId: 'pa', hostId: 'a', demand: { cpus: 2, memoryBytes: 4 * GIB, diskBytes: 20 * GIB } });
    s.addVm({ vmId: 'pb', hostId: 'b', demand: { cpus: 1, memoryBytes: 2 * GIB, diskBytes: 10 * GIB } });
    return s;
  }
  it('first-fit takes the first host that fits', () => expect(placed(cluster('first-fit'), 'v', small)).toBe('a'));
  it('best-fit packs onto the fullest host that fits', () => {
    const s = cluster('best-fit');
    expect(placed(s, 'v', large)).toBe('a');
    expect(placed(s, 'w', small)).toBe('b');
  });
  it('worst-fit spreads onto the emptiest host', () => expect(placed(cluster('worst-fit'), 'v', small)).toBe('c'));
  it('alignment prefers the host whose free shape matches the demand', () => {
    // x has free capacity rich in cpu, y rich in memory; a memory-heavy request goes to y.
    const s = new Scheduler([host('x', 4, 16), host('y', 4, 16)], [], { strategy: 'alignment' });
    s.addVm({ vmId: 'mx', hostId: 'x', demand: { cpus: 1, memoryBytes: 12 * GIB, diskBytes: 0 } });
    s.addVm({ vmId: 'cy', hostId: 'y', demand: { cpus: 12, memoryBytes: 2 * GIB, diskBytes: 0 } });
    expect(placed(s, 'm', { cpus: 0.5, memoryBytes: 3 * GIB, diskBytes: 0 })).toBe('y');
    expect(placed(s, 'c', { cpus: 3, memoryBytes: 0.5 * GIB, diskBytes: 0 })).toBe('x');
  });
  it('segregation keeps one instance type per host: same type first, then an empty host', () => {
    const s = new Scheduler([host('a', 8, 32), host('b', 8, 32), host('c', 8, 32)], [], { strategy: 'segregation' });
    const sA = placed(s, 's1', small, { instanceType: 'small' });
    const lA = placed(s, 'l1', large, { instanceType: 'large' });
    expect(lA).not.toBe(sA);
    expect(placed(s, 's2', small, { instanceType: 'small' })).toBe(sA);
    expect(placed(s, 'l2', large, { instanceType: 'large' })).toBe(lA);
  });
  it('segregation without type names treats each shape as an instance type (EC2-style requests name none)', () => {
    const s = new Scheduler([host('a', 8, 32), host('b', 8, 32), host('c', 8, 32)], [], { strategy: 'segregation' });
    const sA = placed(s, 's1', small);
    const lA = placed(s, 'l1', large);
    expect(lA).not.toBe(sA);
    expect(placed(s, 's2', small)).toBe(sA);
    expect(placed(s, 'l2', large)).toBe(lA);
    expect(s.vm('s1')?.instanceType).toBeUndefined(); // the view keeps what the caller said
  });
  it('segregation and image locality hold on clusters large enough to grow the model\'s arrays', () => {
    // Only slots 20 and up take VMs: beyond the model's initial 16 slots.
    const hosts = Array.from({ length: 40 }, (_, i) => host(`h${i}`, 8, 32, 100, i === 37 ? { images: ['ubuntu'] } : i < 20 ? { state: 'down', images: ['ubuntu'] } : {}));
    const s = new Scheduler(hosts, [], { strategy: 'segregation' });
    for (let i = 0; i < 60; i++) {
      const type = i % 3 === 0 ? 'large' : 'small';
      placed(s, `v${i}`, type === 'large' ? large : small, { instanceType: type });
    }
    const typesOn = new Map<string, Set<string>>();
    for (const vm of s.vms()) typesOn.set(vm.hostId, (typesOn.get(vm.hostId) ?? new Set()).add(vm.instanceType!));
    for (const types of typesOn.values()) expect(types.size).toBe(1);
    s.setStrategy('worst-fit');
    expect(placed(s, 'img', small, { image: 'ubuntu' })).toBe('h37');
  });
  it('soft anti-affinity spreads while room lasts, then shares a host rather than refuse', () => {
    const s = new Scheduler([host('a'), host('b')], [], { strategy: 'best-fit' });
    const group = { name: 'g', policy: 'soft-anti-affinity' as const };
    const h1 = placed(s, 'g1', small, { group });
    const h2 = placed(s, 'g2', small, { group });
    expect(h2).not.toBe(h1);
    expect(s.place({ vmId: 'g3', demand: small, group }).ok).toBe(true);
  });
  it('soft affinity draws members together', () => {
    const s = new Scheduler([host('a'), host('b')], [], { strategy: 'worst-fit' });
    const group = { name: 'g', policy: 'soft-affinity' as const };
    const h1 = placed(s, 'g1', small, { group });
    expect(placed(s, 'g2', small, { group })).toBe(h1);
  });
  it('strategy is a setting and unknown names are refused', () => {
    const s = cluster('first-fit');
    s.setStrategy('worst-fit');
    expect(placed(s, 'v', small)).toBe('c');
    expect(() => s.setStrategy('nope' as StrategyName)).toThrow(/allowed: first-fit/);
  });
});

describe('hosts and VMs', () => {
  it('release frees the claim; hosts with VMs cannot be removed', () => {
    const s = new Scheduler([host('a')]);
    placed(s, 'v', large);
    expect(() => s.removeHost('a')).toThrow(/still holds 1/);
    expect(s.release('v')).toBe(true);
    expect(s.release('v')).toBe(false);
    s.removeHost('a');
    s.addHost(host('b'));
    expect(placed(s, 'w', large)).toBe('b');
    expect(s.hosts().map((h) => h.id)).toEqual(['b']);
  });
  it('duplicate VM ids are refused without changing anything', () => {
    const s = new Scheduler([host('a'), host('b')]);
    placed(s, 'v', small);
    const r = s.place({ vmId: 'v', demand: small });
    expect(r.ok).toBe(false);
    expect(s.hosts().reduce((n, h) => n + h.vmCount, 0)).toBe(1);
  });
});
