import { Map as ImmutableMap } from 'immutable';
import { emptyOutbox, type Outbox, type OutboxEntry, outboxWith, outboxWithout } from '../delivery/outbox.js';
import { type Effect, effectsFor } from '../persistence/effect.js';
import type { EntityContext } from '../persistence/entity.js';
import { assertNever } from '../runtime/assert-never.js';
import { type EntityAddress, entityAddress } from '../runtime/entity-address.js';
import type { CardSummary } from './card.js';
import type { ExecutorEvent } from './executor-events.js';
import type { ExecutorCommand } from './executor-protocol.js';
import type { Currency } from './money.js';
import {
  type ExecutionOutcome,
  type ExecutorRefundInbox,
  executorInbox,
  executorTypeName,
  type MerchantInbox,
  merchantInbox,
  merchantTypeName,
  type PaymentInbox,
  type ProcessExecutionResult,
  type ProcessRefundResult,
  paymentInbox,
  paymentTypeName,
  type RefundOutcome,
} from './protocol.js';
import type { BankId } from './validator.js';

/**
 * How an Executor decides (`decideExecutor`: a command and the state in, an effect out, no I/O)
 * and how its events change its state (`evolveExecutor`, the only place they do, live and in
 * recovery alike). The bank itself is called by `BankCalls` (`bank-calls.ts`), which a decision
 * starts, paces or ends only as a side effect, once the decision's events are durable.
 */

export interface Execution {
  readonly orderId: string;
  readonly merchantId: string;
  readonly merchant: EntityAddress<MerchantInbox>;
  readonly amount: bigint;
  readonly currency: Currency;
  readonly card: CardSummary;
  readonly deadlineAt: number;
  /** Set once the bank's answer is durable; the entry stays until the Merchant confirms the result. */
  readonly outcome: ExecutionOutcome | undefined;
  /** When the outcome was recorded (the time reported to the Merchant); set with `outcome`. */
  readonly settledAt: number | undefined;
}

/** A refund the Executor holds: recorded before its first bank call, kept until the Payment confirms its result. */
export interface RefundExecution {
  readonly refundId: string;
  readonly orderId: string;
  readonly merchantId: string;
  readonly payment: EntityAddress<PaymentInbox>;
  readonly amount: bigint;
  readonly currency: Currency;
  readonly requestedAt: number;
  /** Set once the bank's answer is durable; the entry stays until the Payment confirms the result. */
  readonly outcome: RefundOutcome | undefined;
  /** When the outcome was recorded (the time reported to the Payment); set with `outcome`. */
  readonly settledAt: number | undefined;
}

/** What the Executor delivers at least once: orders' results to Merchants, refunds' to Payments. */
export type ExecutorResult = ProcessExecutionResult | ProcessRefundResult;

export interface ExecutorState {
  readonly bank: BankId;
  /** Executions in flight: requested, and not yet confirmed back by the Merchant. */
  readonly executions: ImmutableMap<string, Execution>;
  /** Refunds in flight: requested, and not yet confirmed back by their Payment. */
  readonly refunds: ImmutableMap<string, RefundExecution>;
  /**
   * Results not yet confirmed: exactly the executions and refunds with an outcome, keyed by order
   * id or refund id (the two never collide: `ord_…`, `re_…`).
   */
  readonly outbox: Outbox<ExecutorResult>;
}

export function initialExecutorState(bank: BankId): ExecutorState {
  return { bank, executions: ImmutableMap(), refunds: ImmutableMap(), outbox: emptyOutbox };
}

/** What a decision may ask of the bank calls; `BankCalls` is the implementation. */
export interface BankCallControl {
  /** Makes the next bank call for a pending execution (unless one is under way). */
  start(execution: Execution, context: EntityContext<ExecutorCommand>): void;
  /** Asks for a `RetryExecution` after the order's next backoff delay. */
  retryLater(orderId: string, context: EntityContext<ExecutorCommand>): void;
  /** The order's outcome is durable: forget its attempts and cancel its retry. */
  settled(orderId: string, context: EntityContext<ExecutorCommand>): void;
}

