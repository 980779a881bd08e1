/**
 * Refunds through the whole node: `RefundService` → Payment → Executor → bank and back, over the
 * memory journal and the in-memory `SimulatedBank` (the real simulator's rules), on a simulated
 * clock. Each case reads the outcome where a client would (the service) and checks it against the
 * bank's ledger, the ground truth: what the bank refunded equals what Remit reports, never more
 * than the charge, and each refund reference reaches the bank once. Crashes are a process's actor
 * system terminated while the journal, vault and bank outlive it; the next process recovers from
 * the journal, and its pending-refund sweep wakes Payments whose delivery was cut short.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedBank } from '../bank/simulated-bank.js';
import { MemoryVaultStorage, type VaultStorage } from '../payments/card-vault.js';
import { defaultPaymentSettings } from '../payments/payment.js';
import type { Refund } from '../payments/refund.js';
import type { ActorSystem } from '../runtime/actor-system.js';
import { SimulatedClock } from '../runtime/clock.js';
import type { Messenger } from '../runtime/entity-address.js';
import { SeededRandom } from '../runtime/random.js';
import { MemoryJournal } from '../store/memory/memory-journal.js';
import { MemorySnapshotStore } from '../store/memory/memory-snapshot-store.js';
import { JournalRefundQueries } from '../testing/journal-refund-queries.js';
import { testNode } from '../testing/test-node.js';
import type { AssembledNode } from './assemble-node.js';
import type { OrderRequest } from './order-service.js';
import type { RefundRequest } from './refund-operations.js';

const merchantId = 'merchant-a';
const config = {
  bank: 'bank-a',
  currencies: [{ currency: 'EUR' as const, perOrderLimit: 1_000_000n }],
  blockedBins: [],
  velocity: { maxOrdersPerCard: 1_000, windowMs: 60_000 },
};

interface World {
  readonly clock: SimulatedClock;
  readonly journal: MemoryJournal;
  readonly snapshots: MemorySnapshotStore;
  readonly bank: SimulatedBank;
  readonly vault: VaultStorage;
  readonly refundQueries: JournalRefundQueries;
}

const systems: ActorSystem[] = [];
afterEach(async () => {
  for (const system of systems.splice(0)) await system.terminate();
});

function world(): World {
  const clock = new SimulatedClock(Date.UTC(2026, 11, 7));
  const journal = new MemoryJournal({ clock });
  return {
    clock,
    journal,
    snapshots: new MemorySnapshotStore(),
    bank: new SimulatedBank(new SeededRandom(3)),
    vault: new MemoryVaultStorage(),
    refundQueries: new JournalRefundQueries(journal),
  };
}

/** Drops every `ExecuteRefund` while `cut` is set: a delivery cut short, as by a crash. */
interface Wire {
  cut: boolean;
}

/** One gateway process: its entities and services; the journal, vault and bank outlive it. */
async function startProcess(w: World, wire: Wire = { cut: false }): Promise<AssembledNode> {
  let registry: Messenger | undefined;
  const node = testNode({
    clock: w.clock,
    random: new SeededRandom(5),
    bank: w.bank,
    memory: w.journal,
    stores: { snapshots: w.snapshots, vault: w.vault, refunds: w.refundQueries },
    messenger: {
      tell: (address, message) => {
        if (wire.cut && (message as { type?: string }).type === 'ExecuteRefund') return;
        registry?.tell(address, message);
      },
    },
    settings: {
      refundSweep: { pendingRefundSweepIntervalMs: 1_000, pendingRefundsPerSweepMax: 2 },
      payment: { ...defaultPaymentSettings, passivateAfterMs: 5_000 },
    },
    name: 'gateway',
  });
  registry = node.entities;
  systems.push(node.system);
  await settled(w, node.boot([{ id: merchantId, config }], 10_000));
  return node;
}

