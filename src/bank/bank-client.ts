import assert from 'node:assert/strict';
import { setMaxListeners } from 'node:events';
import { Pool } from 'undici';
import { z } from 'zod';
import type { Cancellable, Clock } from '../runtime/clock.js';
import { systemClock } from '../runtime/clock.js';
import {
  BankAnswerWithheldError,
  BankConnectionLostError,
  BankMalformedResponseError,
  type BankOperation,
  BankRejectedError,
  BankTimeoutError,
  BankUnavailableError,
} from './bank-errors.js';
import type {
  BankFaults,
  CancelRequestBody,
  LedgerReportBody,
  PaymentBatchAnswerBody,
  PaymentBatchRequestBody,
  PaymentRequestBody,
  Problem,
  RefundAnswerBody,
  RefundRecordBody,
  RefundRequestBody,
} from './bank-protocol.js';
import { batchPaymentsMax } from './bank-schemas.js';
import { CallBatches, type CallResult } from './call-batches.js';

/**
 * The gateway's connection to the acquiring bank (simulator): one keep-alive connection pool, a
 * deadline on every call, and answers parsed with zod and typed by what the caller must do next
 * (see bank-errors.ts). The payment's reference is the bank's idempotency key, so the same
 * reference is never charged twice, whatever this client or its caller gets wrong.
 *
 * Authorizations travel in batches (`POST /v1/payments/batch`): those asked for in one turn of the
 * event loop share one request, and at most `authorizationBatchesInFlightMax` requests are out at
 * once. Each authorization still settles on its own, with its own answer or error: a batch that
 * fails as a whole fails each of its payments as a single request failing the same way would
 * (a timeout: each outcome unknown), and a batch the bank refuses as a request (a 4xx: nothing was
 * processed) is sent again one payment per request, so one bad payment cannot sink the others.
 */

export interface BankClientOptions {
  /** The bank's base URL, e.g. `http://127.0.0.1:4100`; a path prefix is kept. */
  readonly baseUrl: string;
  /** A call with no complete answer by then fails with BankTimeoutError (an unknown outcome). */
  readonly requestTimeoutMs: number;
  /** Keep-alive connections to the bank. */
  readonly connections?: number;
  /** Calls in flight (queued in the pool included); beyond it a call fails at once, unsent. */
  readonly inFlightRequestsMax?: number;
  /**
   * Calls started within this long of each other share one deadline: one timer and one abort
   * signal, so each call's deadline falls between `requestTimeoutMs` and `requestTimeoutMs` + this.
   */
  readonly deadlineSharingMs?: number;
  /**
   * Most authorizations one request carries (at most the bank's `batchPaymentsMax`); 1 sends each
   * alone to `POST /v1/payments`.
   */
  readonly authorizationBatchMax?: number;
  /** Most batch requests out at once; authorizations asked for meanwhile wait and join the next. */
  readonly authorizationBatchesInFlightMax?: number;
  /** Runs the deadlines; tests and simulations inject their own. */
  readonly clock?: Clock;
}

export const defaultBankClientConnections = 16;
export const defaultInFlightRequestsMax = 1_024;
/**
 * At ~2,000 orders/s the Executors release ~20 authorizations per turn; a batch request of up to
 * 256 costs the bank and this process about one request's HTTP work instead of one per payment.
 */
export const defaultAuthorizationBatchMax = 256;
export const defaultAuthorizationBatchesInFlightMax = 4;
/**
 * Calls started within this window share one deadline timer and abort signal: a timer and an
 * `AbortController` per call live as long as the call, long enough to outlive a scavenge, and were
 * ~11 % of what the gateway's main thread promoted to its old generation at 800 orders/s
 * (bench/README.md).
 */
export const defaultDeadlineSharingMs = 50;
/**
 * An idle connection is dropped after this long: below the simulator's keep-alive timeout
 * (5 s), so the client does not reuse a socket the server is closing at that very moment.
 */
export const bankClientKeepAliveTimeoutMs = 4_000;
/** Largest answer read for a payment call or a faults call. */
export const answerBodyBytesMax = 64 * 1024;
/** Largest answer read for a batch of payments (at most `batchPaymentsMax` results). */
export const batchAnswerBodyBytesMax = 4 * 1024 * 1024;
/** Largest ledger report read: it lists every payment, and is meant for tests and harnesses. */
export const ledgerBodyBytesMax = 256 * 1024 * 1024;
/** Longest piece of a server's problem detail quoted in an error message. */
const quotedDetailLengthMax = 200;

