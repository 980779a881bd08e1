/**
 * The Executor's decider, one transition at a time, as given/when/then specifications, and the
 * bank calls its decisions start (`BankCalls`) followed to the command each call reports back.
 * Side effects run in a recording context (`EntityContextProbe`): what the Executor tells the
 * Merchant, tells itself and sets timers for is checked, and the reported commands are fed back in
 * by the spec, as the entity's mailbox would. The bank is the in-memory `SimulatedBank` with the
 * real simulator's rules, behind a wrapper that records which operation each call was, so a spec
 * can say that an unknown outcome was resolved by an inquiry and never by a second authorization.
 */
import { describe, expect, it } from 'vitest';
import { classifySimulatedBankError, SimulatedBank } from '../bank/simulated-bank.js';
import { SimulatedClock, settle } from '../runtime/clock.js';
import { SeededRandom } from '../runtime/random.js';
import { deciderSpec, EntityContextProbe } from '../testing/decider-spec.js';
import { waitFor } from '../testing/entity-test-kit.js';
import { visaCardSummary } from '../testing/fixtures/card-summary.js';
import { InMemoryCards } from '../testing/in-memory-cards.js';
import type { CardSummary } from './card.js';
import { defaultExecutorSettings, type ExecutorSettings, executorDefinition } from './executor.js';
import { type ExecutorEvent, executorSnapshotCodec } from './executor-events.js';
import type { BankPort, ExecutorCommand, PaymentRequest, RefundRequest } from './executor-protocol.js';
import {
  type ExecuteOrder,
  type ExecuteRefund,
  type ExecutionOutcome,
  executorInbox,
  merchantInbox,
  paymentInbox,
  type RefundOutcome,
} from './protocol.js';

const bank = 'bank-a';
const now = Date.UTC(2026, 10, 24);
const token = `tok_${'1'.repeat(32)}`;
const card: CardSummary = visaCardSummary(token);

type Operation = 'authorize' | 'inquire' | 'cancel' | 'refund' | 'inquireRefund';

/** The simulated bank, with a record of each operation asked of it, in order. */
class RecordingBank implements BankPort {
  readonly operations: Array<{ operation: Operation; reference: string }> = [];
  constructor(readonly bank: SimulatedBank) {}

  authorize(request: PaymentRequest) {
    this.operations.push({ operation: 'authorize', reference: request.reference });
    return this.bank.authorize(request);
  }
  inquire(reference: string) {
    this.operations.push({ operation: 'inquire', reference });
    return this.bank.inquire(reference);
  }
  cancel(reference: string) {
    this.operations.push({ operation: 'cancel', reference });
    return this.bank.cancel(reference);
  }
  refund(request: RefundRequest) {
    this.operations.push({ operation: 'refund', reference: request.reference });
    return this.bank.refund(request);
  }
  inquireRefund(reference: string) {
    this.operations.push({ operation: 'inquireRefund', reference });
    return this.bank.inquireRefund(reference);
  }

  operationsFor(reference: string): Operation[] {
    return this.operations.filter((each) => each.reference === reference).map((each) => each.operation);
  }
}

function executor(settings: ExecutorSettings = defaultExecutorSettings) {
  const random = new SeededRandom(7);
  const clock = new SimulatedClock(now);
  const simulated = new SimulatedBank(random);
  const recording = new RecordingBank(simulated);
  const cards = new InMemoryCards();
  cards.cards.set(token, '4242424242424242');
  const definition = executorDefinition(
    { bank: recording, cards, classify: classifySimulatedBankError },
    settings,
  );
  const context = new EntityContextProbe<ExecutorCommand>(bank, clock, random, 'executor');
  const spec = deciderSpec(definition, { entityId: bank, context });
  return { definition, spec, context, clock, bank: recording, simulated, cards };
}

function executeOrder(n: number, changes: Partial<ExecuteOrder> = {}): ExecuteOrder {
  return {
    type: 'ExecuteOrder',
    orderId: `ord_${n}`,
    merchantId: 'merchant-a',
    amount: 1_000n,
    currency: 'EUR',
    card,
    deadlineAt: now + 60_000,
    merchant: merchantInbox('merchant-a'),
    ...changes,
  };
}

