// Atomics.waitAsync is in Node 20 but not in the ES2023 lib this workspace compiles against.
interface WaitAsyncResult {
  readonly async: boolean;
  readonly value: Promise<'ok' | 'timed-out'> | 'not-equal' | 'timed-out';
}
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number, t?: number): WaitAsyncResult }).waitAsync;

/** Resolves when `array[index]` is notified or no longer equals `value`, or after `timeoutMs` (default forever). Never blocks the thread. */
export async function waitWhileEqual(array: Int32Array, index: number, value: number, timeoutMs?: number): Promise<void> {
  const r = waitAsync(array, index, value, timeoutMs);
  if (r.async) await r.value;
}

/** Resolves once `array[index]` equals `want`, waiting asynchronously on notifications. */
export async function waitUntilEqual(array: Int32Array, index: number, want: number): Promise<void> {
  for (;;) {
    const v = Atomics.load(array, index);
    if (v === want) return;
    await waitWhileEqual(array, index, v, 100);
  }
}
