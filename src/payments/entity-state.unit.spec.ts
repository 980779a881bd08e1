/**
 * The Merchant's and the Executor's state does not grow with history. Each test folds thousands
 * of finished orders through the real `evolve` and checks that what the state holds is bounded by
 * the work in flight and the velocity window — counted over every persistent collection in the
 * state, whatever it is called — and that the snapshot of that state stays as small. Then the
 * velocity rule is checked to be as exact as before with its bounds, the replies of a Merchant that
 * forgot a finished order, and the snapshot codecs round trip.
 */
import { Map as ImmutableMap, isImmutable } from 'immutable';
import { describe, expect, it } from 'vitest';
import { EntityContextProbe, replyProbe } from '../testing/decider-spec.js';
import '../testing/entity-test-kit.js';
import { visaCardSummary } from '../testing/fixtures/card-summary.js';
import type { CardSummary } from './card.js';
import { cardActivityGenerations } from './card-activity.js';
import { defaultExecutorSettings, executorDefinition } from './executor.js';
import type { ExecutorState } from './executor-decider.js';
import { type ExecutorEvent, executorSnapshotCodec } from './executor-events.js';
import { defaultMerchantSettings, type MerchantSettings, merchantDefinition } from './merchant.js';
import type { MerchantState } from './merchant-decider.js';
import { type MerchantEvent, merchantSnapshotCodec } from './merchant-events.js';
import type {
  AwaitOrderReply,
  GetOrderReply,
  MerchantCommand,
  NewOrder,
  ProcessOrderReply,
} from './merchant-protocol.js';
import { orderIdFor } from './order.js';
import { OrderWaiters } from './order-waiters.js';
import type { MerchantConfig } from './validator.js';

const start = Date.UTC(2026, 10, 24);
const windowMs = 60_000;
const config: MerchantConfig = {
  bank: 'bank-a',
  currencies: [{ currency: 'EUR', perOrderLimit: 1_000_000n }],
  blockedBins: [],
  velocity: { maxOrdersPerCard: 3, windowMs },
};

function card(n: number): CardSummary {
  return visaCardSummary(`tok_${String(n).padStart(32, '0')}`);
}

function newOrder(n: number, at: number, cardNumber = n): NewOrder {
  const key = `key-${n}`;
  return {
    orderId: orderIdFor('merchant-a', key),
    idempotencyKey: key,
    requestHash: `hash-${key}`,
    amount: 1_000n,
    currency: 'EUR',
    card: card(cardNumber),
    description: undefined,
    reference: undefined,
    receivedAt: at,
  };
}

/** Entries held in every persistent collection of a state, nested ones included. */
function entriesHeld(value: unknown): number {
  if (isImmutable(value) || value instanceof Map) {
    let count = 0;
    for (const entry of value as Iterable<unknown>) count += 1 + entriesHeld(entry);
    return count;
  }
  if (Array.isArray(value)) return value.reduce((sum: number, item) => sum + entriesHeld(item), 0);
  if (typeof value === 'object' && value !== null) {
    return Object.values(value).reduce((sum: number, field) => sum + entriesHeld(field), 0);
  }
  return 0;
}

/**
 * A Merchant decided and evolved without its runtime. Like the runtime's idempotent receiver, it
 * remembers processed order ids (the store's records) and hands a processed one to `onDuplicate`.
 */
class PureMerchant {
  readonly definition;
  state: MerchantState;
  private readonly processed = new Set<string>();
  private readonly context = new EntityContextProbe<MerchantCommand>('merchant-a');

  constructor(
    readonly waiters = new OrderWaiters(),
    settings: MerchantSettings = defaultMerchantSettings,
    merchantId = 'merchant-a',
  ) {
    this.definition = merchantDefinition(waiters, settings);
    this.state = this.definition.evolve(this.definition.initialState(merchantId), {
      type: 'MerchantConfigured',
      config,
    });
  }

