import { processPayment } from '../bank/authorization.js';
import {
  BankConnectionLostError,
  type BankOperation,
  BankRejectedError,
  BankTimeoutError,
  BankUnavailableError,
} from '../bank/bank-errors.js';
import { type BankFaults, referenceCancelled } from '../bank/bank-protocol.js';
import { processCancel } from '../bank/cancellation.js';
import type { BankLedger, PaymentRecord, RefundRecord } from '../bank/ledger.js';
import { processRefund, type RefundOutcome } from '../bank/refunds.js';
import type {
  BankAnswer,
  BankPort,
  BankResolution,
  PaymentRequest,
  RefundAnswer,
  RefundRequest,
} from '../payments/executor-protocol.js';
import { assertNever } from '../runtime/assert-never.js';
import type { Clock } from '../runtime/clock.js';
import type { Random } from '../runtime/random.js';
import type { BankFaultProfile } from './faults.js';
import type { Trace } from './trace.js';

/**
 * The acquiring bank of a seed, reached over a simulated network.
 *
 * The bank itself is the real bank simulator's core: `processPayment`, `processCancel` and
 * `processRefund` over a real `BankLedger` (SQLite in the seed's temporary directory), so deduplication by reference,
 * cancel tombstones and reference conflicts behave exactly as the bank the gateway talks to in
 * production tests. What is simulated is the wire between the gateway and the bank — what the
 * `BankConnection`/`BankClient` pair would see and throw: requests lost or delayed on the way in
 * (a delayed request may reach the bank after the gateway gave up on it), answers lost or delayed
 * on the way out, connections reset, outages, and the client's deadline. Errors are the real
 * `bank-errors.ts` types, so the Executor's real `classifyBankError` decides what each means.
 *
 * One extension the real simulator does not have: card 4000000000000101 is refused with a 422, so
 * the Executor's "refused → cancel → failed: bank_refused" path is exercised (a Luhn-invalid card,
 * the real bank's 422, never gets past the Validator).
 */

export const refusedCard = '4000000000000101';

export interface BankCallHooks {
  /** A call is leaving a live node for the bank (before any fault): the online checkers look here. */
  onSend(operation: BankOperation, reference: string): void;
}

export interface BankCallStats {
  authorizeSent: number;
  inquireSent: number;
  cancelSent: number;
  refundSent: number;
  inquireRefundSent: number;
  timeouts: number;
  lostRequests: number;
  lostAnswers: number;
  connectionsLost: number;
  outageRefusals: number;
  lateRequests: number;
}

type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: Error };

export class SimBank {
  healed = false;
  private outageUntil = Number.NEGATIVE_INFINITY;
  readonly stats: BankCallStats = {
    authorizeSent: 0,
    inquireSent: 0,
    cancelSent: 0,
    refundSent: 0,
    inquireRefundSent: 0,
    timeouts: 0,
    lostRequests: 0,
    lostAnswers: 0,
    connectionsLost: 0,
    outageRefusals: 0,
    lateRequests: 0,
  };

  constructor(
    readonly ledger: BankLedger,
    private readonly clock: Clock,
    /** Draws the bank's own decisions (authorization codes, do_not_honor, errorRate). */
    private readonly bankRandom: Random,
    /** Draws the wire's faults. */
    private readonly wireRandom: Random,
    private readonly faults: BankFaultProfile,
    private readonly trace: Trace,
    private readonly hooks: BankCallHooks,
  ) {}

  /** An outage: every call is refused before it reaches the bank, until `until`. */
  outage(until: number): void {
    this.outageUntil = Math.max(this.outageUntil, until);
  }

  /** The BankPort one node's Executor uses; calls from a node that has crashed go nowhere. */
  endpoint(node: number, alive: () => boolean): BankPort {
    return {
      authorize: (request) =>
        this.call(node, alive, 'authorize', request.reference, () => this.authorizeAtBank(request)),
      inquire: (reference) =>
        this.call(node, alive, 'inquire', reference, () => this.inquireAtBank(reference)),
      cancel: (reference) => this.call(node, alive, 'cancel', reference, () => this.cancelAtBank(reference)),
      refund: (request) =>
        this.call(node, alive, 'refund', request.reference, () => this.refundAtBank(request)),
      inquireRefund: (reference) =>
        this.call(node, alive, 'inquireRefund', reference, () => this.inquireRefundAtBank(reference)),
    };
  }

  // ---- the wire ------------------------------------------------------------------------------

