// A pCPU worker: schedules the vCPUs the pool attached to it, round robin, one time slice per
// vCPU per round. Each vCPU state lives in shared memory (control block, register block, guest
// memory), so the worker keeps only scheduling bookkeeping of its own.
//
//   Running --CTL_RUN=0--> (finish the current step) Parked: CTL_PARKED=1 + notify
//   Parked  --CTL_RUN=1--> Running: CTL_PARKED=0, rate credit restarts from now
//   Running --steps == stepLimit--> AtLimit: CTL_AT_LIMIT=1 + notify (still acknowledges pauses)
//   Running --workload throws (in a step, or in a deferred create)--> Faulted: CTL_FAULTED=1, CTL_PARKED=1, reported to the pool
import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  CTL_AT_LIMIT,
  CTL_FAULTED,
  CTL_PARKED,
  CTL_RUN,
  CTL_THROTTLE,
  ctlIndex,
  GI_FIRST_MS,
  GI_HEARTBEAT_MS,
  GI_MAX_GAP_MS,
  GI_STEPS,
  GUEST_INFO_MAGIC,
  GUEST_INFO_SLOTS_OFFSET,
  GUEST_INFO_SLOT_BYTES,
  GUEST_INFO_VERSION,
  REG_STEPS_F64,
  REG_WORKLOAD_I32,
  REGISTER_SLOT_BYTES,
  RESERVED_PAGES,
  WORKLOAD_REGISTER_COUNT,
} from './layout.ts';
import { waitWhileEqual } from './atomics-wait.ts';
import { BUILTIN_WORKLOADS, isWorkload } from './workloads.ts';
import type { Workload, WorkloadContext, WorkloadProgram } from './workloads.ts';
import type { FromWorker, ToWorker, VcpuBinding, WorkerInit } from './worker-protocol.ts';

const port = parentPort!;
const init = workerData as WorkerInit;
const doorbell = new Int32Array(init.doorbell);
const sliceMs = init.sliceMs;
const timeOrigin = performance.timeOrigin;
/** Longest a worker sleeps without looking at its vCPUs again. */
const MAX_SLEEP_MS = 50;
/**
 * Shortest sleep of a rate-limited vCPU: it wakes at most ~1,000 times a second and runs the steps
 * due since (10 at a time at 10,000 steps/s), not once per step. The rate is the same on average;
 * on a 2-core host the 10,000 wake-ups a second cost the migration's threads several ms per round
 * in scheduling delay (a 32 MiB round 1 went from 77–150 ms to 60–75 ms).
 */
const MIN_RATE_WAIT_MS = 1;
/** Largest burst a rate-limited vCPU may catch up on after a stall, in seconds of its rate. */
const MAX_CREDIT_S = 0.05;

interface Entry {
  readonly key: string;
  readonly vcpu: number;
  readonly ctl: Int32Array;
  readonly parkedAt: number;
  readonly limitAt: number;
  readonly faultedAt: number;
  readonly regs: Float64Array;
  readonly workload: Workload;
  readonly ctx: WorkloadContext;
  /** Undefined until the first run with VcpuBinding.deferCreate (`create` may read the registers, not loaded yet). */
  program: WorkloadProgram | undefined;
  readonly rate: number;
  readonly stepLimit: number;
  /** Guest-info slot of this vCPU in page 0, or undefined with the heartbeat off. */
  readonly info: Float64Array | undefined;
  readonly infoHeader: Uint32Array;
  readonly dirty: Int32Array;
  credit: number;
  lastMs: number;
  throttleUntilMs: number;
}

let entries: Entry[] = [];
let closing = false;
let tsxRegistered = false;

function post(msg: FromWorker): void {
  port.postMessage(msg);
}

function ring(): void {
  Atomics.add(doorbell, 0, 1);
  Atomics.notify(doorbell, 0);
}

/** This isolate's full collector, or null when V8 refuses `--expose-gc` at run time. */
let collect: (() => void) | null | undefined;
let collectTimer: NodeJS.Timeout | undefined;

/**
 * A detached vCPU's guest memory (a SharedArrayBuffer) stays resident while any isolate still
 * holds a JS object for it, and an idle worker may not collect for minutes: after a detach, once
 * the entry is dropped, run a full collection of this isolate (debounced 20 ms).
 */
function collectSoon(): void {
  if (collect === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      collect = runInNewContext('gc') as () => void;
    } catch {
      collect = null;
    }
  }
  if (!collect || collectTimer) return;
  collectTimer = setTimeout(() => {
    collectTimer = undefined;
    collect?.();
  }, 20);
}

