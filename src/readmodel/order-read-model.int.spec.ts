/**
 * The order read model and its projection, driven by hand-written Merchant and Executor events in
 * an in-memory journal on a simulated clock. Writing the events directly lets each test pick exact
 * times, interleavings and broken rows; `order-projection.int.spec.ts` checks the same projection
 * against events the real entities write.
 *
 * Every wait is a condition (`caughtUp`, `waitForOffset`), never a sleep: the projection reads as
 * soon as it is notified, so the simulated clock only moves where a test says so.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { CardSummary } from '../payments/card.js';
import { type ExecutorEvent, executorEvents } from '../payments/executor-events.js';
import { type MerchantEvent, merchantEvents } from '../payments/merchant-events.js';
import { type PaymentEvent, paymentEvents } from '../payments/payment-events.js';
import { SimulatedClock, settle } from '../runtime/clock.js';
import { MemoryJournal } from '../store/memory/memory-journal.js';
import { waitFor } from '../testing/entity-test-kit.js';
import { visaCardSummary } from '../testing/fixtures/card-summary.js';
import { dumpReadModel } from '../testing/read-model-dump.js';
import { orderAuditTrail } from './audit-trail.js';
import {
  OrderProjection,
  OrderProjectionError,
  type OrderProjectionSettings,
  OrderProjectionStoppedError,
} from './order-projection.js';
import {
  InvalidCursorError,
  type OrderChange,
  OrderReadModel,
  type OrderRow,
  readModelPath,
  readModelSchemaVersion,
} from './order-read-model.js';

const start = Date.UTC(2026, 10, 24);

const card: CardSummary = visaCardSummary('tok_3f9a1c');

// ---- events ---------------------------------------------------------------------------------

function created(
  orderId: string,
  at: number,
  extra: { amount?: bigint; reference?: string; description?: string } = {},
): MerchantEvent {
  return {
    type: 'OrderCreated',
    orderId,
    idempotencyKey: `key-${orderId}`,
    requestHash: `hash-${orderId}`,
    amount: extra.amount ?? 1_000n,
    currency: 'EUR',
    card,
    description: extra.description,
    reference: extra.reference,
    at,
  };
}

function validated(orderId: string, at: number, bank = 'bank-a'): MerchantEvent {
  return { type: 'OrderValidated', orderId, bank, rulesVersion: 1, deadlineAt: at + 60_000, at };
}

function rejected(orderId: string, at: number): MerchantEvent {
  return { type: 'OrderRejected', orderId, reason: 'amount_over_limit', rulesVersion: 1, at };
}

function executed(orderId: string, at: number): MerchantEvent {
  return { type: 'OrderExecuted', orderId, authorizationCode: '123456', at };
}

function refundRequested(
  orderId: string,
  refundId: string,
  amount: bigint,
  at: number,
  merchantId = 'm1',
): PaymentEvent {
  return {
    type: 'RefundRequested',
    refundId,
    orderId,
    merchantId,
    idempotencyKey: `key-${refundId}`,
    requestHash: `hash-${refundId}`,
    amount,
    currency: 'EUR',
    reason: refundId.endsWith('1') ? 'one mug broken' : undefined,
    paymentAmount: 1_000n,
    bank: 'bank-a',
    at,
  };
}

// ---- harness --------------------------------------------------------------------------------

interface Harness {
  readonly directory: string;
  readonly clock: SimulatedClock;
  readonly journal: MemoryJournal;
  readModel: OrderReadModel;
  projection: OrderProjection;
  /** What `start()` returned: settles when the projection ends. */
  done: Promise<void>;
}

const harnesses: Harness[] = [];

afterEach(async () => {
  for (const h of harnesses.splice(0)) {
    await h.projection.stop();
    await h.done.catch(() => undefined);
    h.readModel.close();
    await h.journal.close();
    rmSync(h.directory, { recursive: true, force: true });
  }
});

function harness(settings: Partial<OrderProjectionSettings> = {}): Harness {
  const directory = mkdtempSync(join(tmpdir(), 'remit-readmodel-'));
  const clock = new SimulatedClock(start);
  const journal = new MemoryJournal({ clock });
  const readModel = OrderReadModel.open(readModelPath(directory));
  const projection = new OrderProjection({ journal, readModel, clock, settings });
  const h: Harness = { directory, clock, journal, readModel, projection, done: projection.start() };
  harnesses.push(h);
  return h;
}

/** Closes the read model and starts a new one and a new projection on the same file. */
async function restartProjection(h: Harness, settings: Partial<OrderProjectionSettings> = {}): Promise<void> {
  await h.projection.stop();
  await h.done;
  h.readModel.close();
  h.readModel = OrderReadModel.open(readModelPath(h.directory));
  h.projection = new OrderProjection({
    journal: h.journal,
    readModel: h.readModel,
    clock: h.clock,
    settings,
  });
  h.done = h.projection.start();
}

async function appendMerchant(h: Harness, merchantId: string, ...events: MerchantEvent[]): Promise<void> {
  const persistenceId = `merchant-${merchantId}`;
  const fromSeqNr = (await h.journal.highestSeqNr(persistenceId)) + 1;
  const serialized = events.map((event) => merchantEvents.serialize(event));
  await h.journal.append({ persistenceId, fromSeqNr, events: serialized, timestamp: h.clock.now() });
}