export interface BankCard {
  readonly number: string;
  readonly expMonth: number;
  readonly expYear: number;
}

export interface AuthorizeRequest {
  readonly reference: string;
  readonly merchantId: string;
  /** Minor units; must be > 0 and at most Number.MAX_SAFE_INTEGER to travel as a JSON integer. */
  readonly amount: bigint;
  readonly currency: string;
  readonly card: BankCard;
}

export type BankAnswer =
  | { readonly kind: 'approved'; readonly reference: string; readonly authorizationCode: string }
  // Any reason string is accepted: a reason this build does not know is still a terminal decline.
  | { readonly kind: 'declined'; readonly reference: string; readonly declineReason: string };

/** What a reference came to: an answer, or cancelled before the bank saw any payment for it. */
export type BankResolution = BankAnswer | { readonly kind: 'cancelled'; readonly reference: string };

export type InquiryAnswer = BankResolution | { readonly kind: 'not_found'; readonly reference: string };

export interface RefundRequest {
  /** The refund's own id: the bank's idempotency key for it. */
  readonly reference: string;
  /** The reference of the approved payment it gives money back from. */
  readonly paymentReference: string;
  /** Minor units; must be > 0 and at most Number.MAX_SAFE_INTEGER to travel as a JSON integer. */
  readonly amount: bigint;
  readonly currency: string;
}

/** What a refund came to: money given back (`succeeded`), or none (`failed`, with the bank's reason). */
export type RefundAnswer =
  | {
      readonly kind: 'succeeded';
      readonly reference: string;
      readonly paymentReference: string;
      readonly amount: bigint;
      readonly currency: string;
    }
  | {
      readonly kind: 'failed';
      readonly reference: string;
      readonly paymentReference: string;
      readonly amount: bigint;
      readonly currency: string;
      // Any reason string is accepted: a reason this build does not know is still a failure.
      readonly failureReason: string;
    };

export type RefundInquiryAnswer = RefundAnswer | { readonly kind: 'not_found'; readonly reference: string };

const approvedSchema = z.object({
  reference: z.string(),
  status: z.literal('approved'),
  authorizationCode: z.string().min(1),
});
const declinedSchema = z.object({
  reference: z.string(),
  status: z.literal('declined'),
  declineReason: z.string().min(1),
});
const cancelledSchema = z.object({ reference: z.string(), status: z.literal('cancelled') });

const resolutionSchema = z.discriminatedUnion('status', [approvedSchema, declinedSchema, cancelledSchema]);

const problemSchema = z.object({ code: z.string().min(1), detail: z.string().optional() });

/**
 * A batch answer, read loosely here and each result strictly later: one unreadable result is an
 * unknown outcome for its payment only.
 */
const batchAnswerSchema = z.object({
  results: z.array(
    // Loose: the answer's own fields stay, for the strict per-result read.
    z.looseObject({
      reference: z.string(),
      problem: z
        .object({ status: z.number().int(), code: z.string().min(1), detail: z.string().optional() })
        .optional(),
    }),
  ),
});
type BatchResult = z.output<typeof batchAnswerSchema>['results'][number];

/** An amount or a total: a JSON integer, or a string of digits when too large for a double. */
const amountSchema = z
  .union([z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER), z.string().regex(/^[0-9]+$/)])
  .transform((value) => BigInt(value));

const paymentRecordSchema = z.object({
  reference: z.string(),
  merchantId: z.string(),
  amount: amountSchema,
  // Absent from a cancelled record, which never had them.
  currency: z.string().optional(),
  status: z.enum(['approved', 'declined', 'cancelled']),
  authorizationCode: z.string().optional(),
  declineReason: z.string().optional(),
  cardBrand: z.string().optional(),
  cardBin: z.string().optional(),
  cardLast4: z.string().optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
  requestCount: z.number().int().positive(),
});

const count = z.number().int().nonnegative();

const refundCommon = {
  reference: z.string(),
  paymentReference: z.string(),
  amount: amountSchema,
  currency: z.string(),
};

/** A failure without its reason is read here and refused by `refundOf` (an unreadable answer). */
const refundAnswerSchema = z.object({
  ...refundCommon,
  status: z.enum(['succeeded', 'failed']),
  failureReason: z.string().optional(),
});

const refundRecordSchema = z.object({
  ...refundAnswerSchema.shape,
  merchantId: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
  requestCount: z.number().int().positive(),
});

