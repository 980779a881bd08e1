import assert from 'node:assert/strict';
import type { Random } from '../runtime/random.js';
import { strikes } from './authorization.js';
import type { BankFaults } from './bank-protocol.js';
import type { BankLedger, PaymentRecord } from './ledger.js';

/**
 * How the bank answers one `POST /v1/payments/:reference/cancel`. A gateway cancels a reference
 * when it gives up on a payment whose fate it does not know (past a deadline, or with the card
 * gone): it needs "nothing was, or ever will be, charged" or else the bank's real answer. So a
 * reference the bank never saw gets a `cancelled` tombstone that refuses any payment arriving
 * later (a delayed or retried request still in the network), and a known reference keeps its
 * record: an approved payment is too late to cancel.
 */

export type CancelOutcome =
  /** The reference's record: a new tombstone when `firstTime`, else what the bank already had. */
  | { readonly kind: 'answered'; readonly record: PaymentRecord; readonly firstTime: boolean }
  /** The `errorRate` fault struck: nothing looked up, nothing recorded but the rejection's count. */
  | { readonly kind: 'unavailable' };

export interface CancelRequest {
  readonly reference: string;
  /** Recorded on a new tombstone only; a known record keeps its own merchant. */
  readonly merchantId: string | undefined;
}

/**
 * Processes one cancel in one ledger transaction of its own: the lookup and the tombstone's insert
 * cannot be split by a payment of the same reference, and the answer is durable before the caller
 * sends it.
 */
export function processCancel(
  ledger: BankLedger,
  request: CancelRequest,
  nowMs: number,
  faults: BankFaults,
  random: Random,
): CancelOutcome {
  return ledger.transaction(() => cancelReference(ledger, request, nowMs, faults, random));
}

/**
 * Cancels one reference inside the caller's ledger transaction (the server runs many in one); the
 * answer may be sent only once that transaction has committed.
 */
export function cancelReference(
  ledger: BankLedger,
  request: CancelRequest,
  nowMs: number,
  faults: BankFaults,
  random: Random,
): CancelOutcome {
  assert.ok(ledger.inTransaction, 'a cancel is decided inside a ledger transaction');
  // Drawn before the lookup, unlike a payment's: a bank that is down cannot answer a cancel for
  // a reference it knows any more than one it does not.
  if (strikes(random, faults.errorRate)) {
    ledger.countRejectedRequest(request.merchantId ?? '');
    return { kind: 'unavailable' };
  }
  const known = ledger.countRequest(request.reference, nowMs);
  if (known !== undefined) return { kind: 'answered', record: known, firstTime: false };
  const record: PaymentRecord = {
    reference: request.reference,
    merchantId: request.merchantId ?? '',
    status: 'cancelled',
    createdAt: nowMs,
    updatedAt: nowMs,
    requestCount: 1,
  };
  ledger.insert(record);
  return { kind: 'answered', record, firstTime: true };
}
