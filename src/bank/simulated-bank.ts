import type {
  BankAnswer,
  BankErrorKind,
  BankPort,
  BankResolution,
  PaymentRequest,
  RefundAnswer,
  RefundRequest,
} from '../payments/executor-protocol.js';
import type { Random } from '../runtime/random.js';

/** The bank could not be reached; nothing happened there. */
export class SimulatedBankUnavailable extends Error {
  override readonly name = 'SimulatedBankUnavailable';
}

/** The bank refused the request outright (a 4xx): sending it again will not help. */
export class SimulatedBankRefusal extends Error {
  override readonly name = 'SimulatedBankRefusal';

  constructor(
    message: string,
    /** The problem code the bank simulator's server answers the same refusal with. */
    readonly code = 'card_not_processable',
  ) {
    super(message);
  }
}

/** The bank did the work but its answer was lost: the outcome is unknown to the caller. */
export class SimulatedBankTimeout extends Error {
  override readonly name = 'SimulatedBankTimeout';
}

export interface SimulatedBankFaults {
  /** Calls that fail before reaching the bank. */
  errorRate: number;
  /** Calls whose work is done (and committed) but whose answer is lost. */
  lostAnswerRate: number;
  /** Would-be approvals declined with `do_not_honor`, and would-be refunds failed with `refund_declined`. */
  declineRate: number;
}

export interface SimulatedRefund {
  readonly request: RefundRequest;
  readonly answer: RefundAnswer;
  requestCount: number;
}

export interface SimulatedPayment {
  readonly request: Omit<PaymentRequest, 'card'> & { readonly last4: string };
  readonly answer: BankAnswer | { readonly kind: 'cancelled'; readonly reference: string };
  requestCount: number;
}

/**
 * An acquiring bank in memory, with the real simulator's rules: it deduplicates by reference
 * (the same reference again returns the first answer and charges nothing more), `cancel` settles
 * a reference for good, the test cards decline, and a refund gives back part or all of an
 * approved payment, never more than remains of it, once per refund reference. Its refusals carry
 * the codes the server answers with. Faults are drawn from a seeded Random so a
 * run replays exactly. Its ledger is the ground truth tests check the gateway against.
 */
export class SimulatedBank implements BankPort {
  readonly payments = new Map<string, SimulatedPayment>();
  readonly refunds = new Map<string, SimulatedRefund>();
  faults: SimulatedBankFaults = { errorRate: 0, lostAnswerRate: 0, declineRate: 0 };
  calls = 0;

  constructor(private readonly random: Random) {}

  async authorize(request: PaymentRequest): Promise<BankAnswer> {
    this.calls++;
    this.maybeUnavailable();
    const known = this.payments.get(request.reference);
    if (known !== undefined) {
      known.requestCount++;
      if (known.answer.kind === 'cancelled') {
        return { kind: 'declined', reference: request.reference, declineReason: 'reference_cancelled' };
      }
      return this.deliver(known.answer);
    }
    if (request.card.number === '4000000000000101')
      throw new SimulatedBankRefusal('card cannot be processed (simulated)');
    const answer = this.decide(request);
    const { card, ...rest } = request;
    this.payments.set(request.reference, {
      request: { ...rest, last4: card.number.slice(-4) },
      answer,
      requestCount: 1,
    });
    return this.deliver(answer);
  }

  async inquire(reference: string): Promise<BankResolution | { kind: 'not_found'; reference: string }> {
    this.calls++;
    this.maybeUnavailable();
    const known = this.payments.get(reference);
    if (known === undefined) return { kind: 'not_found', reference };
    return this.deliver(known.answer);
  }

  async cancel(reference: string): Promise<BankResolution> {
    this.calls++;
    this.maybeUnavailable();
    const known = this.payments.get(reference);
    if (known !== undefined) return this.deliver(known.answer);
    const cancelled = { kind: 'cancelled', reference } as const;
    this.payments.set(reference, {
      request: { reference, merchantId: '', amount: 0n, currency: 'EUR', last4: '' },
      answer: cancelled,
      requestCount: 1,
    });
    return this.deliver(cancelled);
  }

