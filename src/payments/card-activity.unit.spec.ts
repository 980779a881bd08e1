import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CardActivity, type CardActivityLimits, cardActivityGenerations } from './card-activity.js';

interface Recorded {
  readonly times: readonly number[];
  readonly at: number;
  /** Index of its latest record among all records. */
  readonly index: number;
}

const tokens = (count: number): string[] => Array.from({ length: count }, (_, n) => `tok_${n}`);

describe('CardActivity', () => {
  it('never answers stale times, and keeps every card recent enough by time and by count', () => {
    const scenario = fc.record({
      windowMs: fc.integer({ min: 1, max: 200 }),
      cardsMax: fc.integer({ min: 1, max: 60 }),
      steps: fc.array(
        fc.record({
          token: fc.integer({ min: 0, max: 30 }),
          advanceMs: fc.integer({ min: 0, max: 40 }),
          extraTime: fc.boolean(),
        }),
        { maxLength: 300 },
      ),
    });
    fc.assert(
      fc.property(scenario, ({ windowMs, cardsMax, steps }) => {
        const limits: CardActivityLimits = { windowMs, cardsMax };
        const generationSize = Math.ceil(cardsMax / cardActivityGenerations);
        let activity = CardActivity.empty;
        const model = new Map<string, Recorded>();
        let now = 1_000;
        steps.forEach((step, index) => {
          now += step.advanceMs;
          const token = `tok_${step.token}`;
          const times = step.extraTime ? [now - 1, now] : [now];
          activity = activity.record(token, times, now, limits);
          model.set(token, { times, at: now, index });

          expect(activity.size).toBeLessThanOrEqual(cardsMax);
          for (const candidate of tokens(31)) {
            const expected = model.get(candidate);
            const held = activity.get(candidate);
            // Held or not, never anything but its latest times.
            if (held !== undefined) expect(held).toEqual(expected?.times);
            const recentByTime = expected !== undefined && expected.at > now - windowMs;
            const recentByCount =
              expected !== undefined && index - expected.index < cardsMax - generationSize;
            if (recentByTime && recentByCount) expect(held).toEqual(expected.times);
            expect(activity.has(candidate)).toBe(held !== undefined);
          }
          const listed = [...activity.entries()];
          expect(new Set(listed.map(([token]) => token)).size).toBe(listed.length);
          for (const [token, listedTimes] of listed) expect(listedTimes).toEqual(activity.get(token));
          expect(listed.length).toBeLessThanOrEqual(activity.size);
        });
      }),
    );
  });

  it('comes back from its entries (a snapshot) with the same cards and times', () => {
    const limits: CardActivityLimits = { windowMs: 1_000, cardsMax: 10_000 };
    let activity = CardActivity.empty;
    for (let n = 0; n < 9_000; n++) activity = activity.record(`tok_${n % 5_000}`, [n], n, limits);
    const restored = CardActivity.of(activity.entries());
    expect([...restored.entries()]).toEqual([...activity.entries()]);
    for (const token of tokens(5_000)) expect(restored.get(token)).toEqual(activity.get(token));
    // Recording into it applies the limits again: only the window's cards are kept.
    const later = restored.record('tok_new', [9_500], 9_500, limits);
    expect(later.get('tok_0')).toBeUndefined();
    expect(later.get('tok_3999')).toEqual([8_999]);
    expect(later.size).toBeLessThanOrEqual(1_000 + 4_096 + 1);
  });

  it('forgets a card once its generation has left the window, and sooner past cardsMax', () => {
    const limits: CardActivityLimits = { windowMs: 80, cardsMax: 16 };
    let activity = CardActivity.empty
      .record('a', [0], 0, limits)
      .record('b', [5], 5, limits)
      .record('c', [10], 10, limits); // a new generation: two cards (cardsMax / 8) fill one
    expect([...activity.keys()]).toEqual(['a', 'b', 'c']);
    activity = activity.record('d', [84], 84, limits);
    expect(activity.has('a')).toBe(true); // its generation's newest time (5) is still inside
    activity = activity.record('e', [86], 86, limits);
    expect(activity.has('a')).toBe(false);
    expect(activity.has('b')).toBe(false);
    expect([...activity.keys()]).toEqual(['c', 'd', 'e']);

    // 16 cards at most, in generations of 2: the oldest generation goes first.
    let crowded = CardActivity.empty;
    for (let n = 0; n < 20; n++) crowded = crowded.record(`k${n}`, [1_000], 1_000, limits);
    expect(crowded.size).toBeLessThanOrEqual(16);
    expect(crowded.has('k0')).toBe(false);
    expect(crowded.has('k19')).toBe(true);
    expect(crowded.has('k5')).toBe(true);
  });
});