function requested(order: ExecuteOrder): ExecutorEvent {
  return {
    type: 'ExecutionRequested',
    orderId: order.orderId,
    merchantId: order.merchantId,
    amount: order.amount,
    currency: order.currency,
    card: order.card,
    deadlineAt: order.deadlineAt,
  };
}

function settled(order: ExecuteOrder, outcome: ExecutionOutcome, at = now + 10): ExecutorEvent {
  return { type: 'ExecutionSettled', orderId: order.orderId, outcome, at };
}

/** Waits for the bank call under way to report back to the Executor, and takes that command. */
async function reported(context: EntityContextProbe<ExecutorCommand>): Promise<ExecutorCommand> {
  await waitFor(() => context.toSelf.length > 0);
  expect(context.toSelf).toHaveLength(1);
  const command = context.toSelf.pop();
  if (command === undefined) throw new Error('nothing reported');
  return command;
}

describe('Executor: ExecuteOrder', () => {
  it('a new order is recorded and acknowledged before any bank call, then authorized; the Merchant hears the answer at once', async () => {
    const { spec, context, bank: port } = executor();
    const order = executeOrder(1);
    spec
      .given([])
      .when(order)
      .expectEvents([requested(order)]);
    const report = await reported(context);
    expect(report).toMatchObject({
      type: 'RecordBankOutcome',
      orderId: order.orderId,
      outcome: { kind: 'executed' },
      at: now,
    });
    expect(port.operationsFor(order.orderId)).toEqual(['authorize']);
    expect(context.sent).toEqual([
      { to: merchantInbox('merchant-a'), message: { type: 'ConfirmExecuteOrder', orderId: order.orderId } },
      {
        to: merchantInbox('merchant-a'),
        message: {
          type: 'ProcessExecutionResult',
          orderId: order.orderId,
          outcome: report.type === 'RecordBankOutcome' ? report.outcome : undefined,
          at: now,
          executor: executorInbox(bank),
        },
      },
    ]);
  });

  it('a duplicate ExecuteOrder of an execution in flight is confirmed again, never executed again', async () => {
    const { spec, context, bank: port } = executor();
    const order = executeOrder(1);
    spec
      .given([requested(order)])
      .when(order)
      .expectNothingPersisted();
    expect(context.sent).toEqual([
      { to: merchantInbox('merchant-a'), message: { type: 'ConfirmExecuteOrder', orderId: order.orderId } },
    ]);
    // A bank call would have begun by now: its first step is a few promise turns away.
    await settle();
    expect(port.operations).toEqual([]);
  });

  it('a duplicate ExecuteOrder the store remembers (the execution long forgotten) is confirmed again', async () => {
    const { spec, context, bank: port } = executor();
    const order = executeOrder(1);
    spec.given([]).whenDuplicate(order).expectNothingPersisted();
    expect(context.sent).toEqual([
      { to: merchantInbox('merchant-a'), message: { type: 'ConfirmExecuteOrder', orderId: order.orderId } },
    ]);
    // A bank call would have begun by now: its first step is a few promise turns away.
    await settle();
    expect(port.operations).toEqual([]);
  });

  it('with executionsInFlightMax executions in flight, a new order gets no answer (the Merchant redelivers)', async () => {
    const { spec, context, bank: port } = executor({ ...defaultExecutorSettings, executionsInFlightMax: 1 });
    spec
      .given([requested(executeOrder(1))])
      .when(executeOrder(2))
      .expectNothingPersisted();
    expect(context.sent).toEqual([]);
    // A bank call would have begun by now: its first step is a few promise turns away.
    await settle();
    expect(port.operations).toEqual([]);
  });
});

