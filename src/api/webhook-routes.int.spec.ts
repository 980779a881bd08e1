/**
 * The webhook routes through `buildApp` and `app.inject`, over the PostgreSQL webhook store on the
 * run's embedded server: registration and its URL and event-type checks, the per-merchant bound,
 * merchant scoping, disable/enable, secret rotation, deliveries (paging, attempts, resend) and
 * deletion; secrets appear only in the answers that make them, never in a log line.
 */
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { SimulatedBank } from '../bank/simulated-bank.js';
import type { AssembledNode } from '../node/assemble-node.js';
import { SimulatedClock } from '../runtime/clock.js';
import { SeededRandom } from '../runtime/random.js';
import { MemoryJournal } from '../store/memory/memory-journal.js';
import { openPostgresStore, type PostgresStore } from '../store/postgres/open-postgres-store.js';
import { postgresSettings } from '../store/postgres/postgres-settings.js';
import { PostgresWebhookStore } from '../store/postgres/postgres-webhook-store.js';
import { JournalQueries } from '../testing/journal-queries.js';
import { dropSchema, testSchemaName } from '../testing/postgres-test-schema.js';
import { testNode } from '../testing/test-node.js';
import type { HostLookup } from '../webhooks/url-policy.js';
import type { StoredWebhookEvent } from '../webhooks/webhook-store.js';
import { type AppDependencies, buildApp, MerchantDirectory, registeredRoutes } from './app.js';
import type { WebhookApiDependencies } from './webhook-routes.js';

const url = inject('postgresUrl');
const keyA = 'sk_test_webhooks_a';
const keyB = 'sk_test_webhooks_b';
const start = Date.UTC(2026, 0, 1);
const dayMs = 24 * 60 * 60 * 1000;

/** A DNS of a few names: one public, one that resolves to a private address. */
const lookup: HostLookup = async (hostname) => {
  const table: Record<string, string[]> = {
    'hooks.example.com': ['93.184.215.14'],
    'rebound.example.com': ['93.184.215.14', '10.0.0.7'],
  };
  const addresses = table[hostname];
  if (addresses === undefined) throw Object.assign(new Error(`no ${hostname}`), { code: 'ENOTFOUND' });
  return addresses.map((address) => ({ address, family: 4 }));
};

let postgres: PostgresStore;
let schema: string;
let store: PostgresWebhookStore;
let node: AssembledNode;
let memory: MemoryJournal;
let clock: SimulatedClock;
let base: AppDependencies;
let app: FastifyInstance;
let byteCounter = 0;

/** Distinct, reproducible "random" bytes: every secret and id differs. */
function countingBytes(size: number): Uint8Array {
  byteCounter += 1;
  const bytes = new Uint8Array(size);
  for (let index = 0; index < size; index += 1) bytes[index] = (byteCounter * 31 + index) % 256;
  return bytes;
}

/** How often the routes told the dispatcher that deliveries became due at once. */
let dueSignals = 0;

function webhooks(overrides: Partial<WebhookApiDependencies> = {}): WebhookApiDependencies {
  return {
    store,
    urlPolicy: { allowInsecure: false },
    clock,
    randomBytes: countingBytes,
    lookup,
    onDeliveriesDue: () => {
      dueSignals += 1;
    },
    ...overrides,
  };
}

beforeAll(async () => {
  schema = testSchemaName('webhook_api');
  postgres = await openPostgresStore({ settings: postgresSettings({ url, schema, poolSizeMax: 4 }) });
  store = new PostgresWebhookStore(postgres.pool, postgres.quotedSchema);
  clock = new SimulatedClock(start);
  memory = new MemoryJournal();
  node = testNode({
    clock,
    random: new SeededRandom(1),
    bank: new SimulatedBank(new SeededRandom(2)),
    memory,
  });
  base = {
    orders: node.orders,
    queries: new JournalQueries(memory),
    merchants: new MerchantDirectory([
      { merchantId: 'merchant-a', apiKeyHash: MerchantDirectory.hashKey(keyA) },
      { merchantId: 'merchant-b', apiKeyHash: MerchantDirectory.hashKey(keyB) },
    ]),
    ready: () => true,
    waitDefaultMs: 1_000,
    waitMaxMs: 1_000,
  };
  app = await buildApp({ ...base, webhooks: webhooks() });
});

