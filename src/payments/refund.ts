import { hash } from 'node:crypto';
import type { Currency } from './money.js';

/**
 * A refund: part or all of an executed order given back to the card, the seed's compensating
 * transaction. `pending` until the bank answers, then `succeeded` (the money went back) or
 * `failed` (nothing moved; `failureReason` says why). The refund id is also its reference at the
 * bank, which gives a reference back at most once.
 */
export type RefundStatus = 'pending' | 'succeeded' | 'failed';

export const refundStatuses: readonly RefundStatus[] = ['pending', 'succeeded', 'failed'];

/** The longest `reason` a client may give a refund (free text, shown back as given). */
export const refundReasonLengthMax = 500;

export interface Refund {
  readonly id: string;
  readonly orderId: string;
  readonly merchantId: string;
  readonly idempotencyKey: string;
  /** Fingerprint of the request body: tells a replay from a reuse of the key with another body. */
  readonly requestHash: string;
  readonly status: RefundStatus;
  readonly amount: bigint;
  readonly currency: Currency;
  /** The client's reason, as given. */
  readonly reason: string | undefined;
  /** Why a `failed` refund failed: the bank's stable code (`refund_declined`, or a refusal's code). */
  readonly failureReason: string | undefined;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/**
 * The refund id is derived from the merchant, the order and the client's idempotency key (keys
 * are scoped to the order they refund), so a retry names the same refund everywhere — in the
 * order's Payment entity, the Executor, the read model and at the bank, where it is the refund's
 * reference — without a lookup table. It embeds the order id's digits, so the id alone finds the
 * Payment that holds it (`orderIdOfRefund`) while the read model has yet to show it.
 */
export function refundIdFor(merchantId: string, orderId: string, idempotencyKey: string): string {
  const digest = hash('sha256', `refund\u0000${merchantId}\u0000${orderId}\u0000${idempotencyKey}`, 'hex');
  return `${refundIdPrefix}${orderId.slice(orderIdPrefix.length)}_${digest.slice(0, refundDigestDigits)}`;
}

/** The order a refund id was made for; undefined for a string that is not a refund id. */
export function orderIdOfRefund(refundId: string): string | undefined {
  const match = refundIdPattern.exec(refundId);
  return match?.[1] === undefined ? undefined : `${orderIdPrefix}${match[1]}`;
}

const orderIdPrefix = 'ord_';
const refundIdPrefix = 're_';
const refundDigestDigits = 16;
const refundIdPattern = /^re_([0-9a-z]{26})_[0-9a-f]{16}$/;
