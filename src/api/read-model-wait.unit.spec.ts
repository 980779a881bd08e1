import { afterEach, describe, expect, it, vi } from 'vitest';
import { caughtUpWithin } from './app.js';

describe('waiting for the read model before a listing', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('answers once the read model has caught up', async () => {
    let release = (): void => {};
    const caughtUp = new Promise<void>((resolve) => {
      release = resolve;
    });
    let done = false;
    const waiting = caughtUpWithin(() => caughtUp, 1_000).then(() => {
      done = true;
    });
    await Promise.resolve();
    expect(done).toBe(false);
    release();
    await waiting;
    expect(done).toBe(true);
  });

  it('gives up after the limit and answers with what the read model holds', async () => {
    vi.useFakeTimers();
    let done = false;
    const waiting = caughtUpWithin(() => new Promise<void>(() => {}), 1_000).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(999);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await waiting;
    expect(done).toBe(true);
  });

  it('does not fail the query when the projection has failed, nor wait without one', async () => {
    await expect(caughtUpWithin(() => Promise.reject(new Error('projection failed')), 1_000)).resolves.toBe(
      undefined,
    );
    await expect(caughtUpWithin(undefined, 1_000)).resolves.toBe(undefined);
  });
});