describe('Executor: the bank outcome of a pending order', () => {
  const order = executeOrder(1);
  const outcome: ExecutionOutcome = { kind: 'executed', authorizationCode: '123456' };

  it('is recorded, its result is kept for redelivery to the Merchant, and its retry timer is cancelled', () => {
    const { spec, context } = executor();
    const { state, delivered } = spec
      .given([requested(order)])
      .when({ type: 'RecordBankOutcome', orderId: order.orderId, outcome, at: now + 10 })
      .expectEvents([settled(order, outcome)]);
    // Not sent again now: the bank call told the Merchant already; redelivery resends it until confirmed.
    expect(delivered).toEqual([]);
    expect(context.sent).toEqual([]);
    expect(state.outbox.get(order.orderId)).toEqual({
      deliveryId: order.orderId,
      destination: { typeName: 'merchant', entityId: 'merchant-a' },
      message: {
        type: 'ProcessExecutionResult',
        orderId: order.orderId,
        outcome,
        at: now + 10,
        executor: executorInbox(bank),
      },
    });
    expect(context.timersCancelled).toEqual([`retry-${order.orderId}`]);
  });

  it('a second outcome for a settled order changes nothing (the first is the bank ledger’s)', () => {
    const { spec } = executor();
    spec
      .given([requested(order), settled(order, outcome)])
      .when({
        type: 'RecordBankOutcome',
        orderId: order.orderId,
        outcome: { kind: 'declined', reason: 'do_not_honor' },
        at: now + 20,
      })
      .expectNothingPersisted();
  });

  it('an outcome for an order the Executor does not hold changes nothing', () => {
    const { spec } = executor();
    spec
      .given([])
      .when({ type: 'RecordBankOutcome', orderId: order.orderId, outcome, at: now })
      .expectNothingPersisted();
  });

  it('ExecutionSettled for an order never requested is a crash in evolve', () => {
    const { spec } = executor();
    expect(() => spec.given([settled(order, outcome)])).toThrow('unknown order');
  });
});

describe('Executor: retries', () => {
  const order = executeOrder(1);

  it('a failed attempt on a pending order sets a retry timer within the retry backoff', () => {
    const { spec, context } = executor();
    spec
      .given([requested(order)])
      .when({ type: 'RetryExecutionLater', orderId: order.orderId, reason: 'retryable' })
      .expectNothingPersisted();
    expect(context.timersStarted).toHaveLength(1);
    const [timer] = context.timersStarted;
    expect(timer).toMatchObject({
      key: `retry-${order.orderId}`,
      message: { type: 'RetryExecution', orderId: order.orderId },
      periodic: false,
    });
    const { minBackoffMs, maxBackoffMs, randomFactor } = defaultExecutorSettings.retryBackoff;
    expect(timer?.delayMs).toBeGreaterThanOrEqual(minBackoffMs);
    expect(timer?.delayMs).toBeLessThanOrEqual(maxBackoffMs * (1 + randomFactor));
  });

  it('a failed attempt reported after the order settled sets no timer', () => {
    const { spec, context } = executor();
    spec
      .given([requested(order), settled(order, { kind: 'declined', reason: 'card_declined' })])
      .when({ type: 'RetryExecutionLater', orderId: order.orderId, reason: 'retryable' })
      .expectNothingPersisted();
    expect(context.timersStarted).toEqual([]);
  });

  it('a retry timer of a settled or forgotten order calls nothing', async () => {
    const { spec, bank: port } = executor();
    spec
      .given([requested(order), settled(order, { kind: 'declined', reason: 'card_declined' })])
      .when({ type: 'RetryExecution', orderId: order.orderId })
      .expectNothingPersisted();
    spec.given([]).when({ type: 'RetryExecution', orderId: order.orderId }).expectNothingPersisted();
    // A bank call would have begun by now: its first step is a few promise turns away.
    await settle();
    expect(port.operations).toEqual([]);
  });

  it('the bank unavailable: the attempt reports a retryable failure, and the retry asks, then authorizes', async () => {
    const { spec, context, simulated, bank: port } = executor();
    simulated.faults.errorRate = 1;
    spec
      .given([])
      .when(order)
      .expectEvents([requested(order)]);
    expect(await reported(context)).toEqual({
      type: 'RetryExecutionLater',
      orderId: order.orderId,
      reason: 'retryable',
    });
    simulated.faults.errorRate = 0;
    spec
      .given([requested(order)])
      .when({ type: 'RetryExecution', orderId: order.orderId })
      .expectNothingPersisted();
    expect(await reported(context)).toMatchObject({
      type: 'RecordBankOutcome',
      outcome: { kind: 'executed' },
    });
    // Any failed authorization may have reached the bank as far as the Executor can be sure: ask first.
    expect(port.operationsFor(order.orderId)).toEqual(['authorize', 'inquire', 'authorize']);
    expect(simulated.charged().get(order.orderId)?.requestCount).toBe(1);
  });
});