afterAll(async () => {
  await app?.close();
  await node?.close();
  await memory?.close();
  await postgres?.close();
  await dropSchema(url, schema);
});

beforeEach(async () => {
  // Each test starts with no endpoints; events and deliveries of deleted endpoints do not matter.
  for (const merchantId of ['merchant-a', 'merchant-b']) {
    for (const endpoint of await store.listEndpoints(merchantId))
      await store.deleteEndpoint(merchantId, endpoint.id);
  }
});

function call(
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
  key = keyA,
  on: FastifyInstance = app,
) {
  return on.inject({
    method,
    url: path,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  });
}

async function register(
  body: unknown = { url: 'https://hooks.example.com/remit', eventTypes: ['order.executed'] },
  key = keyA,
) {
  const response = await call('POST', '/v1/webhook-endpoints', body, key);
  expect(response.statusCode, response.body).toBe(201);
  return response.json() as { id: string; secret: string; [field: string]: unknown };
}

function storedEvent(id: string, merchantId = 'merchant-a'): StoredWebhookEvent {
  return {
    id,
    merchantId,
    type: 'order.executed',
    subjectId: `ord_${id}`,
    body: `{"id":"${id}"}`,
    createdAt: start,
  };
}

describe('registering an endpoint', () => {
  it('answers 201 with the endpoint and its secret, which no other answer shows', async () => {
    const response = await call('POST', '/v1/webhook-endpoints', {
      url: 'https://hooks.example.com/remit',
      eventTypes: ['order.executed', 'refund.failed', 'order.executed'],
    });
    expect(response.statusCode).toBe(201);
    const created = response.json() as Record<string, unknown> & { id: string; secret: string };
    expect(created).toEqual({
      id: expect.stringMatching(/^we_[0-9a-f]{12}[A-Za-z0-9_-]{14}$/),
      url: 'https://hooks.example.com/remit',
      eventTypes: ['order.executed', 'refund.failed'],
      status: 'enabled',
      disabledReason: null,
      expiringSecretUntil: null,
      failingSince: null,
      secret: expect.stringMatching(/^whsec_[A-Za-z0-9_-]{43}$/),
      createdAt: new Date(clock.now()).toISOString(),
      updatedAt: new Date(clock.now()).toISOString(),
    });
    expect(response.headers.location).toBe(`/v1/webhook-endpoints/${created.id}`);
    expect((await store.getEndpoint('merchant-a', created.id))?.secret).toBe(created.secret);

    const { secret, ...withoutSecret } = created;
    const one = await call('GET', `/v1/webhook-endpoints/${created.id}`);
    expect(one.statusCode).toBe(200);
    expect(one.json()).toEqual(withoutSecret);
    const list = await call('GET', '/v1/webhook-endpoints');
    expect(list.json()).toEqual({ data: [withoutSecret] });
    expect(one.body + list.body).not.toContain(secret);
  });

  it.each([
    ['http://hooks.example.com/remit', 400, 'webhook_url_not_https'],
    ['ftp://hooks.example.com/remit', 400, 'webhook_url_invalid'],
    ['not a url', 400, 'webhook_url_invalid'],
    ['https://user:pass@hooks.example.com/', 400, 'webhook_url_invalid'],
    ['https://10.0.0.5/admin', 422, 'webhook_url_private_address'],
    ['https://[::1]/', 422, 'webhook_url_private_address'],
    ['https://rebound.example.com/', 422, 'webhook_url_private_address'],
    ['https://nowhere.example.com/', 422, 'webhook_url_unresolvable'],
  ])('refuses %s: %i %s', async (endpointUrl, status, code) => {
    const response = await call('POST', '/v1/webhook-endpoints', {
      url: endpointUrl,
      eventTypes: ['order.failed'],
    });
    expect(response.statusCode).toBe(status);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(response.json()).toMatchObject({ code, param: 'url' });
    expect(await store.listEndpoints('merchant-a')).toEqual([]);
  });

  it('takes http and private addresses when insecure URLs are allowed (development)', async () => {
    const insecure = await buildApp({ ...base, webhooks: webhooks({ urlPolicy: { allowInsecure: true } }) });
    try {
      const response = await call(
        'POST',
        '/v1/webhook-endpoints',
        { url: 'http://127.0.0.1:4242/hook', eventTypes: ['order.failed'] },
        keyA,
        insecure,
      );
      expect(response.statusCode, response.body).toBe(201);
      expect(response.json()).toMatchObject({ url: 'http://127.0.0.1:4242/hook' });
    } finally {
      await insecure.close();
    }
  });

  it('refuses an unknown event type, no event types, and unknown fields', async () => {
    const unknown = await call('POST', '/v1/webhook-endpoints', {
      url: 'https://hooks.example.com/',
      eventTypes: ['order.executed', 'order.exploded'],
    });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json()).toMatchObject({ code: 'webhook_event_type_unknown', param: 'eventTypes.1' });
    const none = await call('POST', '/v1/webhook-endpoints', {
      url: 'https://hooks.example.com/',
      eventTypes: [],
    });
    expect(none.statusCode).toBe(400);
    expect(none.json()).toMatchObject({ code: 'invalid_field' });
    const extra = await call('POST', '/v1/webhook-endpoints', {
      url: 'https://hooks.example.com/',
      eventTypes: ['order.failed'],
      secret: 'mine',
    });
    expect(extra.json()).toMatchObject({ code: 'unknown_field', param: 'secret' });
  });

  it('keeps to 16 endpoints per merchant, also when many registrations arrive at once', async () => {
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        call('POST', '/v1/webhook-endpoints', {
          url: `https://hooks.example.com/${index}`,
          eventTypes: ['order.failed'],
        }),
      ),
    );
    expect(answers.filter((answer) => answer.statusCode === 201)).toHaveLength(16);
    const refused = answers.filter((answer) => answer.statusCode !== 201);
    expect(refused).toHaveLength(4);
    for (const answer of refused) {
      expect(answer.statusCode).toBe(409);
      expect(answer.json()).toMatchObject({ code: 'too_many_webhook_endpoints' });
    }
    expect(await store.listEndpoints('merchant-a')).toHaveLength(16);
    // Another merchant's bound is its own.
    await register(undefined, keyB);
  });

  it('needs an API key', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/webhook-endpoints' });
    expect(response.statusCode).toBe(401);
    expect(response.json()).toMatchObject({ code: 'unauthorized' });
  });
});

