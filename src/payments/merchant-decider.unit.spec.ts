/**
 * The Merchant's decider, one transition at a time, as given/when/then specifications: given the
 * Merchant's past events, when a command arrives, then these events are persisted, these replies
 * are sent and these side effects run. Side effects run in a recording context
 * (`EntityContextProbe`), so what the Merchant tells its Executor is checked too; the process's
 * table of waiting requests (`OrderWaiters`) is the real one. Every rule of the Validator is
 * checked through the Merchant, as is each answer a retry can get: the order as it stands, the
 * same key with another body, and an order processed earlier than the Merchant remembers.
 */
import { describe, expect, it } from 'vitest';
import { deciderSpec, EntityContextProbe, replyProbe } from '../testing/decider-spec.js';
import { visaCardSummary } from '../testing/fixtures/card-summary.js';
import type { CardSummary } from './card.js';
import { defaultMerchantSettings, type MerchantSettings, merchantDefinition } from './merchant.js';
import type { MerchantEvent } from './merchant-events.js';
import type {
  AwaitOrderReply,
  ConfigureReply,
  GetOrderReply,
  MerchantCommand,
  NewOrder,
  ProcessOrderReply,
} from './merchant-protocol.js';
import { failureReasons, orderIdFor } from './order.js';
import { OrderWaiters } from './order-waiters.js';
import { type ExecutionOutcome, executorInbox, merchantInbox } from './protocol.js';
import { type MerchantConfig, type RejectionReason, validatorRulesVersion } from './validator.js';

const merchantId = 'merchant-a';
const start = Date.UTC(2026, 10, 24);
const windowMs = 60_000;
const config: MerchantConfig = {
  bank: 'bank-a',
  currencies: [{ currency: 'EUR', perOrderLimit: 1_000_000n }],
  blockedBins: ['400000'],
  velocity: { maxOrdersPerCard: 3, windowMs },
};
const configured: MerchantEvent = { type: 'MerchantConfigured', config };

const card: CardSummary = visaCardSummary(`tok_${'7'.repeat(32)}`);

function newOrder(n: number, changes: Partial<NewOrder> = {}): NewOrder {
  const key = `key-${n}`;
  return {
    orderId: orderIdFor(merchantId, key),
    idempotencyKey: key,
    requestHash: `hash-${key}`,
    amount: 1_000n,
    currency: 'EUR',
    card,
    description: 'a book',
    reference: `ref-${n}`,
    receivedAt: start + n,
    ...changes,
  };
}

function created(order: NewOrder): Extract<MerchantEvent, { type: 'OrderCreated' }> {
  return {
    type: 'OrderCreated',
    orderId: order.orderId,
    idempotencyKey: order.idempotencyKey,
    requestHash: order.requestHash,
    amount: order.amount,
    currency: order.currency,
    card: order.card,
    description: order.description,
    reference: order.reference,
    at: order.receivedAt,
  };
}

function validated(order: NewOrder, settings = defaultMerchantSettings): MerchantEvent {
  return {
    type: 'OrderValidated',
    orderId: order.orderId,
    bank: 'bank-a',
    rulesVersion: validatorRulesVersion,
    deadlineAt: order.receivedAt + settings.executionDeadlineMs,
    at: order.receivedAt,
  };
}

/** A Merchant whose side effects run in a recording context, with its own table of waiters. */
function merchant(settings: MerchantSettings = defaultMerchantSettings) {
  const context = new EntityContextProbe<MerchantCommand>(merchantId, undefined, undefined, 'merchant');
  // The definition closes over its waiters: kept at hand to check what the side effects did.
  const waiters = new OrderWaiters();
  return {
    context,
    waiters,
    spec: deciderSpec(merchantDefinition(waiters, settings), { entityId: merchantId, context }),
  };
}

function processNewOrder(order: NewOrder, replyTo = replyProbe<ProcessOrderReply>(), awaitResult = false) {
  const command: MerchantCommand = { type: 'ProcessNewOrder', order, replyTo, awaitResult };
  return { command, replyTo };
}

