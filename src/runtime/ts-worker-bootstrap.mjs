// The first module of every Remit worker thread. Remit runs its TypeScript through tsx, whose
// loader hooks do not reach worker threads on Node 20: this plain module registers them in the
// worker, then imports the worker's real entry (a .ts file) named in workerData.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