/** What a decision may ask of the refunds' bank calls; `RefundCalls` is the implementation. */
export interface RefundCallControl {
  /** Makes the next bank call for a pending refund (unless one is under way). */
  start(refund: RefundExecution, context: EntityContext<ExecutorCommand>): void;
  /** Asks for a `RetryRefund` after the refund's next backoff delay. */
  retryLater(refundId: string, context: EntityContext<ExecutorCommand>): void;
  /** The refund's outcome is durable: forget its attempts and cancel its retry. */
  settled(refundId: string, context: EntityContext<ExecutorCommand>): void;
}

export interface ExecutorDeciderSettings {
  /** Orders accepted and not yet confirmed back; past it new ones are not confirmed (the Merchant retries). */
  readonly executionsInFlightMax: number;
  /** Refunds accepted and not yet confirmed back; past it new ones are not confirmed (the Payment retries). */
  readonly refundsInFlightMax: number;
}

type ExecutorEffect = Effect<ExecutorState, ExecutorCommand, ExecutorEvent>;
const effect = effectsFor<ExecutorState, ExecutorCommand, ExecutorEvent>();

export function decideExecutor(
  state: ExecutorState,
  command: ExecutorCommand,
  settings: ExecutorDeciderSettings,
  calls: BankCallControl,
  refundCalls: RefundCallControl,
): ExecutorEffect {
  switch (command.type) {
    case 'ExecuteOrder': {
      if (state.executions.has(command.orderId)) return confirmDelivery(command);
      // Full: say nothing. The Merchant redelivers later; nothing is lost, only delayed.
      if (state.executions.size >= settings.executionsInFlightMax) return effect.none();
      return (
        effect
          .persist({
            type: 'ExecutionRequested',
            orderId: command.orderId,
            merchantId: command.merchantId,
            amount: command.amount,
            currency: command.currency,
            card: command.card,
            deadlineAt: command.deadlineAt,
          })
          // Acknowledged before the bank is called: a Merchant that holds no acknowledgement past
          // the order's deadline may end the order itself (no Executor is alive to), and that is
          // safe only if every order sent to the bank was acknowledged first.
          .thenRun((after, context) => {
            context.messenger.tell(command.merchant, {
              type: 'ConfirmExecuteOrder',
              orderId: command.orderId,
            });
            const execution = after.executions.get(command.orderId);
            if (execution !== undefined) calls.start(execution, context);
          })
      );
    }
    case 'RecordBankOutcome': {
      const execution = state.executions.get(command.orderId);
      if (execution === undefined || execution.outcome !== undefined) return effect.none();
      return (
        effect
          .persist({
            type: 'ExecutionSettled',
            orderId: command.orderId,
            outcome: command.outcome,
            at: command.at,
          })
          // No thenDeliver: the Merchant was told when the bank answered. The recorded result stays in
          // the outbox, and redelivery sends it (within redeliverIntervalMs) until it is confirmed.
          .thenRun((_after, context) => calls.settled(command.orderId, context))
      );
    }
    case 'RetryExecutionLater':
      if (state.executions.get(command.orderId)?.outcome !== undefined) return effect.none();
      return effect.none().thenRun((_after, context) => calls.retryLater(command.orderId, context));
    case 'RetryExecution': {
      const execution = state.executions.get(command.orderId);
      if (execution === undefined || execution.outcome !== undefined) return effect.none();
      return effect.none().thenRun((_after, context) => calls.start(execution, context));
    }
    case 'ConfirmResult':
      if (!state.outbox.has(command.orderId)) return effect.none();
      return effect.persist({ type: 'ResultConfirmed', orderId: command.orderId });
    case 'ExecuteRefund':
    case 'RecordRefundOutcome':
    case 'RetryRefundLater':
    case 'RetryRefund':
    case 'ConfirmRefundResult':
      return decideRefund(state, command, settings, refundCalls);
    default:
      return assertNever(command, 'Executor command');
  }
}

