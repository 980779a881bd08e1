/**
 * The order read model on PostgreSQL, checked against the SQLite one: the same journal is projected
 * into both (with different batch sizes, so the folding of changes and the cuts between batches
 * differ), and every query must answer the same. Then the PostgreSQL side's own duties: an event
 * that contradicts the tables stops the projection and writes nothing of its batch, a cursor of
 * another merchant is refused, and a reset rebuilds the same tables.
 *
 * The journal is an in-memory one on a simulated clock, and for the comparison also the PostgreSQL
 * journal in the same schema as the read model; every wait is a condition (`caughtUp`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { PostgresClusterStore } from '../cluster/postgres-cluster-store.js';
import type { CardSummary } from '../payments/card.js';
import { type MerchantEvent, merchantEvents } from '../payments/merchant-events.js';
import { type PaymentEvent, paymentEvents } from '../payments/payment-events.js';
import { SimulatedClock } from '../runtime/clock.js';
import { type Journal, StaleEpochError } from '../store/journal.js';
import { MemoryJournal } from '../store/memory/memory-journal.js';
import { openPostgresStore, type PostgresStore } from '../store/postgres/open-postgres-store.js';
import { postgresSettings } from '../store/postgres/postgres-settings.js';
import { visaCardSummary } from '../testing/fixtures/card-summary.js';
import { dropSchema, testSchemaName } from '../testing/postgres-test-schema.js';
import { orderAuditTrail } from './audit-trail.js';
import { OrderProjection, OrderProjectionError, type ProjectedReadModel } from './order-projection.js';
import { InvalidCursorError, OrderReadModel, type OrderRow, readModelPath } from './order-read-model.js';
import { PostgresOrderReadModel } from './postgres-order-read-model.js';

const url = inject('postgresUrl');
const start = Date.UTC(2026, 10, 24);
const merchants = ['m1', 'm2'] as const;
const statuses: ReadonlyArray<OrderRow['status'] | undefined> = [
  undefined,
  'new',
  'validated',
  'rejected',
  'executed',
];

const card: CardSummary = visaCardSummary('tok_3f9a1c');

function created(orderId: string, at: number): MerchantEvent {
  return {
    type: 'OrderCreated',
    orderId,
    idempotencyKey: `key-${orderId}`,
    requestHash: `hash-${orderId}`,
    amount: 1_000n + BigInt(orderId.length * 7),
    currency: 'EUR',
    card,
    description: orderId.endsWith('3') ? 'Two mugs' : undefined,
    reference: orderId.endsWith('5') ? `inv-${orderId}` : undefined,
    at,
  };
}

function validated(orderId: string, at: number): MerchantEvent {
  return { type: 'OrderValidated', orderId, bank: 'bank-a', rulesVersion: 1, deadlineAt: at + 60_000, at };
}

function rejected(orderId: string, at: number): MerchantEvent {
  return { type: 'OrderRejected', orderId, reason: 'amount_over_limit', rulesVersion: 1, at };
}

/** The Executor took the order: a change of the audit trail only. */
function confirmed(orderId: string): MerchantEvent {
  return { type: 'ExecuteOrderConfirmed', orderId };
}

function executed(orderId: string, at: number): MerchantEvent {
  return { type: 'OrderExecuted', orderId, authorizationCode: '123456', at };
}

/** A refund of `orderId` (whose merchant is `merchantId`), requested at `at`. */
function refundRequested(merchantId: string, orderId: string, refundId: string, at: number): PaymentEvent {
  return {
    type: 'RefundRequested',
    refundId,
    orderId,
    merchantId,
    idempotencyKey: `key-${refundId}`,
    requestHash: `hash-${refundId}`,
    amount: 100n + BigInt(refundId.length),
    currency: 'EUR',
    reason: refundId.endsWith('a') ? 'returned' : undefined,
    paymentAmount: 1_000n,
    bank: 'bank-a',
    at,
  };
}

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Sides {
  readonly clock: SimulatedClock;
  readonly journal: Journal;
  readonly sqlite: OrderReadModel;
  readonly postgres: PostgresOrderReadModel;
  readonly store: PostgresStore;
}