  /** Decides, persists, and runs every side effect (replies and runs) against the state after. */
  handle(command: MerchantCommand): MerchantEvent[] {
    const deduplication = this.definition.deduplication;
    const messageId = deduplication?.messageIdOf(command);
    const duplicate = messageId !== undefined && this.processed.has(messageId);
    const effect =
      duplicate && deduplication !== undefined
        ? deduplication.onDuplicate(this.state, command)
        : this.definition.decide(this.state, command);
    if (messageId !== undefined && effect.events.length > 0) this.processed.add(messageId);
    for (const event of effect.events) this.state = this.definition.evolve(this.state, event);
    for (const sideEffect of effect.sideEffects) {
      if (sideEffect.kind === 'reply') sideEffect.to.tell(sideEffect.message(this.state));
      if (sideEffect.kind === 'run') sideEffect.run(this.state, this.context);
    }
    // What the side effects told the Executor is not this spec's subject; only memory is.
    this.context.clear();
    return [...effect.events];
  }

  submit(order: NewOrder): ProcessOrderReply {
    const probe = replyProbe<ProcessOrderReply>();
    this.handle({ type: 'ProcessNewOrder', order, replyTo: probe });
    return probe.single();
  }

  /** The whole life of a valid order: created, delivery confirmed (journaled), executed. */
  execute(order: NewOrder): void {
    expect(this.submit(order).type).toBe('OrderAccepted');
    expect(this.handle({ type: 'ConfirmExecuteOrder', orderId: order.orderId })).toEqual([
      { type: 'ExecuteOrderConfirmed', orderId: order.orderId },
    ]);
    this.handle({
      type: 'ProcessExecutionResult',
      orderId: order.orderId,
      outcome: { kind: 'executed', authorizationCode: '123456' },
      at: order.receivedAt + 5,
      executor: { typeName: 'executor', entityId: 'bank-a' },
    });
  }
}

/** The Merchant's side effects only tell the Executor (here: nobody) and complete waiters. */

function snapshotBytes<S>(codec: { encode(state: S): unknown }, state: S): number {
  return JSON.stringify(codec.encode(state)).length;
}

describe('Merchant state: bounded by work in flight and the velocity window, not by history', () => {
  it('holds nothing of thousands of finished orders; its snapshot stays the same size', () => {
    // One order per second, each with its own card: the window holds 60 cards at most.
    const merchant = new PureMerchant();
    const sizes: Array<{ held: number; snapshot: number }> = [];
    for (let n = 0; n < 6_000; n++) {
      merchant.execute(newOrder(n, start + n * 1_000));
      if (n === 999 || n === 5_999) {
        sizes.push({
          held: entriesHeld(merchant.state),
          snapshot: snapshotBytes(merchantSnapshotCodec, merchant.state),
        });
      }
    }
    expect(merchant.state.inFlight.size).toBe(0);
    expect(merchant.state.outbox.size).toBe(0);
    // The window's cards, and those of the generation that has only partly left it (an eighth).
    expect(merchant.state.cardActivity.size).toBeLessThanOrEqual(
      Math.ceil((windowMs / 1_000) * (1 + 1 / cardActivityGenerations)),
    );
    const [after1k, after6k] = sizes;
    // Cards in the window, each with its one order time: nothing per finished order.
    expect(after1k?.held).toBeLessThanOrEqual(2 * (windowMs / 1_000));
    expect(after6k?.held).toBe(after1k?.held);
    expect(after6k?.snapshot).toBe(after1k?.snapshot);
    expect(after6k?.snapshot).toBeLessThan(8_000);
  });

  it('holds only the orders in flight, and forgets each as it finishes', () => {
    const merchant = new PureMerchant();
    const orders = Array.from({ length: 50 }, (_, n) => newOrder(n, start + n));
    for (const order of orders) expect(merchant.submit(order).type).toBe('OrderAccepted');
    expect(merchant.state.inFlight.size).toBe(50);
    expect(merchant.state.outbox.size).toBe(50);
    for (const order of orders.slice(0, 30)) {
      merchant.handle({
        type: 'ProcessExecutionResult',
        orderId: order.orderId,
        outcome: { kind: 'declined', reason: 'card_declined' },
        at: start + 100,
        executor: { typeName: 'executor', entityId: 'bank-a' },
      });
    }
    expect([...merchant.state.inFlight.keys()].sort()).toEqual(
      orders
        .slice(30)
        .map((o) => o.orderId)
        .sort(),
    );
    expect(merchant.state.outbox.size).toBe(20);
  });

  it('the velocity rule stays exact: the latest maxOrdersPerCard times per card, within the window', () => {
    const merchant = new PureMerchant();
    const sameCard = (n: number, at: number) => newOrder(n, at, 7);
    for (let n = 0; n < 3; n++) {
      expect(merchant.submit(sameCard(n, start + n * 1_000))).toMatchObject({
        order: { status: 'validated' },
      });
    }
    expect(merchant.submit(sameCard(3, start + 3_000))).toMatchObject({
      order: { status: 'rejected', reason: 'velocity_exceeded' },
    });
    // Rejected orders count too, but the card keeps only the times the rule can need.
    expect(merchant.state.cardActivity.get(card(7).token)).toEqual([
      start + 1_000,
      start + 2_000,
      start + 3_000,
    ]);
    // The first order left the window, the other three have not: still over the limit.
    expect(merchant.submit(sameCard(4, start + windowMs + 500))).toMatchObject({
      order: { status: 'rejected', reason: 'velocity_exceeded' },
    });
    // Long after: the window is empty again, and the card was forgotten with it.
    merchant.submit(newOrder(5, start + 10 * windowMs, 8));
    expect(merchant.state.cardActivity.has(card(7).token)).toBe(false);
    expect(merchant.submit(sameCard(6, start + 10 * windowMs + 1))).toMatchObject({
      order: { status: 'validated' },
    });
  });

  it('tracks at most velocityCardsTrackedMax cards, forgetting the least recently active first', () => {
    const merchant = new PureMerchant(new OrderWaiters(), {
      ...defaultMerchantSettings,
      velocityCardsTrackedMax: 3,
    });
    for (let n = 0; n < 5; n++) merchant.submit(newOrder(n, start + n));
    merchant.submit(newOrder(5, start + 5, 2));
    expect([...merchant.state.cardActivity.keys()]).toEqual([card(3).token, card(4).token, card(2).token]);
  });
});

