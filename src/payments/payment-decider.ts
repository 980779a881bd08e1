import { OrderedMap } from 'immutable';
import {
  emptyOutbox,
  type Outbox,
  type OutboxEntry,
  outboxHasRoom,
  outboxWith,
  outboxWithout,
} from '../delivery/outbox.js';
import { type Effect, effectsFor } from '../persistence/effect.js';
import type { EntityContext } from '../persistence/entity.js';
import { assertNever } from '../runtime/assert-never.js';
import { entityAddress } from '../runtime/entity-address.js';
import type { PaymentSettings } from './payment.js';
import type { PaymentEvent } from './payment-events.js';
import type { PaymentCommand, PaymentFacts, RequestRefundReply } from './payment-protocol.js';
import { type ExecuteRefund, executorTypeName, type ProcessRefundResult, paymentInbox } from './protocol.js';
import type { Refund } from './refund.js';

/**
 * How a Payment decides (`decidePayment`: a command and the state in, an effect out, no I/O) and
 * how its events change its state (`evolvePayment`, the only place they do). The commands are in
 * `payment-protocol.ts`, the events in `payment-events.ts`, the wiring and settings in `payment.ts`.
 */

/**
 * One executed order's refunds. Bounded by `refundsPerOrderMax`, so the state keeps them all:
 * it answers a retried refund and lists the order's refunds without the read model.
 */
export interface PaymentState {
  readonly orderId: string;
  /** The order's fixed facts, recorded with its first refund. */
  readonly facts: PaymentFacts | undefined;
  /** Every refund of the order, oldest first. */
  readonly refunds: OrderedMap<string, Refund>;
  /** `ExecuteRefund` deliveries the Executor has not confirmed yet. */
  readonly outbox: Outbox<ExecuteRefund>;
}

export function initialPaymentState(orderId: string): PaymentState {
  return { orderId, facts: undefined, refunds: OrderedMap(), outbox: emptyOutbox };
}

/** What the refunds of a payment hold: succeeded, and pending (which may still succeed). */
export function refundTotals(state: PaymentState): {
  readonly succeeded: bigint;
  readonly pending: bigint;
  readonly pendingCount: number;
} {
  let succeeded = 0n;
  let pending = 0n;
  let pendingCount = 0;
  for (const refund of state.refunds.values()) {
    if (refund.status === 'succeeded') succeeded += refund.amount;
    if (refund.status === 'pending') {
      pending += refund.amount;
      pendingCount++;
    }
  }
  return { succeeded, pending, pendingCount };
}

type PaymentEffect = Effect<PaymentState, PaymentCommand, PaymentEvent>;
const effect = effectsFor<PaymentState, PaymentCommand, PaymentEvent>();

export function decidePayment(
  state: PaymentState,
  command: PaymentCommand,
  settings: PaymentSettings,
): PaymentEffect {
  switch (command.type) {
    case 'RequestRefund':
      return requestRefund(state, command, settings);
    case 'GetRefunds':
      return effect.reply(command.replyTo, { type: 'Refunds', refunds: [...state.refunds.values()] });
    case 'ConfirmExecuteRefund':
      // A confirmation of a delivery no longer outstanding (a duplicate, or after the result) changes nothing.
      if (!state.outbox.has(command.refundId)) return effect.none();
      return effect.persist({ type: 'ExecuteRefundConfirmed', refundId: command.refundId });
    case 'ProcessRefundResult':
      return processRefundResult(state, command);
    default:
      return assertNever(command, 'Payment command');
  }
}

function requestRefund(
  state: PaymentState,
  command: Extract<PaymentCommand, { type: 'RequestRefund' }>,
  settings: PaymentSettings,
): PaymentEffect {
  const { refund, replyTo } = command;
  const known = state.refunds.get(refund.refundId);
  if (known !== undefined) {
    return effect.reply(replyTo, {
      type: 'RefundExists',
      refund: known,
      sameRequest: known.requestHash === refund.requestHash,
    });
  }
  if (refund.amount <= 0n) throw new Error(`refund ${refund.refundId} of ${refund.amount}: not positive`);
  // The facts recorded with the first refund stand; the order's are fixed once it was executed.
  const facts = state.facts ?? command.payment;
  if (facts.orderId !== state.orderId) {
    throw new Error(`payment ${state.orderId} asked to refund order ${facts.orderId}`);
  }
  const totals = refundTotals(state);
  if (
    state.refunds.size >= settings.refundsPerOrderMax ||
    totals.pendingCount >= settings.pendingRefundsPerOrderMax ||
    !outboxHasRoom(state.outbox, settings.pendingRefundsPerOrderMax)
  ) {
    return effect.reply(replyTo, { type: 'PaymentBusy' });
  }
  const amountRefundable = facts.amount - totals.succeeded - totals.pending;
  if (refund.amount > amountRefundable) {
    return effect.reply(replyTo, {
      type: 'RefundExceedsPayment',
      amountRefundable: amountRefundable > 0n ? amountRefundable : 0n,
    });
  }
  return effect
    .persist({
      type: 'RefundRequested',
      refundId: refund.refundId,
      orderId: facts.orderId,
      merchantId: facts.merchantId,
      idempotencyKey: refund.idempotencyKey,
      requestHash: refund.requestHash,
      amount: refund.amount,
      currency: facts.currency,
      reason: refund.reason,
      paymentAmount: facts.amount,
      bank: facts.bank,
      at: refund.receivedAt,
    })
    .thenDeliver(refund.refundId)
    .thenReply(replyTo, (after): RequestRefundReply => {
      const accepted = after.refunds.get(refund.refundId);
      if (accepted === undefined) throw new Error(`refund ${refund.refundId} vanished from its Payment`);
      return { type: 'RefundAccepted', refund: accepted };
    });
}

