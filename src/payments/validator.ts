import { type CardSummary, cardExpired } from './card.js';
import type { Currency } from './money.js';

/**
 * The Validator: deterministic rules over an order, the merchant's configuration and the card's
 * recent activity. Its verdict and `validatorRulesVersion` are persisted with the order, so two
 * nodes (or a replay next year, after the rules changed) can never disagree about one order.
 * Bump the version whenever a rule changes meaning.
 */
export const validatorRulesVersion = 1;

export type BankId = string;

export interface CurrencyLimit {
  readonly currency: Currency;
  /** The largest amount one order may have, in minor units. */
  readonly perOrderLimit: bigint;
}

export interface MerchantConfig {
  readonly bank: BankId;
  readonly currencies: readonly CurrencyLimit[];
  /** Card BINs (first six digits) this merchant refuses. */
  readonly blockedBins: readonly string[];
  /** At most `maxOrdersPerCard` orders per card within `windowMs`. */
  readonly velocity: { readonly maxOrdersPerCard: number; readonly windowMs: number };
}

export type RejectionReason =
  | 'amount_not_positive'
  | 'amount_over_limit'
  | 'currency_not_supported'
  | 'card_number_invalid'
  | 'card_expired'
  | 'card_bin_blocked'
  | 'velocity_exceeded';

export const rejectionReasons: readonly RejectionReason[] = [
  'amount_not_positive',
  'amount_over_limit',
  'currency_not_supported',
  'card_number_invalid',
  'card_expired',
  'card_bin_blocked',
  'velocity_exceeded',
];

export interface OrderFacts {
  readonly amount: bigint;
  readonly currency: Currency;
  readonly card: CardSummary;
}

export type Verdict =
  | { readonly kind: 'valid'; readonly bank: BankId; readonly rulesVersion: number }
  | { readonly kind: 'rejected'; readonly reason: RejectionReason; readonly rulesVersion: number };

/**
 * Rules run in a fixed order and the first that fails names the reason, so the same order always
 * gets the same reason. `recentOrdersForCard` counts this card's orders in the velocity window,
 * not including this one.
 */
export function validateOrder(
  order: OrderFacts,
  config: MerchantConfig,
  recentOrdersForCard: number,
  now: number,
): Verdict {
  const reason = firstFailedRule(order, config, recentOrdersForCard, now);
  if (reason !== undefined) return { kind: 'rejected', reason, rulesVersion: validatorRulesVersion };
  return { kind: 'valid', bank: routeOrder(order, config), rulesVersion: validatorRulesVersion };
}

function firstFailedRule(
  order: OrderFacts,
  config: MerchantConfig,
  recentOrdersForCard: number,
  now: number,
): RejectionReason | undefined {
  if (order.amount <= 0n) return 'amount_not_positive';
  const limit = config.currencies.find((entry) => entry.currency === order.currency);
  if (limit === undefined) return 'currency_not_supported';
  if (order.amount > limit.perOrderLimit) return 'amount_over_limit';
  if (!order.card.luhnValid) return 'card_number_invalid';
  if (cardExpired(order.card.expMonth, order.card.expYear, now)) return 'card_expired';
  if (config.blockedBins.includes(order.card.bin)) return 'card_bin_blocked';
  if (recentOrdersForCard >= config.velocity.maxOrdersPerCard) return 'velocity_exceeded';
  return undefined;
}

/** Routing: the merchant's acquiring bank. (Rules by scheme or currency would go here.) */
export function routeOrder(_order: OrderFacts, config: MerchantConfig): BankId {
  return config.bank;
}
