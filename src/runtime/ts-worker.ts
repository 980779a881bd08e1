import { Worker } from 'node:worker_threads';

const bootstrap = new URL('./ts-worker-bootstrap.mjs', import.meta.url);

/**
 * Starts a worker thread whose entry is a TypeScript module (`entry`, e.g.
 * `new URL('./writer-worker.ts', import.meta.url)`). The entry reads its own settings from
 * `workerData.settings` (structured-cloned).
 */
export function startTsWorker(entry: URL, settings: unknown, name: string): Worker {
  return new Worker(bootstrap, { workerData: { entry: entry.href, settings }, name });
}