describe('Executor: an unknown outcome is resolved by an inquiry, never by a blind resend', () => {
  it('the answer lost after the bank charged: the retry inquires and records what the bank had', async () => {
    const { spec, context, simulated, bank: port } = executor();
    const order = executeOrder(1);
    simulated.faults.lostAnswerRate = 1;
    spec
      .given([])
      .when(order)
      .expectEvents([requested(order)]);
    const failure = await reported(context);
    expect(failure).toEqual({
      type: 'RetryExecutionLater',
      orderId: order.orderId,
      reason: 'unknown_outcome',
    });
    spec
      .given([requested(order)])
      .when(failure)
      .expectNothingPersisted();
    expect(context.timersStarted.map((timer) => timer.message)).toEqual([
      { type: 'RetryExecution', orderId: order.orderId },
    ]);

    simulated.faults.lostAnswerRate = 0;
    spec
      .given([requested(order)])
      .when({ type: 'RetryExecution', orderId: order.orderId })
      .expectNothingPersisted();
    const answer = await reported(context);
    const charged = simulated.charged().get(order.orderId);
    expect(charged?.answer.kind).toBe('approved');
    expect(answer).toEqual({
      type: 'RecordBankOutcome',
      orderId: order.orderId,
      outcome: {
        kind: 'executed',
        authorizationCode: charged?.answer.kind === 'approved' ? charged.answer.authorizationCode : '',
      },
      at: now,
    });
    expect(port.operationsFor(order.orderId)).toEqual(['authorize', 'inquire']);
    expect(charged?.requestCount).toBe(1);
    spec
      .given([requested(order)])
      .when(answer)
      .expectEvents([
        settled(
          order,
          answer.type === 'RecordBankOutcome' ? answer.outcome : { kind: 'executed', authorizationCode: '' },
          now,
        ),
      ]);
  });

  it('after a restart, a pending order the bank charged is first inquired about, and not authorized again', async () => {
    const { definition, context, simulated, bank: port } = executor();
    const order = executeOrder(1);
    // The previous incarnation's authorization reached the bank; then the process died.
    const charged = await simulated.authorize({
      reference: order.orderId,
      merchantId: order.merchantId,
      amount: order.amount,
      currency: order.currency,
      card: { number: '4242424242424242', expMonth: 12, expYear: 2030 },
    });
    const state = [requested(order)].reduce(definition.evolve, definition.initialState(bank));
    definition.onRecoveryCompleted?.(state, context);
    expect(await reported(context)).toEqual({
      type: 'RecordBankOutcome',
      orderId: order.orderId,
      outcome: {
        kind: 'executed',
        authorizationCode: charged.kind === 'approved' ? charged.authorizationCode : '',
      },
      at: now,
    });
    expect(port.operationsFor(order.orderId)).toEqual(['inquire']);
    expect(simulated.charged().get(order.orderId)?.requestCount).toBe(1);
  });

  it('after a restart, a pending order the bank never saw is inquired about, then authorized', async () => {
    const { definition, context, bank: port } = executor();
    const order = executeOrder(1);
    const state = [requested(order)].reduce(definition.evolve, definition.initialState(bank));
    definition.onRecoveryCompleted?.(state, context);
    expect(await reported(context)).toMatchObject({
      type: 'RecordBankOutcome',
      outcome: { kind: 'executed' },
    });
    expect(port.operationsFor(order.orderId)).toEqual(['inquire', 'authorize']);
  });

  it('after a restart, a settled order is not called about at all', async () => {
    const { definition, context, bank: port } = executor();
    const order = executeOrder(1);
    const state = [requested(order), settled(order, { kind: 'declined', reason: 'card_declined' })].reduce(
      definition.evolve,
      definition.initialState(bank),
    );
    definition.onRecoveryCompleted?.(state, context);
    // A bank call would have begun by now: its first step is a few promise turns away.
    await settle();
    expect(port.operations).toEqual([]);
  });
});