describe('Merchant replies once an order has left its state', () => {
  it('a waiter, a retry and a lookup right after an order finished are answered from the recently finished', () => {
    const merchant = new PureMerchant();
    const order = newOrder(1, start);
    merchant.execute(order);
    expect(merchant.state.inFlight.has(order.orderId)).toBe(false);

    const waiting = replyProbe<AwaitOrderReply>();
    merchant.handle({ type: 'AwaitOrder', orderId: order.orderId, replyTo: waiting });
    expect(waiting.single()).toMatchObject({
      type: 'OrderFinished',
      order: { id: order.orderId, status: 'executed' },
    });

    const lookup = replyProbe<GetOrderReply>();
    merchant.handle({ type: 'GetOrder', orderId: order.orderId, replyTo: lookup });
    expect(lookup.single()).toMatchObject({ order: { status: 'executed', authorizationCode: '123456' } });

    expect(merchant.submit(order)).toMatchObject({
      type: 'OrderExists',
      sameRequest: true,
      order: { status: 'executed' },
    });
    expect(merchant.submit({ ...order, requestHash: 'another body' })).toMatchObject({
      type: 'OrderExists',
      sameRequest: false,
    });
  });

  it('a rejected order never enters the state; the reply and the recently finished still have it', () => {
    const merchant = new PureMerchant();
    const order = { ...newOrder(1, start), amount: 0n };
    expect(merchant.submit(order)).toMatchObject({
      type: 'OrderAccepted',
      order: { id: order.orderId, status: 'rejected', reason: 'amount_not_positive', rulesVersion: 1 },
    });
    expect(merchant.state.inFlight.size).toBe(0);
    expect(merchant.waiters.recentlyFinished('merchant-a', order.orderId)?.status).toBe('rejected');
  });

  it("one merchant never gets another merchant's recently finished order, though the table is shared", () => {
    const waiters = new OrderWaiters();
    const merchantA = new PureMerchant(waiters);
    const merchantB = new PureMerchant(waiters, defaultMerchantSettings, 'merchant-b');
    const order = newOrder(1, start);
    merchantA.execute(order);

    const lookup = replyProbe<GetOrderReply>();
    merchantB.handle({ type: 'GetOrder', orderId: order.orderId, replyTo: lookup });
    expect(lookup.single()).toEqual({ type: 'OrderFound', order: undefined });
    const waiting = replyProbe<AwaitOrderReply>();
    merchantB.handle({ type: 'AwaitOrder', orderId: order.orderId, replyTo: waiting });
    expect(waiting.single()).toEqual({ type: 'OrderNotInMemory', orderId: order.orderId });
  });

  it('an order this process no longer remembers is left to the read model', () => {
    const merchant = new PureMerchant(
      new OrderWaiters({ waitersPerOrderMax: 1, ordersWaitedOnMax: 1, recentlyFinishedMax: 2 }),
    );
    const first = newOrder(1, start);
    for (const order of [first, newOrder(2, start), newOrder(3, start)]) merchant.execute(order);
    expect(merchant.waiters.recentlyFinishedCount).toBe(2);

    const waiting = replyProbe<AwaitOrderReply>();
    merchant.handle({ type: 'AwaitOrder', orderId: first.orderId, replyTo: waiting });
    expect(waiting.single()).toEqual({ type: 'OrderNotInMemory', orderId: first.orderId });
    expect(merchant.submit(first)).toEqual({ type: 'OrderProcessedEarlier', orderId: first.orderId });
  });
});

