import { defineConfig } from 'vitest/config';

// One run over the whole workspace: unit tests sit beside the code, multi-process tests in test/e2e.
export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'apps/*/src/**/*.test.ts', 'scripts/**/*.test.ts', 'test/*/src/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: multi-process tests spawn agents of their own, so keep file-level parallelism low.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
