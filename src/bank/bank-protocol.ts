import type { FromSchema } from 'json-schema-to-ts';
import type {
  cancelAnswerSchema,
  cancelRequestSchema,
  faultsSchema,
  ledgerReportSchema,
  paymentAnswerSchema,
  paymentBatchAnswerSchema,
  paymentBatchRequestSchema,
  paymentRecordSchema,
  paymentRequestSchema,
  refundAnswerSchema,
  refundRecordSchema,
  refundRequestSchema,
} from './bank-schemas.js';

/**
 * The bank simulator's wire protocol: the shapes of its JSON bodies. The requests' shapes are
 * their JSON schemas in `bank-schemas.ts` (the server validates with them and its routes are typed
 * from them); the types here are derived from those schemas, never written a second time. The
 * client, the chaos harness and the benchmarks send through `BankClient`, which takes these types.
 */

export const declineReasons = [
  'card_declined',
  'insufficient_funds',
  'expired_card',
  'do_not_honor',
] as const;
export type DeclineReason = (typeof declineReasons)[number];

/**
 * How the bank answers `POST /v1/payments` of a reference cancelled before the bank ever saw a
 * payment for it. It is never a decision the ledger stores: the record stays `cancelled`.
 */
export const referenceCancelled = 'reference_cancelled';
export type AnswerDeclineReason = DeclineReason | typeof referenceCancelled;

/**
 * Why a refund failed: `refund_declined` is the `declineRate` fault applied to a refund, the way an
 * issuer or the scheme can refuse a credit. A failed refund moved no money.
 */
export const refundFailureReasons = ['refund_declined'] as const;
export type RefundFailureReason = (typeof refundFailureReasons)[number];

/** A ledger record's status: `cancelled` marks a reference settled before any payment (a tombstone). */
export type PaymentStatus = 'approved' | 'declined' | 'cancelled';

/** Every `code` a problem+json answer of the bank can carry. Clients may branch on these. */
export const problemCodes = [
  'invalid_request',
  'malformed_json',
  'unsupported_media_type',
  'payload_too_large',
  'invalid_card',
  'reference_conflict',
  'payment_not_found',
  'refund_not_found',
  'refund_payment_unknown',
  'refund_payment_not_approved',
  'refund_currency_mismatch',
  'refund_exceeds_payment',
  'route_not_found',
  'answer_withheld',
  'bank_unavailable',
  'bank_overloaded',
  'ledger_unavailable',
  'internal_error',
] as const;
export type ProblemCode = (typeof problemCodes)[number];

/** RFC 9457 problem details, with a stable machine-readable `code`. */
export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly code: ProblemCode;
  readonly detail: string;
  /** Where in the request the problem is, e.g. `/card/expMonth`, when one field is to blame. */
  readonly param?: string;
}

export const problemContentType = 'application/problem+json; charset=utf-8';

export function problemType(code: ProblemCode): string {
  return `urn:remit:bank:problem:${code}`;
}

/** `POST /v1/payments`. Amount is a JSON integer of minor units, at most MAX_SAFE_INTEGER. */
export type PaymentRequestBody = FromSchema<typeof paymentRequestSchema>;

/**
 * The answer to `POST /v1/payments`: the first answer the bank gave for the reference, never
 * `cancelled` (a cancelled reference is answered as declined with `reference_cancelled`).
 */
export type PaymentAnswerBody = FromSchema<typeof paymentAnswerSchema>;

/** The answer to `POST /v1/payments/:reference/cancel`: `cancelled`, or the answer the reference already had. */
export type CancelAnswerBody = FromSchema<typeof cancelAnswerSchema>;

/**
 * `POST /v1/payments/batch`: several payments in one request, each decided exactly as if it had
 * come alone to `POST /v1/payments` (deduplicated by its reference, faults drawn for it), all of
 * them committed before the answer is sent. One request carries many authorizations, as a
 * processor's multiplexed host link does: the per-request cost of HTTP is paid once per batch.
 */
export type PaymentBatchRequestBody = FromSchema<typeof paymentBatchRequestSchema>;

/**
 * One payment's result in a batch answer, in the order of the request: the answer the single
 * route would give (200 body), or the problem it would answer with (its 4xx or 5xx body), under
 * `problem`. The `timeoutRate` fault cannot drop one payment's answer from a shared response, so
 * a payment it strikes is committed (and may be charged) and answered with the problem
 * `answer_withheld` (504): the caller learns nothing of its outcome and must inquire.
 */
export type PaymentBatchResultBody =
  | PaymentAnswerBody
  | { readonly reference: string; readonly problem: Problem };

export type PaymentBatchAnswerBody = FromSchema<typeof paymentBatchAnswerSchema>;

/**
 * `POST /v1/payments/:reference/cancel`. The body is optional; `merchantId` is only recorded on the
 * tombstone of a reference the bank had not seen, so the ledger can be filtered by it.
 */
export type CancelRequestBody = FromSchema<typeof cancelRequestSchema>;

/**
 * `GET /v1/payments/:reference`: the ledger entry. Times are ISO 8601 in UTC. A `cancelled` record
 * has amount 0 and no currency or card: nothing was ever requested with them.
 */
export type PaymentRecordBody = FromSchema<typeof paymentRecordSchema>;

/**
 * `POST /v1/refunds`: gives back `amount` (minor units, a JSON integer up to MAX_SAFE_INTEGER) of
 * the approved payment `paymentReference`, in its currency. `reference` is the refund's own id and
 * the bank's idempotency key for it: the same reference again gets the first answer and moves no
 * more money; the same reference with another body is refused (409 `reference_conflict`).
 */
export type RefundRequestBody = FromSchema<typeof refundRequestSchema>;

/**
 * The answer to `POST /v1/refunds`: `succeeded` (the money is given back) or `failed` with a
 * `failureReason` (nothing moved), always the first answer the bank gave for the reference.
 */
export type RefundAnswerBody = FromSchema<typeof refundAnswerSchema>;

/** `GET /v1/refunds/:reference`: the ledger's record of a refund. Times are ISO 8601 in UTC. */
export type RefundRecordBody = FromSchema<typeof refundRecordSchema>;

/**
 * A sum of amounts. It is a JSON integer while it fits in a double exactly; a larger sum is sent as
 * a string of decimal digits rather than rounded, because the ledger is the ground truth.
 */
export type AmountTotal = number | string;

/**
 * The ledger's totals: `cancelled` counts tombstones (never charged); `requests` every POST that
 * reached a known or newly recorded reference, first ones included; `duplicateRequests` those
 * beyond the first per reference (none of them charged); `rejectedRequests` those refused with 503
 * by the `errorRate` fault (not processed), refunds included. The `refund…` totals count refunds
 * the same way, apart from payments; `refundedAmountByCurrency` sums the succeeded ones.
 */
export type LedgerReportBody = FromSchema<typeof ledgerReportSchema>;
export type LedgerTotalsBody = LedgerReportBody['totals'];

/**
 * Faults injected into later `POST /v1/payments` and `POST /v1/refunds` of references the bank has
 * not seen, and into `POST /v1/payments/:reference/cancel` as each field says (`faultsSchema` describes each one).
 */
export type BankFaults = Readonly<FromSchema<typeof faultsSchema>>;

export const noFaults: BankFaults = { latencyMs: 0, declineRate: 0, errorRate: 0, timeoutRate: 0 };