describe('managing an endpoint', () => {
  it("shows, changes and deletes only the merchant's own endpoints", async () => {
    const endpoint = await register();
    for (const [method, path] of [
      ['GET', `/v1/webhook-endpoints/${endpoint.id}`],
      ['POST', `/v1/webhook-endpoints/${endpoint.id}/disable`],
      ['POST', `/v1/webhook-endpoints/${endpoint.id}/enable`],
      ['POST', `/v1/webhook-endpoints/${endpoint.id}/rotate-secret`],
      ['GET', `/v1/webhook-endpoints/${endpoint.id}/deliveries`],
      ['DELETE', `/v1/webhook-endpoints/${endpoint.id}`],
    ] as const) {
      const response = await call(method, path, undefined, keyB);
      expect(response.statusCode, `${method} ${path}`).toBe(404);
      expect(response.json()).toMatchObject({ code: 'webhook_endpoint_not_found', param: 'id' });
    }
    expect((await call('GET', '/v1/webhook-endpoints', undefined, keyB)).json()).toEqual({ data: [] });
    expect(await store.getEndpoint('merchant-a', endpoint.id)).toMatchObject({
      status: 'enabled',
      secret: endpoint.secret,
    });
  });

  it('disables and enables an endpoint; enabling clears a failing state', async () => {
    const endpoint = await register();
    clock.advance(1_000);
    const disabled = await call('POST', `/v1/webhook-endpoints/${endpoint.id}/disable`);
    expect(disabled.statusCode).toBe(200);
    expect(disabled.json()).toMatchObject({
      status: 'disabled',
      disabledReason: 'disabled_by_merchant',
      updatedAt: new Date(clock.now()).toISOString(),
    });
    await store.updateEndpoint('merchant-a', endpoint.id, {
      disabledReason: 'failing',
      failingSince: start,
      updatedAt: clock.now(),
    });
    const enabled = await call('POST', `/v1/webhook-endpoints/${endpoint.id}/enable`);
    expect(enabled.json()).toMatchObject({ status: 'enabled', disabledReason: null, failingSince: null });
  });

  it('deletes an endpoint once', async () => {
    const endpoint = await register();
    const deleted = await call('DELETE', `/v1/webhook-endpoints/${endpoint.id}`);
    expect(deleted.statusCode).toBe(200);
    expect(deleted.json()).toEqual({ id: endpoint.id, deleted: true });
    const again = await call('DELETE', `/v1/webhook-endpoints/${endpoint.id}`);
    expect(again.statusCode).toBe(404);
    expect(again.json()).toMatchObject({ code: 'webhook_endpoint_not_found' });
    expect(await store.getEndpoint('merchant-a', endpoint.id)).toBeUndefined();
  });
});

