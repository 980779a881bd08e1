// The entry of the order projection's worker thread, started by `OrderProjectionWorker` through
// `startTsWorker`. An error that ends the projection is thrown from here, so the thread ends with
// it and the main side (which sees the `error` and `exit` events) restarts it.
import assert from 'node:assert/strict';
import { parentPort, workerData } from 'node:worker_threads';
import { serveOrderProjection } from './order-projection-thread.js';
import { projectionThreadSettingsSchema } from './projection-protocol.js';

assert.ok(parentPort !== null, 'projection-worker-entry.ts runs in a worker thread only');
const { settings } = workerData as { settings: unknown };
await serveOrderProjection(parentPort, projectionThreadSettingsSchema.parse(settings));