const ledgerReportSchema = z.object({
  payments: z.array(paymentRecordSchema),
  refunds: z.array(refundRecordSchema),
  totals: z.object({
    payments: count,
    approved: count,
    declined: count,
    cancelled: count,
    requests: count,
    duplicateRequests: count,
    rejectedRequests: count,
    approvedAmountByCurrency: z.record(z.string(), amountSchema),
    refunds: count,
    refundsSucceeded: count,
    refundsFailed: count,
    refundRequests: count,
    duplicateRefundRequests: count,
    refundedAmountByCurrency: z.record(z.string(), amountSchema),
  }),
});

const faultsSchema = z.object({
  latencyMs: count,
  declineRate: z.number().min(0).max(1),
  errorRate: z.number().min(0).max(1),
  timeoutRate: z.number().min(0).max(1),
});

/**
 * The readers above are tolerant (a decline reason this build does not know is still a decline),
 * so they are not the bank's schemas; but every answer the bank's schemas allow must be one they
 * take. Checked by the compiler: a change to `bank-schemas.ts` the client could not read fails here.
 */
type Reads<Reader extends z.ZodType, Body> = [Body] extends [z.input<Reader>] ? true : false;
type Holds<Check extends true> = Check;
export type ReadersTakeTheBanksAnswers = [
  Holds<Reads<typeof problemSchema, Problem>>,
  Holds<Reads<typeof batchAnswerSchema, PaymentBatchAnswerBody>>,
  Holds<Reads<typeof ledgerReportSchema, LedgerReportBody>>,
  Holds<Reads<typeof faultsSchema, BankFaults>>,
  Holds<Reads<typeof refundAnswerSchema, RefundAnswerBody>>,
  Holds<Reads<typeof refundRecordSchema, RefundRecordBody>>,
];

/** A ledger entry as the client reads it; amounts are bigint minor units. */
export type BankPaymentRecord = z.output<typeof paymentRecordSchema>;
export type BankLedgerReport = z.output<typeof ledgerReportSchema>;
/** A refund's ledger entry as the client reads it; the amount is bigint minor units. */
export type BankRefundRecord = z.output<typeof refundRecordSchema>;

interface Exchange {
  readonly operation: BankOperation;
  readonly reference: string | undefined;
  readonly method: 'GET' | 'POST' | 'PUT';
  readonly path: string;
  readonly body?: unknown;
  readonly bodyBytesMax: number;
}

interface HttpAnswer {
  readonly status: number;
  readonly text: string;
}

type Transfer =
  | { readonly ok: true; readonly answer: HttpAnswer }
  | { readonly ok: false; readonly error: unknown; readonly timedOut: boolean };

/** A payment of a batch as the exchange it would be alone: how its errors are named. */
function paymentExchange(payment: PaymentRequestBody): Exchange {
  return {
    operation: 'authorize',
    reference: payment.reference,
    method: 'POST',
    path: '/v1/payments',
    body: payment,
    bodyBytesMax: answerBodyBytesMax,
  };
}

function settled<O>(promise: Promise<O>): Promise<CallResult<O>> {
  return promise.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, error: error instanceof Error ? error : new Error(String(error)) }),
  );
}

/** Failures that happen before a request can have left this process: the bank cannot have acted. */
const unsentErrorCodes: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
]);

/** Undici's own timeouts; they back up the Clock's deadline when a simulated clock stands still. */
const timeoutErrorCodes: ReadonlySet<string> = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

export class BankClient {
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly requestTimeoutMs: number;
  private readonly inFlightRequestsMax: number;
  private readonly clock: Clock;
  private readonly deadlines: SharedDeadlines;
  private readonly batches: CallBatches<PaymentRequestBody, BankAnswer> | undefined;
  private inFlight = 0;