describe('rotating the secret', () => {
  it('answers a new secret; the old one signs for 24 hours by default', async () => {
    const endpoint = await register();
    clock.advance(5_000);
    const response = await call('POST', `/v1/webhook-endpoints/${endpoint.id}/rotate-secret`);
    expect(response.statusCode, response.body).toBe(200);
    const rotated = response.json() as { secret: string; expiringSecretUntil: string };
    expect(rotated.secret).toMatch(/^whsec_/);
    expect(rotated.secret).not.toBe(endpoint.secret);
    expect(rotated.expiringSecretUntil).toBe(new Date(clock.now() + dayMs).toISOString());
    expect(await store.getEndpoint('merchant-a', endpoint.id)).toMatchObject({
      secret: rotated.secret,
      expiringSecret: endpoint.secret,
      expiringSecretUntil: clock.now() + dayMs,
    });
    const shown = await call('GET', `/v1/webhook-endpoints/${endpoint.id}`);
    expect(shown.body).not.toContain(rotated.secret);
    expect(shown.body).not.toContain(endpoint.secret);
    expect(shown.json()).toMatchObject({ expiringSecretUntil: rotated.expiringSecretUntil });
    clock.advance(dayMs);
    expect((await call('GET', `/v1/webhook-endpoints/${endpoint.id}`)).json()).toMatchObject({
      expiringSecretUntil: null,
    });
  });

  it('takes an overlap of 0 to 7 days', async () => {
    const endpoint = await register();
    const week = await call('POST', `/v1/webhook-endpoints/${endpoint.id}/rotate-secret`, {
      overlapSeconds: 604_800,
    });
    expect(week.json()).toMatchObject({
      expiringSecretUntil: new Date(clock.now() + 7 * dayMs).toISOString(),
    });
    const now = await call('POST', `/v1/webhook-endpoints/${endpoint.id}/rotate-secret`, {
      overlapSeconds: 0,
    });
    expect(now.json()).toMatchObject({ expiringSecretUntil: null, secret: expect.stringMatching(/^whsec_/) });
    expect(await store.getEndpoint('merchant-a', endpoint.id)).toMatchObject({
      expiringSecret: undefined,
      expiringSecretUntil: undefined,
      secret: (now.json() as { secret: string }).secret,
    });
    for (const overlapSeconds of [604_801, -1, 1.5, '60']) {
      const refused = await call('POST', `/v1/webhook-endpoints/${endpoint.id}/rotate-secret`, {
        overlapSeconds,
      });
      expect(refused.statusCode, String(overlapSeconds)).toBe(400);
      expect(refused.json()).toMatchObject({ code: 'invalid_field', param: 'overlapSeconds' });
    }
  });
});

