import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { completeLine, splitLine, startConsole } from './console.ts';
import { FakeCoordinator } from './test-utils/fake-coordinator.ts';

const TOKEN = 'console-token';
let fake: FakeCoordinator;
beforeEach(async () => {
  fake = await FakeCoordinator.start({ token: TOKEN });
});
afterEach(async () => {
  await fake.close();
});

const IDS = { vms: ['vm-1', 'vm-2', 'vm-10'], hosts: ['host-1', 'host-2'], images: ['base-os', 'lamp'] };

describe('console completion', () => {
  it('completes command names in first position', () => {
    expect(completeLine('mi', IDS)).toEqual([['migrate', 'migrations'], 'mi']);
    expect(completeLine('migrate vm-1 --rate-limit ', IDS)).toEqual([['xen'], '']);
    expect(completeLine('run --group web --policy soft', IDS)).toEqual([['soft-affinity', 'soft-anti-affinity'], 'soft']);
    expect(completeLine('plan ', IDS)).toEqual([['consolidate', 'rebalance'], '']);
    expect(completeLine('plan --apply re', IDS)).toEqual([['rebalance'], 're']);
    expect(completeLine('', IDS)[0]).toContain('hosts');
    expect(completeLine('q', IDS)).toEqual([['quit'], 'q']);
  });

  it('completes VM ids after VM commands and host ids after drain, --to and --host', () => {
    expect(completeLine('migrate vm-1', IDS)).toEqual([['vm-1', 'vm-10'], 'vm-1']);
    expect(completeLine('migrate vm-1 --to ', IDS)).toEqual([['host-1', 'host-2'], '']);
    expect(completeLine('resume vm-2 --host host-', IDS)).toEqual([['host-1', 'host-2'], 'host-']);
    expect(completeLine('drain h', IDS)).toEqual([['host-1', 'host-2'], 'h']);
    expect(completeLine('show ', IDS)[0]).toEqual(['host-1', 'host-2', 'vm-1', 'vm-10', 'vm-2']);
    expect(completeLine('stop vm-1 ', IDS)).toEqual([[], '']); // the VM argument is already given
    expect(completeLine('hosts ', IDS)).toEqual([[], '']);
    expect(completeLine('run --image l', IDS)).toEqual([['lamp'], 'l']);
  });

  it('splits lines like a shell', () => {
    expect(splitLine(`run --name "my vm" --image 'lamp'  x\\ y`)).toEqual(['run', '--name', 'my vm', '--image', 'lamp', 'x y']);
    expect(splitLine('   ')).toEqual([]);
  });
});

/** Drives a console over in-memory streams; `waitFor` resolves when the output matches. */
function scriptedConsole(terminal = false) {
  const input = new PassThrough();
  const output = new PassThrough();
  let text = '';
  output.on('data', (d: Buffer) => (text += d.toString()));
  const handle = startConsole({ url: fake.url, token: TOKEN, input, output, terminal });
  const waitFor = async (pattern: RegExp, timeoutMs = 5000): Promise<string> => {
    const start = Date.now();
    while (!pattern.test(text)) {
      if (Date.now() - start > timeoutMs) throw new Error(`console output never matched ${pattern}:\n${text}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return text;
  };
  return { input, handle, waitFor, output: () => text };
}

describe('console session', () => {
  it('runs a scripted session through the same commands as the CLI', async () => {
    const c = scriptedConsole();
    await c.waitFor(/ferry> $/);
    c.input.write('hosts\n');
    await c.waitFor(/ID\s+STATE\s+ADDRESS[\s\S]*host-3[\s\S]*ferry> $/);
    c.input.write('vms --json\n');
    await c.waitFor(/"id": "vm-2"[\s\S]*ferry> $/);
    c.input.write('run --image lamp --cpus 1 --memory lots\n');
    await c.waitFor(/error: memory: cannot read "lots"[\s\S]*ferry> $/);
    c.input.write('migrate vm-1 --to host-2 --watch\n');
    await c.waitFor(/round  3[\s\S]*downtime\s+7 ms[\s\S]*ferry> $/);
    c.input.write('help\n');
    await c.waitFor(/Commands:[\s\S]*migrate[\s\S]*Tab completes[\s\S]*exit, quit[\s\S]*ferry> $/);
    c.input.write('exit\n');
    await c.handle.closed;
    expect(c.handle.history().slice(0, 2)).toEqual(['exit', 'help']);
    expect(fake.vms.find((v) => v.id === 'vm-1')?.host).toBe('host-2');
    expect(fake.requests.filter((r) => r.method === 'POST' && r.path === '/api/v1/vms')).toHaveLength(0);
  });

  it('completes VM ids from the coordinator on Tab', async () => {
    const c = scriptedConsole(true);
    await c.waitFor(/ferry> /); // a terminal follows the prompt with cursor moves
    c.input.write('suspend vm-');
    c.input.write('\t');
    c.input.write('\t');
    await c.waitFor(/vm-1\s+vm-2/);
    c.handle.close();
    await c.handle.closed;
  });

  it('keeps history in a file across sessions, newest first', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-console-'));
    try {
      const historyPath = join(dir, 'history');
      const input1 = new PassThrough();
      const one = startConsole({ url: fake.url, token: TOKEN, input: input1, output: new PassThrough(), historyPath });
      input1.end('hosts\nvms\n');
      await one.closed;
      const two = startConsole({ url: fake.url, token: TOKEN, input: new PassThrough(), output: new PassThrough(), historyPath });
      expect(two.history()).toEqual(['vms', 'hosts']);
      two.close();
      await two.closed;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('end of piped input lets a running migrate finish with its report (only exit or Ctrl-C abort it)', async () => {
    const c = scriptedConsole();
    c.input.end('migrate vm-1 --to host-2 --json\nvms --json\n');
    await c.handle.closed;
    expect(c.output()).toMatch(/"downtimeMs": 7/);
    expect(c.output()).not.toMatch(/still running/);
    expect(fake.vms.find((v) => v.id === 'vm-1')?.host).toBe('host-2');
  });

  it('closes at end of input after the last command finishes', async () => {
    const c = scriptedConsole();
    c.input.end('images\n');
    await c.handle.closed;
    expect(c.output()).toMatch(/lamp\s+8 MiB/);
  });
});
