// Entry of a pCPU worker thread. Worker threads do not inherit the TypeScript loader of the
// thread that starts them (under tsx or vitest), so register tsx here, then load the TS worker.
import { register } from 'tsx/esm/api';

register();
await import('./vcpu-worker.ts');