async function loadWorkload(b: VcpuBinding): Promise<Workload> {
  if (b.workloadKind !== 'module') {
    const w = BUILTIN_WORKLOADS[b.workloadKind as keyof typeof BUILTIN_WORKLOADS];
    if (!w) throw new Error(`unknown workload kind ${b.workloadKind}`);
    return w;
  }
  const path = b.modulePath!;
  const url = path.startsWith('file:') ? path : pathToFileURL(path).href;
  if (/\.[cm]?tsx?$/.test(url) && !tsxRegistered) {
    const tsx = (await import(init.tsxApiUrl)) as { register: () => void };
    tsx.register();
    tsxRegistered = true;
  }
  const mod = (await import(url)) as { default?: unknown; workload?: unknown };
  const w = isWorkload(mod.default) ? mod.default : mod.workload;
  if (!isWorkload(w)) throw new Error(`${path} exports no Workload (default export or \`workload\` with name and create)`);
  return w;
}

async function attach(b: VcpuBinding): Promise<void> {
  const workload = await loadWorkload(b);
  const ctl = new Int32Array(b.control);
  const dirty = new Int32Array(b.dirtyBitmap);
  const bytes = new Uint8Array(b.memory);
  const slotBase = b.vcpu * REGISTER_SLOT_BYTES;
  const ctx: WorkloadContext = {
    bytes,
    pageCount: b.pageCount,
    firstPage: RESERVED_PAGES,
    vcpuIndex: b.vcpu,
    vcpuCount: b.vcpuCount,
    registers: new Int32Array(b.registers, slotBase + REG_WORKLOAD_I32 * 4, WORKLOAD_REGISTER_COUNT),
    params: b.params,
    markDirty: (page: number) => {
      Atomics.or(dirty, page >>> 5, 1 << (page & 31));
    },
  };
  const rate = b.rate > 0 ? b.rate : (workload.defaultRate ?? 0) / b.vcpuCount;
  entries.push({
    key: b.key,
    vcpu: b.vcpu,
    ctl,
    parkedAt: ctlIndex(b.vcpu, CTL_PARKED),
    limitAt: ctlIndex(b.vcpu, CTL_AT_LIMIT),
    faultedAt: ctlIndex(b.vcpu, CTL_FAULTED),
    regs: new Float64Array(b.registers, slotBase, REGISTER_SLOT_BYTES / 8),
    workload,
    ctx,
    program: b.deferCreate ? undefined : workload.create(ctx),
    rate,
    stepLimit: b.stepLimit,
    info: b.heartbeat ? new Float64Array(b.memory, GUEST_INFO_SLOTS_OFFSET + b.vcpu * GUEST_INFO_SLOT_BYTES, GUEST_INFO_SLOT_BYTES / 8) : undefined,
    infoHeader: new Uint32Array(b.memory, 0, 4),
    dirty,
    credit: 0,
    lastMs: performance.now(),
    throttleUntilMs: 0,
  });
}

/** Acknowledges a pause request of every vCPU not yet parked (they are all at a step boundary here). */
function ackPauses(): void {
  for (const e of entries) {
    if (Atomics.load(e.ctl, CTL_RUN) !== 1 && Atomics.load(e.ctl, e.parkedAt) !== 1) park(e);
  }
}

function park(e: Entry): void {
  Atomics.store(e.ctl, e.parkedAt, 1);
  Atomics.notify(e.ctl, e.parkedAt);
}

