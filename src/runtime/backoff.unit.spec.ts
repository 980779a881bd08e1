import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from './backoff.js';
import { type Random, SeededRandom } from './random.js';

const fixed = (value: number): Random => ({ next: () => value, int: () => 0, chance: () => false });

describe('backoffDelayMs', () => {
  const settings = { minBackoffMs: 100, maxBackoffMs: 10_000, randomFactor: 0.2 };

  it('starts at minBackoffMs and doubles with each attempt', () => {
    const delays = [0, 1, 2, 3, 4].map((attempt) => backoffDelayMs(attempt, settings, fixed(0)));
    expect(delays).toEqual([100, 200, 400, 800, 1_600]);
  });

  it('never grows past maxBackoffMs before jitter, even for huge attempt numbers', () => {
    expect(backoffDelayMs(7, settings, fixed(0))).toBe(10_000);
    expect(backoffDelayMs(1_000_000, settings, fixed(0))).toBe(10_000);
  });

  it('keeps jitter within [delay, delay * (1 + randomFactor)]', () => {
    const random = new SeededRandom(11);
    for (let attempt = 0; attempt < 12; attempt++) {
      const base = Math.min(10_000, 100 * 2 ** attempt);
      for (let draw = 0; draw < 50; draw++) {
        const delay = backoffDelayMs(attempt, settings, random);
        expect(delay).toBeGreaterThanOrEqual(base);
        expect(delay).toBeLessThanOrEqual(Math.round(base * 1.2));
      }
    }
  });

  it('applies the full jitter range at the extremes of the draw', () => {
    expect(backoffDelayMs(0, settings, fixed(0.5))).toBe(110);
    expect(backoffDelayMs(0, settings, fixed(0.999_999))).toBe(120);
    expect(backoffDelayMs(0, { ...settings, randomFactor: 0 }, fixed(0.9))).toBe(100);
  });
});
