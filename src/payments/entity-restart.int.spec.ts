/**
 * The Merchant and the Executor as real entities (the production runtime over the in-memory
 * journal), each driven through its transitions by the `EntityTestKit`: after every command the
 * kit rebuilds the state from the journal, with and without the latest snapshot, and checks it
 * equals the live state; between steps the entity is restarted from the journal and must come back
 * with the state it had. Snapshots are taken every two events, so recovery from a snapshot plus
 * later events is exercised as well. The other entity is not running: what each sends it is
 * recorded by the messenger and answered by the test, as the other entity would.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { classifySimulatedBankError, SimulatedBank } from '../bank/simulated-bank.js';
import { ActorSystem } from '../runtime/actor-system.js';
import { SimulatedClock, settle } from '../runtime/clock.js';
import type { EntityAddress, Messenger } from '../runtime/entity-address.js';
import { silentLogger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import { MemoryJournal } from '../store/memory/memory-journal.js';
import { MemorySnapshotStore } from '../store/memory/memory-snapshot-store.js';
import { EntityTestKit, waitFor } from '../testing/entity-test-kit.js';
import { visaCardSummary } from '../testing/fixtures/card-summary.js';
import { InMemoryCards } from '../testing/in-memory-cards.js';
import type { CardSummary } from './card.js';
import { defaultExecutorSettings, executorDefinition } from './executor.js';
import type { ExecutorCommand } from './executor-protocol.js';
import { defaultMerchantSettings, merchantDefinition } from './merchant.js';
import type { ConfigureReply, MerchantCommand, NewOrder, ProcessOrderReply } from './merchant-protocol.js';
import { orderIdFor } from './order.js';
import { OrderWaiters } from './order-waiters.js';
import { paymentDefinition } from './payment.js';
import type { GetRefundsReply, RequestRefundReply } from './payment-protocol.js';
import {
  type ExecuteOrder,
  type ExecuteRefund,
  executorInbox,
  merchantInbox,
  type ProcessRefundResult,
  paymentInbox,
} from './protocol.js';
import type { MerchantConfig } from './validator.js';

const start = Date.UTC(2026, 10, 24);
const token = `tok_${'5'.repeat(32)}`;
const card: CardSummary = visaCardSummary(token);
const config: MerchantConfig = {
  bank: 'bank-a',
  currencies: [{ currency: 'EUR', perOrderLimit: 1_000_000n }],
  blockedBins: [],
  velocity: { maxOrdersPerCard: 100, windowMs: 60_000 },
};

interface Sent {
  readonly to: EntityAddress<unknown>;
  readonly message: { readonly type: string; readonly orderId?: string };
}

const systems: ActorSystem[] = [];

afterEach(async () => {
  for (const system of systems.splice(0)) await system.terminate();
});

function world() {
  const clock = new SimulatedClock(start);
  const random = new SeededRandom(11);
  const system = new ActorSystem({ name: 'test', clock, random: random.fork(), logger: silentLogger });
  systems.push(system);
  const sent: Sent[] = [];
  const messenger: Messenger = {
    tell: (to, message) => {
      sent.push({ to, message: message as Sent['message'] });
    },
  };
  const sentOf = (type: string, orderId: string) =>
    sent.filter((each) => each.message.type === type && each.message.orderId === orderId);
  return {
    clock,
    random,
    system,
    journal: new MemoryJournal(),
    snapshots: new MemorySnapshotStore(),
    messenger,
    sent,
    sentOf,
  };
}

function newOrder(n: number, changes: Partial<NewOrder> = {}): NewOrder {
  const key = `key-${n}`;
  return {
    orderId: orderIdFor('merchant-a', key),
    idempotencyKey: key,
    requestHash: `hash-${key}`,
    amount: 2_500n,
    currency: 'EUR',
    card,
    description: undefined,
    reference: undefined,
    receivedAt: start + n,
    ...changes,
  };
}

describe('Merchant entity: recovery equals live state, and a restart keeps it', () => {
  it('through configuration, accepted and rejected orders, retries, confirmations and results', async () => {
    const w = world();
    const waiters = new OrderWaiters();
    const kit = new EntityTestKit({
      definition: merchantDefinition(waiters, { ...defaultMerchantSettings, snapshotEveryEvents: 2 }),
      system: w.system,
      journal: w.journal,
      snapshots: w.snapshots,
      clock: w.clock,
      random: w.random.fork(),
      entityId: 'merchant-a',
      messenger: w.messenger,
    });
    const submit = (order: NewOrder) =>
      kit.ask<ProcessOrderReply>((replyTo) => ({ type: 'ProcessNewOrder', order, replyTo }));

    expect(
      await kit.ask<ConfigureReply>((replyTo) => ({ type: 'ConfigureMerchant', config, replyTo })),
    ).toEqual({ type: 'MerchantConfigured' });
    await kit.expectRestartKeepsState();

    const first = newOrder(1);
    expect(await submit(first)).toMatchObject({ type: 'OrderAccepted', order: { status: 'validated' } });
    await waitFor(() => w.sentOf('ExecuteOrder', first.orderId).length === 1);
    expect(w.sentOf('ExecuteOrder', first.orderId)[0]?.to).toEqual({
      typeName: 'executor',
      entityId: 'bank-a',
    });
    expect(await submit(newOrder(2, { amount: 0n }))).toMatchObject({
      order: { status: 'rejected', reason: 'amount_not_positive' },
    });
    expect(await submit(first)).toMatchObject({ type: 'OrderExists', sameRequest: true });
    expect(await submit({ ...first, requestHash: 'other' })).toMatchObject({
      type: 'OrderExists',
      sameRequest: false,
    });
    await kit.expectRestartKeepsState();
    // The restarted Merchant resends the unconfirmed ExecuteOrder: its outbox came back from the journal.
    w.clock.advance(defaultMerchantSettings.redeliverIntervalMs * 2);
    await waitFor(() => w.sentOf('ExecuteOrder', first.orderId).length >= 2);

    const eventsBefore = (await kit.events()).length;
    // The Executor's acknowledgement is journaled: it survives a restart, and it ends the resending.
    const acknowledged = await kit.tellAndCheck(
      { type: 'ConfirmExecuteOrder', orderId: first.orderId },
      () => kit.state.outbox.size === 0,
    );
    expect(await kit.events()).toHaveLength(eventsBefore + 1);
    expect(acknowledged.outbox.size).toBe(0);
    await kit.expectRestartKeepsState();

    const result: MerchantCommand = {
      type: 'ProcessExecutionResult',
      orderId: first.orderId,
      outcome: { kind: 'executed', authorizationCode: '777777' },
      at: start + 100,
      executor: executorInbox('bank-a'),
    };
    const finished = await kit.tellAndCheck(
      result,
      () => w.sentOf('ConfirmResult', first.orderId).length === 1,
    );
    expect(finished.inFlight.size).toBe(0);
    expect(finished.outbox.size).toBe(0);
    // The same result again (a redelivery) is confirmed again and persists nothing.
    await kit.tellAndCheck(result, () => w.sentOf('ConfirmResult', first.orderId).length === 2);
    expect(await kit.events()).toHaveLength(eventsBefore + 2);

    await kit.expectRestartKeepsState();
    // Known only to the store's processed records now: the runtime's deduplication answers.
    expect(await submit(first)).toMatchObject({ type: 'OrderExists', order: { status: 'executed' } });
    expect(kit.recoveryCount).toBe(5);
  });
});

describe('Executor entity: recovery equals live state, and a restart keeps it', () => {
  function executorKit(w: ReturnType<typeof world>, bank: SimulatedBank) {
    const cards = new InMemoryCards();
    cards.cards.set(token, '4242424242424242');
    return new EntityTestKit({
      definition: executorDefinition(
        { bank, cards, classify: classifySimulatedBankError },
        { ...defaultExecutorSettings, snapshotEveryEvents: 2 },
      ),
      system: w.system,
      journal: w.journal,
      snapshots: w.snapshots,
      clock: w.clock,
      random: w.random.fork(),
      entityId: 'bank-a',
      messenger: w.messenger,
    });
  }

  function executeOrder(n: number): ExecutorCommand & ExecuteOrder {
    return {
      type: 'ExecuteOrder',
      orderId: `ord_${n}`,
      merchantId: 'merchant-a',
      amount: 2_500n,
      currency: 'EUR',
      card,
      deadlineAt: start + 60_000,
      merchant: merchantInbox('merchant-a'),
    };
  }

  it('through executions, a duplicate, an unknown outcome resolved by inquiry, and confirmations', async () => {
    const w = world();
    const bank = new SimulatedBank(w.random.fork());
    const kit = executorKit(w, bank);
    const settledOf = (orderId: string) => () =>
      kit.recoveryCount > 0 && kit.state.executions.get(orderId)?.outcome !== undefined;

    const first = executeOrder(1);
    const afterFirst = await kit.tellAndCheck(first, settledOf(first.orderId));
    expect(afterFirst.executions.get(first.orderId)?.outcome).toMatchObject({ kind: 'executed' });
    expect(w.sentOf('ProcessExecutionResult', first.orderId)).toHaveLength(1);

    // A duplicate while the execution is held: confirmed, never executed again.
    await kit.tellAndCheck(first, () => w.sentOf('ConfirmExecuteOrder', first.orderId).length === 1);
    expect(bank.charged().get(first.orderId)?.requestCount).toBe(1);
    await kit.expectRestartKeepsState();

    // The answer is lost after the bank charged; the retry inquires.
    const second = executeOrder(2);
    bank.faults.lostAnswerRate = 1;
    kit.tell(second);
    await waitFor(() => bank.charged().has(second.orderId));
    bank.faults.lostAnswerRate = 0;
    w.clock.advance(defaultExecutorSettings.retryBackoff.maxBackoffMs * 2);
    await waitFor(settledOf(second.orderId));
    await kit.expectRecoveryMatchesLive();
    expect(bank.charged().get(second.orderId)?.requestCount).toBe(1);
    const charged = bank.charged().get(second.orderId)?.answer;
    expect(kit.state.executions.get(second.orderId)?.outcome).toEqual({
      kind: 'executed',
      authorizationCode: charged?.kind === 'approved' ? charged.authorizationCode : '',
    });

    // A pending execution survives a restart, and the restarted Executor settles it.
    const third = executeOrder(3);
    bank.faults.errorRate = 1;
    await kit.tellAndCheck(third, () => kit.state.executions.has(third.orderId));
    await kit.expectRestartKeepsState();
    bank.faults.errorRate = 0;
    w.clock.advance(defaultExecutorSettings.retryBackoff.maxBackoffMs * 2);
    await waitFor(settledOf(third.orderId));
    await kit.expectRecoveryMatchesLive();

    for (const order of [first, second, third]) {
      await kit.tellAndCheck(
        { type: 'ConfirmResult', orderId: order.orderId },
        () => !kit.state.executions.has(order.orderId),
      );
    }
    expect(kit.state.outbox.size).toBe(0);
    await kit.expectRestartKeepsState();

    // Long forgotten by the state, remembered by the store: confirmed again, not executed again.
    await kit.tellAndCheck(first, () => w.sentOf('ConfirmExecuteOrder', first.orderId).length === 2);
    expect(kit.state.executions.size).toBe(0);
    expect(bank.charged().get(first.orderId)?.requestCount).toBe(1);
    expect((await kit.events()).map((event) => event.type)).toEqual([
      'ExecutionRequested',
      'ExecutionSettled',
      'ExecutionRequested',
      'ExecutionSettled',
      'ExecutionRequested',
      'ExecutionSettled',
      'ResultConfirmed',
      'ResultConfirmed',
      'ResultConfirmed',
    ]);
  });
});

describe('Executor refunds: recovery equals live state (snapshots every two events), and a restart keeps it', () => {
  it('through a refund, a duplicate, an unknown outcome resolved by inquiry, a pending one across a restart, and confirmations', async () => {
    const w = world();
    const bank = new SimulatedBank(w.random.fork());
    await bank.authorize({
      reference: 'ord_1',
      merchantId: 'merchant-a',
      amount: 2_500n,
      currency: 'EUR',
      card: { number: '4242424242424242', expMonth: 12, expYear: 2030 },
    });
    const kit = new EntityTestKit({
      definition: executorDefinition(
        { bank, cards: new InMemoryCards(), classify: classifySimulatedBankError },
        { ...defaultExecutorSettings, snapshotEveryEvents: 2 },
      ),
      system: w.system,
      journal: w.journal,
      snapshots: w.snapshots,
      clock: w.clock,
      random: w.random.fork(),
      entityId: 'bank-a',
      messenger: w.messenger,
    });
    const refund = (n: number): ExecutorCommand & ExecuteRefund => ({
      type: 'ExecuteRefund',
      refundId: `re_${n}`,
      orderId: 'ord_1',
      merchantId: 'merchant-a',
      amount: 500n,
      currency: 'EUR',
      requestedAt: start + n,
      payment: paymentInbox('ord_1'),
    });
    const settledOf = (refundId: string) => () =>
      kit.recoveryCount > 0 && kit.state.refunds.get(refundId)?.outcome !== undefined;
    const sentFor = (type: string, refundId: string) =>
      w.sent.filter(
        (each) => each.message.type === type && (each.message as { refundId?: string }).refundId === refundId,
      );

    await kit.tellAndCheck(refund(1), settledOf('re_1'));
    await kit.tellAndCheck(refund(1), () => sentFor('ConfirmExecuteRefund', 're_1').length === 2);
    await kit.expectRestartKeepsState();

    bank.faults.lostAnswerRate = 1;
    kit.tell(refund(2));
    await waitFor(() => bank.refunds.has('re_2'));
    bank.faults.lostAnswerRate = 0;
    w.clock.advance(defaultExecutorSettings.retryBackoff.maxBackoffMs * 2);
    await waitFor(settledOf('re_2'));
    await kit.expectRecoveryMatchesLive();

    bank.faults.errorRate = 1;
    await kit.tellAndCheck(refund(3), () => kit.state.refunds.has('re_3'));
    await kit.expectRestartKeepsState();
    bank.faults.errorRate = 0;
    w.clock.advance(defaultExecutorSettings.retryBackoff.maxBackoffMs * 2);
    await waitFor(settledOf('re_3'));
    await kit.expectRecoveryMatchesLive();
    // Results are delivered until confirmed: each at least once by now.
    for (const id of ['re_1', 're_2', 're_3'])
      expect(sentFor('ProcessRefundResult', id).length).toBeGreaterThan(0);

    for (const id of ['re_1', 're_2', 're_3']) {
      await kit.tellAndCheck({ type: 'ConfirmRefundResult', refundId: id }, () => !kit.state.refunds.has(id));
    }
    expect(kit.state.outbox.size).toBe(0);
    await kit.expectRestartKeepsState();
    // Forgotten by the state, remembered by the store: confirmed again, never sent again.
    await kit.tellAndCheck(refund(1), () => sentFor('ConfirmExecuteRefund', 're_1').length === 3);
    expect(kit.state.refunds.size).toBe(0);
    for (const id of ['re_1', 're_2', 're_3']) expect(bank.refunds.get(id)?.requestCount).toBe(1);
    expect(bank.refunded('ord_1')).toBe(1_500n);
  });
});

describe('Payment entity: recovery equals live state, and a restart keeps it', () => {
  it('through refunds requested, a replay, a refusal, confirmations and results', async () => {
    const w = world();
    const orderId = 'ord_1';
    const kit = new EntityTestKit({
      definition: paymentDefinition(),
      system: w.system,
      journal: w.journal,
      clock: w.clock,
      random: w.random.fork(),
      entityId: orderId,
      messenger: w.messenger,
    });
    const facts = {
      orderId,
      merchantId: 'merchant-a',
      amount: 1_000n,
      currency: 'EUR',
      bank: 'bank-a',
    } as const;
    const request = (n: number, amount: bigint) =>
      kit.ask<RequestRefundReply>((replyTo) => ({
        type: 'RequestRefund',
        refund: {
          refundId: `re_${n}`,
          idempotencyKey: `key-${n}`,
          requestHash: `hash-${n}`,
          amount,
          reason: n === 1 ? 'damaged' : undefined,
          receivedAt: start + n,
        },
        payment: facts,
        replyTo,
      }));
    expect(await request(1, 600n)).toMatchObject({ type: 'RefundAccepted', refund: { status: 'pending' } });
    expect(await request(1, 600n)).toMatchObject({ type: 'RefundExists', sameRequest: true });
    expect(await request(2, 401n)).toEqual({ type: 'RefundExceedsPayment', amountRefundable: 400n });
    expect(await request(3, 400n)).toMatchObject({ type: 'RefundAccepted' });
    expect(w.sent.filter((each) => each.message.type === 'ExecuteRefund')).toHaveLength(2);
    await kit.expectRestartKeepsState();
    // Recovery sends the unconfirmed deliveries again.
    expect(w.sent.filter((each) => each.message.type === 'ExecuteRefund')).toHaveLength(4);

    await kit.tellAndCheck(
      { type: 'ConfirmExecuteRefund', refundId: 're_1' },
      () => !kit.state.outbox.has('re_1'),
    );
    const executor = { typeName: 'executor', entityId: 'bank-a' };
    const result = (refundId: string, outcome: ProcessRefundResult['outcome']): ProcessRefundResult => ({
      type: 'ProcessRefundResult',
      refundId,
      outcome,
      at: start + 100,
      executor,
    });
    await kit.tellAndCheck(
      result('re_1', { kind: 'succeeded' }),
      () => kit.state.refunds.get('re_1')?.status === 'succeeded',
    );
    await kit.tellAndCheck(
      result('re_3', { kind: 'failed', reason: 'refund_declined' }),
      () => kit.state.refunds.get('re_3')?.status === 'failed',
    );
    await kit.tellAndCheck(
      result('re_1', { kind: 'failed', reason: 'refund_declined' }),
      () => w.sent.filter((each) => each.message.type === 'ConfirmRefundResult').length === 3,
    );
    expect(kit.state.refunds.get('re_1')?.status).toBe('succeeded');
    expect(kit.state.outbox.size).toBe(0);
    await kit.expectRestartKeepsState();
    const listed = await kit.ask<GetRefundsReply>((replyTo) => ({ type: 'GetRefunds', replyTo }));
    expect(listed.refunds.map((each) => [each.id, each.status, each.reason])).toEqual([
      ['re_1', 'succeeded', 'damaged'],
      ['re_3', 'failed', undefined],
    ]);
    expect((await kit.events()).map((event) => event.type)).toEqual([
      'RefundRequested',
      'RefundRequested',
      'ExecuteRefundConfirmed',
      'RefundSucceeded',
      'RefundFailed',
    ]);
  });
});

describe('deduplication records: the cleanup timer forgets them after their retention window', () => {
  /** Polls the store (an async question) until it answers `expected`, letting timers' work run. */
  async function expectProcessed(journal: MemoryJournal, receiverId: string, id: string, expected: boolean) {
    for (let round = 0; round < 1_000; round++) {
      if ((await journal.isProcessed(receiverId, { id, time: 0 })) === expected) return;
      await settle();
    }
    expect(await journal.isProcessed(receiverId, { id, time: 0 })).toBe(expected);
  }

  it('the Executor remembers an executed order id for deduplicationRetentionMs, then forgets it', async () => {
    const w = world();
    const retentionMs = 60_000;
    const cleanupIntervalMs = 10_000;
    const cards = new InMemoryCards();
    cards.cards.set(token, '4242424242424242');
    const kit = new EntityTestKit({
      definition: executorDefinition(
        { bank: new SimulatedBank(w.random.fork()), cards, classify: classifySimulatedBankError },
        {
          ...defaultExecutorSettings,
          deduplicationRetentionMs: retentionMs,
          deduplicationCleanupIntervalMs: cleanupIntervalMs,
        },
      ),
      system: w.system,
      journal: w.journal,
      clock: w.clock,
      random: w.random.fork(),
      entityId: 'bank-a',
      messenger: w.messenger,
    });
    const order: ExecuteOrder = {
      type: 'ExecuteOrder',
      orderId: 'ord_1',
      merchantId: 'merchant-a',
      amount: 2_500n,
      currency: 'EUR',
      card,
      deadlineAt: start + 60_000,
      merchant: merchantInbox('merchant-a'),
    };
    await kit.tellAndCheck(
      order,
      () => kit.recoveryCount > 0 && kit.state.executions.get('ord_1')?.outcome !== undefined,
    );
    await expectProcessed(w.journal, kit.persistenceId, 'ord_1', true);
    w.clock.advance(retentionMs - cleanupIntervalMs);
    await settle();
    await expectProcessed(w.journal, kit.persistenceId, 'ord_1', true);
    w.clock.advance(2 * cleanupIntervalMs);
    await expectProcessed(w.journal, kit.persistenceId, 'ord_1', false);
  });

  it('the Merchant remembers a processed order id for idempotencyRetentionMs, then forgets it', async () => {
    const w = world();
    const retentionMs = 3_600_000;
    const cleanupIntervalMs = 60_000;
    const kit = new EntityTestKit({
      definition: merchantDefinition(new OrderWaiters(), {
        ...defaultMerchantSettings,
        idempotencyRetentionMs: retentionMs,
        idempotencyCleanupIntervalMs: cleanupIntervalMs,
      }),
      system: w.system,
      journal: w.journal,
      clock: w.clock,
      random: w.random.fork(),
      entityId: 'merchant-a',
      messenger: w.messenger,
    });
    await kit.ask<ConfigureReply>((replyTo) => ({ type: 'ConfigureMerchant', config, replyTo }));
    const order = newOrder(1, { amount: 0n });
    await kit.ask<ProcessOrderReply>((replyTo) => ({ type: 'ProcessNewOrder', order, replyTo }));
    await expectProcessed(w.journal, kit.persistenceId, order.orderId, true);
    w.clock.advance(retentionMs - cleanupIntervalMs);
    await settle();
    await expectProcessed(w.journal, kit.persistenceId, order.orderId, true);
    w.clock.advance(2 * cleanupIntervalMs);
    await expectProcessed(w.journal, kit.persistenceId, order.orderId, false);
  });
});