type RefundCommand = Extract<
  ExecutorCommand,
  {
    type:
      | 'ExecuteRefund'
      | 'RecordRefundOutcome'
      | 'RetryRefundLater'
      | 'RetryRefund'
      | 'ConfirmRefundResult';
  }
>;

/**
 * A refund's life at the Executor, the order's path again: recorded (its id committed with the
 * event, so a redelivery is only confirmed) and acknowledged before the bank is called, the bank's
 * answer persisted and then delivered to the Payment at least once, forgotten once confirmed.
 */
function decideRefund(
  state: ExecutorState,
  command: RefundCommand,
  settings: ExecutorDeciderSettings,
  calls: RefundCallControl,
): ExecutorEffect {
  switch (command.type) {
    case 'ExecuteRefund': {
      if (state.refunds.has(command.refundId)) return confirmDelivery(command);
      // Full: say nothing. The Payment redelivers later; nothing is lost, only delayed.
      if (state.refunds.size >= settings.refundsInFlightMax) return effect.none();
      return effect
        .persist({
          type: 'RefundExecutionRequested',
          refundId: command.refundId,
          orderId: command.orderId,
          merchantId: command.merchantId,
          amount: command.amount,
          currency: command.currency,
          requestedAt: command.requestedAt,
        })
        .thenRun((after, context) => {
          context.messenger.tell(command.payment, {
            type: 'ConfirmExecuteRefund',
            refundId: command.refundId,
          });
          const refund = after.refunds.get(command.refundId);
          if (refund !== undefined) calls.start(refund, context);
        });
    }
    case 'RecordRefundOutcome': {
      const refund = state.refunds.get(command.refundId);
      if (refund === undefined || refund.outcome !== undefined) return effect.none();
      return effect
        .persist({
          type: 'RefundExecutionSettled',
          refundId: command.refundId,
          orderId: refund.orderId,
          outcome: command.outcome,
          at: command.at,
        })
        .thenDeliver(command.refundId)
        .thenRun((_after, context) => calls.settled(command.refundId, context));
    }
    case 'RetryRefundLater':
      if (state.refunds.get(command.refundId)?.outcome !== undefined) return effect.none();
      return effect.none().thenRun((_after, context) => calls.retryLater(command.refundId, context));
    case 'RetryRefund': {
      const refund = state.refunds.get(command.refundId);
      if (refund === undefined || refund.outcome !== undefined) return effect.none();
      return effect.none().thenRun((_after, context) => calls.start(refund, context));
    }
    case 'ConfirmRefundResult': {
      const refund = state.refunds.get(command.refundId);
      if (refund === undefined || !state.outbox.has(command.refundId)) return effect.none();
      return effect.persist({
        type: 'RefundResultConfirmed',
        refundId: command.refundId,
        orderId: refund.orderId,
      });
    }
    default:
      return assertNever(command, 'Executor refund command');
  }
}

/**
 * The answer to an `ExecuteOrder` the Executor has (or had) already: confirm the delivery again,
 * change nothing. Also the answer to a duplicate the store's deduplication records catch.
 */
export function confirmDelivery(command: ExecutorCommand): ExecutorEffect {
  if (command.type === 'ExecuteRefund') {
    return effect.none().thenRun((_state, context) => {
      context.messenger.tell(command.payment, { type: 'ConfirmExecuteRefund', refundId: command.refundId });
    });
  }
  if (command.type !== 'ExecuteOrder') return effect.none();
  return effect.none().thenRun((_state, context) => {
    context.messenger.tell(command.merchant, { type: 'ConfirmExecuteOrder', orderId: command.orderId });
  });
}

