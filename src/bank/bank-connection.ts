import type {
  BankAnswer,
  BankErrorKind,
  BankPort,
  BankResolution,
  PaymentRequest,
  RefundAnswer,
  RefundRequest,
} from '../payments/executor-protocol.js';
import { assertNever } from '../runtime/assert-never.js';
import type {
  BankClient,
  BankAnswer as ClientAnswer,
  RefundAnswer as ClientRefundAnswer,
} from './bank-client.js';
import { BankOutcomeUnknownError, BankRejectedError, BankUnavailableError } from './bank-errors.js';

/**
 * The Executor's `BankPort` over HTTP: a thin adapter from the domain's types to the bank client's
 * and back. Every value is copied field by field rather than passed through, so the domain's types
 * and the wire client's can drift apart without one silently leaking into the other. Errors are
 * left as the client throws them; `classifyBankError` tells the Executor what each one means.
 */
export class BankConnection implements BankPort {
  constructor(private readonly client: BankClient) {}

  async authorize(request: PaymentRequest): Promise<BankAnswer> {
    const answer = await this.client.authorize({
      reference: request.reference,
      merchantId: request.merchantId,
      amount: request.amount,
      currency: request.currency,
      card: { number: request.card.number, expMonth: request.card.expMonth, expYear: request.card.expYear },
    });
    return answerOf(answer);
  }

  async inquire(
    reference: string,
  ): Promise<BankResolution | { readonly kind: 'not_found'; readonly reference: string }> {
    const known = await this.client.inquire(reference);
    switch (known.kind) {
      case 'not_found':
        return { kind: 'not_found', reference: known.reference };
      case 'cancelled':
        return { kind: 'cancelled', reference: known.reference };
      default:
        return answerOf(known);
    }
  }

  async cancel(reference: string): Promise<BankResolution> {
    const resolution = await this.client.cancel(reference);
    if (resolution.kind === 'cancelled') return { kind: 'cancelled', reference: resolution.reference };
    return answerOf(resolution);
  }

  /** One refund, one request: refunds are rare beside payments and are never batched. */
  async refund(request: RefundRequest): Promise<RefundAnswer> {
    const answer = await this.client.refund({
      reference: request.reference,
      paymentReference: request.paymentReference,
      amount: request.amount,
      currency: request.currency,
    });
    return refundAnswerOf(answer);
  }

  async inquireRefund(
    reference: string,
  ): Promise<RefundAnswer | { readonly kind: 'not_found'; readonly reference: string }> {
    const known = await this.client.inquireRefund(reference);
    if (known.kind === 'not_found') return { kind: 'not_found', reference: known.reference };
    return refundAnswerOf(known);
  }
}

function refundAnswerOf(answer: ClientRefundAnswer): RefundAnswer {
  switch (answer.kind) {
    case 'succeeded':
      return { kind: 'succeeded', reference: answer.reference };
    case 'failed':
      return { kind: 'failed', reference: answer.reference, failureReason: answer.failureReason };
    default:
      return assertNever(answer, 'refund answer');
  }
}

function answerOf(answer: ClientAnswer): BankAnswer {
  switch (answer.kind) {
    case 'approved':
      return { kind: 'approved', reference: answer.reference, authorizationCode: answer.authorizationCode };
    case 'declined':
      return { kind: 'declined', reference: answer.reference, declineReason: answer.declineReason };
    default:
      return assertNever(answer, 'bank answer');
  }
}

/**
 * What an error thrown by a `BankConnection` means to the Executor:
 *
 * - `unknown_outcome`: an authorization may have reached the bank and charged the card, a refund
 *   may have given money back (timeout, connection lost after sending, an unreadable 200). Resolve
 *   it by inquiry (`inquire`, `inquireRefund`), never a blind resend.
 * - `retryable`: nothing happened at the bank (unreachable, 5xx), or the call is safe to repeat
 *   whatever happened: an inquiry reads, and a cancel settles a reference the same way every time,
 *   so a timed-out inquiry or cancel is simply made again. Also anything unrecognised, which the
 *   Executor then retries with backoff rather than treating as final.
 * - `refused`: the bank rejected the request itself (4xx: invalid_card, reference_conflict,
 *   refund_exceeds_payment, ...); repeating it gets the same rejection.
 */
export function classifyBankError(error: unknown): BankErrorKind {
  // The error's own `retryable` is false exactly for the calls that move money: authorize, refund.
  if (error instanceof BankOutcomeUnknownError) return error.retryable ? 'retryable' : 'unknown_outcome';
  if (error instanceof BankUnavailableError) return 'retryable';
  if (error instanceof BankRejectedError) return 'refused';
  return 'retryable';
}
