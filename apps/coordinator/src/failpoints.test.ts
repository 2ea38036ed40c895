import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { tsxExecArgv } from '@ferry/transport';
import { failpointHooks, parseFailpoints } from './failpoints.ts';

describe('FERRY_FAILPOINTS', () => {
  it('unset or blank arms nothing', () => {
    expect(parseFailpoints(undefined).size).toBe(0);
    expect(parseFailpoints(' , ').size).toBe(0);
    expect(failpointHooks(undefined)).toEqual({});
  });

  it('crash-after-commit-record arms the orchestrator hook, among other names and blanks', () => {
    expect([...parseFailpoints(' crash-after-commit-record ,')]).toEqual(['crash-after-commit-record']);
    expect(typeof failpointHooks('crash-after-commit-record').afterCommitRecorded).toBe('function');
  });

  it('an unknown name is refused, so a typo cannot silently test nothing', () => {
    expect(() => parseFailpoints('crash-after-comit-record')).toThrow(/unknown failpoint "crash-after-comit-record"/);
  });

  it('the armed hook kills the process with SIGKILL', () => {
    const script = `import { failpointHooks } from ${JSON.stringify(new URL('./failpoints.ts', import.meta.url).pathname)};
failpointHooks('crash-after-commit-record').afterCommitRecorded('mig-1'); setTimeout(() => process.exit(0), 5000);`;
    const r = spawnSync(process.execPath, [...tsxExecArgv(), '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(r.signal, r.stderr).toBe('SIGKILL');
  });
});