  constructor(options: BankClientOptions) {
    assert.ok(
      Number.isSafeInteger(options.requestTimeoutMs) && options.requestTimeoutMs > 0,
      'requestTimeoutMs must be a positive integer',
    );
    const url = new URL(options.baseUrl);
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.requestTimeoutMs = options.requestTimeoutMs;
    this.inFlightRequestsMax = options.inFlightRequestsMax ?? defaultInFlightRequestsMax;
    this.clock = options.clock ?? systemClock;
    const deadlineSharingMs = options.deadlineSharingMs ?? defaultDeadlineSharingMs;
    assert.ok(deadlineSharingMs >= 0, 'deadlineSharingMs must be >= 0');
    this.deadlines = new SharedDeadlines(
      this.clock,
      this.requestTimeoutMs,
      deadlineSharingMs,
      this.inFlightRequestsMax,
    );
    const batchMax = options.authorizationBatchMax ?? defaultAuthorizationBatchMax;
    assert.ok(
      Number.isSafeInteger(batchMax) && batchMax >= 1 && batchMax <= batchPaymentsMax,
      `authorizationBatchMax must be an integer in 1..${batchPaymentsMax}`,
    );
    this.batches =
      batchMax === 1
        ? undefined
        : new CallBatches((payments) => this.authorizeBatch(payments), {
            itemsMax: batchMax,
            batchesInFlightMax:
              options.authorizationBatchesInFlightMax ?? defaultAuthorizationBatchesInFlightMax,
          });
    this.pool = new Pool(url.origin, {
      connections: options.connections ?? defaultBankClientConnections,
      keepAliveTimeout: bankClientKeepAliveTimeoutMs,
      headersTimeout: options.requestTimeoutMs,
      bodyTimeout: options.requestTimeoutMs,
      connectTimeout: options.requestTimeoutMs,
    });
  }

  /**
   * Asks the bank to authorize a payment. An answer (approved or declined) is final; so is a
   * BankRejectedError. BankUnavailableError may be retried with the same reference. Any
   * BankOutcomeUnknownError (a timeout above all) means the payment may be charged: `inquire`.
   */
  async authorize(request: AuthorizeRequest): Promise<BankAnswer> {
    assert.ok(
      request.amount > 0n && request.amount <= BigInt(Number.MAX_SAFE_INTEGER),
      `amount of reference ${request.reference} must be in 1..MAX_SAFE_INTEGER to travel as a JSON integer`,
    );
    const body: PaymentRequestBody = {
      reference: request.reference,
      merchantId: request.merchantId,
      amount: Number(request.amount),
      currency: request.currency,
      card: { number: request.card.number, expMonth: request.card.expMonth, expYear: request.card.expYear },
    };
    if (this.batches === undefined) return this.authorizeAlone(body);
    this.enter('authorize', body.reference);
    try {
      return await this.batches.call(body);
    } finally {
      this.inFlight--;
    }
  }

  /**
   * One payment, one request to `POST /v1/payments`. `counted`: the payment is already counted in
   * flight (a batch's payment sent again alone).
   */
  private async authorizeAlone(body: PaymentRequestBody, counted = false): Promise<BankAnswer> {
    const exchange: Exchange = {
      operation: 'authorize',
      reference: body.reference,
      method: 'POST',
      path: '/v1/payments',
      body,
      bodyBytesMax: answerBodyBytesMax,
    };
    const answer = await this.send(exchange, counted);
    if (answer.status !== 200) throw this.failure(exchange, answer);
    return this.paymentAnswer(exchange, answer.status, this.readResolution(exchange, answer));
  }

  /** The bank declines a payment of a cancelled reference; `cancelled` is no payment answer. */
  private paymentAnswer(exchange: Exchange, status: number, resolution: BankResolution): BankAnswer {
    if (resolution.kind === 'cancelled') {
      throw new BankMalformedResponseError(
        exchange.operation,
        exchange.reference,
        status,
        'a payment answered as cancelled',
      );
    }
    return resolution;
  }

  /**
   * One request for many payments; never throws. What goes wrong with the request as a whole goes
   * wrong for each payment, named by its own reference.
   */
  private async authorizeBatch(
    payments: readonly PaymentRequestBody[],
  ): Promise<ReadonlyArray<CallResult<BankAnswer>>> {
    const body: PaymentBatchRequestBody = { payments: [...payments] };
    const exchange: Exchange = {
      operation: 'authorize',
      reference: undefined,
      method: 'POST',
      path: '/v1/payments/batch',
      body,
      bodyBytesMax: batchAnswerBodyBytesMax,
    };
    const eachFails = (failureOf: (payment: Exchange) => Error): CallResult<BankAnswer>[] =>
      payments.map((payment) => ({ ok: false, error: failureOf(paymentExchange(payment)) }));
    const sent = await this.transfer(exchange);
    if (!sent.ok) return eachFails((payment) => this.transportFailure(payment, sent.error, sent.timedOut));
    const answer = sent.answer;
    // Refused as a request (a 4xx): nothing of it was processed, and one payment alone may be to
    // blame. Each is sent again on its own, to get its own answer.
    if (answer.status >= 400 && answer.status < 500) {
      return Promise.all(payments.map((payment) => settled(this.authorizeAlone(payment, true))));
    }
    if (answer.status !== 200) return eachFails((payment) => this.failure(payment, answer));
    const parsed = parseJson(answer.text, batchAnswerSchema);
    const results = parsed?.results;
    if (results === undefined || results.length !== payments.length) {
      return eachFails(
        (payment) =>
          new BankMalformedResponseError('authorize', payment.reference, answer.status, 'not a batch answer'),
      );
    }
    return payments.map((payment, index) => {
      try {
        return { ok: true, value: this.batchResult(paymentExchange(payment), results[index]) };
      } catch (error) {
        return { ok: false, error: error instanceof Error ? error : new Error(String(error)) };
      }
    });
  }