/** Advances simulated time until the promise settles. */
async function settled<T>(w: World, promise: Promise<T>): Promise<T> {
  let outcome: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
  promise.then(
    (value) => {
      outcome = { ok: true, value };
    },
    (error: unknown) => {
      outcome = { ok: false, error };
    },
  );
  for (let round = 0; round < 2_000 && outcome === undefined; round++) await w.clock.advanceAsync(10);
  if (outcome === undefined) throw new Error('did not settle');
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}

/** Advances simulated time until the condition holds. */
async function eventually(w: World, condition: () => Promise<boolean>): Promise<void> {
  for (let round = 0; round < 3_000; round++) {
    if (await condition()) return;
    await w.clock.advanceAsync(10);
  }
  throw new Error('condition not met');
}

const card = { number: '4242424242424242', expMonth: 12, expYear: 2030, cvc: '123' };

async function executedOrder(w: World, node: AssembledNode, key: string, amount = 1_250): Promise<string> {
  const body: OrderRequest = { amount, currency: 'EUR', card };
  const created = await settled(w, node.orders.create(merchantId, key, body, 5_000));
  expect(created.order.status).toBe('executed');
  return created.order.id;
}

function refund(amount: bigint, changes: Partial<RefundRequest> = {}): RefundRequest {
  return { amount, currency: undefined, reason: undefined, ...changes };
}

function request(w: World, node: AssembledNode, orderId: string, key: string, body: RefundRequest) {
  return settled(w, node.refunds.requestRefund(merchantId, orderId, body, key));
}

/** Waits until the order's refunds are all finished, then returns them. */
async function finishedRefunds(w: World, node: AssembledNode, orderId: string): Promise<readonly Refund[]> {
  let refunds: readonly Refund[] | undefined;
  await eventually(w, async () => {
    refunds = await node.refunds.listRefunds(merchantId, orderId);
    return refunds?.every((each) => each.status !== 'pending') === true;
  });
  return refunds ?? [];
}

/** What Remit reports refunded for an order: its succeeded refunds. */
function reportedRefunded(refunds: readonly Refund[]): bigint {
  return refunds.filter((each) => each.status === 'succeeded').reduce((sum, each) => sum + each.amount, 0n);
}

/** Each refund reached the bank with one refund request (inquiries aside). */
function expectSentOnce(w: World, refunds: readonly Refund[]): void {
  for (const each of refunds) expect(w.bank.refunds.get(each.id)?.requestCount).toBe(1);
}

