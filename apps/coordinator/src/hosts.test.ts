import { describe, expect, it } from 'vitest';
import { EventBus } from './events.ts';
import { HostRegistry, toApiHost } from './hosts.ts';
import { InvalidTransitionError, UnknownHostError } from './errors.ts';

const cap = { cpus: 4, memoryBytes: 2 ** 30, diskBytes: 2 ** 34 };

function registry(now = { t: 0 }) {
  const events = new EventBus();
  let saves = 0;
  const hosts = new HostRegistry(events, () => saves++, () => now.t);
  return { hosts, events, now, saves: () => saves };
}

describe('host registry', () => {
  it('register → up; missed heartbeats → overdue → down; register again → up with host-up event', () => {
    const { hosts, events, now } = registry();
    hosts.register('h1', cap, 'ws://127.0.0.1:1/migrate', []);
    expect(hosts.find('h1')?.state).toBe('up');
    now.t = 500;
    hosts.heartbeat('h1', [{ vmId: 'vm-1', state: 'running', memoryBytes: 2 ** 20, cpus: 1 }]);
    now.t = 1000;
    expect(hosts.overdue(600)).toEqual([]);
    now.t = 1200;
    expect(hosts.overdue(600)).toEqual(['h1']);
    hosts.markDown('h1', 'missed heartbeats');
    expect(hosts.find('h1')).toMatchObject({ state: 'down', downReason: 'missed heartbeats', connected: false });
    expect(hosts.overdue(600)).toEqual([]);
    hosts.register('h1', cap, 'ws://127.0.0.1:2/migrate', []);
    expect(events.since(0).map((e) => e.type)).toEqual(['host-registered', 'host-down', 'host-registered', 'host-up']);
    expect(events.since(0)[1]).toMatchObject({ host: 'h1', data: { reason: 'missed heartbeats', vms: ['vm-1'] } });
  });

  it('drain, maintenance and undrain check the start state and change nothing when refused', () => {
    const { hosts } = registry();
    hosts.register('h1', cap, 'ws://x:1/migrate', []);
    expect(() => hosts.undrain('h1')).toThrow(InvalidTransitionError);
    hosts.drain('h1');
    expect(() => hosts.drain('h1')).toThrow(InvalidTransitionError);
    hosts.enterMaintenance('h1');
    expect(hosts.find('h1')?.state).toBe('maintenance');
    hosts.markDown('h1', 'gone');
    expect(() => hosts.markDown('h1', 'again')).toThrow(InvalidTransitionError);
    expect(() => hosts.drain('h1')).toThrow(InvalidTransitionError);
    expect(hosts.find('h1')?.state).toBe('down');
    // The operator's choice survives the outage.
    hosts.register('h1', cap, 'ws://x:1/migrate', []);
    expect(hosts.find('h1')?.state).toBe('maintenance');
    hosts.undrain('h1');
    expect(hosts.find('h1')?.state).toBe('up');
    expect(() => hosts.drain('nope')).toThrow(UnknownHostError);
  });

  it('restored hosts start down until their agent registers; counts and API view', () => {
    const { hosts } = registry();
    hosts.restore([{ id: 'h2', adminState: 'draining', lastSeenAtMs: 5 }]);
    expect(hosts.countByState()).toEqual({ up: 0, down: 1, draining: 0, maintenance: 0 });
    hosts.register('h2', cap, 'ws://10.0.0.2:7000/migrate', [{ vmId: 'a', state: 'running', memoryBytes: 100, cpus: 2 }]);
    expect(hosts.countByState()).toEqual({ up: 0, down: 0, draining: 1, maintenance: 0 });
    expect(toApiHost(hosts.find('h2')!)).toMatchObject({ id: 'h2', state: 'draining', address: '10.0.0.2:7000', used: { cpus: 2, memoryBytes: 100, diskBytes: 0 }, vms: 1 });
  });
});