async function appendExecutor(h: Harness, bank: string, ...events: ExecutorEvent[]): Promise<void> {
  const persistenceId = `executor-${bank}`;
  const fromSeqNr = (await h.journal.highestSeqNr(persistenceId)) + 1;
  const serialized = events.map((event) => executorEvents.serialize(event));
  await h.journal.append({ persistenceId, fromSeqNr, events: serialized, timestamp: h.clock.now() });
}

async function appendPayment(h: Harness, orderId: string, ...events: PaymentEvent[]): Promise<void> {
  const persistenceId = `payment-${orderId}`;
  const fromSeqNr = (await h.journal.highestSeqNr(persistenceId)) + 1;
  const serialized = events.map((event) => paymentEvents.serialize(event));
  await h.journal.append({ persistenceId, fromSeqNr, events: serialized, timestamp: h.clock.now() });
}

/** All pages of a listing, following the cursor, with each page's `hasMore`. */
function allPages(
  readModel: OrderReadModel,
  query: { merchantId: string; status?: OrderRow['status']; limit: number },
): { ids: string[][]; hasMore: boolean[] } {
  const ids: string[][] = [];
  const hasMore: boolean[] = [];
  let startingAfter: string | undefined;
  for (let page = 0; page < 1_000; page++) {
    const result = readModel.listOrders({ ...query, startingAfter });
    ids.push(result.data.map((order) => order.id));
    hasMore.push(result.hasMore);
    const last = result.data.at(-1);
    if (!result.hasMore || last === undefined) return { ids, hasMore };
    startingAfter = last.id;
  }
  throw new Error('listing did not end');
}

// ---- tests ----------------------------------------------------------------------------------

describe('order read model: projecting orders', () => {
  it('follows each order through its statuses with every field', async () => {
    const h = harness();
    await appendMerchant(h, 'm1', created('o1', start, { reference: 'inv-7', description: 'Two mugs' }));
    await h.projection.caughtUp();
    expect(h.readModel.getOrder('m1', 'o1')).toEqual({
      id: 'o1',
      merchantId: 'm1',
      status: 'new',
      amount: 1_000n,
      currency: 'EUR',
      card: { brand: 'visa', last4: '4242' },
      bank: undefined,
      reference: 'inv-7',
      description: 'Two mugs',
      reason: undefined,
      authorizationCode: undefined,
      idempotencyKey: 'key-o1',
      requestHash: 'hash-o1',
      amountRefunded: 0n,
      createdAt: start,
      updatedAt: start,
    } satisfies OrderRow);

    await appendMerchant(h, 'm1', validated('o1', start + 5));
    await h.projection.caughtUp();
    expect(h.readModel.getOrder('m1', 'o1')).toMatchObject({
      status: 'validated',
      bank: 'bank-a',
      updatedAt: start + 5,
    });

    await appendMerchant(h, 'm1', executed('o1', start + 900));
    await h.projection.caughtUp();
    expect(h.readModel.getOrder('m1', 'o1')).toMatchObject({
      status: 'executed',
      bank: 'bank-a',
      authorizationCode: '123456',
      reason: undefined,
      createdAt: start,
      updatedAt: start + 900,
    });
  });

  it('records rejections, declines and failures with their reasons; amounts beyond 64 bits survive', async () => {
    const h = harness();
    const huge = 123_456_789_012_345_678_901_234_567_890n;
    await appendMerchant(
      h,
      'm1',
      created('rejected', start),
      rejected('rejected', start + 1),
      created('declined', start + 2, { amount: huge }),
      validated('declined', start + 2),
      { type: 'OrderDeclined', orderId: 'declined', reason: 'insufficient_funds', at: start + 3 },
      created('failed', start + 4),
      validated('failed', start + 4),
      { type: 'OrderFailed', orderId: 'failed', reason: 'deadline_exceeded', at: start + 5 },
    );
    await h.projection.caughtUp();
    const summary = (id: string) => {
      const order = h.readModel.getOrder('m1', id);
      return [order?.status, order?.reason, order?.bank, order?.updatedAt];
    };
    expect(summary('rejected')).toEqual(['rejected', 'amount_over_limit', undefined, start + 1]);
    expect(summary('declined')).toEqual(['declined', 'insufficient_funds', 'bank-a', start + 3]);
    expect(summary('failed')).toEqual(['failed', 'deadline_exceeded', 'bank-a', start + 5]);
    expect(h.readModel.getOrder('m1', 'declined')?.amount).toBe(huge);
  });

  it('passes over other entity types, and MerchantConfigured changes no order, but the offset moves on', async () => {
    const h = harness();
    await h.journal.append({
      persistenceId: 'account-a1',
      fromSeqNr: 1,
      events: [{ type: 'Deposited', version: 7, payload: '{"not":"an order event"}' }],
      timestamp: start,
    });
    await appendMerchant(h, 'm1', {
      type: 'MerchantConfigured',
      config: {
        bank: 'bank-a',
        currencies: [{ currency: 'EUR', perOrderLimit: 1_000n }],
        blockedBins: [],
        velocity: { maxOrdersPerCard: 5, windowMs: 60_000 },
      },
    });
    await h.projection.caughtUp();
    expect(h.readModel.offset()).toBe(2);
    expect(h.readModel.listOrders({ merchantId: 'm1', limit: 10 })).toEqual({ data: [], hasMore: false });
  });
});