describe('Executor: orders the bank settles without charging', () => {
  it('a declined card is recorded as declined, with the bank’s reason', async () => {
    const { spec, context, cards } = executor();
    const declinedCard = { ...card, token: `tok_${'2'.repeat(32)}` };
    cards.cards.set(declinedCard.token, '4000000000000002');
    const order = executeOrder(1, { card: declinedCard });
    spec
      .given([])
      .when(order)
      .expectEvents([requested(order)]);
    expect(await reported(context)).toMatchObject({
      type: 'RecordBankOutcome',
      outcome: { kind: 'declined', reason: 'card_declined' },
    });
  });

  it('at the deadline the reference is cancelled, and the order fails (deadline_exceeded) with nothing charged', async () => {
    const { spec, context, clock, simulated, bank: port } = executor();
    const order = executeOrder(1, { deadlineAt: now + 1_000 });
    simulated.faults.errorRate = 1;
    spec
      .given([])
      .when(order)
      .expectEvents([requested(order)]);
    expect(await reported(context)).toMatchObject({ type: 'RetryExecutionLater', reason: 'retryable' });
    simulated.faults.errorRate = 0;
    clock.advance(1_000);
    spec
      .given([requested(order)])
      .when({ type: 'RetryExecution', orderId: order.orderId })
      .expectNothingPersisted();
    const answer = await reported(context);
    expect(answer).toEqual({
      type: 'RecordBankOutcome',
      orderId: order.orderId,
      outcome: { kind: 'failed', reason: 'deadline_exceeded' },
      at: now + 1_000,
    });
    expect(port.operationsFor(order.orderId)).toEqual(['authorize', 'inquire', 'cancel']);
    expect(simulated.charged().size).toBe(0);
    spec
      .given([requested(order)])
      .when(answer)
      .expectEvents([settled(order, { kind: 'failed', reason: 'deadline_exceeded' }, now + 1_000)]);
  });

  it('a card the vault no longer holds: the reference is cancelled, and the order fails (card_unavailable)', async () => {
    const { spec, context, bank: port } = executor();
    const order = executeOrder(1, { card: { ...card, token: `tok_${'9'.repeat(32)}` } });
    spec
      .given([])
      .when(order)
      .expectEvents([requested(order)]);
    expect(await reported(context)).toMatchObject({
      outcome: { kind: 'failed', reason: 'card_unavailable' },
    });
    expect(port.operationsFor(order.orderId)).toEqual(['cancel']);
  });

  it('a request the bank refuses outright is not sent again: the retry cancels it (bank_refused)', async () => {
    const { spec, context, cards, bank: port } = executor();
    const refusedCard = { ...card, token: `tok_${'3'.repeat(32)}` };
    cards.cards.set(refusedCard.token, '4000000000000101');
    const order = executeOrder(1, { card: refusedCard });
    spec
      .given([])
      .when(order)
      .expectEvents([requested(order)]);
    const failure = await reported(context);
    expect(failure).toEqual({ type: 'RetryExecutionLater', orderId: order.orderId, reason: 'refused' });
    spec
      .given([requested(order)])
      .when({ type: 'RetryExecution', orderId: order.orderId })
      .expectNothingPersisted();
    expect(await reported(context)).toMatchObject({ outcome: { kind: 'failed', reason: 'bank_refused' } });
    expect(port.operationsFor(order.orderId)).toEqual(['authorize', 'inquire', 'cancel']);
  });
});

