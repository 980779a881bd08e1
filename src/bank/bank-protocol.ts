/**
 * The bank simulator's wire protocol: the shapes of its JSON bodies, shared by the server (which
 * validates requests with Fastify JSON schemas) and the client (which parses answers with zod).
 */

export const declineReasons = [
  'card_declined',
  'insufficient_funds',
  'expired_card',
  'do_not_honor',
] as const;
export type DeclineReason = (typeof declineReasons)[number];

export type PaymentStatus = 'approved' | 'declined';

/** Every `code` a problem+json answer of the bank can carry. Clients may branch on these. */
export const problemCodes = [
  'invalid_request',
  'malformed_json',
  'unsupported_media_type',
  'payload_too_large',
  'invalid_card',
  'reference_conflict',
  'payment_not_found',
  'route_not_found',
  'bank_unavailable',
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
export interface PaymentRequestBody {
  readonly reference: string;
  readonly merchantId: string;
  readonly amount: number;
  readonly currency: string;
  readonly card: {
    readonly number: string;
    readonly expMonth: number;
    readonly expYear: number;
  };
}

/** The answer to `POST /v1/payments`: the first answer the bank gave for the reference. */
export interface PaymentAnswerBody {
  readonly reference: string;
  readonly status: PaymentStatus;
  readonly authorizationCode?: string;
  readonly declineReason?: DeclineReason;
}

/** `GET /v1/payments/:reference`: the ledger entry. Times are ISO 8601 in UTC. */
export interface PaymentRecordBody extends PaymentAnswerBody {
  readonly merchantId: string;
  readonly amount: number;
  readonly currency: string;
  readonly cardBrand: string;
  readonly cardBin: string;
  readonly cardLast4: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly requestCount: number;
}

/**
 * A sum of amounts. It is a JSON integer while it fits in a double exactly; a larger sum is sent as
 * a string of decimal digits rather than rounded, because the ledger is the ground truth.
 */
export type AmountTotal = number | string;

export interface LedgerTotalsBody {
  readonly payments: number;
  readonly approved: number;
  readonly declined: number;
  /** Every POST that reached a known or newly recorded reference, first ones included. */
  readonly requests: number;
  /** Requests beyond the first per reference (repeats and conflicts); none of them charged. */
  readonly duplicateRequests: number;
  /** Requests refused with 503 by the `errorRate` fault: not processed, nothing recorded. */
  readonly rejectedRequests: number;
  readonly approvedAmountByCurrency: Readonly<Record<string, AmountTotal>>;
}

export interface LedgerReportBody {
  readonly payments: readonly PaymentRecordBody[];
  readonly totals: LedgerTotalsBody;
}

/** Faults injected into later `POST /v1/payments` of references the bank has not seen. */
export interface BankFaults {
  /** Wait this long after committing, before answering (also for repeats). */
  readonly latencyMs: number;
  /** Chance that a would-be-approved payment is declined with `do_not_honor`. */
  readonly declineRate: number;
  /** Chance of a 503 `bank_unavailable` without processing or recording anything. */
  readonly errorRate: number;
  /** Chance the payment is processed and committed but the answer is never sent. */
  readonly timeoutRate: number;
}

export const noFaults: BankFaults = { latencyMs: 0, declineRate: 0, errorRate: 0, timeoutRate: 0 };
