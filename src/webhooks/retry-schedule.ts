import { z } from 'zod';
import type { Random } from '../runtime/random.js';

/**
 * When a webhook delivery is tried again, and when Remit stops trying. An endpoint belongs to a
 * merchant, so it can be down for hours (a deploy, an outage) and still expect its events: the
 * schedule spreads attempts over about three days, as Stripe's does, starting fast (a blip of a
 * second is over by the next attempt) and backing off to one attempt an hour (a dead endpoint
 * costs little).
 *
 * **Jitter: "equal jitter", not full or decorrelated.** Retry `k` waits a delay drawn uniformly
 * from `[c/2, c]`, where the ceiling `c = min(retryDelayMaxMs, firstRetryDelayMs · 2^(k-1))`.
 * - Full jitter (`[0, c]`) spreads retries the most, but any attempt can come back almost at once,
 *   so the number of attempts in the window has no bound: a hostile or broken endpoint could be
 *   hit far more often than the schedule says. With the floor of `c/2`, the attempts in the window
 *   are at most about `retryWindowMs / (retryDelayMaxMs / 2)` plus the ramp (155 with the defaults).
 * - Decorrelated jitter (`min(cap, random(base, 3 · previous))`) depends on the previous delay,
 *   which would have to be persisted with each attempt. Here the next time depends only on the
 *   attempt's number, so a delivery recovered from the journal after a crash continues the same
 *   schedule from its attempt count alone.
 * Half of each ceiling is still random, enough to spread the retries of many deliveries that
 * failed together (an endpoint coming back must not meet them all in the same second).
 */
export const webhookDeliverySettingsSchema = z
  .object({
    /** The ceiling of the delay before the first retry; each later retry's ceiling doubles. */
    firstRetryDelayMs: z.number().int().min(1),
    /** The ceiling of any one delay, once doubling has reached it. */
    retryDelayMaxMs: z.number().int().min(1),
    /** No attempt starts later than this after the first attempt; then the delivery has failed. */
    retryWindowMs: z.number().int().min(1),
    /** One attempt (connect, send, wait for the status) is abandoned, and failed, after this. */
    attemptTimeoutMs: z.number().int().min(1),
    /** Deliveries one endpoint may have in flight at once; the rest wait in its own queue. */
    deliveriesInFlightPerEndpointMax: z.number().int().min(1).max(1000),
    /** An endpoint whose deliveries have all failed for this long (none succeeded) is disabled. */
    endpointDisableAfterFailingMs: z.number().int().min(1),
  })
  .superRefine((settings, context) => {
    if (settings.firstRetryDelayMs > settings.retryDelayMaxMs) {
      context.addIssue({
        code: 'custom',
        path: ['firstRetryDelayMs'],
        message: 'firstRetryDelayMs cannot exceed retryDelayMaxMs',
      });
    }
    if (settings.retryDelayMaxMs > settings.retryWindowMs) {
      context.addIssue({
        code: 'custom',
        path: ['retryDelayMaxMs'],
        message: 'retryDelayMaxMs cannot exceed retryWindowMs (no retry would ever reach the cap)',
      });
    }
    if (settings.attemptTimeoutMs >= settings.retryWindowMs) {
      context.addIssue({
        code: 'custom',
        path: ['attemptTimeoutMs'],
        message: 'attemptTimeoutMs must be shorter than retryWindowMs',
      });
    }
  });

export type WebhookDeliverySettings = z.infer<typeof webhookDeliverySettingsSchema>;

const hourMs = 60 * 60 * 1000;
const dayMs = 24 * hourMs;

export const defaultWebhookDeliverySettings: WebhookDeliverySettings = webhookDeliverySettingsSchema.parse({
  firstRetryDelayMs: 1000,
  retryDelayMaxMs: hourMs,
  retryWindowMs: 3 * dayMs,
  // A receiver should answer quickly and do its work afterwards; ten seconds is generous for that
  // and keeps a hanging endpoint from holding a delivery slot for long.
  attemptTimeoutMs: 10_000,
  // Enough to keep up with a busy merchant over one slow link; a stuck endpoint ties up only these.
  deliveriesInFlightPerEndpointMax: 4,
  endpointDisableAfterFailingMs: 3 * dayMs,
});

/** The ceiling of the delay after attempt `attemptNumber` (1 is the first attempt). */
export function retryDelayCeilingMs(attemptNumber: number, settings: WebhookDeliverySettings): number {
  // 2^40 ms is over 30 years: past any cap, and far from overflowing a double.
  const doublings = Math.min(Math.max(attemptNumber - 1, 0), 40);
  return Math.min(settings.retryDelayMaxMs, settings.firstRetryDelayMs * 2 ** doublings);
}

/**
 * When to make the next attempt, after attempt number `attemptNumber` (1 is the first) failed at
 * `now`; `undefined` when that would start later than `retryWindowMs` after the first attempt,
 * and the delivery has failed. Times are milliseconds since the epoch. Pure: the random draw is
 * the only input besides the arguments.
 */
export function nextAttemptAt(
  firstAttemptAt: number,
  attemptNumber: number,
  now: number,
  random: Random,
  settings: WebhookDeliverySettings = defaultWebhookDeliverySettings,
): number | undefined {
  if (!Number.isSafeInteger(attemptNumber) || attemptNumber < 1) {
    throw new Error(`attemptNumber counts from 1, got ${attemptNumber}`);
  }
  const ceiling = retryDelayCeilingMs(attemptNumber, settings);
  const delay = Math.max(1, Math.round(ceiling / 2 + (random.next() * ceiling) / 2));
  const next = now + delay;
  return next > firstAttemptAt + settings.retryWindowMs ? undefined : next;
}
