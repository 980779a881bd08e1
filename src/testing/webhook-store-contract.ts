import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { WebhookEventType } from '../webhooks/webhook-event.js';
import type {
  StoredWebhookEvent,
  WebhookAttempt,
  WebhookEndpoint,
  WebhookStore,
} from '../webhooks/webhook-store.js';

/** What a backend hands the contract suite: a fresh, empty store. */
export interface WebhookStoreContractFixture {
  readonly store: WebhookStore;
  /** A second store over the same place (a restarted process, another node); optional. */
  reopen?(): Promise<WebhookStore>;
  /** Closes what the fixture opened (tolerating what a test already closed) and removes its files or schema. */
  teardown(): Promise<void>;
}

const t0 = Date.UTC(2026, 0, 1);
const second = 1_000;

function endpoint(
  id: string,
  overrides: Partial<WebhookEndpoint> & { readonly merchantId?: string } = {},
): WebhookEndpoint {
  return {
    id,
    merchantId: 'merchant-a',
    url: `https://hooks.example.com/${id}`,
    eventTypes: ['order.executed', 'order.declined', 'order.failed', 'refund.succeeded', 'refund.failed'],
    status: 'enabled',
    disabledReason: undefined,
    secret: `whsec_${id}`,
    expiringSecret: undefined,
    expiringSecretUntil: undefined,
    failingSince: undefined,
    createdAt: t0,
    updatedAt: t0,
    ...overrides,
  };
}

function event(
  id: string,
  overrides: { merchantId?: string; type?: WebhookEventType; createdAt?: number } = {},
): StoredWebhookEvent {
  const type = overrides.type ?? 'order.executed';
  return {
    id,
    merchantId: overrides.merchantId ?? 'merchant-a',
    type,
    subjectId: `ord_${id}`,
    body: JSON.stringify({ id, type, createdAt: new Date(t0).toISOString(), data: { id: `ord_${id}` } }),
    createdAt: overrides.createdAt ?? t0,
  };
}

function attempt(
  deliveryId: string,
  number: number,
  overrides: Partial<WebhookAttempt> = {},
): WebhookAttempt {
  return {
    deliveryId,
    number,
    startedAt: t0 + number * second,
    durationMs: 12,
    httpStatus: 500,
    outcome: 'http_error',
    detail: 'answered 500',
    ...overrides,
  };
}

const everyMerchant = { merchantIds: undefined, excludeEndpoints: [] } as const;

/**
 * The behaviour every webhook store must show, whatever it is built on. A backend joins with one
 * line: `describeWebhookStoreContract('postgres', async () => ({ ... }))`.
 *
 * Beyond what `WebhookStore`'s comments say, the suite pins down what callers rely on:
 * - `updateEndpoint` sets each field named in the change, to `undefined` too (that clears it), and
 *   leaves the fields not named as they are.
 * - The deliveries of a disabled endpoint are not due: they wait, pending, until it is enabled.
 * - `appendEvents` never moves the offset back (a projection that lost its lease may still write).
 * - `recordAttempt` counts every attempt recorded, but never turns a succeeded delivery back into
 *   one to try again; an attempt of a delivery that no longer exists (its endpoint was deleted
 *   meanwhile) is dropped.
 * - `listDeliveries` orders by creation time, then id, both descending; an unknown cursor gives an
 *   empty page.
 * - `resendDelivery` keeps the attempts made and the time of the first: one attempt now, and
 *   retries only within the delivery's original window.
 */