function result(orderId: string, outcome: ExecutionOutcome, at = start + 500): MerchantCommand {
  return { type: 'ProcessExecutionResult', orderId, outcome, at, executor: executorInbox('bank-a') };
}

describe('Merchant: configuration', () => {
  it('a first configuration is persisted and acknowledged', () => {
    const { spec } = merchant();
    const replyTo = replyProbe<ConfigureReply>();
    spec.given([]).when({ type: 'ConfigureMerchant', config, replyTo }).expectEvents([configured]);
    expect(replyTo.single()).toEqual({ type: 'MerchantConfigured' });
  });

  it('the same configuration again (every start sends it) is acknowledged and persists nothing', () => {
    const { spec } = merchant();
    const replyTo = replyProbe<ConfigureReply>();
    spec.given([configured]).when({ type: 'ConfigureMerchant', config, replyTo }).expectNothingPersisted();
    expect(replyTo.single()).toEqual({ type: 'MerchantConfigured' });
  });

  it('another configuration replaces the first, and the next order is validated by it', () => {
    const { spec } = merchant();
    const replyTo = replyProbe<ConfigureReply>();
    const changed: MerchantConfig = { ...config, bank: 'bank-b' };
    const { state } = spec
      .given([configured])
      .when({ type: 'ConfigureMerchant', config: changed, replyTo })
      .expectEvents([{ type: 'MerchantConfigured', config: changed }]);
    expect(state.config).toEqual(changed);
    expect(replyTo.single()).toEqual({ type: 'MerchantConfigured' });
  });
});