describe('order read model: listing', () => {
  it('pages newest first by cursor, ties broken by order id, with hasMore right on every page', async () => {
    const h = harness();
    // 25 orders; pairs share a creation time so the tie-break is exercised at page boundaries.
    const events = Array.from({ length: 25 }, (_, i) =>
      created(`o${String(i).padStart(2, '0')}`, start + Math.floor(i / 2)),
    );
    await appendMerchant(h, 'm1', ...events);
    await h.projection.caughtUp();
    const newestFirst = events
      .map((event) => (event.type === 'OrderCreated' ? event : undefined))
      .filter((event) => event !== undefined)
      .sort((a, b) => b.at - a.at || (a.orderId < b.orderId ? 1 : -1))
      .map((event) => event.orderId);
    expect(newestFirst.slice(0, 3)).toEqual(['o24', 'o23', 'o22']);

    const paged = allPages(h.readModel, { merchantId: 'm1', limit: 10 });
    expect(paged.ids.map((page) => page.length)).toEqual([10, 10, 5]);
    expect(paged.hasMore).toEqual([true, true, false]);
    expect(paged.ids.flat()).toEqual(newestFirst);

    // A page that ends exactly at the last order says there is no more.
    const exact = allPages(h.readModel, { merchantId: 'm1', limit: 5 });
    expect(exact.hasMore).toEqual([true, true, true, true, false]);
    expect(exact.ids.flat()).toEqual(newestFirst);
    expect(h.readModel.listOrders({ merchantId: 'm1', limit: 25 }).hasMore).toBe(false);
    expect(h.readModel.listOrders({ merchantId: 'm1', limit: 24 }).hasMore).toBe(true);
  });

  it('filters by status, paging within the filter', async () => {
    const h = harness();
    for (let i = 0; i < 12; i++) {
      const id = `o${String(i).padStart(2, '0')}`;
      await appendMerchant(
        h,
        'm1',
        created(id, start + i),
        i % 3 === 0 ? rejected(id, start + i) : validated(id, start + i),
      );
    }
    await h.projection.caughtUp();
    const paged = allPages(h.readModel, { merchantId: 'm1', status: 'rejected', limit: 3 });
    expect(paged.ids).toEqual([['o09', 'o06', 'o03'], ['o00']]);
    expect(paged.hasMore).toEqual([true, false]);
    expect(h.readModel.listOrders({ merchantId: 'm1', status: 'validated', limit: 100 }).data).toHaveLength(
      8,
    );
    expect(h.readModel.listOrders({ merchantId: 'm1', status: 'executed', limit: 100 }).data).toEqual([]);
    // A cursor is a position: it still works after its own order changed status.
    expect(
      h.readModel
        .listOrders({ merchantId: 'm1', status: 'rejected', limit: 2, startingAfter: 'o10' })
        .data.map((o) => o.id),
    ).toEqual(['o09', 'o06']);
  });

  it('isolates merchants: orders, audit trails and cursors of another merchant are invisible', async () => {
    const h = harness();
    await appendMerchant(h, 'm1', created('a1', start), created('a2', start + 1));
    await appendMerchant(h, 'm2', created('b1', start + 2));
    await h.projection.caughtUp();
    expect(h.readModel.getOrder('m2', 'a1')).toBeUndefined();
    expect(h.readModel.orderEventOffsets('m2', 'a1')).toBeUndefined();
    expect(h.readModel.getOrder('m1', 'a1')?.merchantId).toBe('m1');
    expect(h.readModel.getOrderById('a1')?.merchantId).toBe('m1');
    expect(h.readModel.listOrders({ merchantId: 'm2', limit: 10 }).data.map((o) => o.id)).toEqual(['b1']);
    expect(() => h.readModel.listOrders({ merchantId: 'm2', limit: 10, startingAfter: 'a1' })).toThrow(
      InvalidCursorError,
    );
    expect(() => h.readModel.listOrders({ merchantId: 'm1', limit: 10, startingAfter: 'nope' })).toThrow(
      InvalidCursorError,
    );
    expect(() => h.readModel.listOrders({ merchantId: 'm1', limit: 0 })).toThrow(/limit must be 1 to 100/);
    expect(() => h.readModel.listOrders({ merchantId: 'm1', limit: 101 })).toThrow(/limit must be 1 to 100/);
  });
});

