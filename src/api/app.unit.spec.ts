import { describe, expect, it } from 'vitest';
import { containsCardNumber, preferredWaitMs } from './app.js';

describe('free-text card number guard', () => {
  it.each([
    ['order 4242424242424242 for Ann', true],
    ['card 4242 4242 4242 4242', true],
    ['card 4242-4242-4242-4242!', true],
    ['invoice 2026-11-24 number 12345', false],
    ['phone +44 20 7946 0958', false],
    ['tracking 1234567890123', false],
    ['reference 99999999999999999995', false],
    [undefined, false],
  ])('%s → %s', (text, expected) => {
    expect(containsCardNumber(text)).toBe(expected);
  });
});

describe('Prefer: wait=N', () => {
  it('reads the wait in seconds, bounded by the maximum, defaulting otherwise', () => {
    expect(preferredWaitMs(undefined, 5_000, 30_000)).toBe(5_000);
    expect(preferredWaitMs('wait=2', 5_000, 30_000)).toBe(2_000);
    expect(preferredWaitMs('respond-async, wait=0', 5_000, 30_000)).toBe(0);
    expect(preferredWaitMs('wait=600', 5_000, 30_000)).toBe(30_000);
    expect(preferredWaitMs('wait=abc', 5_000, 30_000)).toBe(5_000);
  });
});