  /** One payment's result in a batch answer, read as the single route's answer would be. */
  private batchResult(exchange: Exchange, result: BatchResult | undefined): BankAnswer {
    const reference = exchange.reference;
    // Checked right after reading: a result for another reference is no answer for this one.
    if (result === undefined || result.reference !== reference) {
      throw new BankMalformedResponseError(
        'authorize',
        reference,
        200,
        'a batch result for another reference',
      );
    }
    const problem = result.problem;
    if (problem === undefined) {
      const parsed = resolutionSchema.safeParse(result);
      if (!parsed.success)
        throw new BankMalformedResponseError('authorize', reference, 200, 'not a payment answer');
      return this.paymentAnswer(exchange, 200, resolutionOf(parsed.data));
    }
    const detail = quoteDetail(problem.detail ?? `status ${problem.status}`);
    // Committed, perhaps charged, and not said: the unknown outcome of a lost answer.
    if (problem.code === 'answer_withheld') throw new BankAnswerWithheldError(reference, detail);
    if (problem.status >= 500) {
      throw new BankUnavailableError('authorize', reference, detail, problem.status, problem.code);
    }
    if (problem.status >= 400) {
      throw new BankRejectedError('authorize', reference, problem.status, problem.code, detail);
    }
    throw new BankMalformedResponseError('authorize', reference, 200, 'a problem that is no error');
  }

  /**
   * The bank's record of a reference (`cancelled` if it was cancelled before any payment), or
   * `not_found` if the bank never saw it (nothing charged).
   */
  async inquire(reference: string): Promise<InquiryAnswer> {
    const exchange: Exchange = {
      operation: 'inquire',
      reference,
      method: 'GET',
      path: `/v1/payments/${encodeURIComponent(reference)}`,
      bodyBytesMax: answerBodyBytesMax,
    };
    const answer = await this.send(exchange);
    if (answer.status === 404) {
      // Only the bank's own "never seen" counts: a 404 from a wrong route or a proxy must not be
      // read as "not charged", or the caller would resend a payment that went through.
      const problem = parseJson(answer.text, problemSchema);
      if (problem?.code === 'payment_not_found') return { kind: 'not_found', reference };
    }
    if (answer.status !== 200) throw this.failure(exchange, answer);
    return this.readResolution(exchange, answer);
  }

  /**
   * Settles a reference for good: `cancelled` if the bank had not seen it (and any payment of it
   * arriving later is declined with `reference_cancelled`), else the answer it already had — an
   * approval is too late to cancel. Idempotent, so every failure of it, a timeout included, may be
   * retried with the same reference. `merchantId` is recorded on a new tombstone only.
   */
  async cancel(reference: string, merchantId?: string): Promise<BankResolution> {
    const body: CancelRequestBody = merchantId === undefined ? {} : { merchantId };
    const exchange: Exchange = {
      operation: 'cancel',
      reference,
      method: 'POST',
      path: `/v1/payments/${encodeURIComponent(reference)}/cancel`,
      body,
      bodyBytesMax: answerBodyBytesMax,
    };
    const answer = await this.send(exchange);
    if (answer.status !== 200) throw this.failure(exchange, answer);
    return this.readResolution(exchange, answer);
  }