async function sides(journalKind: 'memory' | 'postgres' = 'memory'): Promise<Sides> {
  const clock = new SimulatedClock(start);
  const directory = mkdtempSync(join(tmpdir(), 'remit-pg-readmodel-'));
  const sqlite = OrderReadModel.open(readModelPath(directory));
  const schema = testSchemaName('readmodel');
  const store = await openPostgresStore({
    settings: postgresSettings({ url, schema, poolSizeMax: 3 }),
    clock,
  });
  const postgres = await PostgresOrderReadModel.open(store.pool, store.quotedSchema);
  const journal = journalKind === 'memory' ? new MemoryJournal({ clock }) : store.journal;
  cleanups.push(
    () => rmSync(directory, { recursive: true, force: true }),
    () => dropSchema(url, schema),
    () => store.close(),
    () => sqlite.close(),
    () => journal.close(),
  );
  return { clock, journal, sqlite, postgres, store };
}

/** Starts a projection and registers its stop; returns it with what `start()` returned. */
function project(s: Sides, readModel: ProjectedReadModel, batchSize: number) {
  const projection = new OrderProjection({
    journal: s.journal,
    readModel,
    clock: s.clock,
    settings: { batchSize },
  });
  const done = projection.start();
  cleanups.push(async () => {
    await projection.stop();
    await done.catch(() => undefined);
  });
  return { projection, done };
}

async function appendMerchant(s: Sides, merchantId: string, ...events: MerchantEvent[]): Promise<void> {
  const persistenceId = `merchant-${merchantId}`;
  const fromSeqNr = (await s.journal.highestSeqNr(persistenceId)) + 1;
  await s.journal.append({
    persistenceId,
    fromSeqNr,
    events: events.map((event) => merchantEvents.serialize(event)),
    timestamp: s.clock.now(),
  });
}

async function appendPayment(s: Sides, orderId: string, ...events: PaymentEvent[]): Promise<void> {
  const persistenceId = `payment-${orderId}`;
  const fromSeqNr = (await s.journal.highestSeqNr(persistenceId)) + 1;
  await s.journal.append({
    persistenceId,
    fromSeqNr,
    events: events.map((event) => paymentEvents.serialize(event)),
    timestamp: s.clock.now(),
  });
}

/**
 * A day of orders: created in pairs (same millisecond, so ties are broken by id), then moved on;
 * executed ones are refunded in part — one refund succeeds, one fails, one stays pending.
 */
async function writeOrders(s: Sides, count: number, firstIndex = 0): Promise<string[]> {
  const ids: string[] = [];
  for (let index = firstIndex; index < firstIndex + count; index++) {
    const merchantId = merchants[index % merchants.length] ?? 'm1';
    const orderId = `o${String(index).padStart(3, '0')}`;
    ids.push(orderId);
    const at = start + Math.floor(index / 2) * 10;
    await appendMerchant(s, merchantId, created(orderId, at));
    if (index % 5 === 4) await appendMerchant(s, merchantId, rejected(orderId, at + 1));
    else if (index % 3 !== 0) await appendMerchant(s, merchantId, validated(orderId, at + 2));
    if (index % 5 !== 4 && index % 3 !== 0) await appendMerchant(s, merchantId, confirmed(orderId));
    if (index % 5 !== 4 && index % 3 === 1) {
      await appendMerchant(s, merchantId, executed(orderId, at + 3));
      const [a, b, c] = ['a', 'b', 'c'].map((suffix) => `re_${orderId}_${suffix}`);
      await appendPayment(s, orderId, refundRequested(merchantId, orderId, `${a}`, at + 4));
      await appendPayment(
        s,
        orderId,
        { type: 'ExecuteRefundConfirmed', refundId: `${a}` },
        refundRequested(merchantId, orderId, `${b}`, at + 4),
        refundRequested(merchantId, orderId, `${c}`, at + 5),
      );
      await appendPayment(s, orderId, { type: 'RefundSucceeded', refundId: `${a}`, at: at + 6 });
      await appendPayment(s, orderId, {
        type: 'RefundFailed',
        refundId: `${b}`,
        reason: 'refund_declined',
        at: at + 7,
      });
    }
  }
  return ids;
}

