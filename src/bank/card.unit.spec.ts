import { describe, expect, it } from 'vitest';
import { cardBrand, cardExpired, cardFingerprint, luhnValid } from './card.js';

describe('card', () => {
  it('passes the Luhn check only for valid numbers', () => {
    for (const number of ['4242424242424242', '5555555555554444', '378282246310005', '4000000000000002']) {
      expect(luhnValid(number), number).toBe(true);
    }
    for (const number of ['4242424242424241', '1234567812345678', '', '4242-4242-4242-4242']) {
      expect(luhnValid(number), number).toBe(false);
    }
  });

  it('tells the brand from the leading digits', () => {
    expect(cardBrand('4242424242424242')).toBe('visa');
    expect(cardBrand('5555555555554444')).toBe('mastercard');
    expect(cardBrand('2223003122003222')).toBe('mastercard');
    expect(cardBrand('378282246310005')).toBe('amex');
    expect(cardBrand('6011111111111117')).toBe('discover');
    expect(cardBrand('3530111333300000')).toBe('jcb');
    expect(cardBrand('9999999999999995')).toBe('unknown');
  });

  it('keeps only the brand, the first six and the last four digits', () => {
    expect(cardFingerprint('5555555555554444')).toEqual({
      brand: 'mastercard',
      bin: '555555',
      last4: '4444',
    });
  });

  it('treats a card as valid through the last day of its expiry month (UTC)', () => {
    const lastMomentOfJune = Date.UTC(2026, 5, 30, 23, 59, 59, 999);
    const firstMomentOfJuly = Date.UTC(2026, 6, 1);
    expect(cardExpired(6, 2026, lastMomentOfJune)).toBe(false);
    expect(cardExpired(6, 2026, firstMomentOfJuly)).toBe(true);
    expect(cardExpired(12, 2025, Date.UTC(2026, 0, 1))).toBe(true);
    expect(cardExpired(1, 2027, Date.UTC(2026, 11, 31))).toBe(false);
  });
});