export function evolveExecutor(state: ExecutorState, event: ExecutorEvent): ExecutorState {
  switch (event.type) {
    case 'ExecutionRequested':
      return {
        ...state,
        executions: state.executions.set(event.orderId, {
          orderId: event.orderId,
          merchantId: event.merchantId,
          merchant: merchantInbox(event.merchantId),
          amount: event.amount,
          currency: event.currency,
          card: event.card,
          deadlineAt: event.deadlineAt,
          outcome: undefined,
          settledAt: undefined,
        }),
      };
    case 'ExecutionSettled': {
      const execution = state.executions.get(event.orderId);
      if (execution === undefined) throw new Error(`ExecutionSettled for unknown order ${event.orderId}`);
      const settled: Execution = { ...execution, outcome: event.outcome, settledAt: event.at };
      return {
        ...state,
        executions: state.executions.set(event.orderId, settled),
        outbox: outboxWith(state.outbox, resultEntry(state.bank, settled, event.outcome, event.at)),
      };
    }
    case 'ResultConfirmed':
      return {
        ...state,
        executions: state.executions.delete(event.orderId),
        outbox: outboxWithout(state.outbox, event.orderId),
      };
    case 'RefundExecutionRequested':
      if (state.refunds.has(event.refundId)) throw new Error(`refund ${event.refundId} requested twice`);
      return {
        ...state,
        refunds: state.refunds.set(event.refundId, {
          refundId: event.refundId,
          orderId: event.orderId,
          merchantId: event.merchantId,
          payment: paymentInbox(event.orderId),
          amount: event.amount,
          currency: event.currency,
          requestedAt: event.requestedAt,
          outcome: undefined,
          settledAt: undefined,
        }),
      };
    case 'RefundExecutionSettled': {
      const refund = state.refunds.get(event.refundId);
      if (refund === undefined)
        throw new Error(`RefundExecutionSettled for unknown refund ${event.refundId}`);
      const settled: RefundExecution = { ...refund, outcome: event.outcome, settledAt: event.at };
      return {
        ...state,
        refunds: state.refunds.set(event.refundId, settled),
        outbox: outboxWith(state.outbox, refundResultEntry(state.bank, settled, event.outcome, event.at)),
      };
    }
    case 'RefundResultConfirmed':
      return {
        ...state,
        refunds: state.refunds.delete(event.refundId),
        outbox: outboxWithout(state.outbox, event.refundId),
      };
    default:
      return assertNever(event, 'Executor event');
  }
}

/** The delivery of a refund's result to its Payment, kept until the Payment confirms it. */
export function refundResultEntry(
  bank: BankId,
  refund: RefundExecution,
  outcome: RefundOutcome,
  at: number,
): OutboxEntry<ProcessRefundResult> {
  return {
    deliveryId: refund.refundId,
    // The Payment accepts more than ProcessRefundResult; this entry only ever carries that one.
    destination: entityAddress<ProcessRefundResult>(paymentTypeName, refund.orderId),
    message: {
      type: 'ProcessRefundResult',
      refundId: refund.refundId,
      outcome,
      at,
      executor: entityAddress<ExecutorRefundInbox>(executorTypeName, bank),
    },
  };
}

/** The delivery of an execution's result to its Merchant, kept until the Merchant confirms it. */
export function resultEntry(
  bank: BankId,
  execution: Execution,
  outcome: ExecutionOutcome,
  at: number,
): OutboxEntry<ProcessExecutionResult> {
  return {
    deliveryId: execution.orderId,
    // The Merchant accepts more than ProcessExecutionResult; this entry only ever carries that one.
    destination: entityAddress<ProcessExecutionResult>(merchantTypeName, execution.merchantId),
    message: resultMessage(execution, outcome, at, bank),
  };
}

export function resultMessage(
  execution: Execution,
  outcome: ExecutionOutcome,
  at: number,
  bank: BankId,
): ProcessExecutionResult {
  return {
    type: 'ProcessExecutionResult',
    orderId: execution.orderId,
    outcome,
    at,
    executor: executorInbox(bank),
  };
}
