/**
 * The Payment's decider as given/when/then specifications: given an order's past refund events,
 * when a request or an Executor's message arrives, then these events are persisted, these replies
 * sent and these messages told (side effects run in a recording `EntityContextProbe`). Covered:
 * the sum of refunds pending and succeeded never passes the order's amount, retries of a refund id
 * (same body, other body), the per-order limits, the delivery of `ExecuteRefund` and its
 * confirmation, and results recorded once however often they are delivered.
 */
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../runtime/clock.js';
import { SeededRandom } from '../runtime/random.js';
import { deciderSpec, EntityContextProbe, replyProbe } from '../testing/decider-spec.js';
import { orderIdFor } from './order.js';
import { defaultPaymentSettings, type PaymentSettings, paymentDefinition } from './payment.js';
import type { PaymentEvent } from './payment-events.js';
import type {
  GetRefundsReply,
  NewRefund,
  PaymentCommand,
  PaymentFacts,
  RequestRefundReply,
} from './payment-protocol.js';
import { type ProcessRefundResult, paymentInbox } from './protocol.js';
import { refundIdFor } from './refund.js';

const merchantId = 'merchant-a';
const orderId = orderIdFor(merchantId, 'order-key');
const start = Date.UTC(2026, 11, 7);
const facts: PaymentFacts = { orderId, merchantId, amount: 1_000n, currency: 'EUR', bank: 'bank-a' };
const executor = { typeName: 'executor', entityId: 'bank-a' };

function newRefund(n: number, amount: bigint, changes: Partial<NewRefund> = {}): NewRefund {
  const key = `refund-key-${n}`;
  return {
    refundId: refundIdFor(merchantId, orderId, key),
    idempotencyKey: key,
    requestHash: `hash-${n}-${amount}`,
    amount,
    reason: n === 1 ? 'damaged' : undefined,
    receivedAt: start + n,
    ...changes,
  };
}

function requested(refund: NewRefund): Extract<PaymentEvent, { type: 'RefundRequested' }> {
  return {
    type: 'RefundRequested',
    refundId: refund.refundId,
    orderId,
    merchantId,
    idempotencyKey: refund.idempotencyKey,
    requestHash: refund.requestHash,
    amount: refund.amount,
    currency: 'EUR',
    reason: refund.reason,
    paymentAmount: 1_000n,
    bank: 'bank-a',
    at: refund.receivedAt,
  };
}

function payment(settings: PaymentSettings = defaultPaymentSettings) {
  const context = new EntityContextProbe<PaymentCommand>(
    orderId,
    new SimulatedClock(start),
    new SeededRandom(1),
    'payment',
  );
  const spec = deciderSpec(paymentDefinition(settings), { entityId: orderId, context });
  return { spec, context };
}

function requestRefund(refund: NewRefund) {
  const replies = replyProbe<RequestRefundReply>();
  const command: PaymentCommand = { type: 'RequestRefund', refund, payment: facts, replyTo: replies };
  return { command, replies };
}

function result(refund: NewRefund, outcome: ProcessRefundResult['outcome']): ProcessRefundResult {
  return { type: 'ProcessRefundResult', refundId: refund.refundId, outcome, at: start + 100, executor };
}