describe('Executor: the Merchant confirms the result', () => {
  const order = executeOrder(1);
  const outcome: ExecutionOutcome = { kind: 'executed', authorizationCode: '123456' };

  it('a confirmation of an outstanding result is persisted, and the execution leaves the state', () => {
    const { spec } = executor();
    const { state } = spec
      .given([requested(order), settled(order, outcome)])
      .when({ type: 'ConfirmResult', orderId: order.orderId })
      .expectEvents([{ type: 'ResultConfirmed', orderId: order.orderId }]);
    expect(state.executions.size).toBe(0);
    expect(state.outbox.size).toBe(0);
  });

  it('a confirmation again, or of a result not yet recorded, changes nothing', () => {
    const { spec } = executor();
    spec
      .given([requested(order), settled(order, outcome), { type: 'ResultConfirmed', orderId: order.orderId }])
      .when({ type: 'ConfirmResult', orderId: order.orderId })
      .expectNothingPersisted();
    spec
      .given([requested(order)])
      .when({ type: 'ConfirmResult', orderId: order.orderId })
      .expectNothingPersisted();
  });
});

// ---- refunds ----------------------------------------------------------------------------------

const refundOrder = executeOrder(9);

function executeRefund(n: number, changes: Partial<ExecuteRefund> = {}): ExecuteRefund {
  return {
    type: 'ExecuteRefund',
    refundId: `re_${n}`,
    orderId: refundOrder.orderId,
    merchantId: 'merchant-a',
    amount: 400n,
    currency: 'EUR',
    requestedAt: now,
    payment: paymentInbox(refundOrder.orderId),
    ...changes,
  };
}

function refundRequested(refund: ExecuteRefund): ExecutorEvent {
  return {
    type: 'RefundExecutionRequested',
    refundId: refund.refundId,
    orderId: refund.orderId,
    merchantId: refund.merchantId,
    amount: refund.amount,
    currency: refund.currency,
    requestedAt: refund.requestedAt,
  };
}

function refundSettled(refund: ExecuteRefund, outcome: RefundOutcome, at = now + 10): ExecutorEvent {
  return { type: 'RefundExecutionSettled', refundId: refund.refundId, orderId: refund.orderId, outcome, at };
}

/** An executor whose bank has charged the order the refunds give back. */
async function refundingExecutor(settings: ExecutorSettings = defaultExecutorSettings) {
  const world = executor(settings);
  await world.simulated.authorize({
    reference: refundOrder.orderId,
    merchantId: 'merchant-a',
    amount: refundOrder.amount,
    currency: 'EUR',
    card: { number: '4242424242424242', expMonth: 12, expYear: 2030 },
  });
  return world;
}

describe('Executor: ExecuteRefund', () => {
  it('a new refund is recorded and acknowledged before the bank call, which has the refund id as reference', async () => {
    const { spec, context, bank: port, simulated } = await refundingExecutor();
    const refund = executeRefund(1);
    spec
      .given([])
      .when(refund)
      .expectEvents([refundRequested(refund)]);
    expect(context.sent).toEqual([
      { to: paymentInbox(refundOrder.orderId), message: { type: 'ConfirmExecuteRefund', refundId: 're_1' } },
    ]);
    expect(await reported(context)).toEqual({
      type: 'RecordRefundOutcome',
      refundId: 're_1',
      outcome: { kind: 'succeeded' },
      at: now,
    });
    expect(port.operationsFor('re_1')).toEqual(['refund']);
    expect(simulated.refunds.get('re_1')?.request).toMatchObject({
      paymentReference: refundOrder.orderId,
      amount: 400n,
    });
  });

  it('a duplicate of a refund in flight, or one the store remembers, is confirmed again and never sent again', async () => {
    const { spec, context, bank: port } = await refundingExecutor();
    const refund = executeRefund(1);
    spec
      .given([refundRequested(refund)])
      .when(refund)
      .expectNothingPersisted();
    spec.given([]).whenDuplicate(refund).expectNothingPersisted();
    const confirmation = {
      to: paymentInbox(refundOrder.orderId),
      message: { type: 'ConfirmExecuteRefund', refundId: 're_1' },
    };
    expect(context.sent).toEqual([confirmation, confirmation]);
    await settle();
    expect(port.operations.filter((each) => each.reference === 're_1')).toEqual([]);
  });

  it('with refundsInFlightMax refunds in flight, a new refund gets no answer (the Payment redelivers)', async () => {
    const { spec, context } = await refundingExecutor({ ...defaultExecutorSettings, refundsInFlightMax: 1 });
    spec
      .given([refundRequested(executeRefund(1))])
      .when(executeRefund(2))
      .expectNothingPersisted();
    expect(context.sent).toEqual([]);
  });
});

