/**
 * The refund routes at the HTTP edge, driven through `app.inject`: parsing of params, headers and
 * bodies, the status and headers of every answer, and each problem code the node's
 * `RefundOperations` can answer passing through unchanged.
 *
 * The node's side is `RefundRules` below, a test double: an in-memory table of orders and refunds
 * that applies the rules `refund-operations.ts` lists (not found, not executed, currency, sum of
 * refunds counting pending ones, key reuse, refunds per order, busy). It stands in for the node
 * so that each code can be provoked on purpose; the real node and its Payment entities are checked
 * by their own specs, and end to end by the gateway's. Orders come from a double of the read
 * model's queries, which also shows the order's `amountRefunded` through `GET /v1/orders/:id`.
 */
import { hash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ApiError } from '../node/api-error.js';
import { OrderService, type OrderView } from '../node/order-service.js';
import type { RefundOperations, RefundRequest, RequestedRefund } from '../node/refund-operations.js';
import { CardVault, MemoryVaultStorage } from '../payments/card-vault.js';
import { type Refund, refundIdFor, refundReasonLengthMax } from '../payments/refund.js';
import { SimulatedClock } from '../runtime/clock.js';
import type { EntityAsker } from '../runtime/entity-address.js';
import { type AppDependencies, buildApp, MerchantDirectory, registeredRoutes } from './app.js';

const start = Date.UTC(2026, 11, 7);
const apiKey = 'sk_test_refunds';
const otherApiKey = 'sk_test_refunds_other';

/** Refunds per order in this double: small, so `too_many_refunds` is reached in a test. */
const refundsPerOrderMax = 4;

/** The test double of the node's refunds (see the file comment). */
class RefundRules implements RefundOperations {
  readonly orders = new Map<string, OrderView>();
  readonly refunds = new Map<string, Refund>();
  /** The node's answer while its Payment does not answer in time, or its merchant is not configured. */
  unavailable: 'gateway_busy' | 'merchant_unavailable' | undefined;

  async requestRefund(
    merchantId: string,
    orderId: string,
    request: RefundRequest,
    idempotencyKey: string,
  ): Promise<RequestedRefund> {
    if (this.unavailable !== undefined) {
      throw new ApiError(503, this.unavailable, 'Retry shortly.', undefined, { 'retry-after': '1' });
    }
    const order = this.orders.get(orderId);
    if (order === undefined || order.merchantId !== merchantId) {
      throw new ApiError(404, 'order_not_found', `No order ${orderId}.`, 'id');
    }
    if (order.status !== 'executed') {
      throw new ApiError(409, 'order_not_refundable', `Order ${orderId} is ${order.status}, not executed.`);
    }
    if (request.currency !== undefined && request.currency !== order.currency) {
      throw new ApiError(422, 'refund_currency_mismatch', `The order is in ${order.currency}.`, 'currency');
    }
    const id = refundIdFor(merchantId, orderId, idempotencyKey);
    const requestHash = hash(
      'sha256',
      JSON.stringify([String(request.amount), request.currency ?? null, request.reason ?? null]),
      'hex',
    );
    const known = this.refunds.get(id);
    if (known !== undefined) {
      if (known.requestHash !== requestHash) {
        throw new ApiError(
          422,
          'idempotency_key_reused',
          'This key was used with another body.',
          'Idempotency-Key',
        );
      }
      return { refund: known, replayed: true };
    }
    const ofOrder = [...this.refunds.values()].filter((refund) => refund.orderId === orderId);
    if (ofOrder.length >= refundsPerOrderMax) {
      throw new ApiError(409, 'too_many_refunds', `Order ${orderId} has ${refundsPerOrderMax} refunds.`);
    }
    const committed = ofOrder
      .filter((refund) => refund.status !== 'failed')
      .reduce((sum, refund) => sum + refund.amount, 0n);
    if (committed + request.amount > order.amount) {
      throw new ApiError(
        422,
        'refund_exceeds_payment',
        `At most ${order.amount - committed} of the order can still be refunded.`,
        'amount',
      );
    }
    const refund: Refund = {
      id,
      orderId,
      merchantId,
      idempotencyKey,
      requestHash,
      status: 'pending',
      amount: request.amount,
      currency: order.currency as Refund['currency'],
      reason: request.reason,
      failureReason: undefined,
      createdAt: start + this.refunds.size,
      updatedAt: start + this.refunds.size,
    };
    this.refunds.set(id, refund);
    return { refund, replayed: false };
  }

