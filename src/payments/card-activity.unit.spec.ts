import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CardActivity } from './card-activity.js';

describe('CardActivity', () => {
  it('behaves like an insertion-ordered map whose re-recorded keys move to the end', () => {
    const step = fc.oneof(
      fc.record({
        kind: fc.constant('record' as const),
        token: fc.integer({ min: 0, max: 20 }),
        at: fc.nat(),
      }),
      fc.record({ kind: fc.constant('forget' as const), keep: fc.nat({ max: 25 }) }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 200 }), (steps) => {
        let activity = CardActivity.empty;
        let model = new Map<string, readonly number[]>();
        for (const change of steps) {
          if (change.kind === 'record') {
            const token = `tok_${change.token}`;
            activity = activity.record(token, [change.at]);
            model.delete(token);
            model.set(token, [change.at]);
          } else {
            activity = activity.forgetOldestWhile((_times, size) => size > change.keep);
            model = new Map([...model].slice(Math.max(0, model.size - change.keep)));
          }
          expect([...activity.entries()]).toEqual([...model]);
          expect(activity.size).toBe(model.size);
          expect(activity.oldest()).toEqual([...model][0]);
        }
      }),
    );
  });

  it('forgets the oldest cards by their times, keeping the rest in order', () => {
    const activity = CardActivity.of([
      ['a', [1]],
      ['b', [2]],
      ['c', [5]],
    ]).record('a', [1, 9]);
    const kept = activity.forgetOldestWhile((times) => (times[times.length - 1] ?? 0) <= 2);
    expect([...kept.keys()]).toEqual(['c', 'a']);
    expect(kept.get('a')).toEqual([1, 9]);
    expect(kept.has('b')).toBe(false);
  });
});