describe('Executor: the bank outcome of a refund', () => {
  const refund = executeRefund(1);

  it('is recorded and delivered to the Payment at least once; its retry timer is cancelled', () => {
    const { spec, context } = executor();
    const { state, delivered } = spec
      .given([refundRequested(refund)])
      .when({ type: 'RecordRefundOutcome', refundId: 're_1', outcome: { kind: 'succeeded' }, at: now + 10 })
      .expectEvents([refundSettled(refund, { kind: 'succeeded' })]);
    expect(delivered).toEqual(['re_1']);
    expect(state.outbox.get('re_1')).toEqual({
      deliveryId: 're_1',
      destination: { typeName: 'payment', entityId: refundOrder.orderId },
      message: {
        type: 'ProcessRefundResult',
        refundId: 're_1',
        outcome: { kind: 'succeeded' },
        at: now + 10,
        executor: { typeName: 'executor', entityId: bank },
      },
    });
    expect(context.timersCancelled).toEqual(['retry-refund-re_1']);
  });

  it('a second outcome, or one for a refund the Executor does not hold, changes nothing', () => {
    const { spec } = executor();
    spec
      .given([refundRequested(refund), refundSettled(refund, { kind: 'succeeded' })])
      .when({
        type: 'RecordRefundOutcome',
        refundId: 're_1',
        outcome: { kind: 'failed', reason: 'refund_declined' },
        at: now,
      })
      .expectNothingPersisted();
    spec
      .given([])
      .when({ type: 'RecordRefundOutcome', refundId: 're_1', outcome: { kind: 'succeeded' }, at: now })
      .expectNothingPersisted();
  });

  it('a bank refusal fails the refund with the bank’s stable code, and is not retried', async () => {
    const { spec, context, bank: port } = executor(); // no payment at the bank: refund_payment_unknown
    spec
      .given([])
      .when(refund)
      .expectEvents([refundRequested(refund)]);
    expect(await reported(context)).toMatchObject({
      type: 'RecordRefundOutcome',
      outcome: { kind: 'failed', reason: 'refund_payment_unknown' },
    });
    expect(port.operationsFor('re_1')).toEqual(['refund']);
  });

  it('a declined refund fails with refund_declined', async () => {
    const { spec, context, simulated } = await refundingExecutor();
    simulated.faults = { errorRate: 0, lostAnswerRate: 0, declineRate: 1 };
    spec
      .given([])
      .when(refund)
      .expectEvents([refundRequested(refund)]);
    expect(await reported(context)).toMatchObject({
      outcome: { kind: 'failed', reason: 'refund_declined' },
    });
  });

  it('the Payment’s confirmation is persisted and the refund leaves the state; again, it changes nothing', () => {
    const { spec } = executor();
    const given = [refundRequested(refund), refundSettled(refund, { kind: 'succeeded' })];
    const { state } = spec
      .given(given)
      .when({ type: 'ConfirmRefundResult', refundId: 're_1' })
      .expectEvents([{ type: 'RefundResultConfirmed', refundId: 're_1', orderId: refundOrder.orderId }]);
    expect(state.refunds.size).toBe(0);
    expect(state.outbox.size).toBe(0);
    spec
      .given([...given, { type: 'RefundResultConfirmed', refundId: 're_1', orderId: refundOrder.orderId }])
      .when({ type: 'ConfirmRefundResult', refundId: 're_1' })
      .expectNothingPersisted();
    spec
      .given([refundRequested(refund)])
      .when({ type: 'ConfirmRefundResult', refundId: 're_1' })
      .expectNothingPersisted();
  });
});