describe('Merchant: a new order', () => {
  it('is refused while the Merchant is not configured, and nothing is persisted', () => {
    const { spec } = merchant();
    const { command, replyTo } = processNewOrder(newOrder(1));
    spec.given([]).when(command).expectNothingPersisted();
    expect(replyTo.single()).toEqual({ type: 'MerchantNotConfigured' });
  });

  it('a valid order is created and validated in one append, and ExecuteOrder is delivered to its bank', () => {
    const { spec } = merchant();
    const order = newOrder(1);
    const { command, replyTo } = processNewOrder(order);
    const outcome = spec
      .given([configured])
      .when(command)
      .expectEvents([created(order), validated(order)]);
    expect(outcome.delivered).toEqual([order.orderId]);
    expect(outcome.state.outbox.get(order.orderId)).toEqual({
      deliveryId: order.orderId,
      destination: { typeName: 'executor', entityId: 'bank-a' },
      message: {
        type: 'ExecuteOrder',
        orderId: order.orderId,
        merchantId,
        amount: 1_000n,
        currency: 'EUR',
        card,
        deadlineAt: order.receivedAt + defaultMerchantSettings.executionDeadlineMs,
        merchant: merchantInbox(merchantId),
      },
    });
    expect(replyTo.single()).toMatchObject({
      type: 'OrderAccepted',
      order: { id: order.orderId, status: 'validated', bank: 'bank-a', rulesVersion: validatorRulesVersion },
    });
  });

  const rejections: ReadonlyArray<{ reason: RejectionReason; order: NewOrder }> = [
    { reason: 'amount_not_positive', order: newOrder(1, { amount: 0n }) },
    { reason: 'currency_not_supported', order: newOrder(1, { currency: 'USD' }) },
    { reason: 'amount_over_limit', order: newOrder(1, { amount: 1_000_001n }) },
    { reason: 'card_number_invalid', order: newOrder(1, { card: { ...card, luhnValid: false } }) },
    { reason: 'card_expired', order: newOrder(1, { card: { ...card, expMonth: 10, expYear: 2026 } }) },
    { reason: 'card_bin_blocked', order: newOrder(1, { card: { ...card, bin: '400000' } }) },
  ];
  for (const { reason, order } of rejections) {
    it(`an order the rules reject (${reason}) is created and rejected in one append, and finished at once`, () => {
      const { spec, context, waiters } = merchant();
      const { command, replyTo } = processNewOrder(order);
      const outcome = spec
        .given([configured])
        .when(command)
        .expectEvents([
          created(order),
          {
            type: 'OrderRejected',
            orderId: order.orderId,
            reason,
            rulesVersion: validatorRulesVersion,
            at: order.receivedAt,
          },
        ]);
      expect(outcome.delivered).toEqual([]);
      expect(outcome.state.inFlight.has(order.orderId)).toBe(false);
      expect(replyTo.single()).toMatchObject({
        type: 'OrderAccepted',
        order: { status: 'rejected', reason },
      });
      expect(waiters.recentlyFinished(merchantId, order.orderId)).toMatchObject({ status: 'rejected' });
      expect(context.sent).toEqual([]);
    });
  }

  it(`the ${config.velocity.maxOrdersPerCard + 1}th order of one card within the window is rejected (velocity_exceeded)`, () => {
    const { spec } = merchant();
    const earlier = [1, 2, 3].map((n) => newOrder(n, { receivedAt: start + n * 1_000 }));
    const order = newOrder(4, { receivedAt: start + 4_000 });
    const { command, replyTo } = processNewOrder(order);
    spec
      .given([configured, ...earlier.flatMap((each) => [created(each), validated(each)])])
      .when(command)
      .expectEvents([
        created(order),
        {
          type: 'OrderRejected',
          orderId: order.orderId,
          reason: 'velocity_exceeded',
          rulesVersion: validatorRulesVersion,
          at: order.receivedAt,
        },
      ]);
    expect(replyTo.single()).toMatchObject({ order: { status: 'rejected', reason: 'velocity_exceeded' } });
  });

  it('the same card once the earliest of its orders left the window is validated', () => {
    const { spec } = merchant();
    const earlier = [1, 2, 3].map((n) => newOrder(n, { receivedAt: start + n * 1_000 }));
    const order = newOrder(4, { receivedAt: start + 1_000 + windowMs });
    spec
      .given([configured, ...earlier.flatMap((each) => [created(each), validated(each)])])
      .when(processNewOrder(order).command)
      .expectEvents([created(order), validated(order)]);
  });

  it('is refused as busy when ordersInFlightMax orders are in flight, and nothing is persisted', () => {
    const settings = { ...defaultMerchantSettings, ordersInFlightMax: 2 };
    const { spec } = merchant(settings);
    const inFlight = [1, 2].map((n) => newOrder(n));
    const { command, replyTo } = processNewOrder(newOrder(3));
    spec
      .given([configured, ...inFlight.flatMap((each) => [created(each), validated(each, settings)])])
      .when(command)
      .expectNothingPersisted();
    expect(replyTo.single()).toEqual({ type: 'MerchantBusy' });
  });

  it('awaiting its result, a validated order is answered when it finishes, not when accepted', () => {
    const { spec, waiters } = merchant();
    const order = newOrder(1);
    const { command, replyTo } = processNewOrder(order, replyProbe<ProcessOrderReply>(), true);
    spec
      .given([configured])
      .when(command)
      .expectEvents([created(order), validated(order)]);
    expect(replyTo.received).toEqual([]);
    expect(waiters.size).toBe(1);
    spec
      .given([configured, created(order), validated(order)])
      .when(result(order.orderId, { kind: 'executed', authorizationCode: '123456' }))
      .expectEvents([
        { type: 'OrderExecuted', orderId: order.orderId, authorizationCode: '123456', at: start + 500 },
      ]);
    expect(replyTo.single()).toMatchObject({ type: 'OrderFinished', order: { status: 'executed' } });
  });
});