  /**
   * Asks the bank to give back `amount` of an approved payment. An answer (succeeded or failed) is
   * final; so is a BankRejectedError (409 `reference_conflict`, 422 `refund_exceeds_payment`, ...).
   * BankUnavailableError may be retried with the same reference. Any BankOutcomeUnknownError (a
   * timeout above all) means the money may have been given back: `inquireRefund`, never resend.
   */
  async refund(request: RefundRequest): Promise<RefundAnswer> {
    assert.ok(
      request.amount > 0n && request.amount <= BigInt(Number.MAX_SAFE_INTEGER),
      `amount of refund ${request.reference} must be in 1..MAX_SAFE_INTEGER to travel as a JSON integer`,
    );
    const body: RefundRequestBody = {
      reference: request.reference,
      paymentReference: request.paymentReference,
      amount: Number(request.amount),
      currency: request.currency,
    };
    const exchange: Exchange = {
      operation: 'refund',
      reference: request.reference,
      method: 'POST',
      path: '/v1/refunds',
      body,
      bodyBytesMax: answerBodyBytesMax,
    };
    const answer = await this.send(exchange);
    if (answer.status !== 200) throw this.failure(exchange, answer);
    const refund = this.readRefund(exchange, answer);
    // The bank answers a reference only with the body it first took: any other is no answer to this.
    if (refund.paymentReference !== request.paymentReference || refund.amount !== request.amount) {
      throw new BankMalformedResponseError(
        'refund',
        request.reference,
        answer.status,
        'the answer is for another payment or amount',
      );
    }
    return refund;
  }

  /**
   * The bank's record of a refund, or `not_found` if the bank never saw its reference (nothing was
   * given back, and nothing will be unless it is sent).
   */
  async inquireRefund(reference: string): Promise<RefundInquiryAnswer> {
    const exchange: Exchange = {
      operation: 'inquireRefund',
      reference,
      method: 'GET',
      path: `/v1/refunds/${encodeURIComponent(reference)}`,
      bodyBytesMax: answerBodyBytesMax,
    };
    const answer = await this.send(exchange);
    if (answer.status === 404) {
      // Only the bank's own "never seen" counts, as for a payment's inquiry.
      const problem = parseJson(answer.text, problemSchema);
      if (problem?.code === 'refund_not_found') return { kind: 'not_found', reference };
    }
    if (answer.status !== 200) throw this.failure(exchange, answer);
    // A record is an answer with more fields; the answer's reader keeps what the domain needs.
    return this.readRefund(exchange, answer);
  }

  /** The whole ledger (optionally one merchant's): for tests and harnesses checking what was charged. */
  async ledger(merchantId?: string): Promise<BankLedgerReport> {
    const query = merchantId === undefined ? '' : `?merchantId=${encodeURIComponent(merchantId)}`;
    const exchange: Exchange = {
      operation: 'ledger',
      reference: undefined,
      method: 'GET',
      path: `/v1/ledger${query}`,
      bodyBytesMax: ledgerBodyBytesMax,
    };
    return this.readOk(exchange, await this.send(exchange), ledgerReportSchema);
  }

  async faults(): Promise<BankFaults> {
    const exchange: Exchange = {
      operation: 'faults',
      reference: undefined,
      method: 'GET',
      path: '/v1/faults',
      bodyBytesMax: answerBodyBytesMax,
    };
    return this.readOk(exchange, await this.send(exchange), faultsSchema);
  }

  /** Changes the given faults (the rest stay) and returns all faults now in force. */
  async setFaults(faults: Partial<BankFaults>): Promise<BankFaults> {
    const exchange: Exchange = {
      operation: 'faults',
      reference: undefined,
      method: 'PUT',
      path: '/v1/faults',
      body: faults,
      bodyBytesMax: answerBodyBytesMax,
    };
    return this.readOk(exchange, await this.send(exchange), faultsSchema);
  }

  /** Waits for calls in flight, then closes the connections. */
  async close(): Promise<void> {
    if (!this.pool.closed) await this.pool.close();
    this.deadlines.close();
  }

  private readResolution(exchange: Exchange, answer: HttpAnswer): BankResolution {
    const parsed = parseJson(answer.text, resolutionSchema);
    if (parsed === undefined) {
      throw new BankMalformedResponseError(
        exchange.operation,
        exchange.reference,
        answer.status,
        'not a payment answer',
      );
    }
    // Checked right after reading: an answer for another reference is no answer for this one.
    if (parsed.reference !== exchange.reference) {
      throw new BankMalformedResponseError(
        exchange.operation,
        exchange.reference,
        answer.status,
        'the answer is for another reference',
      );
    }
    return resolutionOf(parsed);
  }

