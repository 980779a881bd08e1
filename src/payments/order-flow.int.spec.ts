/**
 * The order lifecycle end to end inside one process: Merchant and Executor entities on the real
 * runtime and in-memory journal, a simulated acquiring bank with its own ledger, on a simulated
 * clock. The bank's ledger is the ground truth: every check compares what the gateway says with
 * what the bank charged — executed orders exactly once, everything else never.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SimulatedBank } from '../bank/simulated-bank.js';
import { persistenceIdOf } from '../persistence/entity.js';
import type { EntityRegistry } from '../persistence/entity-registry.js';
import type { ActorRef } from '../runtime/actor.js';
import type { ActorSystem } from '../runtime/actor-system.js';
import { SimulatedClock } from '../runtime/clock.js';
import type { EntityAddress } from '../runtime/entity-address.js';
import { SeededRandom } from '../runtime/random.js';
import { MemoryJournal } from '../store/memory/memory-journal.js';
import { waitFor } from '../testing/entity-test-kit.js';
import { testNode } from '../testing/test-node.js';
import type { CardVault } from './card-vault.js';
import { defaultMerchantSettings } from './merchant.js';
import {
  type AwaitOrderReply,
  type MerchantCommand,
  merchantAddress,
  type ProcessOrderReply,
} from './merchant-protocol.js';
import type { Currency } from './money.js';
import { isTerminal, type Order, orderIdFor } from './order.js';
import { defaultOrderWaitersSettings } from './order-waiters.js';
import type { MerchantConfig } from './validator.js';

const approvedCard = '4242424242424242';
const declinedCard = '4000000000000002';

const config: MerchantConfig = {
  bank: 'bank-a',
  currencies: [
    { currency: 'EUR', perOrderLimit: 1_000_000n },
    { currency: 'USD', perOrderLimit: 1_000_000n },
  ],
  blockedBins: [],
  velocity: { maxOrdersPerCard: 1_000_000, windowMs: 60_000 },
};

interface Gateway {
  clock: SimulatedClock;
  system: ActorSystem;
  journal: MemoryJournal;
  registry: EntityRegistry;
  bank: SimulatedBank;
  vault: CardVault;
  merchant: EntityAddress<MerchantCommand>;
}

const gateways: Gateway[] = [];

afterEach(async () => {
  for (const gateway of gateways.splice(0)) {
    await gateway.system.terminate();
    await gateway.journal.close();
  }
});

async function gateway(seed = 1, orderWaiters = defaultOrderWaitersSettings): Promise<Gateway> {
  const clock = new SimulatedClock(Date.UTC(2026, 10, 24));
  const random = new SeededRandom(seed);
  const journal = new MemoryJournal();
  const bank = new SimulatedBank(random.fork());
  const node = testNode({
    memory: journal,
    bank,
    clock,
    random: random.fork(),
    settings: { orderWaiters },
    name: 'gateway',
  });
  const created: Gateway = {
    clock,
    system: node.system,
    journal,
    registry: node.entities,
    bank,
    vault: node.vault,
    merchant: merchantAddress('merchant-a'),
  };
  gateways.push(created);
  await node.entities.ask(
    created.merchant,
    (replyTo) => ({ type: 'ConfigureMerchant' as const, config, replyTo }),
    1_000,
  );
  return created;
}

function newOrder(
  g: Gateway,
  key: string,
  cardNumber = approvedCard,
  amount = 1_000n,
  currency: Currency = 'EUR',
) {
  return {
    orderId: orderIdFor('merchant-a', key),
    idempotencyKey: key,
    requestHash: `hash-${key}-${cardNumber}-${amount}`,
    amount,
    currency,
    card: g.vault.tokenize({ number: cardNumber, expMonth: 12, expYear: 2030 }),
    description: undefined,
    reference: undefined,
    receivedAt: g.clock.now(),
  };
}

async function submit(g: Gateway, order: ReturnType<typeof newOrder>): Promise<ProcessOrderReply> {
  return g.registry.ask(
    g.merchant,
    (replyTo) => ({ type: 'ProcessNewOrder' as const, order, replyTo }),
    10_000,
  );
}

async function currentOrder(g: Gateway, orderId: string): Promise<Order | undefined> {
  const reply = await g.registry.ask<MerchantCommand, { type: 'OrderFound'; order: Order | undefined }>(
    g.merchant,
    (replyTo) => ({ type: 'GetOrder', orderId, replyTo }),
    10_000,
  );
  return reply.order;
}

/** Advances simulated time until every listed order is terminal, or fails. */
async function settle(g: Gateway, orderIds: readonly string[], msMax = 600_000): Promise<Order[]> {
  for (let elapsed = 0; ; elapsed += 250) {
    const orders = await Promise.all(orderIds.map((id) => currentOrder(g, id)));
    if (orders.every((order) => order !== undefined && isTerminal(order.status))) return orders as Order[];
    if (elapsed > msMax)
      throw new Error(
        `orders not terminal after ${msMax} ms: ${JSON.stringify(orders.map((o) => o?.status))}`,
      );
    await g.clock.advanceAsync(250);
  }
}

