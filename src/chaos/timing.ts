import { setTimeout as delay } from 'node:timers/promises';

/**
 * Real time for the harness. The harness drives real processes, so a simulated Clock would be a
 * fiction; these timers are deliberately kept referenced (unlike SystemClock's), so awaiting one
 * keeps the harness alive until the run is over.
 */

/** Milliseconds on a monotonic clock, for durations and deadlines: wall-clock jumps do not move it. */
export function monotonicMs(): number {
  return performance.now();
}

/** Resolves after `ms`, or at once when `signal` aborts; never rejects. */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted === true) return;
  try {
    await delay(Math.max(0, ms), undefined, signal === undefined ? undefined : { signal });
  } catch {
    // Aborted: the caller checks its signal.
  }
}