  async getRefund(merchantId: string, refundId: string): Promise<Refund | undefined> {
    const refund = this.refunds.get(refundId);
    return refund?.merchantId === merchantId ? refund : undefined;
  }

  async listRefunds(merchantId: string, orderId: string): Promise<readonly Refund[] | undefined> {
    const order = this.orders.get(orderId);
    if (order === undefined || order.merchantId !== merchantId) return undefined;
    return [...this.refunds.values()].filter((refund) => refund.orderId === orderId);
  }
}

function order(id: string, fields: Partial<OrderView> = {}): OrderView {
  return {
    id,
    merchantId: 'merchant-a',
    status: 'executed',
    amount: 1_000n,
    currency: 'EUR',
    card: { brand: 'visa', last4: '4242' },
    bank: 'bank-a',
    reference: undefined,
    description: undefined,
    reason: undefined,
    requestHash: `hash-${id}`,
    amountRefunded: 0n,
    createdAt: start,
    updatedAt: start,
    ...fields,
  };
}

let app: FastifyInstance;
let dependencies: AppDependencies;
let rules: RefundRules;

beforeAll(async () => {
  rules = new RefundRules();
  const clock = new SimulatedClock(start);
  const queries = {
    getOrder: async (merchantId: string, orderId: string) => {
      const found = rules.orders.get(orderId);
      return found?.merchantId === merchantId ? found : undefined;
    },
    listOrders: async () => ({ data: [], hasMore: false }),
    orderEvents: async () => undefined,
  };
  // Orders are not created in this spec: the Merchant entities are never asked.
  const entities: EntityAsker = {
    ask: () => Promise.reject(new Error('no entities in the refund routes spec')),
  };
  const vault = new CardVault(randomBytes(32), new MemoryVaultStorage(), () => clock.now());
  dependencies = {
    orders: new OrderService(entities, vault, queries, clock),
    queries,
    refunds: rules,
    merchants: new MerchantDirectory([
      { merchantId: 'merchant-a', apiKeyHash: MerchantDirectory.hashKey(apiKey) },
      { merchantId: 'merchant-b', apiKeyHash: MerchantDirectory.hashKey(otherApiKey) },
    ]),
    ready: () => true,
    waitDefaultMs: 0,
    waitMaxMs: 0,
  };
  app = await buildApp(dependencies);
});

afterAll(async () => {
  await app.close();
});

beforeEach(() => {
  rules.orders.clear();
  rules.refunds.clear();
  rules.unavailable = undefined;
  rules.orders.set('ord_executed', order('ord_executed'));
  rules.orders.set('ord_declined', order('ord_declined', { status: 'declined', reason: 'card_declined' }));
  rules.orders.set('ord_other', order('ord_other', { merchantId: 'merchant-b' }));
});

function refund(
  orderId: string,
  payload: unknown,
  /** Null sends no Idempotency-Key header. */
  key: string | null = 'key-1',
  extraHeaders: Record<string, string> = {},
) {
  return app.inject({
    method: 'POST',
    url: `/v1/orders/${orderId}/refunds`,
    headers: {
      authorization: `Bearer ${apiKey}`,
      'content-type': 'application/json',
      ...(key === null ? {} : { 'idempotency-key': key }),
      ...extraHeaders,
    },
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
  });
}