export function describeWebhookStoreContract(
  name: string,
  setup: () => Promise<WebhookStoreContractFixture>,
): void {
  describe(`webhook store contract: ${name}`, () => {
    let fixture: WebhookStoreContractFixture;
    let store: WebhookStore;

    beforeEach(async () => {
      fixture = await setup();
      store = fixture.store;
    });

    afterEach(async () => {
      await fixture.teardown();
    });

    /** The one delivery of `eventId`, as due at `now`. */
    async function dueOf(eventId: string, now: number) {
      const due = await store.dueDeliveries({ now, limit: 1000, ...everyMerchant });
      return due.filter((entry) => entry.event.id === eventId);
    }

    async function onlyDeliveryOf(eventId: string, now = t0) {
      const [entry, ...more] = await dueOf(eventId, now);
      expect(entry, `a due delivery of ${eventId}`).toBeDefined();
      expect(more).toEqual([]);
      if (entry === undefined) throw new Error('unreachable');
      return entry.delivery;
    }

    describe('endpoints', () => {
      it('gives back an endpoint with every field, and only to its merchant', async () => {
        const plain = endpoint('we_1', { eventTypes: ['refund.failed'] });
        const rotated = endpoint('we_2', {
          status: 'disabled',
          disabledReason: 'failing',
          expiringSecret: 'whsec_old',
          expiringSecretUntil: t0 + 86_400_000,
          failingSince: t0 - 5 * second,
          createdAt: t0 + second,
          updatedAt: t0 + 2 * second,
        });
        await store.createEndpoint(plain);
        await store.createEndpoint(rotated);

        expect(await store.getEndpoint('merchant-a', 'we_1')).toEqual(plain);
        expect(await store.getEndpoint('merchant-a', 'we_2')).toEqual(rotated);
        expect(await store.getEndpoint('merchant-b', 'we_1')).toBeUndefined();
        expect(await store.getEndpoint('merchant-a', 'we_unknown')).toBeUndefined();
      });

      it("lists a merchant's endpoints oldest first, and none of another merchant's", async () => {
        await store.createEndpoint(endpoint('we_c', { createdAt: t0 + 2 * second }));
        await store.createEndpoint(endpoint('we_a', { createdAt: t0 }));
        await store.createEndpoint(endpoint('we_b', { createdAt: t0 + second }));
        await store.createEndpoint(endpoint('we_x', { merchantId: 'merchant-b' }));

        expect((await store.listEndpoints('merchant-a')).map((found) => found.id)).toEqual([
          'we_a',
          'we_b',
          'we_c',
        ]);
        expect((await store.listEndpoints('merchant-b')).map((found) => found.id)).toEqual(['we_x']);
        expect(await store.listEndpoints('merchant-c')).toEqual([]);
      });

      it('changes the fields named, clears those named as undefined, and leaves the rest', async () => {
        const original = endpoint('we_1', { expiringSecret: 'whsec_old', expiringSecretUntil: t0 + second });
        await store.createEndpoint(original);

        const disabled = await store.updateEndpoint('merchant-a', 'we_1', {
          status: 'disabled',
          disabledReason: 'disabled_by_merchant',
          updatedAt: t0 + 10 * second,
        });
        expect(disabled).toEqual({
          ...original,
          status: 'disabled',
          disabledReason: 'disabled_by_merchant',
          updatedAt: t0 + 10 * second,
        });

        const enabled = await store.updateEndpoint('merchant-a', 'we_1', {
          status: 'enabled',
          disabledReason: undefined,
          expiringSecret: undefined,
          expiringSecretUntil: undefined,
          failingSince: t0 + 11 * second,
          updatedAt: t0 + 12 * second,
        });
        const expected = {
          ...original,
          expiringSecret: undefined,
          expiringSecretUntil: undefined,
          failingSince: t0 + 11 * second,
          updatedAt: t0 + 12 * second,
        };
        expect(enabled).toEqual(expected);
        expect(await store.getEndpoint('merchant-a', 'we_1')).toEqual(expected);
      });

      it("changes nothing of an unknown endpoint, or of another merchant's", async () => {
        await store.createEndpoint(endpoint('we_1'));
        expect(
          await store.updateEndpoint('merchant-b', 'we_1', { status: 'disabled', updatedAt: t0 + second }),
        ).toBeUndefined();
        expect(
          await store.updateEndpoint('merchant-a', 'we_2', { status: 'disabled', updatedAt: t0 + second }),
        ).toBeUndefined();
        expect(await store.getEndpoint('merchant-a', 'we_1')).toEqual(endpoint('we_1'));
      });

      it('rotates the secret: the new one signs, the old one until its overlap ends', async () => {
        await store.createEndpoint(endpoint('we_1'));
        const rotated = await store.updateEndpoint('merchant-a', 'we_1', {
          secret: 'whsec_new',
          expiringSecret: 'whsec_we_1',
          expiringSecretUntil: t0 + 86_400_000,
          updatedAt: t0 + second,
        });
        expect(rotated).toMatchObject({
          secret: 'whsec_new',
          expiringSecret: 'whsec_we_1',
          expiringSecretUntil: t0 + 86_400_000,
        });
      });

      it('deletes an endpoint once, and only for its merchant', async () => {
        await store.createEndpoint(endpoint('we_1'));
        expect(await store.deleteEndpoint('merchant-b', 'we_1')).toBe(false);
        expect(await store.getEndpoint('merchant-a', 'we_1')).toBeDefined();
        expect(await store.deleteEndpoint('merchant-a', 'we_1')).toBe(true);
        expect(await store.deleteEndpoint('merchant-a', 'we_1')).toBe(false);
        expect(await store.getEndpoint('merchant-a', 'we_1')).toBeUndefined();
        expect(await store.listEndpoints('merchant-a')).toEqual([]);
      });

      it('deletes the pending deliveries of a deleted endpoint, and keeps those already done', async () => {
        await store.createEndpoint(endpoint('we_1'));
        await store.createEndpoint(endpoint('we_2'));
        await store.appendEvents([event('evt_done'), event('evt_waiting')], 2, t0);
        const due = await store.dueDeliveries({ now: t0, limit: 10, ...everyMerchant });
        const done = due.find((entry) => entry.event.id === 'evt_done' && entry.endpoint.id === 'we_1');
        const waiting = due.find((entry) => entry.event.id === 'evt_waiting' && entry.endpoint.id === 'we_1');
        if (done === undefined || waiting === undefined) throw new Error('expected the deliveries to we_1');
        await store.recordAttempt(attempt(done.delivery.id, 1, { httpStatus: 200, outcome: 'ok' }), {
          status: 'succeeded',
          nextAttemptAt: undefined,
          firstAttemptAt: t0 + second,
        });

        expect(await store.deleteEndpoint('merchant-a', 'we_1')).toBe(true);

        expect(await store.getDelivery('merchant-a', waiting.delivery.id)).toBeUndefined();
        expect(await store.getDelivery('merchant-a', done.delivery.id)).toMatchObject({
          status: 'succeeded',
        });
        const left = await store.dueDeliveries({ now: t0 + 10 * second, limit: 10, ...everyMerchant });
        expect(left.map((entry) => entry.endpoint.id)).toEqual(['we_2', 'we_2']);
      });
    });

    describe('deriving events', () => {
      it('starts at offset 0 and stores the offset with the events', async () => {
        expect(await store.offset()).toBe(0);
        await store.appendEvents([event('evt_1')], 7, t0);
        expect(await store.offset()).toBe(7);
        await store.appendEvents([], 9, t0);
        expect(await store.offset()).toBe(9);
      });

      it('never moves the offset back', async () => {
        await store.appendEvents([], 9, t0);
        await store.appendEvents([event('evt_late')], 4, t0);
        expect(await store.offset()).toBe(9);
      });

      it('makes one pending delivery, due now, per enabled endpoint of the merchant subscribed to the type', async () => {
        await store.createEndpoint(endpoint('we_all'));
        await store.createEndpoint(endpoint('we_orders', { eventTypes: ['order.executed', 'order.failed'] }));
        await store.createEndpoint(endpoint('we_refunds', { eventTypes: ['refund.succeeded'] }));
        await store.createEndpoint(
          endpoint('we_off', { status: 'disabled', disabledReason: 'disabled_by_merchant' }),
        );
        await store.createEndpoint(endpoint('we_other', { merchantId: 'merchant-b' }));

        const now = t0 + 5 * second;
        await store.appendEvents([event('evt_1', { createdAt: t0 })], 1, now);

        const due = await dueOf('evt_1', now);
        expect(due.map((entry) => entry.endpoint.id).sort()).toEqual(['we_all', 'we_orders']);
        for (const entry of due) {
          expect(entry.event).toEqual(event('evt_1', { createdAt: t0 }));
          expect(entry.endpoint).toEqual(await store.getEndpoint('merchant-a', entry.endpoint.id));
          expect(entry.delivery).toEqual({
            id: entry.delivery.id,
            endpointId: entry.endpoint.id,
            merchantId: 'merchant-a',
            eventId: 'evt_1',
            eventType: 'order.executed',
            status: 'pending',
            attempts: 0,
            firstAttemptAt: undefined,
            nextAttemptAt: now,
            createdAt: now,
            updatedAt: now,
          });
          expect(entry.delivery.id).toMatch(/^wd_/);
          expect(await store.getDelivery('merchant-a', entry.delivery.id)).toEqual(entry.delivery);
        }
        expect(new Set(due.map((entry) => entry.delivery.id)).size).toBe(2);
        expect(await store.dueDeliveries({ now: now - 1, limit: 10, ...everyMerchant })).toEqual([]);
      });

      it('stores an event once: deriving it again changes nothing and delivers nothing more', async () => {
        await store.createEndpoint(endpoint('we_1'));
        await store.appendEvents([event('evt_1'), event('evt_1')], 3, t0);
        await store.createEndpoint(endpoint('we_2', { createdAt: t0 + second }));
        const again = { ...event('evt_1'), body: '{"another":"body"}', createdAt: t0 + 9 * second };
        await store.appendEvents([again, event('evt_2')], 5, t0 + 10 * second);

        const first = await dueOf('evt_1', t0 + 20 * second);
        expect(first.map((entry) => entry.endpoint.id)).toEqual(['we_1']);
        expect(first[0]?.event).toEqual(event('evt_1'));
        const second_ = await dueOf('evt_2', t0 + 20 * second);
        expect(second_.map((entry) => entry.endpoint.id).sort()).toEqual(['we_1', 'we_2']);
        expect(await store.offset()).toBe(5);
      });

      it('stores events derived at the same moment by several writers once, each delivery once', async () => {
        await store.createEndpoint(endpoint('we_1'));
        await store.createEndpoint(endpoint('we_2', { eventTypes: ['order.executed'] }));
        const batch = Array.from({ length: 6 }, (_, index) => event(`evt_${index}`));
        await Promise.all(
          Array.from({ length: 4 }, (_, writer) =>
            store.appendEvents(writer % 2 === 0 ? batch : [...batch].reverse(), 10 + writer, t0),
          ),
        );
        const due = await store.dueDeliveries({ now: t0, limit: 100, ...everyMerchant });
        expect(due).toHaveLength(12);
        expect(new Set(due.map((entry) => `${entry.event.id} ${entry.endpoint.id}`)).size).toBe(12);
        expect(await store.offset()).toBe(13);
      });

      it('stores an event no endpoint wants (an endpoint added later does not get it)', async () => {
        await store.appendEvents([event('evt_1')], 1, t0);
        await store.createEndpoint(endpoint('we_1'));
        await store.appendEvents([event('evt_1')], 2, t0 + second);
        expect(await dueOf('evt_1', t0 + 10 * second)).toEqual([]);
      });

      it('keeps to the merchant of each event, in one batch of many merchants', async () => {
        await store.createEndpoint(endpoint('we_a'));
        await store.createEndpoint(endpoint('we_b', { merchantId: 'merchant-b' }));
        await store.appendEvents(
          [event('evt_a'), event('evt_b', { merchantId: 'merchant-b', type: 'refund.failed' })],
          2,
          t0,
        );
        expect((await dueOf('evt_a', t0)).map((entry) => entry.endpoint.id)).toEqual(['we_a']);
        const [b] = await dueOf('evt_b', t0);
        expect(b?.endpoint.id).toBe('we_b');
        expect(b?.delivery).toMatchObject({ merchantId: 'merchant-b', eventType: 'refund.failed' });
      });
    });

    describe('due deliveries', () => {
      it('answers the earliest due first, at most the limit', async () => {
        await store.createEndpoint(endpoint('we_1'));
        await store.appendEvents([event('evt_late')], 1, t0 + 3 * second);
        await store.appendEvents([event('evt_early')], 2, t0 + second);
        await store.appendEvents([event('evt_middle')], 3, t0 + 2 * second);
        await store.appendEvents([event('evt_future')], 4, t0 + 60 * second);

        const all = await store.dueDeliveries({ now: t0 + 10 * second, limit: 10, ...everyMerchant });
        expect(all.map((entry) => entry.event.id)).toEqual(['evt_early', 'evt_middle', 'evt_late']);
        const two = await store.dueDeliveries({ now: t0 + 10 * second, limit: 2, ...everyMerchant });
        expect(two.map((entry) => entry.event.id)).toEqual(['evt_early', 'evt_middle']);
      });

      it('answers only the merchants asked for, and skips the endpoints excluded', async () => {
        await store.createEndpoint(endpoint('we_a1'));
        await store.createEndpoint(endpoint('we_a2'));
        await store.createEndpoint(endpoint('we_b', { merchantId: 'merchant-b' }));
        await store.createEndpoint(endpoint('we_c', { merchantId: 'merchant-c' }));
        await store.appendEvents(
          [
            event('evt_a'),
            event('evt_b', { merchantId: 'merchant-b' }),
            event('evt_c', { merchantId: 'merchant-c' }),
          ],
          3,
          t0,
        );
        const endpointsOf = async (merchantIds: readonly string[] | undefined, excludeEndpoints: string[]) =>
          (await store.dueDeliveries({ now: t0, limit: 10, merchantIds, excludeEndpoints }))
            .map((entry) => entry.endpoint.id)
            .sort();

        expect(await endpointsOf(undefined, [])).toEqual(['we_a1', 'we_a2', 'we_b', 'we_c']);
        expect(await endpointsOf(['merchant-a', 'merchant-c'], [])).toEqual(['we_a1', 'we_a2', 'we_c']);
        expect(await endpointsOf(['merchant-a'], ['we_a2'])).toEqual(['we_a1']);
        expect(await endpointsOf(undefined, ['we_a1', 'we_b'])).toEqual(['we_a2', 'we_c']);
        expect(await endpointsOf([], [])).toEqual([]);
        expect(await endpointsOf(['merchant-z'], [])).toEqual([]);
      });

      it('holds back the deliveries of a disabled endpoint until it is enabled again', async () => {
        await store.createEndpoint(endpoint('we_1'));
        await store.appendEvents([event('evt_1')], 1, t0);
        await store.updateEndpoint('merchant-a', 'we_1', {
          status: 'disabled',
          disabledReason: 'disabled_by_merchant',
          updatedAt: t0,
        });
        expect(await dueOf('evt_1', t0 + second)).toEqual([]);
        await store.updateEndpoint('merchant-a', 'we_1', {
          status: 'enabled',
          disabledReason: undefined,
          updatedAt: t0 + second,
        });
        expect(await dueOf('evt_1', t0 + second)).toHaveLength(1);
      });

      it('hands each delivery its endpoint as it is now (a rotated secret signs at once)', async () => {
        await store.createEndpoint(endpoint('we_1'));
        await store.appendEvents([event('evt_1')], 1, t0);
        await store.updateEndpoint('merchant-a', 'we_1', {
          secret: 'whsec_new',
          expiringSecret: 'whsec_we_1',
          expiringSecretUntil: t0 + 60 * second,
          updatedAt: t0 + second,
        });
        const [entry] = await dueOf('evt_1', t0 + second);
        expect(entry?.endpoint).toMatchObject({ secret: 'whsec_new', expiringSecret: 'whsec_we_1' });
      });
    });

    describe('attempts', () => {
      it('moves a delivery through failure, retry and success, keeping every attempt', async () => {
        await store.createEndpoint(endpoint('we_1'));
        await store.appendEvents([event('evt_1')], 1, t0);
        const delivery = await onlyDeliveryOf('evt_1');

        const first = attempt(delivery.id, 1, {
          startedAt: t0 + second,
          durationMs: 10_000,
          httpStatus: undefined,
          outcome: 'timeout',
          detail: 'no answer within 10000 ms',
        });
        await store.recordAttempt(first, {
          status: 'pending',
          nextAttemptAt: t0 + 3 * second,
          firstAttemptAt: t0 + second,
        });
        expect(await store.getDelivery('merchant-a', delivery.id)).toMatchObject({
          status: 'pending',
          attempts: 1,
          firstAttemptAt: t0 + second,
          nextAttemptAt: t0 + 3 * second,
        });
        expect(await dueOf('evt_1', t0 + 3 * second - 1)).toEqual([]);
        expect(await dueOf('evt_1', t0 + 3 * second)).toHaveLength(1);

        const secondAttempt = attempt(delivery.id, 2, {
          startedAt: t0 + 3 * second,
          httpStatus: 204,
          outcome: 'ok',
          detail: undefined,
        });
        await store.recordAttempt(secondAttempt, {
          status: 'succeeded',
          nextAttemptAt: undefined,
          firstAttemptAt: t0 + second,
        });
        const succeeded = await store.getDelivery('merchant-a', delivery.id);
        expect(succeeded).toMatchObject({
          status: 'succeeded',
          attempts: 2,
          firstAttemptAt: t0 + second,
          nextAttemptAt: undefined,
          createdAt: t0,
        });
        expect(succeeded?.updatedAt).toBeGreaterThanOrEqual(t0);
        expect(await dueOf('evt_1', t0 + 3_600 * second)).toEqual([]);
        expect(await store.listAttempts(delivery.id)).toEqual([first, secondAttempt]);
        expect(await store.listAttempts('wd_unknown')).toEqual([]);
      });

      it('fails a delivery whose window ran out: it is never due again', async () => {
        await store.createEndpoint(endpoint('we_1'));
        await store.appendEvents([event('evt_1')], 1, t0);
        const delivery = await onlyDeliveryOf('evt_1');
        await store.recordAttempt(attempt(delivery.id, 1), {
          status: 'failed',
          nextAttemptAt: undefined,
          firstAttemptAt: t0,
        });
        expect(await store.getDelivery('merchant-a', delivery.id)).toMatchObject({
          status: 'failed',
          attempts: 1,
          nextAttemptAt: undefined,
        });
        expect(await dueOf('evt_1', t0 + 86_400_000)).toEqual([]);
      });

      it('records a late attempt of a delivery another node already delivered, without undoing the success', async () => {
        await store.createEndpoint(endpoint('we_1'));
        await store.appendEvents([event('evt_1')], 1, t0);
        const delivery = await onlyDeliveryOf('evt_1');
        await store.recordAttempt(attempt(delivery.id, 1, { httpStatus: 200, outcome: 'ok' }), {
          status: 'succeeded',
          nextAttemptAt: undefined,
          firstAttemptAt: t0 + second,
        });
        await store.recordAttempt(
          attempt(delivery.id, 1, {
            startedAt: t0 + 2 * second,
            outcome: 'connection_failed',
            httpStatus: undefined,
          }),
          {
            status: 'pending',
            nextAttemptAt: t0 + 5 * second,
            firstAttemptAt: t0 + 2 * second,
          },
        );
        expect(await store.getDelivery('merchant-a', delivery.id)).toMatchObject({
          status: 'succeeded',
          attempts: 2,
          firstAttemptAt: t0 + second,
          nextAttemptAt: undefined,
        });
        expect((await store.listAttempts(delivery.id)).map((entry) => entry.outcome)).toEqual([
          'ok',
          'connection_failed',
        ]);
      });

      it('drops an attempt of a delivery that no longer exists', async () => {
        await store.createEndpoint(endpoint('we_1'));
        await store.appendEvents([event('evt_1')], 1, t0);
        const delivery = await onlyDeliveryOf('evt_1');
        await store.deleteEndpoint('merchant-a', 'we_1');
        await store.recordAttempt(attempt(delivery.id, 1), {
          status: 'pending',
          nextAttemptAt: t0 + second,
          firstAttemptAt: t0,
        });
        expect(await store.getDelivery('merchant-a', delivery.id)).toBeUndefined();
        expect(await store.listAttempts(delivery.id)).toEqual([]);
      });
    });

    describe('listing and resending', () => {
      async function deliveriesOver(count: number) {
        await store.createEndpoint(endpoint('we_1'));
        await store.createEndpoint(endpoint('we_2'));
        for (let index = 0; index < count; index += 1) {
          await store.appendEvents([event(`evt_${index}`)], index + 1, t0 + index * second);
        }
      }

      it("pages an endpoint's deliveries newest first, and only that endpoint's", async () => {
        await deliveriesOver(5);
        const page = (limit: number, startingAfter: string | undefined) =>
          store.listDeliveries({ merchantId: 'merchant-a', endpointId: 'we_1', limit, startingAfter });

        const first = await page(2, undefined);
        expect(first.data.map((delivery) => delivery.eventId)).toEqual(['evt_4', 'evt_3']);
        expect(first.hasMore).toBe(true);
        expect(first.data.every((delivery) => delivery.endpointId === 'we_1')).toBe(true);
        const secondPage = await page(2, first.data[1]?.id);
        expect(secondPage.data.map((delivery) => delivery.eventId)).toEqual(['evt_2', 'evt_1']);
        expect(secondPage.hasMore).toBe(true);
        const last = await page(2, secondPage.data[1]?.id);
        expect(last.data.map((delivery) => delivery.eventId)).toEqual(['evt_0']);
        expect(last.hasMore).toBe(false);
        expect((await page(5, undefined)).hasMore).toBe(false);
        expect(await page(5, 'wd_unknown')).toEqual({ data: [], hasMore: false });
        expect(
          await store.listDeliveries({
            merchantId: 'merchant-b',
            endpointId: 'we_1',
            limit: 5,
            startingAfter: undefined,
          }),
        ).toEqual({ data: [], hasMore: false });
      });

      it('orders deliveries made at the same moment by id, descending, and pages through them all', async () => {
        await store.createEndpoint(endpoint('we_1'));
        await store.appendEvents(
          Array.from({ length: 7 }, (_, index) => event(`evt_${index}`)),
          1,
          t0,
        );
        const seen: string[] = [];
        let cursor: string | undefined;
        for (;;) {
          const page = await store.listDeliveries({
            merchantId: 'merchant-a',
            endpointId: 'we_1',
            limit: 3,
            startingAfter: cursor,
          });
          seen.push(...page.data.map((delivery) => delivery.id));
          cursor = page.data.at(-1)?.id;
          if (!page.hasMore) break;
        }
        expect(seen).toHaveLength(7);
        expect(seen).toEqual([...seen].sort().reverse());
      });

      it('finds a delivery only for its merchant', async () => {
        await store.createEndpoint(endpoint('we_1'));
        await store.appendEvents([event('evt_1')], 1, t0);
        const { id } = await onlyDeliveryOf('evt_1');
        expect(await store.getDelivery('merchant-a', id)).toBeDefined();
        expect(await store.getDelivery('merchant-b', id)).toBeUndefined();
        expect(await store.getDelivery('merchant-a', 'wd_unknown')).toBeUndefined();
      });

      it('resends a delivery: pending again, due now, with its attempts and first attempt kept', async () => {
        await store.createEndpoint(endpoint('we_1'));
        await store.appendEvents([event('evt_1')], 1, t0);
        const delivery = await onlyDeliveryOf('evt_1');
        await store.recordAttempt(attempt(delivery.id, 1), {
          status: 'failed',
          nextAttemptAt: undefined,
          firstAttemptAt: t0 + second,
        });

        const now = t0 + 86_400_000;
        const resent = await store.resendDelivery('merchant-a', delivery.id, now);
        expect(resent).toEqual({
          ...delivery,
          status: 'pending',
          attempts: 1,
          firstAttemptAt: t0 + second,
          nextAttemptAt: now,
          updatedAt: now,
        });
        expect(await store.getDelivery('merchant-a', delivery.id)).toEqual(resent);
        expect((await dueOf('evt_1', now)).map((entry) => entry.delivery.id)).toEqual([delivery.id]);
        expect(await store.resendDelivery('merchant-b', delivery.id, now)).toBeUndefined();
        expect(await store.resendDelivery('merchant-a', 'wd_unknown', now)).toBeUndefined();
      });
    });

    it('gives every delivery once, to the endpoints subscribed when its event was first stored (property)', async () => {
      const types: readonly WebhookEventType[] = ['order.executed', 'order.declined', 'refund.failed'];
      let run = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.subarray([...types], { minLength: 1 }), { minLength: 0, maxLength: 4 }),
          fc.array(
            fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.constantFrom(...types)), { maxLength: 4 }),
            {
              minLength: 1,
              maxLength: 4,
            },
          ),
          async (subscriptions, batches) => {
            // Each run keeps to a merchant of its own in the one store.
            run += 1;
            const merchantId = `merchant-p${run}`;
            for (const [index, eventTypes] of subscriptions.entries()) {
              await store.createEndpoint(endpoint(`we_p${run}_${index}`, { merchantId, eventTypes }));
            }
            const typeOf = new Map<string, WebhookEventType>();
            for (const [batchIndex, batch] of batches.entries()) {
              const events = batch.map(([subject, type]) => {
                const id = `evt_p${run}_${subject}`;
                if (!typeOf.has(id)) typeOf.set(id, type);
                return event(id, { merchantId, type });
              });
              await store.appendEvents(events, batchIndex + 1, t0);
            }
            const due = await store.dueDeliveries({
              now: t0,
              limit: 1000,
              merchantIds: [merchantId],
              excludeEndpoints: [],
            });
            const expected = [...typeOf].flatMap(([eventId, type]) =>
              subscriptions.flatMap((eventTypes, index) =>
                eventTypes.includes(type) ? [`${eventId} we_p${run}_${index}`] : [],
              ),
            );
            expect(due.map((entry) => `${entry.event.id} ${entry.endpoint.id}`).sort()).toEqual(
              expected.sort(),
            );
            expect(new Set(due.map((entry) => entry.delivery.id)).size).toBe(due.length);
            for (const entry of due) expect(entry.event.type).toBe(typeOf.get(entry.event.id));
          },
        ),
        { numRuns: 25, seed: 21 },
      );
    });

    it('finds everything again after a restart', async (context) => {
      const reopen = fixture.reopen;
      if (reopen === undefined) {
        context.skip();
        return;
      }
      await store.createEndpoint(endpoint('we_1'));
      await store.appendEvents([event('evt_1')], 4, t0);
      const delivery = await onlyDeliveryOf('evt_1');
      await store.recordAttempt(attempt(delivery.id, 1), {
        status: 'pending',
        nextAttemptAt: t0 + second,
        firstAttemptAt: t0,
      });

      const reopened = await reopen();
      expect(await reopened.offset()).toBe(4);
      expect(await reopened.getEndpoint('merchant-a', 'we_1')).toEqual(endpoint('we_1'));
      expect(await reopened.getDelivery('merchant-a', delivery.id)).toMatchObject({
        attempts: 1,
        status: 'pending',
      });
      expect(await reopened.listAttempts(delivery.id)).toEqual([attempt(delivery.id, 1)]);
    });
  });
}