/** Everything a client can ask, of one read model. */
async function everything(
  readModel: OrderReadModel | PostgresOrderReadModel,
  ids: readonly string[],
  journal: Journal,
) {
  const orders = [];
  for (const id of ids) {
    for (const merchantId of merchants) {
      orders.push(await readModel.getOrder(merchantId, id));
      orders.push(await readModel.orderEventOffsets(merchantId, id));
      orders.push(await orderAuditTrail(readModel, journal, merchantId, id));
      orders.push(await readModel.listRefunds(merchantId, id));
      orders.push(await readModel.getRefund(merchantId, `re_${id}_a`));
    }
  }
  const pending = [];
  let afterRefundId: string | undefined;
  for (let page = 0; page < 100; page++) {
    const result = await readModel.pendingRefunds(3, afterRefundId);
    pending.push(result);
    afterRefundId = result.at(-1)?.refundId;
    if (afterRefundId === undefined) break;
  }
  const pages = [];
  for (const merchantId of merchants) {
    for (const status of statuses) {
      let startingAfter: string | undefined;
      for (let page = 0; page < 100; page++) {
        const result = await readModel.listOrders({ merchantId, status, limit: 4, startingAfter });
        pages.push(result);
        const last = result.data.at(-1);
        if (!result.hasMore || last === undefined) break;
        startingAfter = last.id;
      }
    }
  }
  return { orders, pages, pending, offset: await readModel.offset() };
}