  private readRefund(exchange: Exchange, answer: HttpAnswer): RefundAnswer {
    const parsed = parseJson(answer.text, refundAnswerSchema);
    const refund = parsed === undefined ? undefined : refundOf(parsed);
    if (refund === undefined) {
      throw new BankMalformedResponseError(
        exchange.operation,
        exchange.reference,
        answer.status,
        'not a refund answer',
      );
    }
    // Checked right after reading: an answer for another reference is no answer for this one.
    if (refund.reference !== exchange.reference) {
      throw new BankMalformedResponseError(
        exchange.operation,
        exchange.reference,
        answer.status,
        'the answer is for another reference',
      );
    }
    return refund;
  }

  private readOk<Schema extends z.ZodType>(
    exchange: Exchange,
    answer: HttpAnswer,
    schema: Schema,
  ): z.output<Schema> {
    if (answer.status !== 200) throw this.failure(exchange, answer);
    const parsed = parseJson(answer.text, schema);
    if (parsed === undefined) {
      throw new BankMalformedResponseError(exchange.operation, undefined, answer.status, 'unexpected body');
    }
    return parsed;
  }

  /** The error for a non-success answer. */
  private failure(exchange: Exchange, answer: HttpAnswer): Error {
    const { operation, reference } = exchange;
    const problem = parseJson(answer.text, problemSchema);
    const detail = quoteDetail(problem?.detail ?? `status ${answer.status}`);
    if (answer.status >= 500) {
      return new BankUnavailableError(operation, reference, detail, answer.status, problem?.code);
    }
    if (answer.status >= 400) {
      return new BankRejectedError(
        operation,
        reference,
        answer.status,
        problem?.code ?? `http_${answer.status}`,
        detail,
      );
    }
    // Any other status (1xx, 3xx, a 2xx but 200): the bank never answers so; what happened is unknown.
    return new BankMalformedResponseError(operation, reference, answer.status, 'unexpected status');
  }

  /** Counts a call in flight, or refuses it, unsent, beyond `inFlightRequestsMax`. */
  private enter(operation: BankOperation, reference: string | undefined): void {
    if (this.inFlight >= this.inFlightRequestsMax) {
      throw new BankUnavailableError(operation, reference, `client has ${this.inFlight} calls in flight`);
    }
    this.inFlight++;
  }

  /**
   * One call, one HTTP exchange under the deadline; transport failures come out as typed errors.
   * `counted`: the call is already counted in flight by its caller.
   */
  private async send(exchange: Exchange, counted = false): Promise<HttpAnswer> {
    if (!counted) this.enter(exchange.operation, exchange.reference);
    try {
      const sent = await this.transfer(exchange);
      if (!sent.ok) throw this.transportFailure(exchange, sent.error, sent.timedOut);
      return sent.answer;
    } finally {
      if (!counted) this.inFlight--;
    }
  }

  /** One HTTP exchange under a shared deadline; what failed is left to the caller to name. */
  private async transfer(exchange: Exchange): Promise<Transfer> {
    const deadline = this.deadlines.join();
    try {
      const response = await this.pool.request({
        method: exchange.method,
        path: `${this.basePath}${exchange.path}`,
        headers:
          exchange.body === undefined
            ? { accept: 'application/json' }
            : { accept: 'application/json', 'content-type': 'application/json' },
        ...(exchange.body === undefined ? {} : { body: JSON.stringify(exchange.body) }),
        signal: deadline.controller.signal,
      });
      const text = await readText(response.body, response.statusCode, exchange.bodyBytesMax);
      return { ok: true, answer: { status: response.statusCode, text } };
    } catch (error) {
      return { ok: false, error, timedOut: deadline.timedOut };
    } finally {
      this.deadlines.leave(deadline);
    }
  }

  private transportFailure(exchange: Exchange, error: unknown, timedOut: boolean): Error {
    const { operation, reference } = exchange;
    if (error instanceof BodyTooLargeError) {
      // A huge error page from a failing bank (or a proxy in front of it) is still a failing bank.
      return error.status >= 500
        ? new BankUnavailableError(operation, reference, error.message, error.status)
        : new BankMalformedResponseError(operation, reference, error.status, error.message);
    }
    const code = errorCode(error);
    if (timedOut || (code !== undefined && timeoutErrorCodes.has(code))) {
      return new BankTimeoutError(operation, reference, this.requestTimeoutMs, { cause: error });
    }
    if (code !== undefined && unsentErrorCodes.has(code)) {
      return new BankUnavailableError(operation, reference, code, undefined, undefined, { cause: error });
    }
    // Reset, closed mid-answer, or anything we cannot place: the bank may have acted.
    return new BankConnectionLostError(operation, reference, code ?? describe(error), { cause: error });
  }
}

