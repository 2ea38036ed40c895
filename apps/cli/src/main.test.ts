import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeCoordinator } from './test-utils/fake-coordinator.ts';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));
/** The repository root, where `--import tsx` resolves. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TOKEN = 'process-token';
let fake: FakeCoordinator;
beforeAll(async () => {
  fake = await FakeCoordinator.start({ token: TOKEN });
});
afterAll(async () => {
  await fake.close();
});

/** Runs `ferry ARGS` as a real process (node + tsx), feeding `stdin`. */
function ferryProcess(args: string[], stdin = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, FERRY_URL: fake.url, FERRY_TOKEN: TOKEN },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe('ferry as a process', () => {
  it('exits 0 with JSON on stdout, and non-zero with a JSON error for malformed input', async () => {
    const ok = await ferryProcess(['vms', '--json']);
    expect(ok.code).toBe(0);
    expect((JSON.parse(ok.stdout) as { id: string }[]).map((v) => v.id)).toEqual(['vm-1', 'vm-2']);
    const bad = await ferryProcess(['run', '--image', 'lamp', '--cpus', '1', '--memory', 'lots', '--json']);
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stdout)).toMatchObject({ error: { code: 'FERRY_ERR_INVALID_SIZE' } });
  });

  it('with no arguments runs the console on stdin until end of input', async () => {
    const session = await ferryProcess([], 'hosts\nshow vm-1\nexit\n');
    expect(session.code).toBe(0);
    expect(session.stdout).toMatch(/ID\s+STATE[\s\S]*host-1/);
    expect(session.stdout).toMatch(/^password\s+pw-1$/m);
  });

  it('with only connection flags runs the console too; options without a command are a short usage error', async () => {
    const session = await ferryProcess(['--url', fake.url, '--token', TOKEN], 'hosts\nexit\n');
    expect(session.code).toBe(0);
    expect(session.stdout).toMatch(/ferry> ID\s+STATE[\s\S]*host-1/);
    const none = await ferryProcess(['--json']);
    expect(none.code).toBe(2);
    expect(JSON.parse(none.stdout)).toEqual({ error: { code: 'FERRY_ERR_USAGE', message: 'no command given: `ferry --help` lists the commands' } });
  });
});