describe('deliveries', () => {
  it("pages an endpoint's deliveries newest first, and refuses a cursor of another endpoint", async () => {
    const endpoint = await register();
    const other = await register({ url: 'https://hooks.example.com/other', eventTypes: ['order.executed'] });
    const events = Array.from({ length: 5 }, (_, index) => `evt_page_${endpoint.id}_${index}`);
    for (const [index, id] of events.entries()) {
      await store.appendEvents([storedEvent(id)], (await store.offset()) + 1, start + index * 1_000);
    }

    const first = await call('GET', `/v1/webhook-endpoints/${endpoint.id}/deliveries?limit=3`);
    expect(first.statusCode).toBe(200);
    const page = first.json() as { data: Array<{ id: string; eventId: string }>; hasMore: boolean };
    expect(page.data.map((delivery) => delivery.eventId)).toEqual([events[4], events[3], events[2]]);
    expect(page.hasMore).toBe(true);
    expect(page.data[0]).toEqual({
      id: expect.stringMatching(/^wd_/),
      endpointId: endpoint.id,
      eventId: events[4],
      eventType: 'order.executed',
      status: 'pending',
      attemptCount: 0,
      firstAttemptAt: null,
      nextAttemptAt: new Date(start + 4_000).toISOString(),
      createdAt: new Date(start + 4_000).toISOString(),
      updatedAt: new Date(start + 4_000).toISOString(),
    });
    const next = await call(
      'GET',
      `/v1/webhook-endpoints/${endpoint.id}/deliveries?limit=3&startingAfter=${page.data[2]?.id}`,
    );
    expect(
      (next.json() as { data: Array<{ eventId: string }> }).data.map((delivery) => delivery.eventId),
    ).toEqual([events[1], events[0]]);
    expect(next.json()).toMatchObject({ hasMore: false });

    const foreign = (await call('GET', `/v1/webhook-endpoints/${other.id}/deliveries`)).json() as {
      data: Array<{ id: string }>;
    };
    const wrongCursor = await call(
      'GET',
      `/v1/webhook-endpoints/${endpoint.id}/deliveries?startingAfter=${foreign.data[0]?.id}`,
    );
    expect(wrongCursor.statusCode).toBe(400);
    expect(wrongCursor.json()).toMatchObject({ code: 'invalid_cursor', param: 'startingAfter' });
    for (const limit of ['0', '101', 'x']) {
      const bad = await call('GET', `/v1/webhook-endpoints/${endpoint.id}/deliveries?limit=${limit}`);
      expect(bad.statusCode, limit).toBe(400);
    }
  });

  it('shows a delivery with its attempts, and resends it', async () => {
    const endpoint = await register();
    const eventId = `evt_attempts_${endpoint.id}`;
    await store.appendEvents([storedEvent(eventId)], (await store.offset()) + 1, clock.now());
    const [due] = (
      await store.dueDeliveries({
        now: clock.now(),
        limit: 10,
        merchantIds: ['merchant-a'],
        excludeEndpoints: [],
      })
    ).filter((entry) => entry.event.id === eventId);
    if (due === undefined) throw new Error('expected a due delivery');
    const deliveryId = due.delivery.id;
    const startedAt = clock.now() + 100;
    await store.recordAttempt(
      {
        deliveryId,
        number: 1,
        startedAt,
        durationMs: 10_000,
        httpStatus: undefined,
        outcome: 'timeout',
        detail: 'no answer within 10000 ms',
      },
      { status: 'failed', nextAttemptAt: undefined, firstAttemptAt: startedAt },
    );

    const shown = await call('GET', `/v1/webhook-deliveries/${deliveryId}`);
    expect(shown.statusCode).toBe(200);
    expect(shown.json()).toMatchObject({
      id: deliveryId,
      endpointId: endpoint.id,
      status: 'failed',
      attemptCount: 1,
      firstAttemptAt: new Date(startedAt).toISOString(),
      nextAttemptAt: null,
      attempts: [
        {
          number: 1,
          startedAt: new Date(startedAt).toISOString(),
          durationMs: 10_000,
          httpStatus: null,
          outcome: 'timeout',
          detail: 'no answer within 10000 ms',
        },
      ],
    });
    expect((await call('GET', `/v1/webhook-deliveries/${deliveryId}`, undefined, keyB)).statusCode).toBe(404);
    const signalsBefore = dueSignals;
    expect(
      (await call('POST', `/v1/webhook-deliveries/${deliveryId}/resend`, undefined, keyB)).statusCode,
    ).toBe(404);
    expect(dueSignals).toBe(signalsBefore);

    clock.advance(60_000);
    const resent = await call('POST', `/v1/webhook-deliveries/${deliveryId}/resend`);
    expect(resent.statusCode).toBe(200);
    // The dispatcher is told at once, so the resend goes out without waiting for its next poll.
    expect(dueSignals).toBe(signalsBefore + 1);
    expect(resent.json()).toMatchObject({
      id: deliveryId,
      status: 'pending',
      attemptCount: 1,
      nextAttemptAt: new Date(clock.now()).toISOString(),
    });
    expect(await store.getDelivery('merchant-a', deliveryId)).toMatchObject({
      status: 'pending',
      nextAttemptAt: clock.now(),
    });
  });

  it('answers webhook_delivery_not_found for an unknown delivery, and refuses to resend one whose endpoint is gone', async () => {
    for (const [method, path] of [
      ['GET', '/v1/webhook-deliveries/wd_unknown'],
      ['POST', '/v1/webhook-deliveries/wd_unknown/resend'],
    ] as const) {
      const response = await call(method, path);
      expect(response.statusCode).toBe(404);
      expect(response.json()).toMatchObject({ code: 'webhook_delivery_not_found' });
    }
    const endpoint = await register();
    const eventId = `evt_gone_${endpoint.id}`;
    await store.appendEvents([storedEvent(eventId)], (await store.offset()) + 1, clock.now());
    const listed = (await call('GET', `/v1/webhook-endpoints/${endpoint.id}/deliveries`)).json() as {
      data: Array<{ id: string }>;
    };
    const deliveryId = listed.data[0]?.id ?? 'missing';
    await store.recordAttempt(
      {
        deliveryId,
        number: 1,
        startedAt: clock.now(),
        durationMs: 5,
        httpStatus: 200,
        outcome: 'ok',
        detail: undefined,
      },
      { status: 'succeeded', nextAttemptAt: undefined, firstAttemptAt: clock.now() },
    );
    expect((await call('DELETE', `/v1/webhook-endpoints/${endpoint.id}`)).statusCode).toBe(200);
    expect((await call('GET', `/v1/webhook-deliveries/${deliveryId}`)).json()).toMatchObject({
      status: 'succeeded',
    });
    const resend = await call('POST', `/v1/webhook-deliveries/${deliveryId}/resend`);
    expect(resend.statusCode).toBe(404);
    expect(resend.json()).toMatchObject({ code: 'webhook_endpoint_not_found' });
  });
});

