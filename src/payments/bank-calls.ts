import type { EntityContext } from '../persistence/entity.js';
import { assertNever } from '../runtime/assert-never.js';
import { type BackoffSettings, backoffDelayMs } from '../runtime/backoff.js';
import {
  type BankCallControl,
  type Execution,
  type ExecutorState,
  resultMessage,
} from './executor-decider.js';
import type {
  BankErrorKind,
  BankPort,
  BankResolution,
  CardReader,
  ExecutorCommand,
} from './executor-protocol.js';
import type { FailureReason } from './order.js';
import type { ExecutionOutcome } from './protocol.js';

/**
 * The Executor's I/O: its calls to the acquiring bank, made outside the actor, whose answers come
 * back to the entity as commands (`RecordBankOutcome`, `RetryExecutionLater`). The rule it keeps is
 * that the bank is never called blindly twice for an order whose outcome is unknown: after a
 * timeout, and after every restart, the first call for a pending order is a status inquiry; past
 * the order's deadline, or after a refusal, the reference is cancelled, which settles it for good.
 */

export interface ExecutorServices {
  readonly bank: BankPort;
  readonly cards: CardReader;
  /** Classifies an error thrown by the bank port. */
  classify(error: unknown): BankErrorKind;
}

type Context = EntityContext<ExecutorCommand>;

/**
 * How the next bank call for a pending order goes. Attempt counters live beside the entity, not in
 * its state: they only pace retries, and a fresh incarnation starts by inquiring anyway.
 */
export class BankCalls implements BankCallControl {
  private readonly attempts = new Map<string, number>();
  /** Orders whose last call may have reached the bank: the next call must be an inquiry. */
  private readonly mustInquire = new Set<string>();
  /** Orders the bank refused outright (e.g. a card it cannot process): settle them by cancelling. */
  private readonly refused = new Set<string>();
  /**
   * Orders with a bank call under way. One call at a time per order, across incarnations: a
   * call started by an incarnation that has since crashed still finishes, and reports to the
   * live one, instead of racing a second call started after the restart.
   */
  private readonly running = new Set<string>();
  /** The live incarnation of each executor entity, to which finished calls report. */
  private readonly live = new Map<string, Context>();

  constructor(
    private readonly services: ExecutorServices,
    private readonly retryBackoff: BackoffSettings,
  ) {}

  /** Every pending order of a fresh incarnation: its earlier call may have reached the bank. */
  recovered(state: ExecutorState, context: Context): void {
    this.live.set(context.entityId, context);
    for (const execution of state.executions.values()) {
      if (execution.outcome !== undefined || this.running.has(execution.orderId)) continue;
      this.mustInquire.add(execution.orderId);
      this.start(execution, context);
    }
  }

  start(execution: Execution, context: Context): void {
    const { orderId } = execution;
    if (this.running.has(orderId)) return;
    this.running.add(orderId);
    void this.call(execution, context)
      .then(
        (outcome) => {
          if (outcome === undefined) return;
          const reportTo = this.live.get(context.entityId) ?? context;
          const at = reportTo.clock.now();
          // The bank's answer is durable in the bank's ledger already, and an inquiry gives it again
          // after any crash here: the Merchant may hear it now, while it is being recorded here
          // (ExecutionSettled), rather than one commit later. The recorded result is then delivered
          // at least once as before; the Merchant takes whichever copy comes first.
          reportTo.messenger.tell(
            execution.merchant,
            resultMessage(execution, outcome, at, reportTo.entityId),
          );
          reportTo.self.tell({ type: 'RecordBankOutcome', orderId, outcome, at });
        },
        (error: unknown) => this.failed(orderId, error, this.live.get(context.entityId) ?? context),
      )
      .finally(() => this.running.delete(orderId));
  }

  retryLater(orderId: string, context: Context): void {
    const attempt = this.attempts.get(orderId) ?? 0;
    this.attempts.set(orderId, attempt + 1);
    const delayMs = backoffDelayMs(attempt, this.retryBackoff, context.random);
    context.timers.startSingle(`retry-${orderId}`, { type: 'RetryExecution', orderId }, delayMs);
  }

  settled(orderId: string, context: Context): void {
    this.attempts.delete(orderId);
    this.mustInquire.delete(orderId);
    this.refused.delete(orderId);
    context.timers.cancel(`retry-${orderId}`);
  }

  private failed(orderId: string, error: unknown, context: Context): void {
    const kind = this.services.classify(error);
    // A timeout may have charged the card: never send again without asking first.
    if (kind === 'unknown_outcome') this.mustInquire.add(orderId);
    // Retrying a refusal would be refused again, forever: settle the reference instead.
    if (kind === 'refused') this.refused.add(orderId);
    const reason = error instanceof Error ? error.message : String(error);
    context.log.warn({ orderId, kind, reason }, 'bank call failed; will retry');
    context.self.tell({ type: 'RetryExecutionLater', orderId, reason: kind });
  }

  /** One step towards settling an order; undefined means "nothing settled yet, try again". */
  private async call(execution: Execution, context: Context): Promise<ExecutionOutcome | undefined> {
    const { bank, cards } = this.services;
    const reference = execution.orderId;
    if (this.mustInquire.has(reference)) {
      const known = await bank.inquire(reference);
      this.mustInquire.delete(reference);
      // Cancelled already (we crashed after cancelling): why is lost, but not whether it was charged.
      const cancelledBecause =
        context.clock.now() >= execution.deadlineAt ? 'deadline_exceeded' : 'bank_refused';
      if (known.kind !== 'not_found') return outcomeOf(known, cancelledBecause);
    }
    if (this.refused.has(reference)) return outcomeOf(await bank.cancel(reference), 'bank_refused');
    if (context.clock.now() >= execution.deadlineAt) {
      return outcomeOf(await bank.cancel(reference), 'deadline_exceeded');
    }
    const number = await cards.reveal(execution.card.token);
    if (number === undefined) return outcomeOf(await bank.cancel(reference), 'card_unavailable');
    const card = { number, expMonth: execution.card.expMonth, expYear: execution.card.expYear };
    // From here the bank may charge: if this call fails in an unknown way, the next one inquires.
    this.mustInquire.add(reference);
    const answer = await bank.authorize({
      reference,
      merchantId: execution.merchantId,
      amount: execution.amount,
      currency: execution.currency,
      card,
    });
    this.mustInquire.delete(reference);
    return outcomeOf(answer, 'bank_unavailable');
  }
}

function outcomeOf(resolution: BankResolution, cancelledBecause: FailureReason): ExecutionOutcome {
  switch (resolution.kind) {
    case 'approved':
      return { kind: 'executed', authorizationCode: resolution.authorizationCode };
    case 'declined':
      return { kind: 'declined', reason: resolution.declineReason };
    case 'cancelled':
      return { kind: 'failed', reason: cancelledBecause };
    default:
      return assertNever(resolution, 'bank resolution');
  }
}