describe('snapshots', () => {
  it('a Merchant snapshot round-trips: orders in flight, unconfirmed deliveries, card activity', () => {
    const merchant = new PureMerchant();
    for (let n = 0; n < 6; n++)
      merchant.submit({ ...newOrder(n, start + n, n % 2), description: `d${n}`, reference: `r${n}` });
    // A confirmed delivery leaves the outbox, so a state may have fewer deliveries than orders.
    expect(merchant.handle({ type: 'ConfirmExecuteOrder', orderId: newOrder(0, 0).orderId })).toEqual([
      { type: 'ExecuteOrderConfirmed', orderId: newOrder(0, 0).orderId },
    ]);
    const state = merchant.state;
    expect(state.inFlight.size).toBe(6);
    expect(state.outbox.size).toBe(5);
    const decoded = merchantSnapshotCodec.decode(
      JSON.parse(JSON.stringify(merchantSnapshotCodec.encode(state))),
    );
    // Equal activities may differ in stale queue entries: compare what they hold, in order.
    expect({ ...decoded, cardActivity: undefined }).toEqual({ ...state, cardActivity: undefined });
    expect([...decoded.cardActivity.entries()]).toEqual([...state.cardActivity.entries()]);
  });

  it('an Executor snapshot round-trips, and holds nothing of confirmed executions', () => {
    const executor = executorDefinition(
      {
        bank: { authorize: never, inquire: never, cancel: never, refund: never, inquireRefund: never },
        cards: { reveal: never },
        classify: () => 'retryable',
      },
      defaultExecutorSettings,
    );
    let state: ExecutorState = executor.initialState('bank-a');
    const apply = (event: ExecutorEvent) => {
      state = executor.evolve(state, event);
    };
    const sizes: number[] = [];
    for (let n = 0; n < 3_000; n++) {
      const orderId = orderIdFor('merchant-a', `key-${n}`);
      apply({
        type: 'ExecutionRequested',
        orderId,
        merchantId: 'merchant-a',
        amount: 1_000n,
        currency: 'EUR',
        card: card(n),
        deadlineAt: start + 60_000,
      });
      apply({
        type: 'ExecutionSettled',
        orderId,
        outcome: { kind: 'executed', authorizationCode: '123456' },
        at: start + n,
      });
      if (n % 3 !== 0) apply({ type: 'ResultConfirmed', orderId });
      // Every third order stays until a later one confirms it: a few always in flight.
      if (n % 3 === 0 && n > 0)
        apply({ type: 'ResultConfirmed', orderId: orderIdFor('merchant-a', `key-${n - 3}`) });
      if (n === 999 || n === 2_999) sizes.push(snapshotBytes(executorSnapshotCodec, state));
    }
    expect(state.executions.size).toBe(1);
    expect(state.outbox.size).toBe(1);
    expect(sizes[1]).toBe(sizes[0]);
    apply({
      type: 'ExecutionRequested',
      orderId: 'ord_pending',
      merchantId: 'merchant-b',
      amount: 5n,
      currency: 'EUR',
      card: card(1),
      deadlineAt: start,
    });
    const decoded = executorSnapshotCodec.decode(
      JSON.parse(JSON.stringify(executorSnapshotCodec.encode(state))),
    );
    expect(decoded).toEqual(state);
    expect(decoded.executions).toEqual(ImmutableMap(state.executions));
  });
});

function never(): Promise<never> {
  return Promise.reject(new Error('not called in this test'));
}
