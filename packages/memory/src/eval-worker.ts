import { Worker } from 'node:worker_threads';

/**
 * Runs a small plain-JS (CommonJS) program on a worker thread that does not keep the process
 * alive: started without the parent's loaders (`execArgv: []`), so it is up in milliseconds
 * even under tsx. Resolves with the exit code (non-zero when it threw); never rejects.
 */
export function runEvalWorker(source: string, workerData: unknown): Promise<number> {
  const worker = new Worker(source, { eval: true, execArgv: [], workerData });
  worker.unref();
  worker.once('error', () => undefined); // 'exit' follows with a non-zero code
  return new Promise((resolve) => worker.once('exit', resolve));
}