function get(url: string, key = apiKey) {
  return app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key}` } });
}

/** The answer is a problem+json with this status and code. */
function expectProblem(
  response: Awaited<ReturnType<typeof get>>,
  status: number,
  code: string,
  param?: string,
): void {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toContain('application/problem+json');
  expect(response.json()).toMatchObject({ status, code, ...(param === undefined ? {} : { param }) });
}

describe('POST /v1/orders/:id/refunds', () => {
  it('answers 201 with the refund and its Location; the same key and body again is a 200 replay', async () => {
    const created = await refund('ord_executed', { amount: 300, currency: 'EUR', reason: 'one mug broken' });
    expect(created.statusCode).toBe(201);
    const id = refundIdFor('merchant-a', 'ord_executed', 'key-1');
    expect(created.json()).toEqual({
      id,
      orderId: 'ord_executed',
      status: 'pending',
      amount: 300,
      currency: 'EUR',
      reason: 'one mug broken',
      failureReason: null,
      createdAt: new Date(start).toISOString(),
      updatedAt: new Date(start).toISOString(),
    });
    expect(created.headers.location).toBe(`/v1/refunds/${id}`);
    expect(created.headers['idempotent-replayed']).toBeUndefined();
    // The request hash and idempotency key are the node's: the response whitelist keeps them in.
    expect(created.body).not.toContain('key-1');

    const replayed = await refund('ord_executed', { amount: 300, currency: 'EUR', reason: 'one mug broken' });
    expect(replayed.statusCode).toBe(200);
    expect(replayed.headers['idempotent-replayed']).toBe('true');
    expect(replayed.json()).toEqual(created.json());
  });

  it('takes an amount alone: currency and reason are optional, and the reason may be as long as allowed', async () => {
    const created = await refund('ord_executed', { amount: 1, reason: 'x'.repeat(refundReasonLengthMax) });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({
      amount: 1,
      currency: 'EUR',
      reason: 'x'.repeat(refundReasonLengthMax),
    });
    expect((await refund('ord_executed', { amount: 999 }, 'key-2')).json()).toMatchObject({ reason: null });
  });

  it('passes on the node’s refusals with their codes', async () => {
    expectProblem(await refund('ord_missing', { amount: 100 }), 404, 'order_not_found', 'id');
    // Another merchant's order does not exist for this one.
    expectProblem(await refund('ord_other', { amount: 100 }), 404, 'order_not_found', 'id');
    expectProblem(await refund('ord_declined', { amount: 100 }), 409, 'order_not_refundable');
    expectProblem(
      await refund('ord_executed', { amount: 100, currency: 'USD' }),
      422,
      'refund_currency_mismatch',
      'currency',
    );

    expect((await refund('ord_executed', { amount: 700 }, 'key-a')).statusCode).toBe(201);
    const exceeding = await refund('ord_executed', { amount: 301 }, 'key-b');
    expectProblem(exceeding, 422, 'refund_exceeds_payment', 'amount');
    expect(exceeding.json().detail).toContain('300');
    expectProblem(await refund('ord_executed', { amount: 200 }, 'key-a'), 422, 'idempotency_key_reused');

    for (const key of ['key-c', 'key-d', 'key-e']) {
      expect((await refund('ord_executed', { amount: 1 }, key)).statusCode).toBe(201);
    }
    expectProblem(await refund('ord_executed', { amount: 1 }, 'key-f'), 409, 'too_many_refunds');
  });

  it('answers 503 with Retry-After when the node is busy or the merchant unavailable', async () => {
    for (const code of ['gateway_busy', 'merchant_unavailable'] as const) {
      rules.unavailable = code;
      const response = await refund('ord_executed', { amount: 100 });
      expectProblem(response, 503, code);
      expect(response.headers['retry-after']).toBe('1');
    }
  });

  it('requires a valid Idempotency-Key', async () => {
    expectProblem(await refund('ord_executed', { amount: 100 }, null), 400, 'idempotency_key_missing');
    expectProblem(await refund('ord_executed', { amount: 100 }, ''), 400, 'idempotency_key_missing');
    expectProblem(
      await refund('ord_executed', { amount: 100 }, 'k'.repeat(256)),
      400,
      'idempotency_key_invalid',
    );
    expect(rules.refunds.size).toBe(0);
  });

  it.each([
    ['no amount', {}, 'missing_field', 'amount'],
    ['a zero amount', { amount: 0 }, 'invalid_field', 'amount'],
    ['a negative amount', { amount: -5 }, 'invalid_field', 'amount'],
    ['a fractional amount', { amount: 1.5 }, 'invalid_field', 'amount'],
    ['an amount as text', { amount: '100' }, 'invalid_field', 'amount'],
    ['an amount beyond safe integers', { amount: 2 ** 53 }, 'invalid_field', 'amount'],
    ['a null amount', { amount: null }, 'invalid_field', 'amount'],
    ['a lower-case currency', { amount: 1, currency: 'eur' }, 'invalid_field', 'currency'],
    ['an unknown currency', { amount: 1, currency: 'XYZ' }, 'currency_invalid', 'currency'],
    [
      'a reason too long',
      { amount: 1, reason: 'x'.repeat(refundReasonLengthMax + 1) },
      'invalid_field',
      'reason',
    ],
    ['a reason that is not text', { amount: 1, reason: 7 }, 'invalid_field', 'reason'],
    [
      'a card number in the reason',
      { amount: 1, reason: 'card 4242 4242 4242 4242' },
      'card_number_in_text',
      'reason',
    ],
    ['an unknown field', { amount: 1, status: 'succeeded' }, 'unknown_field', 'status'],
    ['a body that is not an object', [1], 'invalid_field', undefined],
  ] as const)('refuses %s with a 400', async (_what, payload, code, param) => {
    expectProblem(await refund('ord_executed', payload), 400, code, param);
    expect(rules.refunds.size).toBe(0);
  });

  it('refuses malformed JSON, an empty body, a form body and a bad order id with a 4xx', async () => {
    expectProblem(await refund('ord_executed', '{"amount": 1'), 400, 'malformed_json');
    expectProblem(await refund('ord_executed', ''), 400, 'malformed_json');
    const text = await app.inject({
      method: 'POST',
      url: '/v1/orders/ord_executed/refunds',
      headers: {
        authorization: `Bearer ${apiKey}`,
        'content-type': 'application/x-www-form-urlencoded',
        'idempotency-key': 'k',
      },
      payload: 'amount=1',
    });
    expectProblem(text, 415, 'unsupported_media_type');
    expectProblem(await refund('o'.repeat(65), { amount: 1 }), 400, 'invalid_field', 'id');
  });

  it('requires a merchant API key', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/v1/orders/ord_executed/refunds',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'k' },
      payload: JSON.stringify({ amount: 1 }),
    });
    expectProblem(response, 401, 'unauthorized');
    expectProblem(await get('/v1/refunds/re_x', 'sk_wrong'), 401, 'unauthorized');
  });

  it('answers any body and key with a 2xx or a 4xx problem — never a 5xx', async () => {
    const body = fc.oneof(
      fc.record(
        {
          amount: fc.oneof(fc.integer({ min: -5, max: 2_000 }), fc.double(), fc.string(), fc.constant(null)),
          currency: fc.oneof(fc.constantFrom('EUR', 'USD', 'eur', 'XYZ', ''), fc.string()),
          reason: fc.oneof(fc.string({ maxLength: 600 }), fc.integer()),
          extra: fc.anything(),
        },
        { requiredKeys: [] },
      ),
      fc.anything(),
    );
    await fc.assert(
      fc.asyncProperty(
        body,
        fc.option(fc.string({ maxLength: 300 })),
        fc.constantFrom('ord_executed', 'ord_declined', 'ord_other', 'ord_missing', 'x'),
        async (payload, key, orderId) => {
          const usable = key !== null && /^[\x20-\x7e]*$/.test(key) ? key : null;
          const response = await refund(orderId, JSON.stringify(payload ?? null), usable);
          expect(response.statusCode).toBeLessThan(500);
          if (response.statusCode >= 400) {
            expect(response.headers['content-type']).toContain('application/problem+json');
            expect(response.json()).toMatchObject({ status: response.statusCode, code: expect.any(String) });
          }
        },
      ),
      { numRuns: 200, seed: 21 },
    );
  });
});

describe('GET /v1/orders/:id/refunds and GET /v1/refunds/:id', () => {
  it("lists an order's refunds oldest first, and gets each by id, for its merchant only", async () => {
    const first = (await refund('ord_executed', { amount: 100 }, 'key-1')).json() as { id: string };
    const second = (await refund('ord_executed', { amount: 200, reason: 'late' }, 'key-2')).json() as {
      id: string;
    };
    const listed = await get('/v1/orders/ord_executed/refunds');
    expect(listed.statusCode).toBe(200);
    expect(listed.json()).toEqual({ data: [first, second] });
    expect((await get(`/v1/refunds/${second.id}`)).json()).toEqual(second);

    expect((await get('/v1/orders/ord_declined/refunds')).json()).toEqual({ data: [] });
    expectProblem(await get('/v1/orders/ord_missing/refunds'), 404, 'order_not_found', 'id');
    expectProblem(await get('/v1/orders/ord_executed/refunds', otherApiKey), 404, 'order_not_found', 'id');
    expectProblem(await get(`/v1/refunds/${first.id}`, otherApiKey), 404, 'refund_not_found', 'id');
    expectProblem(await get('/v1/refunds/re_missing'), 404, 'refund_not_found', 'id');
    expectProblem(await get(`/v1/refunds/${'r'.repeat(65)}`), 400, 'invalid_field', 'id');
    expectProblem(await get('/v1/refunds/re_x?limit=1'), 404, 'refund_not_found');
  });

  it('shows a settled refund with its failure reason, and the order its amountRefunded', async () => {
    const created = (await refund('ord_executed', { amount: 250 })).json() as { id: string };
    const stored = rules.refunds.get(created.id);
    expect(stored).toBeDefined();
    if (stored === undefined) return;
    rules.refunds.set(created.id, { ...stored, status: 'failed', failureReason: 'refund_declined' });
    expect((await get(`/v1/refunds/${created.id}`)).json()).toMatchObject({
      status: 'failed',
      failureReason: 'refund_declined',
    });

    expect((await get('/v1/orders/ord_executed')).json()).toMatchObject({ amountRefunded: 0 });
    rules.orders.set('ord_executed', order('ord_executed', { amountRefunded: 250n }));
    expect((await get('/v1/orders/ord_executed')).json()).toMatchObject({
      amount: 1000,
      amountRefunded: 250,
    });
  });
});

describe('refund routes in the API document', () => {
  it('documents each refund route with a summary, the refunds tag and its answers', async () => {
    const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json() as {
      paths: Record<string, Record<string, { summary?: string; tags?: string[]; responses?: object }>>;
      components?: unknown;
    };
    const routes = registeredRoutes(app).map((route) => `${route.method} ${route.url}`);
    expect(routes).toEqual(
      expect.arrayContaining([
        'POST /v1/orders/:id/refunds',
        'GET /v1/orders/:id/refunds',
        'GET /v1/refunds/:id',
      ]),
    );
    const post = document.paths['/v1/orders/{id}/refunds']?.post;
    expect(post?.summary).toMatch(/Refund/);
    expect(post?.tags).toEqual(['refunds']);
    expect(Object.keys(post?.responses ?? {})).toEqual(
      expect.arrayContaining(['200', '201', '400', '404', '409', '422', '503']),
    );
    expect(document.paths['/v1/orders/{id}/refunds']?.get?.tags).toEqual(['refunds']);
    expect(Object.keys(document.paths['/v1/refunds/{id}']?.get?.responses ?? {})).toContain('200');
    const orderResponse = JSON.stringify(document.paths['/v1/orders/{id}']?.get?.responses);
    expect(orderResponse).toContain('amountRefunded');
  });

  it('has no refund routes when the app is built without refunds', async () => {
    const { refunds: _refunds, ...withoutRefunds } = dependencies;
    const bare = await buildApp(withoutRefunds);
    try {
      expectProblem(
        await bare.inject({
          method: 'GET',
          url: '/v1/refunds/re_x',
          headers: { authorization: `Bearer ${apiKey}` },
        }),
        404,
        'route_not_found',
      );
      expect(registeredRoutes(bare).some((route) => route.url.includes('refunds'))).toBe(false);
    } finally {
      await bare.close();
    }
  });
});
