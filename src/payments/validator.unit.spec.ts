import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { visaCardSummary } from '../testing/fixtures/card-summary.js';
import { brandOf, type CardSummary, cardExpired, luhnValid } from './card.js';
import { formatMoney } from './money.js';
import { type MerchantConfig, type OrderFacts, validateOrder, validatorRulesVersion } from './validator.js';

const now = Date.UTC(2026, 10, 24, 12, 0, 0);

const config: MerchantConfig = {
  bank: 'bank-a',
  currencies: [
    { currency: 'EUR', perOrderLimit: 1_000_000n },
    { currency: 'USD', perOrderLimit: 500_000n },
  ],
  blockedBins: ['666666'],
  velocity: { maxOrdersPerCard: 3, windowMs: 60_000 },
};

const card: CardSummary = visaCardSummary('tok_test');

const order = (overrides: Partial<OrderFacts> = {}): OrderFacts => ({
  amount: 1_000n,
  currency: 'EUR',
  card,
  ...overrides,
});

describe('Validator', () => {
  it('accepts a good order and routes it to the merchant bank, with the rules version', () => {
    expect(validateOrder(order(), config, 0, now)).toEqual({
      kind: 'valid',
      bank: 'bank-a',
      rulesVersion: validatorRulesVersion,
    });
  });

  it.each([
    ['amount_not_positive', order({ amount: 0n }), 0],
    ['amount_over_limit', order({ amount: 1_000_001n }), 0],
    ['currency_not_supported', order({ currency: 'GBP' }), 0],
    ['card_number_invalid', order({ card: { ...card, luhnValid: false } }), 0],
    ['card_expired', order({ card: { ...card, expMonth: 10, expYear: 2026 } }), 0],
    ['card_bin_blocked', order({ card: { ...card, bin: '666666' } }), 0],
    ['velocity_exceeded', order(), 3],
  ] as const)('rejects with %s', (reason, facts, recent) => {
    expect(validateOrder(facts, config, recent, now)).toEqual({
      kind: 'rejected',
      reason,
      rulesVersion: validatorRulesVersion,
    });
  });

  it('applies the per-currency limit inclusively', () => {
    expect(validateOrder(order({ currency: 'USD', amount: 500_000n }), config, 0, now).kind).toBe('valid');
    expect(validateOrder(order({ currency: 'USD', amount: 500_001n }), config, 0, now).kind).toBe('rejected');
  });

  it('is deterministic: the same inputs always give the same verdict', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: -10n, max: 2_000_000n }),
        fc.integer({ min: 0, max: 5 }),
        (amount, recent) => {
          const facts = order({ amount });
          expect(validateOrder(facts, config, recent, now)).toEqual(
            validateOrder(facts, config, recent, now),
          );
        },
      ),
    );
  });
});

describe('card facts', () => {
  it('checks Luhn', () => {
    expect(luhnValid('4242424242424242')).toBe(true);
    expect(luhnValid('4000000000000002')).toBe(true);
    expect(luhnValid('4242424242424241')).toBe(false);
    expect(luhnValid('42424242')).toBe(false);
    expect(luhnValid('4242a24242424242')).toBe(false);
  });

  it('names brands', () => {
    expect(brandOf('4242424242424242')).toBe('visa');
    expect(brandOf('5555555555554444')).toBe('mastercard');
    expect(brandOf('2223003122003222')).toBe('mastercard');
    expect(brandOf('378282246310005')).toBe('amex');
    expect(brandOf('6011111111111117')).toBe('discover');
    expect(brandOf('9999999999999995')).toBe('unknown');
  });

  it('treats a card as valid through the end of its expiry month', () => {
    expect(cardExpired(11, 2026, now)).toBe(false);
    expect(cardExpired(10, 2026, now)).toBe(true);
    expect(cardExpired(1, 2027, now)).toBe(false);
    expect(cardExpired(12, 2025, now)).toBe(true);
  });
});

describe('money', () => {
  it('formats minor units by the currency exponent', () => {
    expect(formatMoney({ amount: 1234n, currency: 'EUR' })).toBe('12.34 EUR');
    expect(formatMoney({ amount: 5n, currency: 'EUR' })).toBe('0.05 EUR');
    expect(formatMoney({ amount: 1234n, currency: 'JPY' })).toBe('1234 JPY');
    expect(formatMoney({ amount: -1500n, currency: 'KWD' })).toBe('-1.500 KWD');
  });
});
