import { describe, expect, it } from 'vitest';
import { SeededRandom } from './random.js';

function take(random: SeededRandom, count: number): number[] {
  return Array.from({ length: count }, () => random.next());
}

describe('SeededRandom', () => {
  it('gives the same sequence for the same seed', () => {
    expect(take(new SeededRandom(1234), 100)).toEqual(take(new SeededRandom(1234), 100));
  });

  it('gives different sequences for different seeds', () => {
    expect(take(new SeededRandom(1), 10)).not.toEqual(take(new SeededRandom(2), 10));
  });

  it('draws floats in [0, 1) spread over the whole range', () => {
    const values = take(new SeededRandom(99), 10_000);
    expect(values.every((value) => value >= 0 && value < 1)).toBe(true);
    const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
    expect(mean).toBeGreaterThan(0.48);
    expect(mean).toBeLessThan(0.52);
    expect(Math.min(...values)).toBeLessThan(0.01);
    expect(Math.max(...values)).toBeGreaterThan(0.99);
  });

  it('draws integers in [0, maxExclusive), hitting every value', () => {
    const random = new SeededRandom(7);
    const seen = new Set<number>();
    for (let draw = 0; draw < 1_000; draw++) {
      seen.add(random.int(6));
    }
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('answers chance(0) with false and chance(1) with true', () => {
    const random = new SeededRandom(8);
    for (let draw = 0; draw < 100; draw++) {
      expect(random.chance(0)).toBe(false);
      expect(random.chance(1)).toBe(true);
    }
  });

  it('forks deterministically into an independent stream', () => {
    const first = new SeededRandom(5);
    const second = new SeededRandom(5);
    expect(take(first.fork(), 20)).toEqual(take(second.fork(), 20));
    expect(take(first, 20)).toEqual(take(second, 20));
    expect(take(new SeededRandom(5).fork(), 20)).not.toEqual(take(new SeededRandom(5), 20));
  });
});
