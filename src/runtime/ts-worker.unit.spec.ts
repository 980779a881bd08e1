import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { startTsWorker } from './ts-worker.js';

describe('startTsWorker', () => {
  it('runs a TypeScript entry in a worker thread and hands it its settings', async () => {
    const worker = startTsWorker(
      new URL('./ts-worker.fixture.ts', import.meta.url),
      { factor: 3 },
      'echo',
      16,
    );
    try {
      worker.postMessage(14);
      const [answer] = await once(worker, 'message');
      expect(answer).toBe(42);
    } finally {
      await worker.terminate();
    }
  });
});
