import { Worker } from 'node:worker_threads';

const bootstrap = new URL('./ts-worker-bootstrap.mjs', import.meta.url);
/** True when this module runs compiled (dist/, `npm run build`), not from source through tsx. */
const compiled = import.meta.url.endsWith('.js');

/**
 * Starts a worker thread whose entry is a TypeScript module (`entry`, e.g.
 * `new URL('./writer-worker.ts', import.meta.url)`). The entry reads its own settings from
 * `workerData.settings` (structured-cloned).
 *
 * From source, the thread first runs ts-worker-bootstrap.mjs, which registers tsx there; compiled,
 * it runs the entry's `.js` sibling in dist/ directly.
 */
export function startTsWorker(entry: URL, settings: unknown, name: string): Worker {
  if (compiled) {
    const script = new URL(entry.href.replace(/\.ts$/, '.js'));
    return new Worker(script, { workerData: { entry: script.href, settings }, name });
  }
  return new Worker(bootstrap, { workerData: { entry: entry.href, settings }, name });
}