describe('Payment: RequestRefund', () => {
  it('a refund within the order is persisted as pending, delivered to the bank’s Executor, and answered', () => {
    const { spec } = payment();
    const refund = newRefund(1, 400n);
    const { command, replies } = requestRefund(refund);
    const { state, delivered } = spec
      .given([])
      .when(command)
      .expectEvents([requested(refund)]);
    expect(delivered).toEqual([refund.refundId]);
    expect(state.outbox.get(refund.refundId)).toEqual({
      deliveryId: refund.refundId,
      destination: executor,
      message: {
        type: 'ExecuteRefund',
        refundId: refund.refundId,
        orderId,
        merchantId,
        amount: 400n,
        currency: 'EUR',
        requestedAt: start + 1,
        payment: paymentInbox(orderId),
      },
    });
    expect(replies.single()).toEqual({
      type: 'RefundAccepted',
      refund: {
        id: refund.refundId,
        orderId,
        merchantId,
        idempotencyKey: refund.idempotencyKey,
        requestHash: refund.requestHash,
        status: 'pending',
        amount: 400n,
        currency: 'EUR',
        reason: 'damaged',
        failureReason: undefined,
        createdAt: start + 1,
        updatedAt: start + 1,
      },
    });
  });

  it('refunds may add up to the whole order, counting pending ones; one more is refused with what remains', () => {
    const { spec } = payment();
    const first = newRefund(1, 600n);
    const second = newRefund(2, 400n);
    spec
      .given([requested(first)])
      .when(requestRefund(second).command)
      .expectEvents([requested(second)]);
    const third = requestRefund(newRefund(3, 1n));
    spec
      .given([requested(first), requested(second)])
      .when(third.command)
      .expectNothingPersisted();
    expect(third.replies.single()).toEqual({ type: 'RefundExceedsPayment', amountRefundable: 0n });
    const tooMuch = requestRefund(newRefund(4, 401n));
    spec
      .given([requested(first)])
      .when(tooMuch.command)
      .expectNothingPersisted();
    expect(tooMuch.replies.single()).toEqual({ type: 'RefundExceedsPayment', amountRefundable: 400n });
  });

  it('a failed refund gives its amount back to what may be refunded; a succeeded one does not', () => {
    const { spec } = payment();
    const first = newRefund(1, 600n);
    const failed: PaymentEvent = {
      type: 'RefundFailed',
      refundId: first.refundId,
      reason: 'refund_declined',
      at: start + 50,
    };
    const again = newRefund(2, 1_000n);
    spec
      .given([requested(first), failed])
      .when(requestRefund(again).command)
      .expectEvents([requested(again)]);
    const succeeded: PaymentEvent = { type: 'RefundSucceeded', refundId: first.refundId, at: start + 50 };
    const over = requestRefund(newRefund(3, 401n));
    spec
      .given([requested(first), succeeded])
      .when(over.command)
      .expectNothingPersisted();
    expect(over.replies.single()).toEqual({ type: 'RefundExceedsPayment', amountRefundable: 400n });
  });

  it('the same refund id again is a replay with the same body, and a reuse of the key with another', () => {
    const { spec } = payment();
    const refund = newRefund(1, 400n);
    const same = requestRefund(refund);
    spec
      .given([requested(refund)])
      .when(same.command)
      .expectNothingPersisted();
    expect(same.replies.single()).toMatchObject({
      type: 'RefundExists',
      sameRequest: true,
      refund: { id: refund.refundId },
    });
    // Another body under the same key: even one the order could not take is answered as the key's refund.
    const other = requestRefund({ ...refund, requestHash: 'another', amount: 5_000n });
    spec
      .given([requested(refund)])
      .when(other.command)
      .expectNothingPersisted();
    expect(other.replies.single()).toMatchObject({ type: 'RefundExists', sameRequest: false });
  });

  it('past refundsPerOrderMax refunds, or pendingRefundsPerOrderMax pending, the Payment is busy', () => {
    const { spec } = payment({
      ...defaultPaymentSettings,
      refundsPerOrderMax: 2,
      pendingRefundsPerOrderMax: 1,
    });
    const first = newRefund(1, 100n);
    const pendingFull = requestRefund(newRefund(2, 100n));
    spec
      .given([requested(first)])
      .when(pendingFull.command)
      .expectNothingPersisted();
    expect(pendingFull.replies.single()).toEqual({ type: 'PaymentBusy' });
    const second = newRefund(2, 100n);
    const settledBoth: PaymentEvent[] = [
      requested(first),
      { type: 'RefundSucceeded', refundId: first.refundId, at: start },
      requested(second),
      { type: 'RefundSucceeded', refundId: second.refundId, at: start },
    ];
    const allUsed = requestRefund(newRefund(3, 100n));
    spec.given(settledBoth).when(allUsed.command).expectNothingPersisted();
    expect(allUsed.replies.single()).toEqual({ type: 'PaymentBusy' });
  });

  it('the facts recorded with the first refund stand', () => {
    const { spec } = payment();
    const first = newRefund(1, 400n);
    const second = newRefund(2, 700n);
    const changed = requestRefund(second);
    const command = { ...changed.command, payment: { ...facts, amount: 5_000n } } as PaymentCommand;
    spec
      .given([requested(first)])
      .when(command)
      .expectNothingPersisted();
    expect(changed.replies.single()).toEqual({ type: 'RefundExceedsPayment', amountRefundable: 600n });
  });
});

