export { FakeVm } from './fake-vm.ts';
export type { FakeVmOptions } from './fake-vm.ts';
export { createHarness } from './harness.ts';
export type { MigrationHarness } from './harness.ts';
