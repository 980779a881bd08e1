import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { webhookDeliveryIdFor } from '../../webhooks/webhook-ids.js';
import type { StoredWebhookEvent, WebhookEndpoint } from '../../webhooks/webhook-store.js';
import { SqliteWebhookStore, webhooksPath } from './sqlite-webhook-store.js';

/**
 * The SQLite webhook store against the semantics `WebhookStore` documents: endpoints per merchant,
 * events stored once with a delivery per subscribed enabled endpoint and the offset in the same
 * transaction, due deliveries filtered and ordered, attempts recorded, and everything surviving a
 * reopen of the file.
 */

const t0 = 1_700_000_000_000;

function endpoint(overrides: Partial<WebhookEndpoint> = {}): WebhookEndpoint {
  return {
    id: 'we_1',
    merchantId: 'm1',
    url: 'https://example.com/hook',
    eventTypes: ['order.executed', 'refund.succeeded'],
    status: 'enabled',
    disabledReason: undefined,
    secret: 'whsec_a',
    expiringSecret: undefined,
    expiringSecretUntil: undefined,
    failingSince: undefined,
    createdAt: t0,
    updatedAt: t0,
    ...overrides,
  };
}

function event(overrides: Partial<StoredWebhookEvent> = {}): StoredWebhookEvent {
  return {
    id: 'evt_1',
    merchantId: 'm1',
    type: 'order.executed',
    subjectId: 'ord_1',
    body: '{"id":"evt_1"}',
    createdAt: t0,
    ...overrides,
  };
}

