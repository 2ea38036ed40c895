import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ClusterModel } from './cluster.ts';
import { STRATEGIES, makeQuery, selectHost, strategyCode } from './select.ts';
import { DEFAULT_OVERCOMMIT, DEFAULT_SOFT_WEIGHTS } from './types.ts';

const GIB = 1024 ** 3;

describe('selectHost', () => {
  it('the fast paths (active hosts + lowest empty host per class; worst-fit tree search) pick what a full scan of every host picks, with and without anti-affinity', () => {
    fc.assert(fc.property(
      fc.array(fc.record({ memGib: fc.constantFrom(8, 16), state: fc.constantFrom('up', 'up', 'down') as fc.Arbitrary<'up' | 'down'> }), { minLength: 1, maxLength: 20 }),
      fc.array(fc.record({ op: fc.constantFrom('place', 'place', 'release'), memGib: fc.integer({ min: 1, max: 6 }), strategy: fc.constantFrom(...STRATEGIES), type: fc.integer({ min: 0, max: 2 }), anti: fc.boolean() }), { maxLength: 60 }),
      (hosts, ops) => {
        const m = new ClusterModel(DEFAULT_OVERCOMMIT);
        hosts.forEach((h, i) => m.addHost({ id: `h${i}`, state: h.state, capacity: { cpus: 4, memoryBytes: h.memGib * GIB, diskBytes: 100 * GIB } }));
        const live: string[] = [];
        ops.forEach((o, i) => {
          if (o.op === 'release') { const id = live.shift(); if (id) m.removeVm(id); return; }
          const q = makeQuery(strategyCode(o.strategy), DEFAULT_SOFT_WEIGHTS);
          q.cpus = 1; q.memoryBytes = o.memGib * GIB; q.diskBytes = GIB; q.typeIdx = m.typeIndex(`t${o.type}`);
          const group = o.anti ? { name: `g${o.type}`, policy: 'anti-affinity' as const } : undefined;
          q.group = m.groupFor(group);
          const fast = selectHost(m, q);
          q.penalty = new Float64Array(m.capCpu.length); // forces the full scan, same scores
          const full = selectHost(m, q);
          expect(fast).toBe(full);
          if (fast >= 0) {
            const vm = m.makeVm({ vmId: `v${i}`, demand: { cpus: 1, memoryBytes: o.memGib * GIB, diskBytes: GIB }, instanceType: `t${o.type}`, ...(group ? { group } : {}) });
            m.addVm(vm, fast);
            live.push(vm.vmId);
          }
        });
      },
    ), { numRuns: 200 });
  });
});