  async refund(request: RefundRequest): Promise<RefundAnswer> {
    this.calls++;
    this.maybeUnavailable();
    const known = this.refunds.get(request.reference);
    if (known !== undefined) {
      known.requestCount++;
      const same =
        known.request.paymentReference === request.paymentReference &&
        known.request.amount === request.amount &&
        known.request.currency === request.currency;
      if (!same) throw new SimulatedBankRefusal('refund reference reused (simulated)', 'reference_conflict');
      return this.deliver(known.answer);
    }
    this.checkRefundable(request);
    const answer: RefundAnswer = this.random.chance(this.faults.declineRate)
      ? { kind: 'failed', reference: request.reference, failureReason: 'refund_declined' }
      : { kind: 'succeeded', reference: request.reference };
    this.refunds.set(request.reference, { request, answer, requestCount: 1 });
    return this.deliver(answer);
  }

  async inquireRefund(reference: string): Promise<RefundAnswer | { kind: 'not_found'; reference: string }> {
    this.calls++;
    this.maybeUnavailable();
    const known = this.refunds.get(reference);
    if (known === undefined) return { kind: 'not_found', reference };
    return this.deliver(known.answer);
  }

  /** What the succeeded refunds of a payment gave back, in minor units. */
  refunded(paymentReference: string): bigint {
    let sum = 0n;
    for (const refund of this.refunds.values()) {
      if (refund.request.paymentReference === paymentReference && refund.answer.kind === 'succeeded') {
        sum += refund.request.amount;
      }
    }
    return sum;
  }

  /** Refuses a new refund as the server does, with the server's problem codes. */
  private checkRefundable(request: RefundRequest): void {
    const payment = this.payments.get(request.paymentReference);
    if (payment === undefined)
      throw new SimulatedBankRefusal('refund of an unknown payment (simulated)', 'refund_payment_unknown');
    if (payment.answer.kind !== 'approved') {
      throw new SimulatedBankRefusal(
        'refund of a payment not approved (simulated)',
        'refund_payment_not_approved',
      );
    }
    if (payment.request.currency !== request.currency) {
      throw new SimulatedBankRefusal('refund in another currency (simulated)', 'refund_currency_mismatch');
    }
    if (this.refunded(request.paymentReference) + request.amount > payment.request.amount) {
      throw new SimulatedBankRefusal('refund exceeds the payment (simulated)', 'refund_exceeds_payment');
    }
  }

  /** References the bank charged (approved), with how many requests each got. */
  charged(): Map<string, SimulatedPayment> {
    return new Map([...this.payments].filter(([, payment]) => payment.answer.kind === 'approved'));
  }

  private decide(request: PaymentRequest): BankAnswer {
    const { reference } = request;
    if (request.card.number === '4000000000000002')
      return { kind: 'declined', reference, declineReason: 'card_declined' };
    if (request.card.number === '4000000000009995') {
      return { kind: 'declined', reference, declineReason: 'insufficient_funds' };
    }
    if (this.random.chance(this.faults.declineRate))
      return { kind: 'declined', reference, declineReason: 'do_not_honor' };
    const code = this.random.int(1_000_000).toString().padStart(6, '0');
    return { kind: 'approved', reference, authorizationCode: code };
  }

  private maybeUnavailable(): void {
    if (this.random.chance(this.faults.errorRate))
      throw new SimulatedBankUnavailable('bank unavailable (simulated)');
  }

  private deliver<T>(answer: T): T {
    if (this.random.chance(this.faults.lostAnswerRate))
      throw new SimulatedBankTimeout('answer lost (simulated)');
    return answer;
  }
}

export function classifySimulatedBankError(error: unknown): BankErrorKind {
  if (error instanceof SimulatedBankTimeout) return 'unknown_outcome';
  if (error instanceof SimulatedBankRefusal) return 'refused';
  return 'retryable';
}
