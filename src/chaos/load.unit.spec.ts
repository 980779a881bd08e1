/**
 * The load's order mix: cards meant to be approved are Luhn-valid Visa or Mastercard numbers that
 * are none of the bank's test cards; rejections break exactly one rule; the mix covers every
 * expectation and merchant; a seed gives the same orders.
 */
import { describe, expect, it } from 'vitest';
import { luhnValid } from '../payments/card.js';
import { SeededRandom } from '../runtime/random.js';
import { defaultLoadSettings, planOrder, randomCardNumber } from './load.js';

describe('the order mix', () => {
  it('draws Luhn-valid Visa and Mastercard numbers', () => {
    const random = new SeededRandom(11);
    for (let index = 0; index < 1_000; index++) {
      const number = randomCardNumber(random);
      expect(number).toMatch(/^(4\d{15}|5[1-5]\d{14})$/);
      expect(luhnValid(number)).toBe(true);
    }
  });

  it('mixes approvals, declines and rejections across merchants, each rejection for one reason', () => {
    const random = new SeededRandom(5);
    const orders = Array.from({ length: 2_000 }, () => planOrder(random, 3, defaultLoadSettings));
    const share = (expectation: string) =>
      orders.filter((order) => order.expectation === expectation).length / orders.length;
    expect(share('approve')).toBeGreaterThan(0.6);
    expect(share('decline')).toBeGreaterThan(0.1);
    expect(share('reject')).toBeGreaterThan(0.1);
    expect(new Set(orders.map((order) => order.merchantIndex))).toEqual(new Set([0, 1, 2]));
    for (const order of orders.filter((candidate) => candidate.expectation === 'reject')) {
      const broken = [
        !luhnValid(order.body.card.number),
        order.body.amount > 1_000_000,
        order.body.currency === 'GBP',
      ].filter(Boolean);
      expect(broken).toHaveLength(1);
    }
    for (const order of orders.filter((candidate) => candidate.expectation === 'approve')) {
      expect(luhnValid(order.body.card.number)).toBe(true);
      expect(order.body.amount).toBeLessThanOrEqual(1_000_000);
      expect(['EUR', 'USD']).toContain(order.body.currency);
    }
  });

  it('gives the same orders for the same seed', () => {
    const draw = (seed: number) => {
      const random = new SeededRandom(seed);
      return Array.from({ length: 20 }, () => planOrder(random, 3, defaultLoadSettings));
    };
    expect(draw(9)).toEqual(draw(9));
  });
});
