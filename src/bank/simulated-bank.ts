import type {
  BankAnswer,
  BankErrorKind,
  BankPort,
  BankResolution,
  PaymentRequest,
} from '../payments/executor-protocol.js';
import type { Random } from '../runtime/random.js';

/** The bank could not be reached; nothing happened there. */
export class SimulatedBankUnavailable extends Error {
  override readonly name = 'SimulatedBankUnavailable';
}

/** The bank refused the request outright (a 4xx): sending it again will not help. */
export class SimulatedBankRefusal extends Error {
  override readonly name = 'SimulatedBankRefusal';
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
  /** Would-be approvals declined with `do_not_honor`. */
  declineRate: number;
}

export interface SimulatedPayment {
  readonly request: Omit<PaymentRequest, 'card'> & { readonly last4: string };
  readonly answer: BankAnswer | { readonly kind: 'cancelled'; readonly reference: string };
  requestCount: number;
}

/**
 * An acquiring bank in memory, with the real simulator's rules: it deduplicates by reference
 * (the same reference again returns the first answer and charges nothing more), `cancel` settles
 * a reference for good, and the test cards decline. Faults are drawn from a seeded Random so a
 * run replays exactly. Its ledger is the ground truth tests check the gateway against.
 */
export class SimulatedBank implements BankPort {
  readonly payments = new Map<string, SimulatedPayment>();
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