/** Recorded once; a repeat (a redelivery) is confirmed again and changes nothing. */
function processRefundResult(state: PaymentState, command: ProcessRefundResult): PaymentEffect {
  const { refundId, outcome, at, executor } = command;
  const refund = state.refunds.get(refundId);
  if (refund === undefined) {
    // Never requested here: nothing to record, and confirming would let the Executor forget it.
    return effect.none().thenRun((_after, context) => {
      context.log.error(
        { refundId, orderId: state.orderId },
        'refund result for a refund this payment never requested',
      );
    });
  }
  const confirm = (_after: PaymentState, context: EntityContext<PaymentCommand>) => {
    context.messenger.tell(executor, { type: 'ConfirmRefundResult', refundId });
  };
  if (refund.status !== 'pending') return effect.none().thenRun(confirm);
  const event: PaymentEvent =
    outcome.kind === 'succeeded'
      ? { type: 'RefundSucceeded', refundId, at }
      : { type: 'RefundFailed', refundId, reason: outcome.reason, at };
  return effect.persist(event).thenRun(confirm);
}

// ---- evolve ---------------------------------------------------------------------------------

export function evolvePayment(state: PaymentState, event: PaymentEvent): PaymentState {
  switch (event.type) {
    case 'RefundRequested': {
      if (state.refunds.has(event.refundId)) throw new Error(`refund ${event.refundId} requested twice`);
      const facts: PaymentFacts = state.facts ?? {
        orderId: event.orderId,
        merchantId: event.merchantId,
        amount: event.paymentAmount,
        currency: event.currency,
        bank: event.bank,
      };
      const refund: Refund = {
        id: event.refundId,
        orderId: event.orderId,
        merchantId: event.merchantId,
        idempotencyKey: event.idempotencyKey,
        requestHash: event.requestHash,
        status: 'pending',
        amount: event.amount,
        currency: event.currency,
        reason: event.reason,
        failureReason: undefined,
        createdAt: event.at,
        updatedAt: event.at,
      };
      return {
        ...state,
        facts,
        refunds: state.refunds.set(refund.id, refund),
        outbox: outboxWith(state.outbox, executeRefundEntry(refund, facts)),
      };
    }
    case 'ExecuteRefundConfirmed':
      return { ...state, outbox: outboxWithout(state.outbox, event.refundId) };
    case 'RefundSucceeded':
    case 'RefundFailed': {
      const refund = state.refunds.get(event.refundId);
      if (refund === undefined || refund.status !== 'pending') {
        throw new Error(`${event.type} for refund ${event.refundId}, which is not pending`);
      }
      const finished: Refund =
        event.type === 'RefundSucceeded'
          ? { ...refund, status: 'succeeded', updatedAt: event.at }
          : { ...refund, status: 'failed', failureReason: event.reason, updatedAt: event.at };
      return {
        ...state,
        refunds: state.refunds.set(refund.id, finished),
        // A result proves the Executor had the refund, even if its confirmation was lost.
        outbox: outboxWithout(state.outbox, event.refundId),
      };
    }
    default:
      return assertNever(event, 'Payment event');
  }
}

/** The delivery of a refund to the Executor of the order's bank, kept until it confirms it. */
export function executeRefundEntry(refund: Refund, facts: PaymentFacts): OutboxEntry<ExecuteRefund> {
  return {
    deliveryId: refund.id,
    // The Executor accepts more than ExecuteRefund; this entry only ever carries that one.
    destination: entityAddress<ExecuteRefund>(executorTypeName, facts.bank),
    message: {
      type: 'ExecuteRefund',
      refundId: refund.id,
      orderId: refund.orderId,
      merchantId: refund.merchantId,
      amount: refund.amount,
      currency: refund.currency,
      requestedAt: refund.createdAt,
      payment: paymentInbox(refund.orderId),
    },
  };
}