  private call<T>(
    node: number,
    alive: () => boolean,
    operation: BankOperation,
    reference: string,
    atBank: () => Outcome<T>,
  ): Promise<T> {
    // A crashed process sends nothing; its promise chain simply never hears back.
    if (!alive()) return new Promise<T>(() => {});
    this.count(operation);
    this.hooks.onSend(operation, reference);
    const tag = `bank ${operation} ${reference} n${node}`;
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const finish = (outcome: Outcome<T>, what: string): void => {
        if (done) return;
        done = true;
        deadline.cancel();
        this.trace.record(`${tag} <- ${what}`);
        if (outcome.ok) resolve(outcome.value);
        else reject(outcome.error);
      };
      const deadline = this.clock.schedule(this.faults.requestTimeoutMs, () => {
        this.stats.timeouts++;
        finish(
          { ok: false, error: new BankTimeoutError(operation, reference, this.faults.requestTimeoutMs) },
          'timeout',
        );
      });
      if (this.healed) {
        // Healed: a prompt bank on a quiet network, still asynchronous like real HTTP.
        this.clock.schedule(1, () => {
          const outcome = atBank();
          this.trace.record(`${tag} processed: ${describe(outcome)}`);
          this.clock.schedule(1, () => finish(outcome, describe(outcome)));
        });
        return;
      }
      const random = this.wireRandom;
      if (this.clock.now() < this.outageUntil) {
        this.stats.outageRefusals++;
        this.clock.schedule(1 + random.int(20), () =>
          finish(
            { ok: false, error: new BankUnavailableError(operation, reference, 'ECONNREFUSED (simulated)') },
            'refused: outage',
          ),
        );
        return;
      }
      if (random.chance(this.faults.lostRequestRate)) {
        this.stats.lostRequests++;
        this.trace.record(`${tag} request lost`);
        return;
      }
      const inboundMs = random.int(this.faults.latencyMsMax + 1);
      const outboundMs = random.int(this.faults.latencyMsMax + 1);
      const answerLost = random.chance(this.faults.lostAnswerRate);
      const connectionLost = !answerLost && random.chance(this.faults.connectionLostRate);
      this.trace.record(`${tag} -> in ${inboundMs} ms, out ${outboundMs} ms`);
      this.clock.schedule(inboundMs, () => {
        if (done) this.stats.lateRequests++;
        const outcome = atBank();
        this.trace.record(
          `${tag} processed${done ? ' (after the gateway gave up)' : ''}: ${describe(outcome)}`,
        );
        if (answerLost) {
          this.stats.lostAnswers++;
          return;
        }
        this.clock.schedule(outboundMs, () => {
          if (connectionLost) {
            this.stats.connectionsLost++;
            finish(
              {
                ok: false,
                error: new BankConnectionLostError(operation, reference, 'ECONNRESET (simulated)'),
              },
              'connection lost',
            );
            return;
          }
          finish(outcome, describe(outcome));
        });
      });
    });
  }

  private count(operation: BankOperation): void {
    if (operation === 'authorize') this.stats.authorizeSent++;
    else if (operation === 'inquire') this.stats.inquireSent++;
    else if (operation === 'cancel') this.stats.cancelSent++;
    else if (operation === 'refund') this.stats.refundSent++;
    else if (operation === 'inquireRefund') this.stats.inquireRefundSent++;
  }

  // ---- the bank (real simulator core), answered as bank-server.ts and BankClient would ------

  private bankFaults(): BankFaults {
    return {
      latencyMs: 0,
      declineRate: this.faults.declineRate,
      errorRate: this.healed ? 0 : this.faults.errorRate,
      // Lost answers are the wire's business here.
      timeoutRate: 0,
    };
  }

  private authorizeAtBank(request: PaymentRequest): Outcome<BankAnswer> {
    const { reference } = request;
    if (request.card.number === refusedCard && this.ledger.find(reference) === undefined) {
      return {
        ok: false,
        error: new BankRejectedError(
          'authorize',
          reference,
          422,
          'card_not_processable',
          'simulated refusal',
        ),
      };
    }
    const outcome = processPayment(
      this.ledger,
      {
        reference,
        merchantId: request.merchantId,
        amount: Number(request.amount),
        currency: request.currency,
        card: { number: request.card.number, expMonth: request.card.expMonth, expYear: request.card.expYear },
      },
      this.clock.now(),
      this.bankFaults(),
      this.bankRandom,
    );
    switch (outcome.kind) {
      case 'answered':
        return { ok: true, value: answerOf(outcome.record) };
      case 'cancelled':
        return { ok: true, value: { kind: 'declined', reference, declineReason: referenceCancelled } };
      case 'conflict':
        return {
          ok: false,
          error: new BankRejectedError('authorize', reference, 409, 'reference_conflict', 'reference reused'),
        };
      case 'invalid_card':
        return {
          ok: false,
          error: new BankRejectedError('authorize', reference, 422, 'invalid_card', 'fails the Luhn check'),
        };
      case 'unavailable':
        return { ok: false, error: unavailable('authorize', reference) };
      default:
        return assertNever(outcome);
    }
  }

  private inquireAtBank(
    reference: string,
  ): Outcome<BankResolution | { readonly kind: 'not_found'; readonly reference: string }> {
    const record = this.ledger.find(reference);
    if (record === undefined) return { ok: true, value: { kind: 'not_found', reference } };
    return { ok: true, value: resolutionOf(record) };
  }

  private cancelAtBank(reference: string): Outcome<BankResolution> {
    const outcome = processCancel(
      this.ledger,
      { reference, merchantId: undefined },
      this.clock.now(),
      this.bankFaults(),
      this.bankRandom,
    );
    if (outcome.kind === 'unavailable') return { ok: false, error: unavailable('cancel', reference) };
    return { ok: true, value: resolutionOf(outcome.record) };
  }

  private refundAtBank(request: RefundRequest): Outcome<RefundAnswer> {
    const outcome = processRefund(
      this.ledger,
      {
        reference: request.reference,
        paymentReference: request.paymentReference,
        amount: Number(request.amount),
        currency: request.currency,
      },
      this.clock.now(),
      this.bankFaults(),
      this.bankRandom,
    );
    return refundOutcomeOf(request.reference, outcome);
  }

  private inquireRefundAtBank(
    reference: string,
  ): Outcome<RefundAnswer | { readonly kind: 'not_found'; readonly reference: string }> {
    const record = this.ledger.findRefund(reference);
    if (record === undefined) return { ok: true, value: { kind: 'not_found', reference } };
    return { ok: true, value: refundAnswerOf(record) };
  }
}

