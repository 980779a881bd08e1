import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { JournalRefunds } from '../node/journal-refunds.js';
import { orderJson, refundJson } from '../node/resource-json.js';
import type { MerchantEvent } from '../payments/merchant-events.js';
import { merchantEvents } from '../payments/merchant-events.js';
import { orderIdFor } from '../payments/order.js';
import { type PaymentEvent, paymentEvents } from '../payments/payment-events.js';
import { refundIdFor } from '../payments/refund.js';
import { orderQueries } from '../readmodel/audit-trail.js';
import { OrderProjection } from '../readmodel/order-projection.js';
import { OrderReadModel, readModelPath } from '../readmodel/order-read-model.js';
import { systemClock } from '../runtime/clock.js';
import { MemoryJournal } from '../store/memory/memory-journal.js';
import { SqliteWebhookStore, webhooksPath } from '../store/sqlite/sqlite-webhook-store.js';
import { type WebhookEventType, webhookEventIdFor } from './webhook-event.js';
import { WebhookProjection, type WebhookProjectionSettings } from './webhook-projection.js';
import type { WebhookEndpoint } from './webhook-store.js';

/**
 * The webhook projection over a journal holding a merchant's orders (executed, declined, failed,
 * rejected, one still in flight) and an order's refunds (one succeeded, one failed), with the real
 * SQLite order read model kept by the real order projection, and refunds read from their
 * Payment's events (`JournalRefunds`).
 *
 * It checks that every outcome becomes exactly one event with its stable id and the order or
 * refund as the API renders it; that nothing is derived while the read model has not caught up;
 * and that deriving everything again, in other batch sizes, gives the same events.
 */

const merchantId = 'merchant-one';
const t0 = Date.UTC(2026, 10, 1);
const card = {
  token: 'tok_1',
  brand: 'visa',
  bin: '424242',
  last4: '4242',
  expMonth: 12,
  expYear: 2030,
  luhnValid: true,
} as const;