describe('under arbitrary input', () => {
  it('answers every request with a 2xx, or a 4xx problem+json with a code — never a 5xx', async () => {
    const endpoint = await register();
    const urls = fc.oneof(
      fc.constantFrom(
        'https://hooks.example.com/a',
        'https://rebound.example.com/',
        'http://127.0.0.1/',
        'https://[fe80::1]/',
        'https://0x7f.1/',
        `https://hooks.example.com/${'x'.repeat(3000)}`,
      ),
      fc.webUrl(),
      fc.string(),
      fc.anything(),
    );
    const eventTypes = fc.oneof(
      fc.array(fc.constantFrom('order.executed', 'refund.failed', 'order.unknown', '')),
      fc.anything(),
    );
    const requests = fc.oneof(
      fc
        .record({ url: urls, eventTypes }, { requiredKeys: [] })
        .map((body) => ['POST', '/v1/webhook-endpoints', body] as const),
      fc
        .oneof(fc.record({ overlapSeconds: fc.oneof(fc.integer(), fc.double(), fc.string()) }), fc.anything())
        .map((body) => ['POST', `/v1/webhook-endpoints/${endpoint.id}/rotate-secret`, body] as const),
      fc
        .tuple(fc.constantFrom('limit', 'startingAfter', 'other'), fc.string({ maxLength: 80 }))
        .map(
          ([name, value]) =>
            [
              'GET',
              `/v1/webhook-endpoints/${endpoint.id}/deliveries?${name}=${encodeURIComponent(value)}`,
              undefined,
            ] as const,
        ),
      fc
        .tuple(
          fc.constantFrom('webhook-endpoints', 'webhook-deliveries'),
          fc.string({ maxLength: 80 }),
          fc.constantFrom('', '/resend', '/enable', '/deliveries'),
        )
        .map(
          ([collection, id, action]) =>
            ['GET', `/v1/${collection}/${encodeURIComponent(id)}${action}`, undefined] as const,
        ),
    );
    await fc.assert(
      fc.asyncProperty(requests, async ([method, path, body]) => {
        const response = await app.inject({
          method,
          url: path,
          headers: { authorization: `Bearer ${keyA}`, 'content-type': 'application/json' },
          ...(body === undefined ? {} : { payload: JSON.stringify(body) ?? 'null' }),
        });
        expect(response.statusCode, response.body).toBeLessThan(500);
        if (response.statusCode >= 400) {
          expect(response.headers['content-type']).toContain('application/problem+json');
          expect(response.json()).toHaveProperty('code');
        }
      }),
      { numRuns: 300, seed: 21 },
    );
  });
});