describe('refunds through the node', () => {
  it('a full refund: pending when accepted, succeeded once the bank gave it back', async () => {
    const w = world();
    const node = await startProcess(w);
    const orderId = await executedOrder(w, node, 'order-full');
    const accepted = await request(w, node, orderId, 'refund-full', refund(1_250n, { reason: 'returned' }));
    expect(accepted).toMatchObject({
      replayed: false,
      refund: { orderId, status: 'pending', amount: 1_250n, currency: 'EUR', reason: 'returned' },
    });
    const [finished] = await finishedRefunds(w, node, orderId);
    expect(finished).toMatchObject({ id: accepted.refund.id, status: 'succeeded' });
    expect(w.bank.refunded(orderId)).toBe(1_250n);
    expect(await settled(w, node.refunds.getRefund(merchantId, accepted.refund.id))).toMatchObject({
      status: 'succeeded',
    });
    expectSentOnce(w, [accepted.refund]);
  });

  it('partial refunds add up to the order at most; one more is refused with what remains, nothing sent', async () => {
    const w = world();
    const node = await startProcess(w);
    const orderId = await executedOrder(w, node, 'order-partial');
    await request(w, node, orderId, 'refund-1', refund(500n));
    // The second is decided while the first may be pending: pending refunds count.
    await request(w, node, orderId, 'refund-2', refund(700n, { currency: 'EUR' }));
    await expect(request(w, node, orderId, 'refund-3', refund(100n))).rejects.toMatchObject({
      status: 422,
      code: 'refund_exceeds_payment',
      detail: expect.stringContaining('at most 50'),
    });
    const refunds = await finishedRefunds(w, node, orderId);
    expect(refunds.map((each) => [each.amount, each.status])).toEqual([
      [500n, 'succeeded'],
      [700n, 'succeeded'],
    ]);
    expect(w.bank.refunded(orderId)).toBe(reportedRefunded(refunds));
    expect(w.bank.refunds.size).toBe(2);
    expectSentOnce(w, refunds);
  });

  it('a refund above the order is refused when it is made; the bank never hears of it', async () => {
    const w = world();
    const node = await startProcess(w);
    const orderId = await executedOrder(w, node, 'order-over');
    await expect(request(w, node, orderId, 'refund-over', refund(1_251n))).rejects.toMatchObject({
      status: 422,
      code: 'refund_exceeds_payment',
    });
    expect(await settled(w, node.refunds.listRefunds(merchantId, orderId))).toEqual([]);
    expect(w.bank.refunds.size).toBe(0);
  });

  it('the same key and body again is a replay of the same refund; another body under the key is refused', async () => {
    const w = world();
    const node = await startProcess(w);
    const orderId = await executedOrder(w, node, 'order-replay');
    const first = await request(w, node, orderId, 'refund-key', refund(300n, { reason: 'late' }));
    const again = await request(w, node, orderId, 'refund-key', refund(300n, { reason: 'late' }));
    expect(again).toEqual({ replayed: true, refund: expect.objectContaining({ id: first.refund.id }) });
    await expect(
      request(w, node, orderId, 'refund-key', refund(301n, { reason: 'late' })),
    ).rejects.toMatchObject({
      status: 422,
      code: 'idempotency_key_reused',
    });
    const refunds = await finishedRefunds(w, node, orderId);
    expect(refunds).toHaveLength(1);
    // Replayed after it finished: the refund as it stands now.
    const later = await request(w, node, orderId, 'refund-key', refund(300n, { reason: 'late' }));
    expect(later).toMatchObject({ replayed: true, refund: { status: 'succeeded' } });
    expectSentOnce(w, refunds);
  });

  it('an order that is not executed, unknown, or in another currency is refused with its code', async () => {
    const w = world();
    const node = await startProcess(w);
    const declined = await settled(
      w,
      node.orders.create(
        merchantId,
        'order-declined',
        { amount: 1_000, currency: 'EUR', card: { ...card, number: '4000000000000002' } },
        5_000,
      ),
    );
    expect(declined.order.status).toBe('declined');
    await expect(request(w, node, declined.order.id, 'refund-a', refund(10n))).rejects.toMatchObject({
      status: 409,
      code: 'order_not_refundable',
    });
    expect(await settled(w, node.refunds.listRefunds(merchantId, declined.order.id))).toEqual([]);
    const unknownOrder = 'ord_0000000000000000000000000a';
    await expect(request(w, node, unknownOrder, 'refund-b', refund(10n))).rejects.toMatchObject({
      status: 404,
      code: 'order_not_found',
    });
    expect(await settled(w, node.refunds.listRefunds(merchantId, unknownOrder))).toBeUndefined();
    expect(await settled(w, node.refunds.getRefund(merchantId, 're_nothing'))).toBeUndefined();
    const orderId = await executedOrder(w, node, 'order-currency');
    await expect(
      request(w, node, orderId, 'refund-c', refund(10n, { currency: 'USD' })),
    ).rejects.toMatchObject({
      status: 422,
      code: 'refund_currency_mismatch',
    });
    // Another merchant sees neither the order's refunds nor a refund by id.
    const accepted = await request(w, node, orderId, 'refund-d', refund(10n));
    expect(await settled(w, node.refunds.getRefund('merchant-b', accepted.refund.id))).toBeUndefined();
    expect(await settled(w, node.refunds.listRefunds('merchant-b', orderId))).toBeUndefined();
    expect(w.bank.refunds.size).toBe(1);
  });

  it('the bank’s answer lost: the refund is settled by an inquiry, never sent a second time', async () => {
    const w = world();
    const node = await startProcess(w);
    const orderId = await executedOrder(w, node, 'order-timeout');
    w.bank.faults = { errorRate: 0, lostAnswerRate: 1, declineRate: 0 };
    const accepted = await request(w, node, orderId, 'refund-timeout', refund(1_000n));
    // The refund reached the bank and its answer was lost.
    await eventually(w, async () => w.bank.refunds.has(accepted.refund.id));
    await w.clock.advanceAsync(50);
    w.bank.faults = { errorRate: 0, lostAnswerRate: 0, declineRate: 0 };
    const [finished] = await finishedRefunds(w, node, orderId);
    expect(finished?.status).toBe('succeeded');
    expect(w.bank.refunds.get(accepted.refund.id)?.requestCount).toBe(1);
    expect(w.bank.refunded(orderId)).toBe(1_000n);
  });

  it('a declined refund fails with the bank’s code, and what it held may be refunded again', async () => {
    const w = world();
    const node = await startProcess(w);
    const orderId = await executedOrder(w, node, 'order-refund-declined');
    w.bank.faults = { errorRate: 0, lostAnswerRate: 0, declineRate: 1 };
    await request(w, node, orderId, 'refund-declined', refund(1_250n));
    const [failed] = await finishedRefunds(w, node, orderId);
    expect(failed).toMatchObject({ status: 'failed', failureReason: 'refund_declined' });
    w.bank.faults = { errorRate: 0, lostAnswerRate: 0, declineRate: 0 };
    await request(w, node, orderId, 'refund-again', refund(1_250n));
    const refunds = await finishedRefunds(w, node, orderId);
    expect(refunds.map((each) => each.status)).toEqual(['failed', 'succeeded']);
    expect(w.bank.refunded(orderId)).toBe(reportedRefunded(refunds));
  });

  it('a crash after the refund was persisted and before it reached the Executor: the sweep resumes it', async () => {
    const w = world();
    const wire: Wire = { cut: true };
    let node = await startProcess(w, wire);
    const orderIds = [
      await executedOrder(w, node, 'order-crash-1'),
      await executedOrder(w, node, 'order-crash-2'),
      await executedOrder(w, node, 'order-crash-3'),
    ];
    const accepted: Refund[] = [];
    for (const [n, orderId] of orderIds.entries()) {
      accepted.push((await request(w, node, orderId, `refund-crash-${n}`, refund(400n))).refund);
    }
    await w.clock.advanceAsync(3_000);
    expect(w.bank.refunds.size).toBe(0);
    await node.system.terminate();

    // The next process: no client asks about these orders again. The sweep (two refunds a pass)
    // wakes their Payments, which deliver again.
    node = await startProcess(w);
    // Asking a Payment would start it too: the bank is watched first, so only the sweep can be at work.
    await eventually(w, async () => w.bank.refunds.size === 3);
    const finished: Refund[] = [];
    for (const orderId of orderIds) finished.push(...(await finishedRefunds(w, node, orderId)));
    expect(finished.map((each) => each.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    for (const orderId of orderIds) expect(w.bank.refunded(orderId)).toBe(400n);
    expectSentOnce(w, accepted);
    expect(await w.refundQueries.pendingRefunds(10)).toEqual([]);
  });

  it('a crash while the bank’s answer is unknown: the restarted Executor inquires and never sends again', async () => {
    const w = world();
    let node = await startProcess(w);
    const orderId = await executedOrder(w, node, 'order-crash-bank');
    w.bank.faults = { errorRate: 0, lostAnswerRate: 1, declineRate: 0 };
    const accepted = await request(w, node, orderId, 'refund-crash-bank', refund(600n));
    await eventually(w, async () => w.bank.refunds.has(accepted.refund.id));
    await node.system.terminate();
    w.bank.faults = { errorRate: 0, lostAnswerRate: 0, declineRate: 0 };

    node = await startProcess(w);
    const [finished] = await finishedRefunds(w, node, orderId);
    expect(finished?.status).toBe('succeeded');
    expect(w.bank.refunds.get(accepted.refund.id)?.requestCount).toBe(1);
    expect(w.bank.refunded(orderId)).toBe(600n);
  });
});