/** Runs one slice of `e` if it may run now. Returns -1 if it ran, else the time (ms) it next wants to run (Infinity: not until rung). */
function service(e: Entry, now: number): number {
  const ctl = e.ctl;
  if (Atomics.load(ctl, e.faultedAt) === 1) return Infinity;
  if (Atomics.load(ctl, CTL_RUN) !== 1) {
    if (Atomics.load(ctl, e.parkedAt) !== 1) park(e);
    return Infinity;
  }
  if (Atomics.load(ctl, e.parkedAt) === 1) {
    // Parked -> Running: restart the rate clock so a long pause does not become a burst.
    Atomics.store(ctl, e.parkedAt, 0);
    e.credit = 0;
    e.lastMs = now;
    e.throttleUntilMs = 0;
  }
  const regs = e.regs;
  let steps = regs[REG_STEPS_F64]!;
  if (e.stepLimit > 0 && steps >= e.stepLimit) {
    if (Atomics.load(ctl, e.limitAt) !== 1) {
      Atomics.store(ctl, e.limitAt, 1);
      Atomics.notify(ctl, e.limitAt);
    }
    return Infinity;
  }
  const throttle = Atomics.load(ctl, CTL_THROTTLE);
  let budget = Infinity;
  if (e.rate > 0) {
    const effective = (e.rate * (100 - throttle)) / 100;
    e.credit = Math.min(e.credit + ((now - e.lastMs) * effective) / 1000, Math.max(1, effective * MAX_CREDIT_S));
    e.lastMs = now;
    if (e.credit < 1) return now + Math.max(MIN_RATE_WAIT_MS, ((1 - e.credit) * 1000) / effective);
    budget = Math.floor(e.credit);
  } else if (now < e.throttleUntilMs) {
    return e.throttleUntilMs;
  }
  if (e.stepLimit > 0) budget = Math.min(budget, e.stepLimit - steps);

  const info = e.info;
  if (info !== undefined) {
    const last = info[GI_HEARTBEAT_MS]!;
    const gap = timeOrigin + now - last;
    if (last > 0 && gap > info[GI_MAX_GAP_MS]!) info[GI_MAX_GAP_MS] = gap;
  }
  const deadline = now + sliceMs;
  let n = 0;
  try {
    const program = (e.program ??= e.workload.create(e.ctx));
    while (n < budget) {
      if (Atomics.load(ctl, CTL_RUN) !== 1) break;
      program.step();
      regs[REG_STEPS_F64] = ++steps;
      n++;
      if ((n & 15) === 0 && performance.now() >= deadline) break;
    }
  } catch (err) {
    Atomics.store(ctl, e.faultedAt, 1);
    park(e);
    post({ type: 'vcpu-faulted', key: e.key, message: err instanceof Error ? err.message : String(err) });
    return Infinity;
  }
  const end = performance.now();
  if (e.rate > 0) e.credit -= n;
  else if (throttle > 0) e.throttleUntilMs = end + ((end - now) * throttle) / (100 - throttle);
  if (info !== undefined && n > 0) {
    const header = e.infoHeader;
    if (header[0] !== GUEST_INFO_MAGIC) {
      header[1] = GUEST_INFO_VERSION;
      header[0] = GUEST_INFO_MAGIC;
    }
    if (header[2]! <= e.vcpu) header[2] = e.vcpu + 1;
    if (info[GI_FIRST_MS] === 0) info[GI_FIRST_MS] = timeOrigin + now;
    info[GI_HEARTBEAT_MS] = timeOrigin + end;
    info[GI_STEPS] = steps;
    Atomics.or(e.dirty, 0, 1); // page 0
  }
  if (e.stepLimit > 0 && steps >= e.stepLimit) {
    Atomics.store(ctl, e.limitAt, 1);
    Atomics.notify(ctl, e.limitAt);
  }
  return -1;
}

/**
 * One pass over the vCPUs: runs a slice of each that may run now. Returns -1 if any ran, else the
 * time (ms) the next one wants to run. A function of its own so that no reference to the entries
 * survives across the loop's awaits (a detached vCPU's memory must be collectable at once).
 */
function pass(): number {
  let next = Infinity;
  let ran = false;
  const list = entries;
  for (let i = 0; i < list.length; i++) {
    const due = service(list[i]!, performance.now());
    if (due < 0) {
      ran = true;
      ackPauses();
    } else if (due < next) next = due;
  }
  return ran ? -1 : next;
}

async function loop(): Promise<void> {
  while (!closing) {
    const seen = Atomics.load(doorbell, 0);
    const next = pass();
    if (next >= 0) {
      const timeout = Math.max(0, Math.min(MAX_SLEEP_MS, next - performance.now()));
      if (timeout > 0) {
        await waitWhileEqual(doorbell, 0, seen, timeout);
      }
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'attach':
      attach(msg.binding).then(
        () => {
          post({ type: 'attached', key: msg.binding.key });
          ring();
        },
        (err: unknown) => post({ type: 'attach-failed', key: msg.binding.key, message: err instanceof Error ? err.message : String(err) }),
      );
      break;
    case 'detach': {
      const gone = entries.find((e) => e.key === msg.key);
      entries = entries.filter((e) => e.key !== msg.key);
      if (gone) park(gone);
      post({ type: 'detached', key: msg.key });
      if (gone) collectSoon();
      break;
    }
    case 'close':
      closing = true;
      entries = [];
      ring();
      port.close();
      break;
  }
});

void loop();