async function restart(g: Gateway, address: EntityAddress<unknown>): Promise<void> {
  const ref = g.registry.refFor(address);
  g.system.stop(ref);
  await g.system.whenStopped(ref);
  g.registry.refFor(address);
}

/** The bank's ledger agrees with the gateway: executed ⇔ charged exactly once, with the same amount. */
function expectLedgerAgrees(g: Gateway, orders: readonly Order[]): void {
  const charged = g.bank.charged();
  for (const order of orders) {
    const payment = charged.get(order.id);
    if (order.status === 'executed') {
      expect(payment?.request.amount).toBe(order.amount);
      expect(payment?.request.currency).toBe(order.currency);
    } else {
      expect(payment).toBeUndefined();
    }
  }
  const known = new Set(orders.map((order) => order.id));
  for (const reference of charged.keys()) expect(known.has(reference)).toBe(true);
}

describe('order flow: Merchant → Executor → bank', () => {
  it('executes a valid order once and reports it; both entities forget it afterwards', async () => {
    const g = await gateway();
    const order = newOrder(g, 'key-1');
    const accepted = await submit(g, order);
    expect(accepted).toMatchObject({ type: 'OrderAccepted', order: { status: 'validated', bank: 'bank-a' } });
    const [finished] = await settle(g, [order.orderId]);
    expect(finished).toMatchObject({ status: 'executed', amount: 1_000n, currency: 'EUR' });
    expect(finished?.authorizationCode).toMatch(/^\d{6}$/);
    expectLedgerAgrees(g, [finished as Order]);
    expect(g.bank.payments.get(order.orderId)?.requestCount).toBe(1);
  });

  it('records each message processed with the time its sender fixed: the order id and deadline for the Executor', async () => {
    const g = await gateway();
    const append = vi.spyOn(g.journal, 'append');
    const order = newOrder(g, 'key-placed');
    await submit(g, order);
    await settle(g, [order.orderId]);
    const processed = append.mock.calls.flatMap(([request]) =>
      request.processed === undefined ? [] : [request.processed],
    );
    expect(processed).toEqual([
      // The Merchant's ProcessNewOrder has no time of its sender: a retry of the request is a new message.
      { receiverId: persistenceIdOf(g.merchant), messages: [{ id: order.orderId, time: 0 }] },
      {
        receiverId: 'executor-bank-a',
        messages: [
          { id: order.orderId, time: order.receivedAt + defaultMerchantSettings.executionDeadlineMs },
        ],
      },
    ]);
  });

  it('a waiting request is answered when the order finishes', async () => {
    const g = await gateway();
    const order = newOrder(g, 'key-wait');
    g.bank.faults.errorRate = 1;
    await submit(g, order);
    const answer = g.registry.ask<MerchantCommand, AwaitOrderReply>(
      g.merchant,
      (replyTo: ActorRef<AwaitOrderReply>) => ({ type: 'AwaitOrder', orderId: order.orderId, replyTo }),
      60_000,
    );
    await g.clock.advanceAsync(1_000);
    g.bank.faults.errorRate = 0;
    await settle(g, [order.orderId]);
    expect(await answer).toMatchObject({ type: 'OrderFinished', order: { status: 'executed' } });
  });

  it('an order submitted to be awaited is answered once, when it has finished', async () => {
    const g = await gateway();
    const order = newOrder(g, 'key-awaited');
    g.bank.faults.errorRate = 1;
    const replies: ProcessOrderReply[] = [];
    const answer = g.registry.ask<MerchantCommand, ProcessOrderReply>(
      g.merchant,
      (replyTo) => ({ type: 'ProcessNewOrder', order, awaitResult: true, replyTo }),
      60_000,
    );
    void answer.then((reply) => replies.push(reply));
    await g.clock.advanceAsync(1_000);
    expect(replies).toEqual([]);
    g.bank.faults.errorRate = 0;
    await settle(g, [order.orderId]);

    expect(await answer).toMatchObject({
      type: 'OrderFinished',
      order: { id: order.orderId, status: 'executed' },
    });
    // A rule's rejection is final at once.
    const rejected = { ...newOrder(g, 'key-awaited-too-much'), amount: 10n ** 15n };
    expect(
      await g.registry.ask<MerchantCommand, ProcessOrderReply>(
        g.merchant,
        (replyTo) => ({ type: 'ProcessNewOrder', order: rejected, awaitResult: true, replyTo }),
        1_000,
      ),
    ).toMatchObject({ type: 'OrderAccepted', order: { status: 'rejected' } });
  });

  it('an order submitted to be awaited is answered as accepted when no more waiters fit', async () => {
    const g = await gateway(1, { ...defaultOrderWaitersSettings, ordersWaitedOnMax: 0 });
    const order = newOrder(g, 'key-no-room');

    const reply = await g.registry.ask<MerchantCommand, ProcessOrderReply>(
      g.merchant,
      (replyTo) => ({ type: 'ProcessNewOrder', order, awaitResult: true, replyTo }),
      1_000,
    );

    expect(reply).toMatchObject({ type: 'OrderAccepted', order: { status: 'validated' } });
    await settle(g, [order.orderId]);
  });

  it('declines with the bank reason, rejects by the rules without calling the bank', async () => {
    const g = await gateway();
    const declined = newOrder(g, 'key-declined', declinedCard);
    const rejected = newOrder(g, 'key-luhn', '4242424242424241');
    const overLimit = newOrder(g, 'key-limit', approvedCard, 1_000_001n);
    const currency = newOrder(g, 'key-gbp', approvedCard, 100n, 'GBP');
    await submit(g, declined);
    for (const order of [rejected, overLimit, currency]) {
      expect((await submit(g, order)).type).toBe('OrderAccepted');
    }
    const orders = await settle(
      g,
      [declined, rejected, overLimit, currency].map((order) => order.orderId),
    );
    expect(orders.map((order) => [order.status, order.reason])).toEqual([
      ['declined', 'card_declined'],
      ['rejected', 'card_number_invalid'],
      ['rejected', 'amount_over_limit'],
      ['rejected', 'currency_not_supported'],
    ]);
    expect(g.bank.payments.size).toBe(1);
    expectLedgerAgrees(g, orders);
  });

  it('a retry with the same key names the same order; another body under the key is told apart', async () => {
    const g = await gateway();
    const order = newOrder(g, 'key-retry');
    await submit(g, order);
    const replay = await submit(g, order);
    expect(replay).toMatchObject({ type: 'OrderExists', sameRequest: true, order: { id: order.orderId } });
    const reused = await submit(g, { ...order, requestHash: 'another body' });
    expect(reused).toMatchObject({ type: 'OrderExists', sameRequest: false });
    await settle(g, [order.orderId]);
    expect(g.bank.payments.get(order.orderId)?.requestCount).toBe(1);
  });

  it('fails an order only when the bank confirms nothing was charged, past the deadline', async () => {
    const g = await gateway();
    g.bank.faults.errorRate = 1;
    const order = newOrder(g, 'key-down');
    await submit(g, order);
    await g.clock.advanceAsync(defaultMerchantSettings.executionDeadlineMs + 5_000);
    // Past the deadline, but the bank cannot confirm anything yet: the order stays in flight.
    expect((await currentOrder(g, order.orderId))?.status).toBe('validated');
    g.bank.faults.errorRate = 0;
    const [failed] = await settle(g, [order.orderId]);
    expect(failed).toMatchObject({ status: 'failed', reason: 'deadline_exceeded' });
    expect(g.bank.payments.get(order.orderId)?.answer.kind).toBe('cancelled');
    expectLedgerAgrees(g, [failed as Order]);
  });

  it('an authorization the bank refuses outright ends failed, after the bank confirms nothing was charged', async () => {
    const g = await gateway();
    const order = newOrder(g, 'key-refused', '4000000000000101');
    await submit(g, order);
    const [failed] = await settle(g, [order.orderId]);
    expect(failed).toMatchObject({ status: 'failed', reason: 'bank_refused' });
    expect(g.bank.payments.get(order.orderId)?.answer.kind).toBe('cancelled');
  });

  it('an executor restarted after its bank answer was lost asks the bank before sending again', async () => {
    const g = await gateway();
    g.bank.faults.lostAnswerRate = 1;
    const order = newOrder(g, 'key-lost');
    await submit(g, order);
    await waitFor(() => g.bank.payments.has(order.orderId));
    await restart(g, { typeName: 'executor', entityId: 'bank-a' });
    g.bank.faults.lostAnswerRate = 0;
    const [executed] = await settle(g, [order.orderId]);
    expect(executed?.status).toBe('executed');
    // One authorization only; everything after the lost answer was an inquiry.
    expect(g.bank.payments.get(order.orderId)?.requestCount).toBe(1);
  });

  it('an executor restarted during a bank call does not call again: the first call reports to the new incarnation', async () => {
    const g = await gateway();
    // Hold authorizations until released, as a slow bank would.
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const authorize = g.bank.authorize.bind(g.bank);
    let authorizations = 0;
    g.bank.authorize = async (request) => {
      authorizations++;
      await gate;
      return authorize(request);
    };
    const order = newOrder(g, 'key-slow');
    await submit(g, order);
    await waitFor(() => authorizations === 1);
    const callsBefore = g.bank.calls;
    await restart(g, { typeName: 'executor', entityId: 'bank-a' });
    await g.clock.advanceAsync(1_000);
    // The new incarnation neither inquired nor authorized while the first call was under way.
    expect(authorizations).toBe(1);
    expect(g.bank.calls).toBe(callsBefore);
    release();
    const [executed] = await settle(g, [order.orderId]);
    expect(executed?.status).toBe('executed');
    expect(authorizations).toBe(1);
  });

  it('under bank errors, lost answers and entity restarts, every order ends terminal and the ledger agrees', async () => {
    const g = await gateway(99);
    g.bank.faults = { errorRate: 0.3, lostAnswerRate: 0.3, declineRate: 0.1 };
    const cards = [approvedCard, approvedCard, declinedCard, '4000000000009995', '4242424242424241'];
    const orders = Array.from({ length: 60 }, (_, i) =>
      newOrder(g, `chaos-${i}`, cards[i % cards.length], BigInt(100 + i)),
    );
    for (const [index, order] of orders.entries()) {
      await submit(g, order);
      if (index % 15 === 7) await restart(g, g.merchant);
      if (index % 20 === 11) await restart(g, { typeName: 'executor', entityId: 'bank-a' });
      await g.clock.advanceAsync(50);
    }
    // Duplicated submissions (client retries) change nothing.
    for (const order of orders.slice(0, 10)) await submit(g, order);
    await g.clock.advanceAsync(5_000);
    g.bank.faults = { errorRate: 0, lostAnswerRate: 0, declineRate: 0 };
    const finished = await settle(
      g,
      orders.map((order) => order.orderId),
    );
    expect(finished.every((order) => isTerminal(order.status))).toBe(true);
    expectLedgerAgrees(g, finished);
    expect(finished.some((order) => order.status === 'executed')).toBe(true);
    // Each executor and merchant journal is contiguous; the executor forgot every confirmed order.
    for (const id of ['merchant-merchant-a', persistenceIdOf({ typeName: 'executor', entityId: 'bank-a' })]) {
      const seqNrs = g.journal.eventsOf(id).map((row) => row.seqNr);
      expect(seqNrs).toEqual(seqNrs.map((_, i) => i + 1));
    }
  });
});
