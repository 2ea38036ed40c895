/**
 * The environment every launcher starts an agent process with (`pnpm cluster`, the test harness,
 * the benchmarks; a remote agent started by hand should set it too, see the README).
 *
 * MALLOC_TRIM_THRESHOLD_: an agent receiving a migration reads its socket 64 KiB at a time, and
 * Node allocates each read's buffer with malloc. With glibc's default trim threshold (128 KiB) the
 * heap freed by each garbage collection goes back to the kernel at once, and the next reads take
 * it back page fault by page fault: 90–110 thousand faults per 512 MiB received, against 10–12
 * thousand with 64 MiB, and 0.8 against 1.2–1.4 GB/s on the migration path (scripts/bench, the
 * pipeline measurement in the session notes). Peak RSS is the same either way; an idle agent may
 * keep up to 64 MiB of freed heap instead of returning it.
 */
export const AGENT_PROCESS_ENV: Readonly<Record<string, string>> = Object.freeze({
  MALLOC_TRIM_THRESHOLD_: String(64 * 1024 * 1024),
});