describe('WebhookProjection', () => {
  let dir: string;
  let journal: MemoryJournal;
  let readModel: OrderReadModel;
  let orderProjection: OrderProjection;
  let orderProjectionRun: Promise<void> | undefined;
  const stores: SqliteWebhookStore[] = [];
  const projections: WebhookProjection[] = [];
  const ids: Record<string, string> = {};

  async function appendMerchant(events: MerchantEvent[]): Promise<void> {
    const persistenceId = `merchant-${merchantId}`;
    const fromSeqNr = (await journal.highestSeqNr(persistenceId)) + 1;
    await journal.append({
      persistenceId,
      fromSeqNr,
      events: events.map((e) => merchantEvents.serialize(e)),
      timestamp: t0,
    });
  }

  async function appendPayment(orderId: string, events: PaymentEvent[]): Promise<void> {
    const persistenceId = `payment-${orderId}`;
    const fromSeqNr = (await journal.highestSeqNr(persistenceId)) + 1;
    await journal.append({
      persistenceId,
      fromSeqNr,
      events: events.map((e) => paymentEvents.serialize(e)),
      timestamp: t0,
    });
  }

  function order(key: string, at: number): MerchantEvent[] {
    const orderId = orderIdFor(merchantId, key);
    ids[key] = orderId;
    return [
      {
        type: 'OrderCreated',
        orderId,
        idempotencyKey: key,
        requestHash: `hash-${key}`,
        amount: 1_000n,
        currency: 'EUR',
        card,
        description: `order ${key}`,
        reference: undefined,
        at,
      },
      { type: 'OrderValidated', orderId, bank: 'bank-a', rulesVersion: 1, deadlineAt: at + 30_000, at },
    ];
  }

  function refundRequested(orderId: string, key: string, amount: bigint, at: number): PaymentEvent {
    const refundId = refundIdFor(merchantId, orderId, key);
    ids[key] = refundId;
    return {
      type: 'RefundRequested',
      refundId,
      orderId,
      merchantId,
      idempotencyKey: key,
      requestHash: `hash-${key}`,
      amount,
      currency: 'EUR',
      reason: 'returned',
      paymentAmount: 1_000n,
      bank: 'bank-a',
      at,
    };
  }

  async function lastOffset(): Promise<number> {
    return (await journal.readAll(0, 10_000)).at(-1)?.offset ?? 0;
  }

  function webhookProjection(store: SqliteWebhookStore, settings: Partial<WebhookProjectionSettings> = {}) {
    const projection = new WebhookProjection({
      journal,
      store,
      orders: orderQueries(readModel, journal),
      refunds: new JournalRefunds(journal),
      readModelOffset: async () => readModel.offset(),
      clock: systemClock,
      settings: {
        batchSize: 3,
        pollIntervalMs: 10,
        readModelPollIntervalMs: 5,
        readModelWaitMaxMs: 50,
        ...settings,
      },
    });
    projections.push(projection);
    return projection;
  }

  function openStore(name: string): SqliteWebhookStore {
    const store = SqliteWebhookStore.open(webhooksPath(join(dir, name)), t0);
    stores.push(store);
    return store;
  }

  async function subscribeAll(store: SqliteWebhookStore): Promise<void> {
    const endpoint: WebhookEndpoint = {
      id: 'we_all',
      merchantId,
      url: 'https://example.com/hook',
      eventTypes: ['order.executed', 'order.declined', 'order.failed', 'refund.succeeded', 'refund.failed'],
      status: 'enabled',
      disabledReason: undefined,
      secret: 'whsec_x',
      expiringSecret: undefined,
      expiringSecretUntil: undefined,
      failingSince: undefined,
      createdAt: t0,
      updatedAt: t0,
    };
    await store.createEndpoint(endpoint);
  }

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'remit-webhook-projection-'));
    for (const name of ['a', 'b', 'c']) mkdirSync(join(dir, name));
    journal = new MemoryJournal();
    readModel = OrderReadModel.open(readModelPath(dir));
    orderProjection = new OrderProjection({
      journal,
      readModel,
      clock: systemClock,
      settings: { pollIntervalMs: 10 },
    });
    orderProjectionRun = undefined;

    await appendMerchant([
      {
        type: 'MerchantConfigured',
        config: {
          bank: 'bank-a',
          currencies: [{ currency: 'EUR', perOrderLimit: 1_000_000n }],
          blockedBins: [],
          velocity: { maxOrdersPerCard: 100, windowMs: 60_000 },
        },
      },
    ]);
    await appendMerchant(order('executed', t0 + 1));
    await appendMerchant(order('declined', t0 + 2));
    await appendMerchant(order('failed', t0 + 3));
    await appendMerchant(order('in-flight', t0 + 4));
    await appendMerchant([
      { type: 'OrderExecuted', orderId: ids.executed ?? '', authorizationCode: 'A1', at: t0 + 10 },
      { type: 'OrderDeclined', orderId: ids.declined ?? '', reason: 'insufficient_funds', at: t0 + 11 },
      { type: 'OrderFailed', orderId: ids.failed ?? '', reason: 'bank_unavailable', at: t0 + 12 },
    ]);
    const executed = ids.executed ?? '';
    await appendPayment(executed, [refundRequested(executed, 'refund-ok', 300n, t0 + 20)]);
    await appendPayment(executed, [refundRequested(executed, 'refund-ko', 200n, t0 + 21)]);
    await appendPayment(executed, [
      { type: 'RefundSucceeded', refundId: ids['refund-ok'] ?? '', at: t0 + 30 },
      { type: 'RefundFailed', refundId: ids['refund-ko'] ?? '', reason: 'refund_declined', at: t0 + 31 },
    ]);
  });

  afterEach(async () => {
    for (const projection of projections.splice(0)) await projection.stop();
    await orderProjection.stop();
    await orderProjectionRun;
    for (const store of stores.splice(0)) await store.close();
    readModel.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('derives one event per outcome, once the read model has caught up, with the data the API shows', async () => {
    const store = openStore('a');
    await subscribeAll(store);
    const projection = webhookProjection(store);
    projection.start();
    // The read model has applied nothing: the batches before the first outcome are stored (they
    // hold none), the one with it waits, and is put off again and again.
    await vi.waitFor(() => expect(projection.status().readModelWaits).toBeGreaterThanOrEqual(2));
    const firstOutcome = (await journal.readAll(0, 100)).find((row) => row.type === 'OrderExecuted');
    expect(await store.offset()).toBeLessThan(firstOutcome?.offset ?? 0);
    expect(
      await store.dueDeliveries({ now: Date.now(), limit: 10, merchantIds: undefined, excludeEndpoints: [] }),
    ).toEqual([]);

    orderProjectionRun = orderProjection.start();
    await vi.waitFor(async () => expect(await store.offset()).toBe(await lastOffset()), { timeout: 10_000 });

    const deliveries = await store.listDeliveries({
      merchantId,
      endpointId: 'we_all',
      limit: 100,
      startingAfter: undefined,
    });
    const due = await store.dueDeliveries({
      now: Date.now(),
      limit: 100,
      merchantIds: [merchantId],
      excludeEndpoints: [],
    });
    expect(deliveries.data).toHaveLength(5);
    const bodies = new Map(
      due.map(({ event }) => [event.type, JSON.parse(event.body) as Record<string, unknown>]),
    );
    const orders = orderQueries(readModel, journal);
    const refunds = new JournalRefunds(journal);
    const orderData = async (key: string) => {
      const view = await orders.getOrder(merchantId, ids[key] ?? '');
      if (view === undefined) throw new Error(`the read model has no order ${key}`);
      return { subject: view.id, data: orderJson(view) };
    };
    const refundData = async (key: string) => {
      const refund = await refunds.getRefund(merchantId, ids[key] ?? '');
      if (refund === undefined) throw new Error(`no refund ${key}`);
      return { subject: refund.id, data: refundJson(refund) };
    };
    const expected: Array<[WebhookEventType, { subject: string; data: object }, number]> = [
      ['order.executed', await orderData('executed'), t0 + 10],
      ['order.declined', await orderData('declined'), t0 + 11],
      ['order.failed', await orderData('failed'), t0 + 12],
      ['refund.succeeded', await refundData('refund-ok'), t0 + 30],
      ['refund.failed', await refundData('refund-ko'), t0 + 31],
    ];
    for (const [type, { subject, data }, at] of expected) {
      expect(bodies.get(type)).toEqual({
        id: webhookEventIdFor({ merchantId, type, subjectId: subject }),
        type,
        createdAt: new Date(at).toISOString(),
        data: JSON.parse(JSON.stringify(data)),
      });
    }
    expect(bodies.get('order.executed')?.data).toMatchObject({ status: 'executed', amount: 1000 });
    expect(bodies.get('refund.failed')?.data).toMatchObject({
      status: 'failed',
      failureReason: 'refund_declined',
    });
  });

  it('stores only the events an enabled endpoint subscribes to', async () => {
    orderProjectionRun = orderProjection.start();
    await orderProjection.caughtUp();
    const store = openStore('c');
    await store.createEndpoint({
      id: 'we_refunds',
      merchantId,
      url: 'https://example.com/refunds',
      eventTypes: ['refund.failed'],
      status: 'enabled',
      disabledReason: undefined,
      secret: 'whsec_y',
      expiringSecret: undefined,
      expiringSecretUntil: undefined,
      failingSince: undefined,
      createdAt: t0,
      updatedAt: t0,
    });
    webhookProjection(store).start();
    await vi.waitFor(async () => expect(await store.offset()).toBe(await lastOffset()));
    const due = await store.dueDeliveries({
      now: Date.now(),
      limit: 10,
      merchantIds: undefined,
      excludeEndpoints: [],
    });
    expect(due.map(({ event }) => [event.type, event.subjectId])).toEqual([
      ['refund.failed', ids['refund-ko']],
    ]);
  });

  it('derives the same events again from scratch, in other batches, and stores new outcomes as they come', async () => {
    orderProjectionRun = orderProjection.start();
    await orderProjection.caughtUp();
    const first = openStore('a');
    const second = openStore('b');
    await subscribeAll(first);
    await subscribeAll(second);
    webhookProjection(first, { batchSize: 1 }).start();
    webhookProjection(second, { batchSize: 500 }).start();
    const events = async (store: SqliteWebhookStore) =>
      (
        await store.dueDeliveries({
          now: Date.now(),
          limit: 100,
          merchantIds: undefined,
          excludeEndpoints: [],
        })
      )
        .map(({ event }) => event)
        .sort((a, b) => a.id.localeCompare(b.id));
    await vi.waitFor(async () => {
      expect(await first.offset()).toBe(await lastOffset());
      expect(await second.offset()).toBe(await lastOffset());
    });
    expect(await events(first)).toEqual(await events(second));
    expect(await events(first)).toHaveLength(5);

    await appendMerchant([
      { type: 'OrderExecuted', orderId: ids['in-flight'] ?? '', authorizationCode: 'A2', at: t0 + 40 },
    ]);
    orderProjection.notify();
    await vi.waitFor(async () => expect(await events(first)).toHaveLength(6), { timeout: 10_000 });
    await vi.waitFor(async () => expect(await events(second)).toHaveLength(6), { timeout: 10_000 });
  });
});