describe('order read model on PostgreSQL', () => {
  it.each(['memory', 'postgres'] as const)(
    'answers every query as the SQLite read model does, whatever the batches (journal: %s)',
    async (journalKind) => {
      const s = await sides(journalKind);
      const ids = await writeOrders(s, 40);
      const sqlite = project(s, s.sqlite, 7);
      const postgres = project(s, s.postgres, 3);
      await sqlite.projection.caughtUp();
      await postgres.projection.caughtUp();

      const expected = await everything(s.sqlite, ids, s.journal);
      expect(expected.offset).toBeGreaterThan(0);
      // Refunds were projected: one succeeded of an executed order, and pending ones to sweep.
      expect(await s.sqlite.getOrderById('o001')).toMatchObject({ status: 'executed', amountRefunded: 109n });
      expect(expected.pending.flat().length).toBeGreaterThan(3);
      expect(expected.pages.some((page) => page.data.length > 0)).toBe(true);
      expect(await everything(s.postgres, ids, s.journal)).toEqual(expected);

      // A projection restarted on the same tables continues where the last one committed.
      await postgres.projection.stop();
      await postgres.done;
      const more = [...ids, ...(await writeOrders(s, 50, ids.length))];
      const restarted = project(s, s.postgres, 11);
      await sqlite.projection.caughtUp();
      await restarted.projection.caughtUp();
      expect(await everything(s.postgres, more, s.journal)).toEqual(
        await everything(s.sqlite, more, s.journal),
      );

      // A reset empties the tables; projected again from offset 0, they are the same.
      await restarted.projection.stop();
      await restarted.done;
      await s.postgres.reset();
      expect(await s.postgres.offset()).toBe(0);
      expect(await s.postgres.getOrderById('o001')).toBeUndefined();
      const rebuilt = project(s, s.postgres, 64);
      await rebuilt.projection.caughtUp();
      expect(await everything(s.postgres, more, s.journal)).toEqual(
        await everything(s.sqlite, more, s.journal),
      );
    },
  );

  it('applies a fenced batch only while the lease holds the writer’s epoch and owner', async () => {
    const s = await sides();
    const leases = new PostgresClusterStore(s.store.pool, s.store.quotedSchema, {
      memberTimeoutMs: 10_000,
      leaseTtlMs: 10_000,
    });
    const first = await leases.acquireLease('read-model/0', 'node-a');
    if (first === undefined) throw new Error('node-a did not get the free lease');
    await writeOrders(s, 3);
    const holder = project(s, s.postgres.fencedBy(first), 100);
    await holder.projection.caughtUp();
    await holder.projection.stop();
    await holder.done;
    const before = await s.postgres.offset();
    expect(before).toBeGreaterThan(0);

    // node-b takes the lease over; node-a's projection, still running somewhere, must write nothing.
    expect(await leases.releaseLease(first)).toBe(true);
    const second = await leases.acquireLease('read-model/0', 'node-b');
    if (second === undefined) throw new Error('node-b did not get the released lease');
    await writeOrders(s, 2, 3);
    const stale = project(s, s.postgres.fencedBy(first), 100);
    const refused = stale.projection.caughtUp();
    await expect(refused).rejects.toBeInstanceOf(OrderProjectionError);
    await expect(stale.done).rejects.toSatisfy(
      (error) => error instanceof OrderProjectionError && error.cause instanceof StaleEpochError,
    );
    expect(await s.postgres.offset()).toBe(before);
    expect(await s.postgres.getOrderById('o003')).toBeUndefined();

    const current = project(s, s.postgres.fencedBy(second), 100);
    await current.projection.caughtUp();
    expect(await s.postgres.getOrderById('o003')).toBeDefined();
  });

  it('refuses a cursor that is not an order of the merchant', async () => {
    const s = await sides();
    await writeOrders(s, 4);
    const { projection } = project(s, s.postgres, 10);
    await projection.caughtUp();
    await expect(
      s.postgres.listOrders({ merchantId: 'm1', limit: 2, startingAfter: 'o001' }),
    ).rejects.toBeInstanceOf(InvalidCursorError);
    expect((await s.postgres.listOrders({ merchantId: 'm2', limit: 2, startingAfter: 'o001' })).data).toEqual(
      [],
    );
  });

  it('stops at an event that contradicts the tables, naming it, and writes nothing of its batch', async () => {
    const s = await sides();
    await writeOrders(s, 3);
    const first = project(s, s.postgres, 100);
    await first.projection.caughtUp();
    const before = await s.postgres.offset();
    const beforeOrders = await everything(s.postgres, ['o000', 'o001', 'o002'], s.journal);

    // o001 belongs to m2; another merchant's stream creates it again, after a harmless order.
    await appendMerchant(s, 'm1', created('o100', start + 500), created('o001', start + 501));
    const failed = first.projection.caughtUp();
    await expect(failed).rejects.toBeInstanceOf(OrderProjectionError);
    await expect(failed).rejects.toThrow(/order o001 is created a second time/);
    await expect(first.done).rejects.toBeInstanceOf(OrderProjectionError);

    expect(await s.postgres.offset()).toBe(before);
    expect(await s.postgres.getOrderById('o100')).toBeUndefined();
    expect(await everything(s.postgres, ['o000', 'o001', 'o002'], s.journal)).toEqual(beforeOrders);
  });

  it('stops at a refund settled twice, naming it, and writes nothing of its batch', async () => {
    const s = await sides();
    await writeOrders(s, 3);
    const first = project(s, s.postgres, 100);
    await first.projection.caughtUp();
    const before = await s.postgres.offset();
    const beforeOrders = await everything(s.postgres, ['o000', 'o001', 'o002'], s.journal);

    // o001 is executed, its refund re_o001_a succeeded; its pending re_o001_c succeeds now, in the
    // same batch as a second settlement of re_o001_a.
    await appendPayment(
      s,
      'o001',
      { type: 'RefundSucceeded', refundId: 're_o001_c', at: start + 500 },
      { type: 'RefundFailed', refundId: 're_o001_a', reason: 'refund_declined', at: start + 501 },
    );
    const failed = first.projection.caughtUp();
    await expect(failed).rejects.toThrow(
      /refund re_o001_a of order o001 cannot become failed: it is succeeded, not pending/,
    );
    await expect(first.done).rejects.toBeInstanceOf(OrderProjectionError);

    expect(await s.postgres.offset()).toBe(before);
    expect((await s.postgres.getRefund('m2', 're_o001_c'))?.status).toBe('pending');
    expect(await everything(s.postgres, ['o000', 'o001', 'o002'], s.journal)).toEqual(beforeOrders);
  });

  it('stops at a transition from the wrong status, naming it, and writes nothing of its batch', async () => {
    const s = await sides();
    await writeOrders(s, 3);
    const first = project(s, s.postgres, 100);
    await first.projection.caughtUp();
    const before = await s.postgres.offset();
    const beforeOrders = await everything(s.postgres, ['o000', 'o001', 'o002'], s.journal);
    expect(beforeOrders.orders[0]).toMatchObject({ id: 'o000', status: 'new' });

    // o000 is new: it cannot become executed. A harmless change of o001 comes first in the batch.
    await appendMerchant(s, 'm2', confirmed('o001'));
    await appendMerchant(s, 'm1', executed('o000', start + 700));
    const failed = first.projection.caughtUp();
    await expect(failed).rejects.toThrow(/order o000 cannot become executed: it is new, not validated/);
    await expect(first.done).rejects.toBeInstanceOf(OrderProjectionError);

    expect(await s.postgres.offset()).toBe(before);
    expect(await everything(s.postgres, ['o000', 'o001', 'o002'], s.journal)).toEqual(beforeOrders);
  });
});