/** A refund's outcome as BankClient would hand it over: an answer, or the error of its problem. */
function refundOutcomeOf(reference: string, outcome: RefundOutcome): Outcome<RefundAnswer> {
  const refused = (status: number, code: string): Outcome<RefundAnswer> => ({
    ok: false,
    error: new BankRejectedError('refund', reference, status, code, 'simulated refusal'),
  });
  switch (outcome.kind) {
    case 'answered':
      return { ok: true, value: refundAnswerOf(outcome.record) };
    case 'conflict':
      return refused(409, 'reference_conflict');
    case 'payment_unknown':
      return refused(422, 'refund_payment_unknown');
    case 'payment_not_approved':
      return refused(422, 'refund_payment_not_approved');
    case 'currency_mismatch':
      return refused(422, 'refund_currency_mismatch');
    case 'exceeds_payment':
      return refused(422, 'refund_exceeds_payment');
    case 'unavailable':
      return { ok: false, error: unavailable('refund', reference) };
    default:
      return assertNever(outcome);
  }
}

function refundAnswerOf(record: RefundRecord): RefundAnswer {
  return record.failureReason === undefined
    ? { kind: 'succeeded', reference: record.reference }
    : { kind: 'failed', reference: record.reference, failureReason: record.failureReason };
}

function unavailable(operation: BankOperation, reference: string): Error {
  return new BankUnavailableError(operation, reference, 'status 503', 503, 'bank_unavailable');
}

function answerOf(record: PaymentRecord): BankAnswer {
  if (record.status === 'approved') {
    return {
      kind: 'approved',
      reference: record.reference,
      authorizationCode: record.authorizationCode ?? '',
    };
  }
  if (record.status === 'declined') {
    return { kind: 'declined', reference: record.reference, declineReason: record.declineReason ?? '' };
  }
  // A payment is never answered `cancelled` (see processPayment); BankClient calls that malformed.
  throw new Error(`bank answered a payment with a cancelled record for ${record.reference}`);
}

function resolutionOf(record: PaymentRecord): BankResolution {
  return record.status === 'cancelled'
    ? { kind: 'cancelled', reference: record.reference }
    : answerOf(record);
}

function describe(outcome: Outcome<unknown>): string {
  if (!outcome.ok) return `${outcome.error.name}`;
  const value = outcome.value;
  if (typeof value !== 'object' || value === null) return String(value);
  const kind = Reflect.get(value, 'kind');
  const detail = Reflect.get(value, 'declineReason') ?? Reflect.get(value, 'authorizationCode') ?? '';
  return `${String(kind)} ${String(detail)}`.trim();
}
