import type { EntityContext } from '../persistence/entity.js';
import { type BackoffSettings, backoffDelayMs } from '../runtime/backoff.js';
import type { ExecutorServices } from './bank-calls.js';
import type { ExecutorState, RefundCallControl, RefundExecution } from './executor-decider.js';
import type { ExecutorCommand, RefundAnswer } from './executor-protocol.js';
import type { RefundOutcome } from './protocol.js';

/**
 * The Executor's refund calls to the acquiring bank, made outside the actor like `BankCalls`, with
 * answers coming back as commands (`RecordRefundOutcome`, `RetryRefundLater`). A refund is sent
 * with its id as the bank's reference and the order id as the payment's, so the bank gives it back
 * at most once. Its rule is the authorization's: a refund whose outcome is unknown (a timeout, a
 * lost connection, a restart) is settled by an inquiry, never by sending it blindly again; only an
 * inquiry answering `not_found` (nothing moved) lets it be sent again, under the same reference.
 * A refusal is terminal: the refund fails with the bank's stable code.
 */

type Context = EntityContext<ExecutorCommand>;

/** The code a refused refund fails with when the error carries none. */
const refusedWithoutCode = 'bank_refused';

export class RefundCalls implements RefundCallControl {
  private readonly attempts = new Map<string, number>();
  /** Refunds whose last call may have reached the bank: the next call must be an inquiry. */
  private readonly mustInquire = new Set<string>();
  /** Refunds with a bank call under way, across incarnations (see `BankCalls.running`). */
  private readonly running = new Set<string>();
  /** The live incarnation of each executor entity, to which finished calls report. */
  private readonly live = new Map<string, Context>();

  constructor(
    private readonly services: ExecutorServices,
    private readonly retryBackoff: BackoffSettings,
  ) {}

  /** Every pending refund of a fresh incarnation: its earlier call may have reached the bank. */
  recovered(state: ExecutorState, context: Context): void {
    this.live.set(context.entityId, context);
    for (const refund of state.refunds.values()) {
      if (refund.outcome !== undefined || this.running.has(refund.refundId)) continue;
      this.mustInquire.add(refund.refundId);
      this.start(refund, context);
    }
  }

  start(refund: RefundExecution, context: Context): void {
    const { refundId } = refund;
    if (this.running.has(refundId)) return;
    this.running.add(refundId);
    void this.call(refund)
      .then(
        (outcome) => {
          const reportTo = this.live.get(context.entityId) ?? context;
          reportTo.self.tell({ type: 'RecordRefundOutcome', refundId, outcome, at: reportTo.clock.now() });
        },
        (error: unknown) => this.failed(refundId, error, this.live.get(context.entityId) ?? context),
      )
      .finally(() => this.running.delete(refundId));
  }

  retryLater(refundId: string, context: Context): void {
    const attempt = this.attempts.get(refundId) ?? 0;
    this.attempts.set(refundId, attempt + 1);
    const delayMs = backoffDelayMs(attempt, this.retryBackoff, context.random);
    context.timers.startSingle(`retry-refund-${refundId}`, { type: 'RetryRefund', refundId }, delayMs);
  }

  settled(refundId: string, context: Context): void {
    this.attempts.delete(refundId);
    this.mustInquire.delete(refundId);
    context.timers.cancel(`retry-refund-${refundId}`);
  }

  private failed(refundId: string, error: unknown, context: Context): void {
    const kind = this.services.classify(error);
    const reason = error instanceof Error ? error.message : String(error);
    context.log.warn({ refundId, kind, reason }, 'bank refund call failed; will retry');
    context.self.tell({ type: 'RetryRefundLater', refundId, reason: kind });
  }

  /** One step towards settling a refund: its outcome, or a throw meaning "nothing settled yet". */
  private async call(refund: RefundExecution): Promise<RefundOutcome> {
    const { bank } = this.services;
    const reference = refund.refundId;
    if (this.mustInquire.has(reference)) {
      const known = await bank.inquireRefund(reference);
      // not_found: the bank never saw it, nothing moved; it may be sent (again) below.
      if (known.kind !== 'not_found') return outcomeOf(known);
      this.mustInquire.delete(reference);
    }
    // From here the bank may give the money back: until an answer arrives, the next call inquires.
    // The mark is cleared only by an answer, so a failure of any kind is followed by an inquiry.
    this.mustInquire.add(reference);
    try {
      const answer = await bank.refund({
        reference,
        paymentReference: refund.orderId,
        merchantId: refund.merchantId,
        amount: refund.amount,
        currency: refund.currency,
      });
      this.mustInquire.delete(reference);
      return outcomeOf(answer);
    } catch (error) {
      if (this.services.classify(error) !== 'refused') throw error;
      // The bank refused the refund itself (4xx): sending it again gets the same refusal.
      this.mustInquire.delete(reference);
      return { kind: 'failed', reason: refusalCodeOf(error) };
    }
  }
}

function outcomeOf(answer: RefundAnswer): RefundOutcome {
  return answer.kind === 'succeeded'
    ? { kind: 'succeeded' }
    : { kind: 'failed', reason: answer.failureReason };
}

/**
 * The stable code of a refusal: the bank's errors (`BankRejectedError`, the simulators' refusals)
 * carry the problem code the bank answered with, which this module reads without depending on the
 * bank's client.
 */
export function refusalCodeOf(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const { code } = error;
    if (typeof code === 'string' && /^[a-z][a-z0-9_]*$/.test(code)) return code;
  }
  return refusedWithoutCode;
}
