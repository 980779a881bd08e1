// Worker entry for ts-worker.unit.spec.ts: multiplies what it is sent by workerData.settings.factor.
import { parentPort, workerData } from 'node:worker_threads';
import { z } from 'zod';

const settings = z.object({ factor: z.number() }).parse((workerData as { settings: unknown }).settings);
parentPort?.on('message', (value: unknown) =>
  parentPort?.postMessage(z.number().parse(value) * settings.factor),
);