describe('Merchant: a retry of a known order (the same idempotency key)', () => {
  const order = newOrder(1);
  const given = [configured, created(order), validated(order)];

  it('in flight, with the same body: the order as it stands, marked the same request; nothing persisted', () => {
    const { spec } = merchant();
    const { command, replyTo } = processNewOrder(order);
    const outcome = spec.given(given).when(command).expectNothingPersisted();
    expect(outcome.delivered).toEqual([]);
    expect(replyTo.single()).toMatchObject({
      type: 'OrderExists',
      sameRequest: true,
      order: { id: order.orderId, status: 'validated' },
    });
  });

  it('in flight, with another body: the order as it stands, marked not the same request', () => {
    const { spec } = merchant();
    const { command, replyTo } = processNewOrder({ ...order, requestHash: 'hash-other', amount: 9n });
    spec.given(given).when(command).expectNothingPersisted();
    expect(replyTo.single()).toMatchObject({
      type: 'OrderExists',
      sameRequest: false,
      order: { amount: 1_000n },
    });
  });

  it('processed long ago (only the store remembers its id): word that it was processed earlier', () => {
    const { spec } = merchant();
    const { command, replyTo } = processNewOrder(order);
    spec.given([configured]).whenDuplicate(command).expectNothingPersisted();
    expect(replyTo.single()).toEqual({ type: 'OrderProcessedEarlier', orderId: order.orderId });
  });

  it('finished recently in this process: the finished order, the same request or not', () => {
    const { spec, waiters } = merchant();
    spec
      .given(given)
      .when(result(order.orderId, { kind: 'declined', reason: 'do_not_honor' }))
      .expectEvents([
        { type: 'OrderDeclined', orderId: order.orderId, reason: 'do_not_honor', at: start + 500 },
      ]);
    expect(waiters.recentlyFinishedCount).toBe(1);
    const same = processNewOrder(order);
    spec.given([configured]).whenDuplicate(same.command).expectNothingPersisted();
    expect(same.replyTo.single()).toMatchObject({
      type: 'OrderExists',
      sameRequest: true,
      order: { status: 'declined', reason: 'do_not_honor' },
    });
    const other = processNewOrder({ ...order, requestHash: 'hash-other' });
    spec.given([configured]).whenDuplicate(other.command).expectNothingPersisted();
    expect(other.replyTo.single()).toMatchObject({ type: 'OrderExists', sameRequest: false });
  });
});

describe('Merchant: waiting for and reading an order', () => {
  const order = newOrder(1);
  const given = [configured, created(order), validated(order)];

  it('AwaitOrder on an order in flight waits for it to finish', () => {
    const { spec, waiters } = merchant();
    const replyTo = replyProbe<AwaitOrderReply>();
    spec.given(given).when({ type: 'AwaitOrder', orderId: order.orderId, replyTo }).expectNothingPersisted();
    expect(replyTo.received).toEqual([]);
    spec
      .given(given)
      .when(result(order.orderId, { kind: 'failed', reason: 'deadline_exceeded' }))
      .expectEvents([
        { type: 'OrderFailed', orderId: order.orderId, reason: 'deadline_exceeded', at: start + 500 },
      ]);
    expect(waiters.size).toBe(0);
    expect(replyTo.single()).toMatchObject({
      type: 'OrderFinished',
      order: { status: 'failed', reason: 'deadline_exceeded' },
    });
  });

  it('AwaitOrder on an order finished recently answers at once; on an unknown one, not in memory', () => {
    const { spec } = merchant();
    spec
      .given(given)
      .when(result(order.orderId, { kind: 'executed', authorizationCode: '654321' }))
      .expectEvents([
        { type: 'OrderExecuted', orderId: order.orderId, authorizationCode: '654321', at: start + 500 },
      ]);
    const finished = replyProbe<AwaitOrderReply>();
    spec
      .given([configured])
      .when({ type: 'AwaitOrder', orderId: order.orderId, replyTo: finished })
      .expectNothingPersisted();
    expect(finished.single()).toMatchObject({
      type: 'OrderFinished',
      order: { authorizationCode: '654321' },
    });
    const unknown = replyProbe<AwaitOrderReply>();
    spec
      .given([configured])
      .when({ type: 'AwaitOrder', orderId: 'ord_unknown', replyTo: unknown })
      .expectNothingPersisted();
    expect(unknown.single()).toEqual({ type: 'OrderNotInMemory', orderId: 'ord_unknown' });
  });

  it('GetOrder finds an order in flight, and finds nothing for one it does not hold', () => {
    const { spec } = merchant();
    const found = replyProbe<GetOrderReply>();
    spec
      .given(given)
      .when({ type: 'GetOrder', orderId: order.orderId, replyTo: found })
      .expectNothingPersisted();
    expect(found.single()).toMatchObject({
      type: 'OrderFound',
      order: { id: order.orderId, status: 'validated' },
    });
    const missing = replyProbe<GetOrderReply>();
    spec
      .given(given)
      .when({ type: 'GetOrder', orderId: 'ord_unknown', replyTo: missing })
      .expectNothingPersisted();
    expect(missing.single()).toEqual({ type: 'OrderFound', order: undefined });
  });
});

