import type { MerchantConfig } from '../payments/validator.js';

/** The three merchants of the seed, each with its own acquiring bank (and so its own Executor). */
export const demoMerchants = [
  { id: 'merchant-a', bank: 'bank-a' },
  { id: 'merchant-b', bank: 'bank-b' },
  { id: 'merchant-c', bank: 'bank-c' },
] as const;

/** EUR and USD, up to 10,000.00 per order; at most 20 orders per card per minute. */
export function demoConfig(bank: string): MerchantConfig {
  return {
    bank,
    currencies: [
      { currency: 'EUR', perOrderLimit: 1_000_000n },
      { currency: 'USD', perOrderLimit: 1_000_000n },
    ],
    blockedBins: ['999999'],
    velocity: { maxOrdersPerCard: 20, windowMs: 60_000 },
  };
}