describe('documentation and logs', () => {
  it('documents every webhook route in /openapi.json', async () => {
    const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json() as {
      paths: Record<string, Record<string, { summary?: string; tags?: string[] }>>;
    };
    const webhookRoutes = registeredRoutes(app).filter((route) => route.url.includes('webhook'));
    expect(webhookRoutes.map((route) => `${route.method} ${route.url}`).sort()).toEqual(
      [
        'DELETE /v1/webhook-endpoints/:id',
        'GET /v1/webhook-deliveries/:id',
        'GET /v1/webhook-endpoints',
        'GET /v1/webhook-endpoints/:id',
        'GET /v1/webhook-endpoints/:id/deliveries',
        'POST /v1/webhook-deliveries/:id/resend',
        'POST /v1/webhook-endpoints',
        'POST /v1/webhook-endpoints/:id/disable',
        'POST /v1/webhook-endpoints/:id/enable',
        'POST /v1/webhook-endpoints/:id/rotate-secret',
      ].sort(),
    );
    for (const route of webhookRoutes) {
      const operation =
        document.paths[route.url.replace(/:([A-Za-z]+)/g, '{$1}')]?.[route.method.toLowerCase()];
      expect(operation?.summary, `${route.method} ${route.url}`).toMatch(/\w/);
      expect(operation?.tags).toEqual(['webhooks']);
    }
  });

  it('has no webhook routes without a webhook store', async () => {
    const plain = await buildApp(base);
    try {
      expect(registeredRoutes(plain).filter((route) => route.url.includes('webhook'))).toEqual([]);
      expect((await call('GET', '/v1/webhook-endpoints', undefined, keyA, plain)).statusCode).toBe(404);
    } finally {
      await plain.close();
    }
  });

  it('never writes a secret to the log', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'trace' }, { write: (line: string) => lines.push(line) });
    const logged = await buildApp({ ...base, logger, accessLogLevel: 'trace', webhooks: webhooks() });
    try {
      const created = await call(
        'POST',
        '/v1/webhook-endpoints',
        { url: 'https://hooks.example.com/logged', eventTypes: ['order.failed'] },
        keyA,
        logged,
      );
      const { id, secret } = created.json() as { id: string; secret: string };
      const rotated = await call('POST', `/v1/webhook-endpoints/${id}/rotate-secret`, {}, keyA, logged);
      const newSecret = (rotated.json() as { secret: string }).secret;
      expect(lines.length).toBeGreaterThan(0);
      expect(lines.join('')).not.toContain(secret);
      expect(lines.join('')).not.toContain(newSecret);
    } finally {
      await logged.close();
    }
  });
});