describe('order read model: audit trail', () => {
  it('holds every event of the order, Merchant and Executor, in journal order with journal times', async () => {
    const h = harness();
    await appendMerchant(h, 'm1', created('o1', start), validated('o1', start));
    await appendMerchant(h, 'm1', created('other', start));
    h.clock.advance(10);
    await appendExecutor(h, 'bank-a', {
      type: 'ExecutionRequested',
      orderId: 'o1',
      merchantId: 'm1',
      amount: 1_000n,
      currency: 'EUR',
      card,
      deadlineAt: start + 60_000,
    });
    h.clock.advance(10);
    await appendMerchant(h, 'm1', { type: 'ExecuteOrderConfirmed', orderId: 'o1' });
    h.clock.advance(500);
    await appendExecutor(h, 'bank-a', {
      type: 'ExecutionSettled',
      orderId: 'o1',
      outcome: { kind: 'executed', authorizationCode: '123456' },
      at: h.clock.now(),
    });
    h.clock.advance(10);
    await appendMerchant(h, 'm1', executed('o1', h.clock.now()));
    h.clock.advance(10);
    await appendExecutor(h, 'bank-a', { type: 'ResultConfirmed', orderId: 'o1' });
    await h.projection.caughtUp();

    const trail = (await orderAuditTrail(h.readModel, h.journal, 'm1', 'o1')) ?? [];
    expect(trail.map((entry) => [entry.type, entry.persistenceId, entry.seqNr, entry.at])).toEqual([
      ['OrderCreated', 'merchant-m1', 1, start],
      ['OrderValidated', 'merchant-m1', 2, start],
      ['ExecutionRequested', 'executor-bank-a', 1, start + 10],
      ['ExecuteOrderConfirmed', 'merchant-m1', 4, start + 20],
      ['ExecutionSettled', 'executor-bank-a', 2, start + 520],
      ['OrderExecuted', 'merchant-m1', 5, start + 530],
      ['ResultConfirmed', 'executor-bank-a', 3, start + 540],
    ]);
    const offsets = trail.map((entry) => entry.offset);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(new Set(offsets).size).toBe(offsets.length);
    // The data is the event itself, as JSON: amounts as decimal strings, the card as its summary.
    expect(trail[0]?.data).toEqual({
      type: 'OrderCreated',
      orderId: 'o1',
      idempotencyKey: 'key-o1',
      requestHash: 'hash-o1',
      amount: '1000',
      currency: 'EUR',
      card: { ...card },
      at: start,
    });
    expect(trail[4]?.data).toMatchObject({ outcome: { kind: 'executed', authorizationCode: '123456' } });
    expect(
      (await orderAuditTrail(h.readModel, h.journal, 'm1', 'other'))?.map((entry) => entry.type),
    ).toEqual(['OrderCreated']);
    expect(await orderAuditTrail(h.readModel, h.journal, 'm1', 'missing')).toBeUndefined();
    expect(await orderAuditTrail(h.readModel, h.journal, 'm2', 'o1')).toBeUndefined();
  });
});

