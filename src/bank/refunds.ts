import assert from 'node:assert/strict';
import type { Random } from '../runtime/random.js';
import { strikes } from './authorization.js';
import type { BankFaults, RefundRequestBody } from './bank-protocol.js';
import type { BankLedger, DecidedPayment, PaymentRecord, RefundRecord } from './ledger.js';

/**
 * How the bank answers one `POST /v1/refunds`: deduplicate by the refund's reference, then check it
 * against the payment it refunds, then decide, then record — all in one ledger transaction, so two
 * refunds of one payment can never both fit in what remains of it.
 *
 * A refund gives back part or all of an approved payment: the succeeded refunds of a payment never
 * add up to more than its amount. Faults are the payments' own (`BankFaults`), drawn at the same
 * points: `errorRate` before anything is looked at, `declineRate` as the decision (`failed`,
 * `refund_declined`), `timeoutRate` after the record is written. A known reference gets its first
 * answer, untouched by faults.
 */

export type RefundOutcome =
  /** The bank's answer: `firstTime` says whether this request created it. */
  | {
      readonly kind: 'answered';
      readonly record: RefundRecord;
      readonly firstTime: boolean;
      readonly hold: boolean;
    }
  /** The reference is known with another payment, amount or currency; nothing moved. */
  | { readonly kind: 'conflict'; readonly record: RefundRecord }
  /** The bank never saw a payment of `paymentReference`; nothing recorded. */
  | { readonly kind: 'payment_unknown' }
  /** The payment was declined, or its reference cancelled: nothing was charged to give back. */
  | { readonly kind: 'payment_not_approved'; readonly payment: PaymentRecord }
  /** The refund's currency is not the payment's; nothing recorded. */
  | { readonly kind: 'currency_mismatch'; readonly payment: DecidedPayment }
  /** The refund would take the payment's succeeded refunds above its amount; nothing recorded. */
  | { readonly kind: 'exceeds_payment'; readonly payment: DecidedPayment; readonly remaining: number }
  /** The `errorRate` fault struck: nothing processed, nothing recorded but the rejection's count. */
  | { readonly kind: 'unavailable' };

function matches(record: RefundRecord, request: RefundRequestBody): boolean {
  return (
    record.paymentReference === request.paymentReference &&
    record.amount === request.amount &&
    record.currency === request.currency
  );
}

/**
 * Processes one refund in one ledger transaction of its own: the answer is durable before the
 * caller sends it, and nothing can slip in between the checks and the insert.
 */
export function processRefund(
  ledger: BankLedger,
  request: RefundRequestBody,
  nowMs: number,
  faults: BankFaults,
  random: Random,
): RefundOutcome {
  return ledger.transaction(() => refundPayment(ledger, request, nowMs, faults, random));
}

/**
 * Decides one refund and records it inside the caller's ledger transaction (the server runs many
 * in one); the answer may be sent only once that transaction has committed.
 */
export function refundPayment(
  ledger: BankLedger,
  request: RefundRequestBody,
  nowMs: number,
  faults: BankFaults,
  random: Random,
): RefundOutcome {
  assert.ok(ledger.inTransaction, 'a refund is decided inside a ledger transaction');
  const known = ledger.countRefundRequest(request.reference, nowMs);
  if (known !== undefined) {
    return matches(known, request)
      ? { kind: 'answered', record: known, firstTime: false, hold: false }
      : { kind: 'conflict', record: known };
  }
  const payment = ledger.find(request.paymentReference);
  if (strikes(random, faults.errorRate)) {
    ledger.countRejectedRequest(payment?.merchantId ?? '');
    return { kind: 'unavailable' };
  }
  if (payment === undefined) return { kind: 'payment_unknown' };
  if (payment.status !== 'approved') return { kind: 'payment_not_approved', payment };
  if (payment.currency !== request.currency) return { kind: 'currency_mismatch', payment };
  const remaining = payment.amount - ledger.refundedAmount(payment.reference);
  assert.ok(remaining >= 0, `payment ${payment.reference} is refunded beyond its amount`);
  if (request.amount > remaining) return { kind: 'exceeds_payment', payment, remaining };
  const failed = strikes(random, faults.declineRate);
  const record: RefundRecord = {
    reference: request.reference,
    paymentReference: payment.reference,
    merchantId: payment.merchantId,
    amount: request.amount,
    currency: payment.currency,
    ...(failed ? { status: 'failed', failureReason: 'refund_declined' } : { status: 'succeeded' }),
    createdAt: nowMs,
    updatedAt: nowMs,
    requestCount: 1,
  };
  ledger.insertRefund(record);
  return { kind: 'answered', record, firstTime: true, hold: strikes(random, faults.timeoutRate) };
}
