import assert from 'node:assert/strict';
import type { Random } from '../runtime/random.js';
import type { BankFaults, DeclineReason, PaymentRequestBody } from './bank-protocol.js';
import { cardExpired, cardFingerprint, luhnValid, sameCard } from './card.js';
import type { BankLedger, CancelledPayment, DecidedPayment } from './ledger.js';

/**
 * How the bank answers one `POST /v1/payments`: deduplicate by reference (a cancelled reference
 * stays refused), then decide, then record.
 * The decision is a pure function of the card, the time and the injected Random, so a seeded
 * simulation replays the same answers.
 */

/** Test cards with a fixed answer, as acquirers' sandboxes have them. */
export const testCards: Readonly<Record<string, DeclineReason>> = {
  '4000000000000002': 'card_declined',
  '4000000000009995': 'insufficient_funds',
};

export const authorizationCodeLength = 6;
const authorizationCodeAlphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

export type Decision =
  | { readonly status: 'approved'; readonly authorizationCode: string }
  | { readonly status: 'declined'; readonly declineReason: DeclineReason };

export type PaymentOutcome =
  /** The bank's answer: `firstTime` says whether this request created it. */
  | {
      readonly kind: 'answered';
      readonly record: DecidedPayment;
      readonly firstTime: boolean;
      readonly hold: boolean;
    }
  /** The reference is known with another merchant, amount, currency or card; nothing charged. */
  | { readonly kind: 'conflict'; readonly record: DecidedPayment }
  /** The reference was cancelled before any payment: refused, nothing charged. */
  | { readonly kind: 'cancelled'; readonly record: CancelledPayment }
  /** A new reference with a card number that fails the Luhn check; nothing recorded. */
  | { readonly kind: 'invalid_card' }
  /** The `errorRate` fault struck: nothing processed, nothing recorded. */
  | { readonly kind: 'unavailable' };

/** Draws only for rates above zero, so a run with faults off takes nothing from the Random. */
export function strikes(random: Random, rate: number): boolean {
  return rate > 0 && random.chance(rate);
}

export function authorizationCode(random: Random): string {
  let code = '';
  for (let index = 0; index < authorizationCodeLength; index++) {
    code += authorizationCodeAlphabet.charAt(random.int(authorizationCodeAlphabet.length));
  }
  return code;
}

/** The answer for a Luhn-valid card of a reference the bank has not seen. */
export function decide(
  card: PaymentRequestBody['card'],
  nowMs: number,
  faults: BankFaults,
  random: Random,
): Decision {
  if (cardExpired(card.expMonth, card.expYear, nowMs))
    return { status: 'declined', declineReason: 'expired_card' };
  const testDecline = testCards[card.number];
  if (testDecline !== undefined) return { status: 'declined', declineReason: testDecline };
  if (strikes(random, faults.declineRate)) return { status: 'declined', declineReason: 'do_not_honor' };
  return { status: 'approved', authorizationCode: authorizationCode(random) };
}

function matches(record: DecidedPayment, request: PaymentRequestBody): boolean {
  return (
    record.merchantId === request.merchantId &&
    record.amount === request.amount &&
    record.currency === request.currency &&
    // A Luhn-invalid number can never be the stored, Luhn-valid card, even with the same BIN and
    // last four, so it is a conflict rather than a repeat.
    luhnValid(request.card.number) &&
    sameCard(record.card, cardFingerprint(request.card.number))
  );
}

/**
 * Processes one payment request in one ledger transaction of its own, so the answer is durable
 * before the caller sends it, and a repeat can never slip in between the lookup and the insert.
 */
export function processPayment(
  ledger: BankLedger,
  request: PaymentRequestBody,
  nowMs: number,
  faults: BankFaults,
  random: Random,
): PaymentOutcome {
  return ledger.transaction(() => authorizePayment(ledger, request, nowMs, faults, random));
}

/**
 * Decides one payment request and records it, inside the caller's ledger transaction (the server
 * runs many in one): the transaction holds the lookup and the insert together, and the answer
 * may be sent only once it has committed.
 */
export function authorizePayment(
  ledger: BankLedger,
  request: PaymentRequestBody,
  nowMs: number,
  faults: BankFaults,
  random: Random,
): PaymentOutcome {
  assert.ok(ledger.inTransaction, 'a payment is decided inside a ledger transaction');
  // Every request for a known reference counts, conflicting ones too; faults never apply to it.
  const known = ledger.countRequest(request.reference, nowMs);
  if (known !== undefined) {
    // Whatever this request says: the reference is settled, and settled as not charged.
    if (known.status === 'cancelled') return { kind: 'cancelled', record: known };
    return matches(known, request)
      ? { kind: 'answered', record: known, firstTime: false, hold: false }
      : { kind: 'conflict', record: known };
  }
  if (strikes(random, faults.errorRate)) {
    ledger.countRejectedRequest(request.merchantId);
    return { kind: 'unavailable' };
  }
  if (!luhnValid(request.card.number)) return { kind: 'invalid_card' };
  const decision = decide(request.card, nowMs, faults, random);
  const record: DecidedPayment = {
    reference: request.reference,
    merchantId: request.merchantId,
    amount: request.amount,
    currency: request.currency,
    ...decision,
    card: cardFingerprint(request.card.number),
    createdAt: nowMs,
    updatedAt: nowMs,
    requestCount: 1,
  };
  ledger.insert(record);
  return { kind: 'answered', record, firstTime: true, hold: strikes(random, faults.timeoutRate) };
}
