import { describe, expect, it } from 'vitest';
import { numberFlag } from './flags.js';

describe('numberFlag', () => {
  it('takes the fallback when the flag is absent, and the number when it is given', () => {
    expect(numberFlag(undefined, 20, '--duration', { integer: false })).toBe(20);
    expect(numberFlag('2.5', 20, '--duration', { integer: false })).toBe(2.5);
    expect(numberFlag('64', 1, '--connections', { integer: true })).toBe(64);
    expect(numberFlag('0', 5, '--warmup', { integer: false, zero: true })).toBe(0);
  });

  it('refuses what is not a number of the kind asked, naming the flag and the bound', () => {
    expect(() => numberFlag('0', 5, '--duration', { integer: false })).toThrow(
      '--duration must be a number above 0, got 0',
    );
    expect(() => numberFlag('-1', 5, '--warmup', { integer: false, zero: true })).toThrow(
      '--warmup must be a number 0 or above, got -1',
    );
    expect(() => numberFlag('1.5', 64, '--connections', { integer: true })).toThrow(
      '--connections must be a whole number above 0, got 1.5',
    );
    expect(() => numberFlag('ten', 64, '--connections', { integer: true })).toThrow('got ten');
  });
});