describe('SqliteWebhookStore', () => {
  let dir: string;
  let store: SqliteWebhookStore;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'remit-webhooks-'));
    store = SqliteWebhookStore.open(webhooksPath(dir), t0);
  });

  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps endpoints per merchant, oldest first, and applies changes (undefined clears)', async () => {
    await store.createEndpoint(endpoint());
    await store.createEndpoint(endpoint({ id: 'we_2', createdAt: t0 + 1, updatedAt: t0 + 1 }));
    await store.createEndpoint(endpoint({ id: 'we_3', merchantId: 'm2' }));
    expect((await store.listEndpoints('m1')).map((e) => e.id)).toEqual(['we_1', 'we_2']);
    expect(await store.getEndpoint('m2', 'we_1')).toBeUndefined();

    const failing = await store.updateEndpoint('m1', 'we_1', { failingSince: t0 + 5, updatedAt: t0 + 5 });
    expect(failing).toMatchObject({ failingSince: t0 + 5, updatedAt: t0 + 5, status: 'enabled' });
    const healthy = await store.updateEndpoint('m1', 'we_1', { failingSince: undefined, updatedAt: t0 + 6 });
    expect(healthy?.failingSince).toBeUndefined();
    expect(healthy?.secret).toBe('whsec_a');
    expect(await store.updateEndpoint('m2', 'we_1', { status: 'disabled', updatedAt: t0 })).toBeUndefined();

    const rotated = await store.updateEndpoint('m1', 'we_1', {
      secret: 'whsec_b',
      expiringSecret: 'whsec_a',
      expiringSecretUntil: t0 + 100,
      updatedAt: t0 + 7,
    });
    expect(rotated).toMatchObject({
      secret: 'whsec_b',
      expiringSecret: 'whsec_a',
      expiringSecretUntil: t0 + 100,
    });
    await expect(store.createEndpoint(endpoint())).rejects.toThrow();
  });

  it('stores an event once, with a delivery per enabled subscribed endpoint, and the offset', async () => {
    await store.createEndpoint(endpoint());
    await store.createEndpoint(endpoint({ id: 'we_2', eventTypes: ['order.failed'], createdAt: t0 + 1 }));
    await store.createEndpoint(endpoint({ id: 'we_3', status: 'disabled', createdAt: t0 + 2 }));
    await store.createEndpoint(endpoint({ id: 'we_4', merchantId: 'm2' }));
    expect(await store.offset()).toBe(0);

    await store.appendEvents([event()], 7, t0 + 10);
    expect(await store.offset()).toBe(7);
    const due = await store.dueDeliveries({
      now: t0 + 10,
      limit: 10,
      merchantIds: undefined,
      excludeEndpoints: [],
    });
    expect(due.map((d) => d.endpoint.id)).toEqual(['we_1']);
    expect(due[0]?.event).toEqual(event());
    expect(due[0]?.delivery).toMatchObject({
      status: 'pending',
      attempts: 0,
      nextAttemptAt: t0 + 10,
      eventId: 'evt_1',
      eventType: 'order.executed',
    });
    expect(due[0]?.delivery.id).toBe(webhookDeliveryIdFor('evt_1', 'we_1'));

    // Derived again (after a crash): left as it is, no second delivery.
    await store.appendEvents([event({ body: 'other' })], 9, t0 + 20);
    expect(await store.offset()).toBe(9);
    const again = await store.dueDeliveries({
      now: t0 + 20,
      limit: 10,
      merchantIds: undefined,
      excludeEndpoints: [],
    });
    expect(again).toHaveLength(1);
    expect(again[0]?.event.body).toBe('{"id":"evt_1"}');
    // A lower offset (a projection that lost its lease) stores its events but keeps the offset.
    await store.appendEvents([event({ id: 'evt_late', subjectId: 'ord_late' })], 8, t0 + 30);
    expect(await store.offset()).toBe(9);
    expect(await store.getDelivery('m1', webhookDeliveryIdFor('evt_late', 'we_1'))).toMatchObject({
      eventId: 'evt_late',
      status: 'pending',
    });
  });

  it('answers due deliveries earliest first, by merchant, skipping full and disabled endpoints', async () => {
    await store.createEndpoint(endpoint());
    await store.createEndpoint(endpoint({ id: 'we_2', createdAt: t0 + 1 }));
    await store.createEndpoint(endpoint({ id: 'we_9', merchantId: 'm2' }));
    await store.appendEvents([event({ id: 'evt_b', subjectId: 'ord_b' })], 1, t0 + 2);
    await store.appendEvents([event({ id: 'evt_a', subjectId: 'ord_a' })], 2, t0 + 1);
    await store.appendEvents([event({ id: 'evt_c', merchantId: 'm2', subjectId: 'ord_c' })], 3, t0);
    const query = { now: t0 + 2, limit: 10, merchantIds: undefined, excludeEndpoints: [] };

    const all = await store.dueDeliveries(query);
    // Earliest due first; deliveries due at the same time in any order.
    expect(all.map((d) => d.event.id)).toEqual(['evt_c', 'evt_a', 'evt_a', 'evt_b', 'evt_b']);
    expect(new Set(all.slice(1, 3).map((d) => d.endpoint.id))).toEqual(new Set(['we_1', 'we_2']));
    expect(await store.dueDeliveries({ ...query, now: t0 })).toHaveLength(1);
    expect(await store.dueDeliveries({ ...query, limit: 2 })).toHaveLength(2);
    expect((await store.dueDeliveries({ ...query, merchantIds: ['m2'] })).map((d) => d.event.id)).toEqual([
      'evt_c',
    ]);
    expect(await store.dueDeliveries({ ...query, merchantIds: [] })).toEqual([]);
    const notFull = await store.dueDeliveries({ ...query, excludeEndpoints: ['we_1', 'we_9'] });
    expect(notFull.map((d) => d.endpoint.id)).toEqual(['we_2', 'we_2']);
    await store.updateEndpoint('m1', 'we_2', {
      status: 'disabled',
      disabledReason: 'failing',
      updatedAt: t0,
    });
    expect((await store.dueDeliveries(query)).map((d) => d.endpoint.id)).toEqual(['we_9', 'we_1', 'we_1']);
  });

  it('records attempts and the delivery state; a success stands', async () => {
    await store.createEndpoint(endpoint());
    await store.appendEvents([event()], 1, t0);
    const [due] = await store.dueDeliveries({ now: t0, limit: 1, merchantIds: ['m1'], excludeEndpoints: [] });
    const id = due?.delivery.id ?? '';
    const attempt = { deliveryId: id, startedAt: t0 + 1, durationMs: 5 };
    await store.recordAttempt(
      { ...attempt, number: 1, httpStatus: 500, outcome: 'http_error', detail: 'HTTP 500' },
      { status: 'pending', nextAttemptAt: t0 + 1000, firstAttemptAt: t0 + 1 },
    );
    expect(await store.getDelivery('m1', id)).toMatchObject({
      status: 'pending',
      attempts: 1,
      firstAttemptAt: t0 + 1,
      nextAttemptAt: t0 + 1000,
      updatedAt: t0 + 6,
    });
    expect(
      await store.dueDeliveries({ now: t0 + 999, limit: 1, merchantIds: undefined, excludeEndpoints: [] }),
    ).toEqual([]);

    await store.recordAttempt(
      { ...attempt, number: 2, startedAt: t0 + 1000, httpStatus: 200, outcome: 'ok', detail: undefined },
      { status: 'succeeded', nextAttemptAt: undefined, firstAttemptAt: t0 + 1 },
    );
    // Another node's late failure is recorded, but does not undo the success.
    await store.recordAttempt(
      {
        ...attempt,
        number: 2,
        startedAt: t0 + 1001,
        httpStatus: undefined,
        outcome: 'timeout',
        detail: 'timed out',
      },
      { status: 'pending', nextAttemptAt: t0 + 5000, firstAttemptAt: t0 + 1 },
    );
    expect(await store.getDelivery('m1', id)).toMatchObject({
      status: 'succeeded',
      attempts: 3,
      firstAttemptAt: t0 + 1,
      nextAttemptAt: undefined,
    });
    expect((await store.listAttempts(id)).map((a) => [a.number, a.outcome, a.httpStatus])).toEqual([
      [1, 'http_error', 500],
      [2, 'ok', 200],
      [2, 'timeout', undefined],
    ]);
    expect(await store.getDelivery('m2', id)).toBeUndefined();

    const resent = await store.resendDelivery('m1', id, t0 + 9000);
    expect(resent).toMatchObject({ status: 'pending', nextAttemptAt: t0 + 9000, attempts: 3 });
    expect(await store.resendDelivery('m2', id, t0)).toBeUndefined();
    expect(
      await store.dueDeliveries({ now: t0 + 9000, limit: 5, merchantIds: undefined, excludeEndpoints: [] }),
    ).toHaveLength(1);
  });

  it('pages an endpoint’s deliveries newest first', async () => {
    await store.createEndpoint(endpoint());
    for (let i = 0; i < 5; i++) {
      await store.appendEvents([event({ id: `evt_${i}`, subjectId: `ord_${i}` })], i + 1, t0 + i);
    }
    const first = await store.listDeliveries({
      merchantId: 'm1',
      endpointId: 'we_1',
      limit: 3,
      startingAfter: undefined,
    });
    expect(first.hasMore).toBe(true);
    expect(first.data.map((d) => d.eventId)).toEqual(['evt_4', 'evt_3', 'evt_2']);
    const rest = await store.listDeliveries({
      merchantId: 'm1',
      endpointId: 'we_1',
      limit: 3,
      startingAfter: first.data.at(-1)?.id,
    });
    expect(rest).toMatchObject({ hasMore: false });
    expect(rest.data.map((d) => d.eventId)).toEqual(['evt_1', 'evt_0']);
    expect(
      (
        await store.listDeliveries({
          merchantId: 'm2',
          endpointId: 'we_1',
          limit: 3,
          startingAfter: undefined,
        })
      ).data,
    ).toEqual([]);
  });

  it('deletes an endpoint with its pending deliveries, keeping finished ones', async () => {
    await store.createEndpoint(endpoint());
    await store.appendEvents([event(), event({ id: 'evt_2', subjectId: 'ord_2' })], 2, t0);
    const due = await store.dueDeliveries({
      now: t0,
      limit: 5,
      merchantIds: undefined,
      excludeEndpoints: [],
    });
    const [done, pending] = due.map((d) => d.delivery.id);
    await store.recordAttempt(
      {
        deliveryId: done ?? '',
        number: 1,
        startedAt: t0,
        durationMs: 1,
        httpStatus: 204,
        outcome: 'ok',
        detail: undefined,
      },
      { status: 'succeeded', nextAttemptAt: undefined, firstAttemptAt: t0 },
    );
    expect(await store.deleteEndpoint('m2', 'we_1')).toBe(false);
    expect(await store.deleteEndpoint('m1', 'we_1')).toBe(true);
    expect(await store.deleteEndpoint('m1', 'we_1')).toBe(false);
    expect(await store.getEndpoint('m1', 'we_1')).toBeUndefined();
    expect(await store.getDelivery('m1', pending ?? '')).toBeUndefined();
    expect(await store.getDelivery('m1', done ?? '')).toMatchObject({ status: 'succeeded' });
    expect(
      await store.dueDeliveries({ now: t0, limit: 5, merchantIds: undefined, excludeEndpoints: [] }),
    ).toEqual([]);
  });

  it('keeps everything across a reopen of the file', async () => {
    await store.createEndpoint(endpoint());
    await store.appendEvents([event()], 4, t0);
    await store.close();
    store = SqliteWebhookStore.open(webhooksPath(dir), t0 + 1);
    expect(await store.offset()).toBe(4);
    expect(await store.listEndpoints('m1')).toEqual([endpoint()]);
    expect(
      await store.dueDeliveries({ now: t0, limit: 5, merchantIds: undefined, excludeEndpoints: [] }),
    ).toHaveLength(1);
  });

  it('upgrades a file of schema version 1 and lists its deliveries newest first', async () => {
    await store.createEndpoint(endpoint());
    for (let i = 0; i < 3; i++) {
      await store.appendEvents([event({ id: `evt_${i}`, subjectId: `ord_${i}` })], i + 1, t0 + i);
    }
    await store.close();
    // Back to version 1: its index on (endpoint, delivery id), its row in schema_migrations.
    const database = new BetterSqlite3(webhooksPath(dir));
    database.exec(
      'DROP INDEX webhook_deliveries_by_endpoint; ' +
        'CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, delivery_id); ' +
        'DELETE FROM schema_migrations WHERE version > 1;',
    );
    database.close();

    store = SqliteWebhookStore.open(webhooksPath(dir), t0 + 10);
    const page = await store.listDeliveries({
      merchantId: 'm1',
      endpointId: 'we_1',
      limit: 5,
      startingAfter: undefined,
    });
    expect(page.data.map((d) => d.eventId)).toEqual(['evt_2', 'evt_1', 'evt_0']);
    const check = new BetterSqlite3(webhooksPath(dir), { readonly: true });
    try {
      expect(check.prepare('SELECT max(version) FROM schema_migrations').pluck().get()).toBe(2);
      const indexed = check
        .prepare(
          "SELECT name FROM pragma_index_xinfo('webhook_deliveries_by_endpoint') WHERE key = 1 ORDER BY seqno",
        )
        .pluck()
        .all();
      expect(indexed).toEqual(['endpoint_id', 'created_at', 'delivery_id']);
    } finally {
      check.close();
    }
  });
});
