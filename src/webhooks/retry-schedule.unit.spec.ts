import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Random } from '../runtime/random.js';
import { SeededRandom } from '../runtime/random.js';
import {
  defaultWebhookDeliverySettings,
  nextAttemptAt,
  retryDelayCeilingMs,
  type WebhookDeliverySettings,
  webhookDeliverySettingsSchema,
} from './retry-schedule.js';

/** A Random that always draws the same number, for the schedule's extremes. */
function constantRandom(value: number): Random {
  return { next: () => value, int: (max) => Math.floor(value * max), chance: (p) => value < p };
}

const start = Date.UTC(2026, 0, 1);

/** Every attempt's start time when each attempt fails at once, until the schedule gives up. */
function attemptTimes(
  random: Random,
  settings: WebhookDeliverySettings = defaultWebhookDeliverySettings,
): number[] {
  const times = [start];
  for (;;) {
    const last = times.at(-1) ?? start;
    const next = nextAttemptAt(start, times.length, last, random, settings);
    if (next === undefined) return times;
    times.push(next);
  }
}

const settingsArbitrary = fc
  .record({
    firstRetryDelayMs: fc.integer({ min: 1, max: 10_000 }),
    // A cap of at least ten minutes keeps a run of the whole schedule to under a thousand attempts.
    retryDelayMaxMs: fc.integer({ min: 600_000, max: 3_600_000 }),
    retryWindowMs: fc.integer({ min: 3_600_000, max: 3 * 24 * 3_600_000 }),
  })
  .map((timing) => ({ ...defaultWebhookDeliverySettings, ...timing }));

describe('the webhook retry schedule', () => {
  it('has the documented defaults', () => {
    expect(defaultWebhookDeliverySettings).toEqual({
      firstRetryDelayMs: 1000,
      retryDelayMaxMs: 3_600_000,
      retryWindowMs: 259_200_000,
      attemptTimeoutMs: 10_000,
      deliveriesInFlightPerEndpointMax: 4,
      endpointDisableAfterFailingMs: 259_200_000,
    });
  });

  it('starts at about a second and doubles up to the hour', () => {
    const ceilings = [1, 2, 3, 4, 12, 13, 14, 100, 10_000].map((n) =>
      retryDelayCeilingMs(n, defaultWebhookDeliverySettings),
    );
    expect(ceilings).toEqual([1000, 2000, 4000, 8000, 2_048_000, 3_600_000, 3_600_000, 3_600_000, 3_600_000]);
  });

  // With the defaults and every attempt failing at once, a delivery gets 83 attempts when every
  // draw is the longest delay, 155 when every draw is the shortest, and 107 when every draw is the
  // middle one: the first 13 within about an hour and a half, then about one an hour (45 min on
  // average) for the rest of the three days.
  it('makes between 83 and 155 attempts in three days with the defaults', () => {
    expect(attemptTimes(constantRandom(0.999_999_9)).length).toBe(83);
    expect(attemptTimes(constantRandom(0.5)).length).toBe(107);
    expect(attemptTimes(constantRandom(0)).length).toBe(155);
    const seeded = attemptTimes(new SeededRandom(21)).length;
    expect(seeded).toBeGreaterThanOrEqual(83);
    expect(seeded).toBeLessThanOrEqual(155);
  });

  it('draws each delay between half its ceiling and its ceiling', () => {
    fc.assert(
      fc.property(
        settingsArbitrary,
        fc.integer({ min: 1, max: 200 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (settings, attemptNumber, draw) => {
          const now = start + 1000;
          const next = nextAttemptAt(
            start - settings.retryWindowMs,
            attemptNumber,
            now,
            constantRandom(draw),
            {
              ...settings,
              retryWindowMs: settings.retryWindowMs * 3,
            },
          );
          const ceiling = retryDelayCeilingMs(attemptNumber, settings);
          expect(next).toBeDefined();
          const delay = (next ?? 0) - now;
          expect(delay).toBeGreaterThanOrEqual(Math.max(1, Math.floor(ceiling / 2)));
          expect(delay).toBeLessThanOrEqual(ceiling);
          expect(ceiling).toBeLessThanOrEqual(settings.retryDelayMaxMs);
        },
      ),
    );
  });

  it('never lowers the ceiling from one attempt to the next', () => {
    fc.assert(
      fc.property(settingsArbitrary, fc.integer({ min: 1, max: 10_000 }), (settings, attemptNumber) => {
        const ceiling = retryDelayCeilingMs(attemptNumber, settings);
        expect(retryDelayCeilingMs(attemptNumber + 1, settings)).toBeGreaterThanOrEqual(ceiling);
        expect(retryDelayCeilingMs(attemptNumber, settings)).toBeGreaterThanOrEqual(
          settings.firstRetryDelayMs,
        );
      }),
    );
  });

  it('never starts an attempt past the window, and gives up only when the next would be', () => {
    fc.assert(
      fc.property(settingsArbitrary, fc.integer(), (settings, seed) => {
        const random = new SeededRandom(seed);
        const times = attemptTimes(random, settings);
        const windowEnd = start + settings.retryWindowMs;
        expect(times.every((time) => time <= windowEnd)).toBe(true);
        // Attempts are in order, and the schedule stops only when the next attempt, at most a
        // ceiling after the last, could overshoot the window: it never gives up early.
        for (let index = 1; index < times.length; index += 1) {
          expect(times[index]).toBeGreaterThan(times[index - 1] ?? Number.POSITIVE_INFINITY);
        }
        const last = times.at(-1) ?? start;
        expect(last + retryDelayCeilingMs(times.length, settings)).toBeGreaterThan(windowEnd);
      }),
      { numRuns: 50 },
    );
  });

  it('gives up when the next attempt would start after the window', () => {
    const windowEnd = start + defaultWebhookDeliverySettings.retryWindowMs;
    expect(nextAttemptAt(start, 100, windowEnd - 10, constantRandom(0))).toBeUndefined();
    expect(nextAttemptAt(start, 100, windowEnd - 1_800_000, constantRandom(0))).toBe(windowEnd);
  });

  it('refuses an attempt number that does not count from 1', () => {
    expect(() => nextAttemptAt(start, 0, start, constantRandom(0))).toThrow(/counts from 1/);
  });

  it('refuses settings that contradict each other', () => {
    const parsed = webhookDeliverySettingsSchema.safeParse({
      ...defaultWebhookDeliverySettings,
      firstRetryDelayMs: 7_200_000,
      attemptTimeoutMs: 300_000_000,
    });
    expect(parsed.success ? [] : parsed.error.issues.map((issue) => issue.path.join('.'))).toEqual([
      'firstRetryDelayMs',
      'attemptTimeoutMs',
    ]);
  });
});