describe('Merchant: the Executor confirms ExecuteOrder', () => {
  const order = newOrder(1);

  it('a confirmation of an outstanding delivery is journaled, which ends its resending', () => {
    const { spec } = merchant();
    const { state } = spec
      .given([configured, created(order), validated(order)])
      .when({ type: 'ConfirmExecuteOrder', orderId: order.orderId })
      .expectEvents([{ type: 'ExecuteOrderConfirmed', orderId: order.orderId }]);
    expect(state.outbox.has(order.orderId)).toBe(false);
    expect(state.inFlight.has(order.orderId)).toBe(true);
  });

  it('a confirmation of a delivery no longer outstanding changes nothing', () => {
    const { spec } = merchant();
    const outcome = spec
      .given([configured])
      .when({ type: 'ConfirmExecuteOrder', orderId: order.orderId })
      .expectNothingPersisted();
    expect(outcome.confirmed).toEqual([]);
  });

  it('ExecuteOrderConfirmed ends the delivery when replayed', () => {
    const { spec } = merchant();
    const replyTo = replyProbe<GetOrderReply>();
    const { state } = spec
      .given([
        configured,
        created(order),
        validated(order),
        { type: 'ExecuteOrderConfirmed', orderId: order.orderId },
      ])
      .when({ type: 'GetOrder', orderId: order.orderId, replyTo })
      .expectNothingPersisted();
    expect(state.outbox.size).toBe(0);
    expect(state.inFlight.has(order.orderId)).toBe(true);
  });
});

describe('Merchant: an order no Executor acknowledged by its deadline', () => {
  const grace = defaultMerchantSettings.unacknowledgedGraceMs;
  const first = newOrder(1);
  const second = newOrder(2, { receivedAt: start + 5_000 });
  const deadlineOf = (order: NewOrder) => order.receivedAt + defaultMerchantSettings.executionDeadlineMs;
  const expire = (dueAt: number): MerchantCommand => ({ type: 'ExpireUnacknowledgedOrders', dueAt });

  it('validating an order starts the expiry timer at its deadline plus the grace', () => {
    const { spec, context } = merchant();
    spec
      .given([configured])
      .when(processNewOrder(first).command)
      .expectEvents([created(first), validated(first)]);
    expect(context.timersStarted).toEqual([
      {
        key: 'expire-unacknowledged',
        message: expire(deadlineOf(first) + grace),
        delayMs: deadlineOf(first) + grace - context.clock.now(),
        periodic: false,
      },
    ]);
  });

  it('ends failed (bank_unreachable) the unacknowledged orders due, answers their waiters, and times the next', () => {
    const { spec, context, waiters } = merchant();
    const dueAt = deadlineOf(first) + grace;
    const { state } = spec
      .given([configured, created(first), validated(first), created(second), validated(second)])
      .when(expire(dueAt))
      .expectEvents([{ type: 'OrderFailed', orderId: first.orderId, reason: 'bank_unreachable', at: dueAt }]);
    expect(state.inFlight.has(first.orderId)).toBe(false);
    expect(state.outbox.has(first.orderId)).toBe(false);
    expect(waiters.recentlyFinished(merchantId, first.orderId)?.reason).toBe('bank_unreachable');
    expect(context.timersStarted.map((timer) => timer.message)).toEqual([expire(deadlineOf(second) + grace)]);
  });

  it('an acknowledged order is left to its Executor, however late', () => {
    const { spec, context } = merchant();
    spec
      .given([
        configured,
        created(first),
        validated(first),
        { type: 'ExecuteOrderConfirmed', orderId: first.orderId },
      ])
      .when(expire(deadlineOf(first) + grace * 10))
      .expectNothingPersisted();
    expect(context.timersStarted).toEqual([]);
  });

  it('an order not yet due is left alone', () => {
    const { spec } = merchant();
    spec
      .given([configured, created(first), validated(first)])
      .when(expire(deadlineOf(first) + grace - 1))
      .expectNothingPersisted();
  });

  it('an Executor result arriving after the order ended is confirmed and changes nothing', () => {
    const { spec, context } = merchant();
    const dueAt = deadlineOf(first) + grace;
    spec
      .given([
        configured,
        created(first),
        validated(first),
        { type: 'OrderFailed', orderId: first.orderId, reason: 'bank_unreachable', at: dueAt },
      ])
      .when(result(first.orderId, { kind: 'failed', reason: 'deadline_exceeded' }))
      .expectNothingPersisted();
    expect(context.sent).toEqual([
      { to: executorInbox('bank-a'), message: { type: 'ConfirmResult', orderId: first.orderId } },
    ]);
  });
});

