import { Worker } from 'node:worker_threads';
import { runnableEntry } from './thread-guest.js';

const bootstrap = new URL('./ts-worker-bootstrap.mjs', import.meta.url);

/**
 * A worker's young generation. The workers (journal writer, read-model projection) keep little
 * alive between batches, so a small nursery costs them next to nothing, while V8's default (the
 * main thread's) makes each of them hold tens of MB (bench/README.md, the young-generation rows).
 */
export const workerYoungGenerationMbMax = 8;

/**
 * Starts a worker thread whose entry is a TypeScript module (`entry`, e.g.
 * `new URL('./writer-worker.ts', import.meta.url)`). The entry reads its own settings from
 * `workerData.settings` (structured-cloned).
 *
 * From source, the thread first runs ts-worker-bootstrap.mjs, which registers tsx there; compiled,
 * it runs the entry's `.js` sibling in dist/ directly.
 */
export function startTsWorker(entry: URL, settings: unknown, name: string, heapMbMax: number): Worker {
  // A worker's heap is bounded like everything else: past it the thread ends with an error, which
  // its owner treats as a crash (writes fail, the thread is restarted).
  const resourceLimits = {
    maxOldGenerationSizeMb: heapMbMax,
    maxYoungGenerationSizeMb: workerYoungGenerationMbMax,
  };
  const script = runnableEntry(entry);
  if (script !== entry) {
    return new Worker(script, { workerData: { entry: script.href, settings }, name, resourceLimits });
  }
  return new Worker(bootstrap, { workerData: { entry: entry.href, settings }, name, resourceLimits });
}
