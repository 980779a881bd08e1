import { hash } from 'node:crypto';
import type { CardSummary } from './card.js';
import type { Currency } from './money.js';
import type { BankId, RejectionReason } from './validator.js';

/**
 * An order's lifecycle: `new → validated | rejected`, `validated → executed | declined | failed`.
 * `declined`: the bank said no. `failed`: it could not be executed, and the bank confirmed that
 * nothing was charged.
 */
export type OrderStatus = 'new' | 'validated' | 'rejected' | 'executed' | 'declined' | 'failed';

export const orderStatuses: readonly OrderStatus[] = [
  'new',
  'validated',
  'rejected',
  'executed',
  'declined',
  'failed',
];

export const terminalStatuses: ReadonlySet<OrderStatus> = new Set([
  'rejected',
  'executed',
  'declined',
  'failed',
]);

export function isTerminal(status: OrderStatus): boolean {
  return terminalStatuses.has(status);
}

export type DeclineReason = string;
/**
 * Why an order could not be executed. For the first four the bank confirmed nothing was charged
 * (the reference is cancelled there); `bank_unreachable` means no node holding the bank's
 * credentials acknowledged the order before its deadline, so it was never sent to the bank.
 */
export const failureReasons = [
  'bank_unavailable',
  'deadline_exceeded',
  'card_unavailable',
  'bank_refused',
  'bank_unreachable',
] as const;
export type FailureReason = (typeof failureReasons)[number];

/** An order as the Merchant holds it and as clients see it. Never holds a card number. */
export interface Order {
  readonly id: string;
  readonly merchantId: string;
  readonly idempotencyKey: string;
  /** HMAC of the request body: tells a replay from a reuse of the key with another body. */
  readonly requestHash: string;
  readonly status: OrderStatus;
  readonly amount: bigint;
  readonly currency: Currency;
  readonly card: CardSummary;
  readonly bank: BankId | undefined;
  readonly reference: string | undefined;
  readonly description: string | undefined;
  /** A stable code for `rejected`, `declined` and `failed`. */
  readonly reason: RejectionReason | DeclineReason | FailureReason | undefined;
  readonly authorizationCode: string | undefined;
  readonly rulesVersion: number | undefined;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/**
 * The order id is derived from the merchant and the client's idempotency key, so a retry with the
 * same key names the same order everywhere — in the Merchant, the read model and at the bank
 * (where it is the transaction reference) — without a lookup table that could be lost.
 */
export function orderIdFor(merchantId: string, idempotencyKey: string): string {
  const digest = hash('sha256', `${merchantId}\u0000${idempotencyKey}`, 'buffer');
  // 26 base32 digits are 130 bits: the first 17 bytes of the digest give them all.
  return `ord_${base32(digest.subarray(0, orderIdDigestBytes)).slice(0, orderIdDigits)}`;
}

const orderIdDigits = 26;
const orderIdDigestBytes = Math.ceil((orderIdDigits * 5) / 8);

const base32Alphabet = '0123456789abcdefghjkmnpqrstvwxyz';

function base32(bytes: Uint8Array): string {
  let output = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      output += base32Alphabet[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) output += base32Alphabet[(buffer << (5 - bits)) & 31];
  return output;
}