describe('Payment: the Executor’s messages', () => {
  const refund = newRefund(1, 400n);

  it('a confirmation stops redelivery; again, or after the result, it changes nothing', () => {
    const { spec } = payment();
    const { state } = spec
      .given([requested(refund)])
      .when({ type: 'ConfirmExecuteRefund', refundId: refund.refundId })
      .expectEvents([{ type: 'ExecuteRefundConfirmed', refundId: refund.refundId }]);
    expect(state.outbox.size).toBe(0);
    spec
      .given([requested(refund), { type: 'ExecuteRefundConfirmed', refundId: refund.refundId }])
      .when({ type: 'ConfirmExecuteRefund', refundId: refund.refundId })
      .expectNothingPersisted();
  });

  it('a result is recorded once and confirmed; a redelivery of it is confirmed again and changes nothing', () => {
    const { spec, context } = payment();
    const { state } = spec
      .given([requested(refund)])
      .when(result(refund, { kind: 'succeeded' }))
      .expectEvents([{ type: 'RefundSucceeded', refundId: refund.refundId, at: start + 100 }]);
    expect(state.refunds.get(refund.refundId)?.status).toBe('succeeded');
    expect(state.outbox.size).toBe(0);
    const recorded: PaymentEvent = { type: 'RefundSucceeded', refundId: refund.refundId, at: start + 100 };
    spec
      .given([requested(refund), recorded])
      .when(result(refund, { kind: 'failed', reason: 'refund_declined' }))
      .expectNothingPersisted();
    const confirmation = {
      to: executor,
      message: { type: 'ConfirmRefundResult', refundId: refund.refundId },
    };
    expect(context.sent).toEqual([confirmation, confirmation]);
  });

  it('a failure is recorded with the bank’s code', () => {
    const { spec } = payment();
    const { state } = spec
      .given([requested(refund)])
      .when(result(refund, { kind: 'failed', reason: 'refund_exceeds_payment' }))
      .expectEvents([
        {
          type: 'RefundFailed',
          refundId: refund.refundId,
          reason: 'refund_exceeds_payment',
          at: start + 100,
        },
      ]);
    expect(state.refunds.get(refund.refundId)).toMatchObject({
      status: 'failed',
      failureReason: 'refund_exceeds_payment',
      updatedAt: start + 100,
    });
  });

  it('a result for a refund never requested here is neither recorded nor confirmed', () => {
    const { spec, context } = payment();
    spec
      .given([])
      .when(result(refund, { kind: 'succeeded' }))
      .expectNothingPersisted();
    expect(context.sent).toEqual([]);
  });

  it('a second result event for a finished refund is a crash in evolve', () => {
    const { spec } = payment();
    const done: PaymentEvent = { type: 'RefundSucceeded', refundId: refund.refundId, at: start };
    expect(() => spec.given([requested(refund), done, done])).toThrow('not pending');
  });
});

describe('Payment: GetRefunds', () => {
  it('lists every refund of the order, oldest first', () => {
    const { spec } = payment();
    const first = newRefund(1, 100n);
    const second = newRefund(2, 200n);
    const replies = replyProbe<GetRefundsReply>();
    spec
      .given([
        requested(first),
        requested(second),
        { type: 'RefundSucceeded', refundId: first.refundId, at: start + 9 },
      ])
      .when({ type: 'GetRefunds', replyTo: replies })
      .expectNothingPersisted();
    const reply = replies.single();
    expect(reply.refunds.map((each) => [each.id, each.status])).toEqual([
      [first.refundId, 'succeeded'],
      [second.refundId, 'pending'],
    ]);
  });
});