/** One deadline shared by the calls that joined it. */
interface SharedDeadline {
  readonly controller: AbortController;
  readonly startedAt: number;
  timer: Cancellable | undefined;
  timedOut: boolean;
  calls: number;
}

/**
 * Deadlines shared by calls started within `sharingMs` of the first: one timer, fired
 * `timeoutMs + sharingMs` after that first call started, aborts every call still under it. A
 * deadline no call is under any more is cancelled once a newer one has replaced it.
 */
class SharedDeadlines {
  private current: SharedDeadline | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly timeoutMs: number,
    private readonly sharingMs: number,
    private readonly callsMax: number,
  ) {}

  join(): SharedDeadline {
    const now = this.clock.now();
    const current = this.current;
    if (current !== undefined && !current.timedOut && now - current.startedAt < this.sharingMs) {
      current.calls++;
      return current;
    }
    if (current !== undefined && current.calls === 0) this.cancel(current);
    const controller = new AbortController();
    // Every call under it adds an abort listener while it runs.
    setMaxListeners(this.callsMax + 1, controller.signal);
    const deadline: SharedDeadline = {
      controller,
      startedAt: now,
      timer: undefined,
      timedOut: false,
      calls: 1,
    };
    deadline.timer = this.clock.schedule(this.timeoutMs + this.sharingMs, () => {
      deadline.timer = undefined;
      deadline.timedOut = true;
      controller.abort();
    });
    this.current = deadline;
    return deadline;
  }

  leave(deadline: SharedDeadline): void {
    deadline.calls--;
    if (deadline.calls === 0 && deadline !== this.current) this.cancel(deadline);
  }

  /** Cancels the latest deadline if no call is under it (closing: its timer would only linger). */
  close(): void {
    if (this.current !== undefined && this.current.calls === 0) this.cancel(this.current);
  }

  private cancel(deadline: SharedDeadline): void {
    deadline.timer?.cancel();
    deadline.timer = undefined;
  }
}

class BodyTooLargeError extends Error {
  constructor(
    readonly status: number,
    bytesMax: number,
  ) {
    super(`answer body larger than ${bytesMax} bytes`);
  }
}

async function readText(
  body: AsyncIterable<Buffer> & { destroy(): unknown },
  status: number,
  bytesMax: number,
): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > bytesMax) {
      body.destroy();
      throw new BodyTooLargeError(status, bytesMax);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function resolutionOf(parsed: z.output<typeof resolutionSchema>): BankResolution {
  switch (parsed.status) {
    case 'approved':
      return { kind: 'approved', reference: parsed.reference, authorizationCode: parsed.authorizationCode };
    case 'declined':
      return { kind: 'declined', reference: parsed.reference, declineReason: parsed.declineReason };
    case 'cancelled':
      return { kind: 'cancelled', reference: parsed.reference };
  }
}

/** A refund answer or record as the domain reads it; undefined for a failure without its reason. */
function refundOf(parsed: z.output<typeof refundAnswerSchema>): RefundAnswer | undefined {
  const common = {
    reference: parsed.reference,
    paymentReference: parsed.paymentReference,
    amount: parsed.amount,
    currency: parsed.currency,
  };
  if (parsed.status === 'succeeded') return { kind: 'succeeded', ...common };
  if (parsed.failureReason === undefined || parsed.failureReason === '') return undefined;
  return { kind: 'failed', ...common, failureReason: parsed.failureReason };
}

function parseJson<Schema extends z.ZodType>(text: string, schema: Schema): z.output<Schema> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const result = schema.safeParse(value);
  return result.success ? result.data : undefined;
}

/** The error's code; Node reports a failed connect to several addresses as an AggregateError. */
function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code: unknown = Reflect.get(error, 'code');
  if (typeof code === 'string') return code;
  if (error instanceof AggregateError) return errorCode(error.errors[0]);
  return undefined;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.name : 'unknown error';
}

/**
 * Quotes a server's detail in our messages, shortened and with every long digit run removed: a
 * misbehaving bank might echo a card number, and our messages never carry one.
 */
function quoteDetail(detail: string): string {
  return detail.replace(/[0-9]{12,}/g, '[digits removed]').slice(0, quotedDetailLengthMax);
}
