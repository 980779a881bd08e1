import type { Random } from './random.js';

export interface BackoffSettings {
  /** Delay before the first retry. */
  readonly minBackoffMs: number;
  /** The delay never grows past this (before jitter). */
  readonly maxBackoffMs: number;
  /** Each delay is multiplied by a factor drawn from [1, 1 + randomFactor). */
  readonly randomFactor: number;
}

/**
 * Exponential backoff with jitter: attempt 0 waits about `minBackoffMs`, each later attempt twice
 * as long, capped at `maxBackoffMs`. Jitter spreads retries of many senders so they don't return
 * in lockstep.
 */
export function backoffDelayMs(attempt: number, settings: BackoffSettings, random: Random): number {
  const exponential = settings.minBackoffMs * 2 ** Math.min(attempt, 30);
  const capped = Math.min(settings.maxBackoffMs, exponential);
  return Math.round(capped * (1 + random.next() * settings.randomFactor));
}
