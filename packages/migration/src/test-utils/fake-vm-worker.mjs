// A fake vCPU for migration tests: writes guest pages in a worker thread, store-then-mark, and
// honours pause (finish the current write, park, acknowledge) and throttle. Plain JS so the
// worker needs no TypeScript loader.
import { workerData } from 'node:worker_threads';

const { memory, dirty, control, firstPage, pageCount, mode, writesPerSec, seed } = workerData;
const mem32 = new Int32Array(memory);
const dirtyWords = new Int32Array(dirty);
const ctl = new Int32Array(control);
// control words: 0 pause requested, 1 paused, 2 throttle %, 3 stop, 4 writes done
const PAUSE = 0, PAUSED = 1, THROTTLE = 2, STOP = 3, WRITES = 4;
const sleeper = new Int32Array(new SharedArrayBuffer(4));
let state = seed >>> 0 || 1;
let next = 0;
let writes = 0;
let dueMs = 0;
const started = performance.now();
const BATCH = 32;

function rand() {
  state ^= state << 13; state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5; state >>>= 0;
  return state;
}

while (Atomics.load(ctl, STOP) === 0) {
  if (Atomics.load(ctl, PAUSE) === 1) {
    Atomics.store(ctl, PAUSED, 1);
    Atomics.notify(ctl, PAUSED);
    while (Atomics.load(ctl, PAUSE) === 1 && Atomics.load(ctl, STOP) === 0) Atomics.wait(ctl, PAUSE, 1, 50);
    Atomics.store(ctl, PAUSED, 0);
    continue;
  }
  const t0 = performance.now();
  for (let i = 0; i < BATCH; i++) {
    const page = firstPage + (mode === 'scan' ? next++ % pageCount : rand() % pageCount);
    writes++;
    // store, then mark (the order the dirty log relies on)
    mem32[page * 1024 + (writes & 1023)] = writes | 1;
    mem32[page * 1024] = writes | 1;
    Atomics.or(dirtyWords, page >>> 5, 1 << (page & 31));
  }
  Atomics.store(ctl, WRITES, writes);
  const throttle = Atomics.load(ctl, THROTTLE);
  if (writesPerSec > 0) {
    // Paced: each write costs 1/rate of a second of (unthrottled) vCPU time.
    dueMs += (BATCH * 1000) / (writesPerSec * (100 - throttle) / 100);
    let ahead = dueMs - (performance.now() - started);
    if (ahead < -100) dueMs = performance.now() - started; // do not catch up after a pause
    while (ahead > 0 && Atomics.load(ctl, PAUSE) === 0 && Atomics.load(ctl, STOP) === 0) {
      Atomics.wait(sleeper, 0, 0, Math.min(ahead, 1));
      ahead = dueMs - (performance.now() - started);
    }
  } else if (throttle > 0) {
    const busy = Math.max(performance.now() - t0, 0.02);
    Atomics.wait(sleeper, 0, 0, (busy * throttle) / (100 - throttle));
  }
}
Atomics.store(ctl, PAUSED, 1);
Atomics.notify(ctl, PAUSED);