describe('Merchant: the execution result', () => {
  const order = newOrder(1);
  const given = [configured, created(order), validated(order)];
  const outcomes: ReadonlyArray<{ outcome: ExecutionOutcome; event: MerchantEvent }> = [
    {
      outcome: { kind: 'executed', authorizationCode: '123456' },
      event: { type: 'OrderExecuted', orderId: order.orderId, authorizationCode: '123456', at: start + 500 },
    },
    {
      outcome: { kind: 'declined', reason: 'insufficient_funds' },
      event: { type: 'OrderDeclined', orderId: order.orderId, reason: 'insufficient_funds', at: start + 500 },
    },
    ...failureReasons.map((reason) => ({
      outcome: { kind: 'failed', reason } as const,
      event: { type: 'OrderFailed', orderId: order.orderId, reason, at: start + 500 } as const,
    })),
  ];
  for (const { outcome, event } of outcomes) {
    const name = outcome.kind === 'executed' ? 'executed' : `${outcome.kind} (${outcome.reason})`;
    it(`${name}: persisted, confirmed to the Executor, and the order leaves the state`, () => {
      const { spec, context, waiters } = merchant();
      const { state } = spec.given(given).when(result(order.orderId, outcome)).expectEvents([event]);
      expect(context.sent).toEqual([
        { to: executorInbox('bank-a'), message: { type: 'ConfirmResult', orderId: order.orderId } },
      ]);
      expect(state.inFlight.has(order.orderId)).toBe(false);
      expect(state.outbox.has(order.orderId)).toBe(false);
      expect(waiters.recentlyFinished(merchantId, order.orderId)?.status).toBe(
        outcome.kind === 'executed' ? 'executed' : outcome.kind,
      );
    });
  }

  it('a redelivered result of a finished order is confirmed again and changes nothing', () => {
    const { spec, context } = merchant();
    spec
      .given([
        ...given,
        { type: 'OrderExecuted', orderId: order.orderId, authorizationCode: '1', at: start + 9 },
      ])
      .when(result(order.orderId, { kind: 'executed', authorizationCode: '1' }))
      .expectNothingPersisted();
    expect(context.sent).toEqual([
      { to: executorInbox('bank-a'), message: { type: 'ConfirmResult', orderId: order.orderId } },
    ]);
  });

  it('an event impossible for the order (a result after it finished) is a crash in evolve', () => {
    const { spec } = merchant();
    const executed: MerchantEvent = {
      type: 'OrderExecuted',
      orderId: order.orderId,
      authorizationCode: '1',
      at: 1,
    };
    expect(() => spec.given([...given, executed, executed])).toThrow('not in flight');
  });
});
