import { demoMerchants } from '../node/demo-merchants.js';
import type { Currency } from '../payments/money.js';
import { orderIdFor } from '../payments/order.js';
import { assertNever } from '../runtime/assert-never.js';
import type { Random } from '../runtime/random.js';
import { refusedCard } from './sim-bank.js';

/** The three merchants of the demo, each with its own acquiring bank (and so its own Executor). */
export const simMerchants = demoMerchants;

/** An order request as a client sends it (the body OrderService fingerprints). */
export interface ClientOrderRequest {
  readonly amount: number;
  readonly currency: Currency;
  readonly card: {
    readonly number: string;
    readonly expMonth: number;
    readonly expYear: number;
    readonly cvc: string;
  };
  readonly description?: string;
  readonly reference?: string;
}

/** What the order is meant to test; only for the trace and the stats. */
export type OrderKind =
  | 'approved'
  | 'declined'
  | 'refused'
  | 'luhn_invalid'
  | 'expired'
  | 'bin_blocked'
  | 'over_limit'
  | 'currency'
  | 'zero_amount';

/** One client request: a key and a body, sent at `at` and retried until it gets an answer. */
export interface WorkloadRequest {
  readonly merchantId: string;
  readonly idempotencyKey: string;
  readonly orderId: string;
  readonly kind: OrderKind;
  readonly body: ClientOrderRequest;
  /** `retry`: the same body again (a client retrying); `other-body`: the key reused with another body. */
  readonly variant: 'first' | 'retry' | 'other-body';
  /** Milliseconds after the seed's start. */
  readonly at: number;
}

const approvedCards = [
  '4242424242424242',
  '5555555555554444',
  '4111111111111111',
  '378282246310005',
  '6011111111111117',
];
const declinedCards = ['4000000000000002', '4000000000009995'];
/** Luhn-valid with the demo merchants' blocked BIN 999999. */
const blockedBinCard = '9999990000000014';

const kinds: ReadonlyArray<readonly [OrderKind, number]> = [
  ['approved', 60],
  ['declined', 12],
  ['refused', 3],
  ['luhn_invalid', 5],
  ['expired', 4],
  ['bin_blocked', 3],
  ['over_limit', 4],
  ['currency', 5],
  ['zero_amount', 2],
];

function pickKind(random: Random): OrderKind {
  const total = kinds.reduce((sum, [, weight]) => sum + weight, 0);
  let roll = random.int(total);
  for (const [kind, weight] of kinds) {
    if (roll < weight) return kind;
    roll -= weight;
  }
  return 'approved';
}

function pick<T>(random: Random, values: readonly T[]): T {
  const value = values[random.int(values.length)];
  if (value === undefined) throw new Error('pick from an empty list');
  return value;
}

function bodyOf(kind: OrderKind, random: Random): ClientOrderRequest {
  const amount = 100 + random.int(50_000);
  const currency: Currency = random.chance(0.7) ? 'EUR' : 'USD';
  const card = (number: string, expYear = 2030) => ({
    number,
    expMonth: 1 + random.int(12),
    expYear,
    cvc: '123',
  });
  switch (kind) {
    case 'approved':
      return { amount, currency, card: card(pick(random, approvedCards)) };
    case 'declined':
      return { amount, currency, card: card(pick(random, declinedCards)) };
    case 'refused':
      return { amount, currency, card: card(refusedCard) };
    case 'luhn_invalid':
      return { amount, currency, card: card('4242424242424241') };
    case 'expired':
      return { amount, currency, card: card(pick(random, approvedCards), 2024) };
    case 'bin_blocked':
      return { amount, currency, card: card(blockedBinCard) };
    case 'over_limit':
      return { amount: 1_000_001 + random.int(1_000), currency, card: card(pick(random, approvedCards)) };
    case 'currency':
      return { amount, currency: 'GBP', card: card(pick(random, approvedCards)) };
    case 'zero_amount':
      return { amount: 0, currency, card: card(pick(random, approvedCards)) };
    default:
      return assertNever(kind);
  }
}

export interface WorkloadSettings {
  readonly ordersMin: number;
  readonly ordersMax: number;
  /** Requests are sent within [0, sendWithinMs). */
  readonly sendWithinMs: number;
}

/**
 * A seed's client traffic: orders to the three merchants, a mix of cards that approve, decline,
 * get refused by the bank or rejected by the rules; some sent again with the same key and body (a
 * client retrying on its own), a few with the same key and another body (a client bug the gateway
 * must refuse). Sorted by send time; ties keep generation order.
 */
export function generateWorkload(random: Random, settings: WorkloadSettings): WorkloadRequest[] {
  const count = settings.ordersMin + random.int(settings.ordersMax - settings.ordersMin + 1);
  const requests: WorkloadRequest[] = [];
  for (let index = 0; index < count; index++) {
    const merchant = pick(random, simMerchants);
    const idempotencyKey = `key-${index}`;
    const orderId = orderIdFor(merchant.id, idempotencyKey);
    const kind = pickKind(random);
    const body = bodyOf(kind, random);
    const at = random.int(settings.sendWithinMs);
    const base = { merchantId: merchant.id, idempotencyKey, orderId, kind };
    requests.push({ ...base, body, variant: 'first', at });
    if (random.chance(0.15)) {
      requests.push({ ...base, body, variant: 'retry', at: at + random.int(settings.sendWithinMs) });
    }
    if (random.chance(0.05)) {
      // Before or after the first: whichever the Merchant sees first creates the order.
      const other = { ...body, amount: body.amount + 1 + random.int(100) };
      requests.push({ ...base, body: other, variant: 'other-body', at: random.int(settings.sendWithinMs) });
    }
  }
  return requests
    .map((request, order) => ({ request, order }))
    .sort((left, right) => left.request.at - right.request.at || left.order - right.order)
    .map(({ request }) => request);
}

/** A client's refund of an order it sent: one key, one amount, sent at `at`, retried until answered. */
export interface RefundWorkload {
  readonly merchantId: string;
  readonly orderId: string;
  readonly idempotencyKey: string;
  readonly amount: number;
  readonly at: number;
}

/**
 * Refunds of a share of the orders meant to be approved, each some time after the order: in full,
 * in two parts that add up to the amount, or one unit more than the amount (refused) and then in
 * full. A refund of an order not executed yet is refused (`order_not_refundable`) and sent again.
 */
export function generateRefunds(
  random: Random,
  orders: readonly WorkloadRequest[],
  settings: { readonly refundRate: number; readonly sendWithinMs: number },
): RefundWorkload[] {
  const refunds: RefundWorkload[] = [];
  for (const order of orders) {
    if (order.variant !== 'first' || order.kind !== 'approved' || !random.chance(settings.refundRate))
      continue;
    const amount = order.body.amount;
    const part = 1 + random.int(amount - 1);
    const shape = random.int(3);
    const amounts = shape === 0 ? [amount] : shape === 1 ? [part, amount - part] : [amount + 1, amount];
    let at = order.at + random.int(settings.sendWithinMs);
    for (const [index, value] of amounts.entries()) {
      refunds.push({
        merchantId: order.merchantId,
        orderId: order.orderId,
        idempotencyKey: `${order.idempotencyKey}-refund-${index}`,
        amount: value,
        at,
      });
      at += random.int(settings.sendWithinMs / 4);
    }
  }
  return refunds.sort((left, right) => left.at - right.at);
}