describe('order read model: refunds', () => {
  /** An executed order o1 of m1 (1000 EUR) with two refunds: r1 succeeds, r2 fails. */
  async function refundedOrder(h: Harness): Promise<void> {
    await appendMerchant(h, 'm1', created('o1', start), validated('o1', start + 1));
    await appendMerchant(h, 'm1', executed('o1', start + 2));
    h.clock.advance(100);
    await appendPayment(h, 'o1', refundRequested('o1', 're_1', 300n, start + 100));
    h.clock.advance(10);
    await appendPayment(h, 'o1', { type: 'ExecuteRefundConfirmed', refundId: 're_1' });
    await appendPayment(h, 'o1', refundRequested('o1', 're_2', 200n, start + 110));
    h.clock.advance(10);
    await appendPayment(h, 'o1', { type: 'RefundSucceeded', refundId: 're_1', at: start + 120 });
    await appendPayment(h, 'o1', {
      type: 'RefundFailed',
      refundId: 're_2',
      reason: 'refund_declined',
      at: start + 120,
    });
  }

  it('projects each refund, and the sum of the succeeded ones as the order amountRefunded', async () => {
    const h = harness();
    await appendMerchant(h, 'm1', created('o1', start), validated('o1', start + 1));
    await appendMerchant(h, 'm1', executed('o1', start + 2));
    await appendPayment(h, 'o1', refundRequested('o1', 're_1', 300n, start + 100));
    await h.projection.caughtUp();
    expect(await h.readModel.getRefund('m1', 're_1')).toEqual({
      id: 're_1',
      orderId: 'o1',
      merchantId: 'm1',
      idempotencyKey: 'key-re_1',
      requestHash: 'hash-re_1',
      status: 'pending',
      amount: 300n,
      currency: 'EUR',
      reason: 'one mug broken',
      failureReason: undefined,
      createdAt: start + 100,
      updatedAt: start + 100,
    });
    // Pending refunds count for nothing yet.
    expect(h.readModel.getOrder('m1', 'o1')).toMatchObject({ amountRefunded: 0n, updatedAt: start + 2 });

    await appendPayment(h, 'o1', { type: 'ExecuteRefundConfirmed', refundId: 're_1' });
    await appendPayment(h, 'o1', refundRequested('o1', 're_2', 200n, start + 110));
    await appendPayment(h, 'o1', refundRequested('o1', 're_3', 250n, start + 110));
    await appendPayment(h, 'o1', { type: 'RefundSucceeded', refundId: 're_1', at: start + 120 });
    await appendPayment(h, 'o1', {
      type: 'RefundFailed',
      refundId: 're_2',
      reason: 'refund_declined',
      at: start + 130,
    });
    await appendPayment(h, 'o1', { type: 'RefundSucceeded', refundId: 're_3', at: start + 125 });
    await h.projection.caughtUp();

    const refunds = await h.readModel.listRefunds('m1', 'o1');
    expect(refunds.map((refund) => [refund.id, refund.status, refund.amount, refund.failureReason])).toEqual([
      ['re_1', 'succeeded', 300n, undefined],
      ['re_2', 'failed', 200n, 'refund_declined'],
      ['re_3', 'succeeded', 250n, undefined],
    ]);
    expect(refunds.map((refund) => refund.updatedAt)).toEqual([start + 120, start + 130, start + 125]);
    // The failed refund adds nothing; updatedAt is the latest refund that succeeded.
    expect(h.readModel.getOrder('m1', 'o1')).toMatchObject({
      status: 'executed',
      amount: 1_000n,
      amountRefunded: 550n,
      updatedAt: start + 125,
    });
    expect(await h.readModel.pendingRefunds(10)).toEqual([]);
  });

  it('isolates merchants: another merchant sees neither the refund nor the order refunds', async () => {
    const h = harness();
    await refundedOrder(h);
    await h.projection.caughtUp();
    expect(await h.readModel.getRefund('m1', 're_1')).toBeDefined();
    expect(await h.readModel.getRefund('m2', 're_1')).toBeUndefined();
    expect(await h.readModel.getRefund('m1', 're_missing')).toBeUndefined();
    expect(await h.readModel.listRefunds('m2', 'o1')).toEqual([]);
    expect(await h.readModel.listRefunds('m1', 'missing')).toEqual([]);
  });

  it('lists pending refunds in refund id order, a bounded page after a given id', async () => {
    const h = harness();
    await appendMerchant(h, 'm1', created('o1', start), validated('o1', start), executed('o1', start));
    await appendMerchant(h, 'm2', created('o2', start), validated('o2', start), executed('o2', start));
    await appendPayment(h, 'o2', refundRequested('o2', 're_c', 1n, start, 'm2'));
    await appendPayment(
      h,
      'o1',
      refundRequested('o1', 're_b', 1n, start),
      refundRequested('o1', 're_a', 1n, start),
    );
    await appendPayment(h, 'o1', refundRequested('o1', 're_d', 1n, start));
    await appendPayment(h, 'o1', { type: 'RefundSucceeded', refundId: 're_b', at: start });
    await h.projection.caughtUp();
    expect(await h.readModel.pendingRefunds(2)).toEqual([
      { orderId: 'o1', merchantId: 'm1', refundId: 're_a' },
      { orderId: 'o2', merchantId: 'm2', refundId: 're_c' },
    ]);
    expect(await h.readModel.pendingRefunds(2, 're_c')).toEqual([
      { orderId: 'o1', merchantId: 'm1', refundId: 're_d' },
    ]);
    expect(await h.readModel.pendingRefunds(5, 're_d')).toEqual([]);
  });

  it("puts the Payment's events in the order's audit trail, in journal order", async () => {
    const h = harness();
    await refundedOrder(h);
    await h.projection.caughtUp();
    const trail = (await orderAuditTrail(h.readModel, h.journal, 'm1', 'o1')) ?? [];
    expect(trail.map((entry) => [entry.type, entry.persistenceId, entry.seqNr])).toEqual([
      ['OrderCreated', 'merchant-m1', 1],
      ['OrderValidated', 'merchant-m1', 2],
      ['OrderExecuted', 'merchant-m1', 3],
      ['RefundRequested', 'payment-o1', 1],
      ['ExecuteRefundConfirmed', 'payment-o1', 2],
      ['RefundRequested', 'payment-o1', 3],
      ['RefundSucceeded', 'payment-o1', 4],
      ['RefundFailed', 'payment-o1', 5],
    ]);
    expect(trail[3]?.data).toMatchObject({ type: 'RefundRequested', refundId: 're_1', amount: '300' });
    expect(trail[7]?.data).toEqual({
      type: 'RefundFailed',
      refundId: 're_2',
      reason: 'refund_declined',
      at: start + 120,
    });
  });

  it('gives the same tables in one batch, one event per batch, and rebuilt from offset 0', async () => {
    const h = harness({ batchSize: 1 });
    await refundedOrder(h);
    await h.projection.caughtUp();
    const path = readModelPath(h.directory);
    const one = dumpReadModel(path);
    expect(one.refunds).toHaveLength(2);
    await h.projection.stop();
    h.readModel.reset();
    await restartProjection(h, { batchSize: 100 });
    await h.projection.caughtUp();
    expect(dumpReadModel(path)).toEqual(one);
  });

  it('stops at a refund settled twice, or one of an unknown order, naming the event', async () => {
    const twice = harness();
    await refundedOrder(twice);
    await appendPayment(twice, 'o1', {
      type: 'RefundFailed',
      refundId: 're_1',
      reason: 'refund_declined',
      at: start,
    });
    twice.projection.notify();
    await expect(twice.done).rejects.toThrow(
      /refund re_1 of order o1 cannot become failed: it is succeeded, not pending \(offset 9, persistence id payment-o1, seqNr 6\)/,
    );

    const unknown = harness();
    await appendPayment(unknown, 'o9', refundRequested('o9', 're_1', 300n, start));
    unknown.projection.notify();
    await expect(unknown.done).rejects.toThrow(
      /refund event for unknown order o9 \(offset 1, persistence id payment-o9/,
    );

    const elsewhere = harness();
    await appendMerchant(
      elsewhere,
      'm1',
      created('o1', start),
      validated('o1', start),
      executed('o1', start),
    );
    await appendPayment(elsewhere, 'o2', refundRequested('o1', 're_1', 300n, start));
    elsewhere.projection.notify();
    await expect(elsewhere.done).rejects.toThrow(/a refund of order o1 is in payment-o2 \(offset 4/);

    const again = harness();
    await appendMerchant(again, 'm1', created('o1', start), validated('o1', start), executed('o1', start));
    await appendPayment(
      again,
      'o1',
      refundRequested('o1', 're_1', 300n, start),
      refundRequested('o1', 're_1', 300n, start),
    );
    again.projection.notify();
    await expect(again.done).rejects.toThrow(/refund re_1 is requested a second time \(offset 5/);
    expect(again.readModel.offset()).toBe(0);
    expect(await again.readModel.getRefund('m1', 're_1')).toBeUndefined();
  });
});

describe('order projection: failures stop it loudly', () => {
  it('an undecodable merchant event stops it, naming persistence id and seqNr; its batch is not applied', async () => {
    const h = harness();
    await appendMerchant(h, 'm1', created('o1', start));
    await h.projection.caughtUp();
    // The order id is missing: this row can never become an OrderValidated.
    h.journal.writeRaw({
      persistenceId: 'merchant-m1',
      seqNr: 2,
      type: 'OrderValidated',
      version: 1,
      payload: JSON.stringify({
        type: 'OrderValidated',
        bank: 'bank-a',
        rulesVersion: 1,
        deadlineAt: 1,
        at: 1,
      }),
      timestamp: start,
    });
    await appendMerchant(h, 'm2', created('o2', start));
    h.projection.notify();

    const failure = await h.done.then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(OrderProjectionError);
    expect(String(failure)).toMatch(/persistence id merchant-m1, seqNr 2/);
    expect((failure as OrderProjectionError).position).toEqual({ persistenceId: 'merchant-m1', seqNr: 2 });
    // Nothing of the failed batch was applied, not even the good event after the bad one.
    expect(h.readModel.offset()).toBe(1);
    expect(h.readModel.getOrderById('o2')).toBeUndefined();
    // Callers waiting now learn of the failure instead of hanging.
    await expect(h.projection.caughtUp()).rejects.toBe(failure);
    await expect(h.projection.waitForOffset(3)).rejects.toBe(failure);
  });

  it('an unknown event type or schema version of a known entity is an error too, never a skip', async () => {
    for (const row of [
      { type: 'OrderTeleported', version: 1, payload: '{"type":"OrderTeleported"}' },
      { type: 'OrderExecuted', version: 9, payload: merchantEvents.serialize(executed('o1', 1)).payload },
      { type: 'ExecutionSettled', version: 1, payload: 'not json' },
    ]) {
      const h = harness();
      const persistenceId = row.type === 'ExecutionSettled' ? 'executor-bank-a' : 'merchant-m1';
      h.journal.writeRaw({ persistenceId, seqNr: 1, ...row, timestamp: start });
      h.projection.notify();
      await expect(h.done).rejects.toThrow(new RegExp(`persistence id ${persistenceId}, seqNr 1`));
      expect(h.readModel.offset()).toBe(0);
    }
  });

  it('an event the tables contradict (a result for an order not validated) stops it', async () => {
    const h = harness();
    await appendMerchant(h, 'm1', created('o1', start), executed('o1', start + 1));
    h.projection.notify();
    await expect(h.done).rejects.toThrow(
      /order o1 cannot become executed: it is new, not validated \(offset 2, persistence id merchant-m1, seqNr 2\)/,
    );
    expect(h.readModel.getOrderById('o1')).toBeUndefined();
  });

  it('an order created twice stops it', async () => {
    const h = harness();
    await appendMerchant(h, 'm1', created('o1', start));
    await appendMerchant(h, 'm1', created('o1', start + 1));
    h.projection.notify();
    await expect(h.done).rejects.toThrow(/order o1 is created a second time/);
  });
});

describe('order projection: restarts and rebuilds', () => {
  it('resumes at the stored offset after a restart, without duplicate audit entries', async () => {
    const h = harness({ batchSize: 3 });
    await appendMerchant(h, 'm1', created('o1', start), validated('o1', start));
    await appendMerchant(h, 'm1', created('o2', start + 1), rejected('o2', start + 1));
    await h.projection.caughtUp();
    expect(h.readModel.offset()).toBe(4);

    // Events written while the projection is down are picked up after the restart.
    await h.projection.stop();
    await appendMerchant(h, 'm1', executed('o1', start + 2), created('o3', start + 3));
    await restartProjection(h, { batchSize: 3 });
    await h.projection.caughtUp();
    expect(h.readModel.offset()).toBe(6);
    expect(h.projection.stats()).toEqual({ batches: 1, events: 2 });
    expect((await orderAuditTrail(h.readModel, h.journal, 'm1', 'o1'))?.map((entry) => entry.type)).toEqual([
      'OrderCreated',
      'OrderValidated',
      'OrderExecuted',
    ]);
    expect(h.readModel.orderEventOffsets('m1', 'o1')).toEqual([1, 2, 5]);
    expect(h.readModel.getOrder('m1', 'o1')?.status).toBe('executed');
  });

  it('a rebuild from offset 0 (reset, or a new file) gives identical tables', async () => {
    const h = harness({ batchSize: 7 });
    for (let i = 0; i < 40; i++) {
      const id = `o${i}`;
      h.clock.advance(3);
      await appendMerchant(
        h,
        `m${i % 3}`,
        created(id, h.clock.now()),
        i % 4 === 0 ? rejected(id, h.clock.now()) : validated(id, h.clock.now()),
      );
      if (i % 4 === 1) await appendMerchant(h, `m${i % 3}`, executed(id, h.clock.now() + 1));
    }
    await h.projection.caughtUp();
    const path = readModelPath(h.directory);
    const before = dumpReadModel(path);
    expect(before.orders).toHaveLength(40);

    // Rebuild in place.
    await h.projection.stop();
    h.readModel.reset();
    expect(h.readModel.offset()).toBe(0);
    await restartProjection(h, { batchSize: 11 });
    await h.projection.caughtUp();
    expect(dumpReadModel(path)).toEqual(before);

    // Rebuild by deleting the file.
    await h.projection.stop();
    h.readModel.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
    await restartProjection(h, { batchSize: 1 });
    await h.projection.caughtUp();
    expect(dumpReadModel(path)).toEqual(before);
  });

  it('a file of another schema version is emptied on open and rebuilt', async () => {
    const h = harness();
    await appendMerchant(h, 'm1', created('o1', start));
    await h.projection.caughtUp();
    await h.projection.stop();
    h.readModel.close();
    const path = readModelPath(h.directory);
    const raw = new BetterSqlite3(path);
    raw.pragma(`user_version = ${readModelSchemaVersion + 1}`);
    raw.close();
    h.readModel = OrderReadModel.open(path);
    expect(h.readModel.offset()).toBe(0);
    expect(h.readModel.getOrderById('o1')).toBeUndefined();
    await restartProjection(h);
    await h.projection.caughtUp();
    expect(h.readModel.getOrderById('o1')?.status).toBe('new');
  });
});

describe('order projection: running', () => {
  it('catches up thousands of events in bounded batches', async () => {
    const h = harness({ batchSize: 256 });
    await h.projection.stop();
    await h.done;
    const orders = 3_000;
    for (let i = 0; i < orders; i++) {
      const id = `o${String(i).padStart(5, '0')}`;
      await appendMerchant(h, `m${i % 10}`, created(id, start + i), validated(id, start + i));
      if (i % 6 === 0) {
        await h.journal.append({
          persistenceId: `account-${i}`,
          fromSeqNr: 1,
          events: [{ type: 'Deposited', version: 1, payload: '{}' }],
          timestamp: start,
        });
      }
    }
    const total = orders * 2 + orders / 6;
    await restartProjection(h, { batchSize: 256 });
    await h.projection.waitForOffset(total);
    await h.projection.caughtUp();
    expect(h.readModel.offset()).toBe(total);
    expect(h.projection.stats()).toEqual({ batches: Math.ceil(total / 256), events: total });
    const listed = allPages(h.readModel, { merchantId: 'm3', status: 'validated', limit: 100 });
    expect(listed.ids.flat()).toHaveLength(orders / 10);
    expect(listed.ids.flat()[0]).toBe('o02993');
    expect(
      (await orderAuditTrail(h.readModel, h.journal, 'm3', 'o02993'))?.map((entry) => entry.type),
    ).toEqual(['OrderCreated', 'OrderValidated']);
  });

  it('without notify it looks again after pollIntervalMs on the clock', async () => {
    const h = harness({ pollIntervalMs: 250 });
    await h.projection.caughtUp();
    await appendMerchant(h, 'm1', created('o1', start));
    await settle(10);
    // Not notified and the clock has not moved: it has not looked yet.
    expect(h.readModel.offset()).toBe(0);
    await h.clock.advanceAsync(249);
    expect(h.readModel.offset()).toBe(0);
    await h.clock.advanceAsync(1);
    await waitFor(() => h.readModel.offset() === 1);
    expect(h.readModel.getOrderById('o1')?.status).toBe('new');
  });

  it('waitForOffset resolves at once when already there; stop() rejects the callers still waiting', async () => {
    const h = harness();
    await appendMerchant(h, 'm1', created('o1', start));
    await h.projection.waitForOffset(1);
    await h.projection.waitForOffset(0);
    const pending = h.projection.waitForOffset(5);
    await h.projection.stop();
    await expect(pending).rejects.toBeInstanceOf(OrderProjectionStoppedError);
    await expect(h.projection.caughtUp()).rejects.toBeInstanceOf(OrderProjectionStoppedError);
    await expect(h.done).resolves.toBeUndefined();
  });

  it('refuses waiters beyond waitersMax', async () => {
    const h = harness({ waitersMax: 2 });
    const first = h.projection.waitForOffset(10);
    const second = h.projection.waitForOffset(11);
    await expect(h.projection.waitForOffset(12)).rejects.toThrow(/waitersMax=2/);
    await h.projection.stop();
    await expect(first).rejects.toBeInstanceOf(OrderProjectionStoppedError);
    await expect(second).rejects.toBeInstanceOf(OrderProjectionStoppedError);
  });
});

/**
 * A batch is written one statement per order (all of its changes folded), not one per change. The
 * tables must come out exactly as if every change had been applied alone, however the changes of
 * several orders interleave and wherever the batches are cut.
 */
describe('order read model: changes folded per order within a batch', () => {
  type Step = 'validated' | 'rejected' | 'executed' | 'declined' | 'failed' | 'audit';
  /** Refunds: `refund` requests one, `succeed`/`fail` settle the oldest still pending. */
  type RefundStep = 'refund' | 'succeed' | 'fail' | 'confirm';
  const lifecycles: ReadonlyArray<ReadonlyArray<Step | RefundStep>> = [
    ['validated', 'audit', 'audit', 'executed', 'audit'],
    ['validated', 'executed', 'refund', 'confirm', 'refund', 'succeed', 'refund', 'fail', 'succeed'],
    ['validated', 'audit', 'declined'],
    ['rejected'],
    ['validated', 'audit', 'audit', 'failed', 'audit', 'audit'],
    ['validated'],
  ];

  /** One order's changes, at journal offsets to be assigned once the orders are interleaved. */
  function orderChanges(
    index: number,
    lifecycle: (typeof lifecycles)[number],
  ): Array<(offset: number) => OrderChange> {
    const orderId = `o${index}`;
    const at = start + index;
    const position = (offset: number) => ({ offset, persistenceId: 'merchant-m1', seqNr: offset });
    const steps: Array<(offset: number) => OrderChange> = [
      (offset) => ({
        kind: 'created',
        position: position(offset),
        order: {
          id: orderId,
          merchantId: 'm1',
          amount: BigInt(index + 1) * 1_000n,
          currency: 'EUR',
          card: { brand: 'visa', bin: '424242', last4: '4242' },
          reference: index % 2 === 0 ? `ref-${index}` : undefined,
          description: undefined,
          idempotencyKey: `key-${index}`,
          requestHash: `hash-${index}`,
          createdAt: at,
        },
      }),
    ];
    let status: 'new' | 'validated' = 'new';
    const pending: string[] = [];
    lifecycle.forEach((step, n) => {
      if (step === 'refund') {
        const refundId = `re_${index}_${n}`;
        pending.push(refundId);
        steps.push((offset) => ({
          kind: 'refundRequested',
          position: { offset, persistenceId: `payment-${orderId}`, seqNr: offset },
          orderId,
          refund: {
            id: refundId,
            orderId,
            merchantId: 'm1',
            idempotencyKey: `key-${refundId}`,
            requestHash: `hash-${refundId}`,
            amount: BigInt(n) * 10n,
            currency: 'EUR',
            reason: n % 2 === 0 ? 'returned' : undefined,
            createdAt: at + 10 * (n + 1),
          },
        }));
        return;
      }
      if (step === 'succeed' || step === 'fail') {
        const refundId = pending.shift() ?? 'none';
        steps.push((offset) => ({
          kind: 'refundSettled',
          position: { offset, persistenceId: `payment-${orderId}`, seqNr: offset },
          orderId,
          refundId,
          status: step === 'succeed' ? 'succeeded' : 'failed',
          failureReason: step === 'fail' ? 'refund_declined' : undefined,
          at: at + 10 * (n + 1),
        }));
        return;
      }
      if (step === 'audit' || step === 'confirm') {
        steps.push((offset) => ({
          kind: 'audited',
          position: position(offset),
          orderId,
          type: 'ExecutionSettled',
        }));
        return;
      }
      const from = status;
      if (step === 'validated') status = 'validated';
      steps.push((offset) => ({
        kind: 'transitioned',
        position: position(offset),
        orderId,
        from,
        to: step,
        at: at + 10 * (n + 1),
        ...(step === 'validated' ? { bank: 'bank-a' } : {}),
        ...(step === 'executed' ? { authorizationCode: `A${index}` } : {}),
        ...(step === 'rejected' || step === 'declined' || step === 'failed'
          ? { reason: `${step}-reason` }
          : {}),
      }));
    });
    return steps;
  }

  it('gives the same tables as one change per batch, for any interleaving and any cuts', () => {
    const scenario = fc.record({
      picks: fc.array(fc.integer({ min: 0, max: lifecycles.length - 1 }), { minLength: 1, maxLength: 6 }),
      order: fc.array(fc.nat(), { maxLength: 60 }),
      cuts: fc.array(fc.boolean(), { maxLength: 60 }),
    });
    fc.assert(
      fc.property(scenario, ({ picks, order, cuts }) => {
        // Interleave the orders' changes (each order's own order kept), then number them.
        const queues = picks.map((pick, index) => orderChanges(index, lifecycles[pick] ?? []));
        const changes: OrderChange[] = [];
        for (let n = 0; queues.some((queue) => queue.length > 0); n++) {
          const live = queues.filter((queue) => queue.length > 0);
          const queue = live[(order[n] ?? n) % live.length];
          const next = queue?.shift();
          if (next !== undefined) changes.push(next(changes.length + 1));
        }
        const directory = mkdtempSync(join(tmpdir(), 'remit-readmodel-fold-'));
        try {
          const folded = OrderReadModel.open(join(directory, 'folded.db'));
          const alone = OrderReadModel.open(join(directory, 'alone.db'));
          let batch: OrderChange[] = [];
          let afterOffset = 0;
          changes.forEach((change, index) => {
            alone.applyBatch({ afterOffset: index, toOffset: index + 1, changes: [change] });
            batch.push(change);
            if (cuts[index] === true || index === changes.length - 1) {
              folded.applyBatch({ afterOffset, toOffset: index + 1, changes: batch });
              afterOffset = index + 1;
              batch = [];
            }
          });
          folded.close();
          alone.close();
          expect(dumpReadModel(join(directory, 'folded.db'))).toEqual(
            dumpReadModel(join(directory, 'alone.db')),
          );
        } finally {
          rmSync(directory, { recursive: true, force: true });
        }
      }),
      { numRuns: 60 },
    );
  });

  it('a contradiction in a folded batch is reported at its own change, and nothing of the batch is written', () => {
    const directory = mkdtempSync(join(tmpdir(), 'remit-readmodel-fold-'));
    try {
      const readModel = OrderReadModel.open(join(directory, 'rm.db'));
      const [createA, validateA] = orderChanges(1, ['validated']);
      const [createB] = orderChanges(2, []);
      const wrong: OrderChange = {
        kind: 'transitioned',
        position: { offset: 4, persistenceId: 'merchant-m1', seqNr: 4 },
        orderId: 'o2',
        from: 'validated',
        to: 'executed',
        at: start,
      };
      const changes = [createA?.(1), createB?.(2), validateA?.(3), wrong].filter(
        (change) => change !== undefined,
      );
      expect(() => readModel.applyBatch({ afterOffset: 0, toOffset: 4, changes })).toThrow(
        /order o2 cannot become executed: it is new, not validated \(offset 4/,
      );
      expect(readModel.getOrderById('o1')).toBeUndefined();
      expect(readModel.offset()).toBe(0);
      readModel.close();
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});