describe('Executor: a refund whose outcome is unknown', () => {
  const refund = executeRefund(1);

  it('is settled by an inquiry after a lost answer, never by a second refund', async () => {
    const { spec, context, bank: port, simulated } = await refundingExecutor();
    simulated.faults = { errorRate: 0, lostAnswerRate: 1, declineRate: 0 };
    spec
      .given([])
      .when(refund)
      .expectEvents([refundRequested(refund)]);
    const failure = await reported(context);
    expect(failure).toEqual({ type: 'RetryRefundLater', refundId: 're_1', reason: 'unknown_outcome' });
    await settle();
    simulated.faults = { errorRate: 0, lostAnswerRate: 0, declineRate: 0 };
    spec
      .given([refundRequested(refund)])
      .when({ type: 'RetryRefund', refundId: 're_1' })
      .expectNothingPersisted();
    expect(await reported(context)).toMatchObject({
      type: 'RecordRefundOutcome',
      outcome: { kind: 'succeeded' },
    });
    expect(port.operationsFor('re_1')).toEqual(['refund', 'inquireRefund']);
    expect(simulated.refunds.get('re_1')?.requestCount).toBe(1);
  });

  it('is sent again, under the same reference, when the inquiry finds nothing at the bank', async () => {
    const { spec, context, bank: port, simulated } = await refundingExecutor();
    simulated.faults = { errorRate: 1, lostAnswerRate: 0, declineRate: 0 };
    spec
      .given([])
      .when(refund)
      .expectEvents([refundRequested(refund)]);
    expect(await reported(context)).toEqual({
      type: 'RetryRefundLater',
      refundId: 're_1',
      reason: 'retryable',
    });
    await settle();
    simulated.faults = { errorRate: 0, lostAnswerRate: 0, declineRate: 0 };
    spec
      .given([refundRequested(refund)])
      .when({ type: 'RetryRefund', refundId: 're_1' })
      .expectNothingPersisted();
    expect(await reported(context)).toMatchObject({
      type: 'RecordRefundOutcome',
      outcome: { kind: 'succeeded' },
    });
    expect(port.operationsFor('re_1')).toEqual(['refund', 'inquireRefund', 'refund']);
  });

  it('after a restart, a pending refund is first inquired about', async () => {
    const { definition, context, bank: port, simulated } = await refundingExecutor();
    await simulated.refund({
      reference: 're_1',
      paymentReference: refundOrder.orderId,
      merchantId: 'merchant-a',
      amount: 400n,
      currency: 'EUR',
    });
    const state = definition.evolve(definition.initialState(bank), refundRequested(refund));
    definition.onRecoveryCompleted?.(state, context);
    expect(await reported(context)).toMatchObject({
      type: 'RecordRefundOutcome',
      outcome: { kind: 'succeeded' },
    });
    expect(port.operationsFor('re_1')).toEqual(['inquireRefund']);
  });

  it('a failed attempt sets a retry timer within the retry backoff', () => {
    const { spec, context } = executor();
    spec
      .given([refundRequested(refund)])
      .when({ type: 'RetryRefundLater', refundId: 're_1', reason: 'retryable' })
      .expectNothingPersisted();
    expect(context.timersStarted).toEqual([
      expect.objectContaining({
        key: 'retry-refund-re_1',
        message: { type: 'RetryRefund', refundId: 're_1' },
      }),
    ]);
  });
});

describe('Executor: snapshots with refunds', () => {
  it('a snapshot keeps refunds in flight and their unconfirmed results; a version 1 snapshot reads as none', () => {
    const { definition } = executor();
    const order = executeOrder(1);
    const state = [
      requested(order),
      refundRequested(executeRefund(1)),
      refundRequested(executeRefund(2)),
      refundSettled(executeRefund(2), { kind: 'failed', reason: 'refund_declined' }),
    ].reduce(definition.evolve, definition.initialState(bank));
    const codec = executorSnapshotCodec;
    const decoded = codec.decode(JSON.parse(JSON.stringify(codec.encode(state))));
    expect(decoded.refunds.toJS()).toEqual(state.refunds.toJS());
    expect(decoded.outbox.toJS()).toEqual(state.outbox.toJS());
    const upcast = codec.upcasters?.[1]?.({ bank, executions: [] });
    expect(codec.decode(upcast).refunds.size).toBe(0);
  });
});
