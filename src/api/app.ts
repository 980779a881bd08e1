import assert from 'node:assert/strict';
import { hash } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
  type RouteOptions,
} from 'fastify';
import type { Logger as PinoLogger } from 'pino';
import {
  Counter,
  collectDefaultMetrics,
  Histogram,
  Registry as MetricsRegistry,
  type Registry,
} from 'prom-client';
import type { OrderQueries, OrderService } from '../node/order-service.js';
import type { RefundOperations } from '../node/refund-operations.js';
import { orderJson } from '../node/resource-json.js';
import { isCurrency } from '../payments/money.js';
import { orderStatuses } from '../payments/order.js';
import { InvalidCursorError } from '../readmodel/order-read-model.js';
import { ApiError, installProblemHandlers } from './problem.js';
import { registerRefundRoutes } from './refund-routes.js';
import { containsCardNumber, idempotencyKeyOf } from './request-checks.js';
import { idParams, problemSchema } from './schemas.js';
import { registerWebhookRoutes, type WebhookApiDependencies } from './webhook-routes.js';

export { containsCardNumber };

/** The merchants' API keys, as SHA-256 hashes: a leaked key file does not leak keys. */
export class MerchantDirectory {
  private readonly byHash = new Map<string, string>();

  constructor(entries: ReadonlyArray<{ merchantId: string; apiKeyHash: string }>) {
    for (const entry of entries) this.byHash.set(entry.apiKeyHash, entry.merchantId);
  }

  static hashKey(apiKey: string): string {
    return hash('sha256', apiKey, 'hex');
  }

  /**
   * Looked up by hash, so timing reveals nothing useful: an attacker learns at most how a hash of
   * their own guess compares, not how close the guess is to a key.
   */
  merchantFor(apiKey: string): string | undefined {
    return this.byHash.get(MerchantDirectory.hashKey(apiKey));
  }
}

export interface AppSettings {
  /** Largest request body accepted. */
  readonly bodyLimitBytes: number;
  readonly requestTimeoutMs: number;
  /**
   * How long a listing or an audit trail waits for the read model to catch up with the journal
   * before it answers with what the read model holds.
   */
  readonly readModelWaitMaxMs: number;
}

export const defaultAppSettings: AppSettings = {
  bodyLimitBytes: 16 * 1024,
  requestTimeoutMs: 60_000,
  readModelWaitMaxMs: 1_000,
};

export type AccessLogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface AppDependencies {
  readonly orders: OrderService;
  readonly queries: OrderQueries;
  readonly merchants: MerchantDirectory;
  /** True once recovery is done and orders are accepted. */
  readonly ready: () => boolean;
  readonly logger?: PinoLogger | false;
  /** The level of the one line logged per request answered; `silent` logs none. */
  readonly accessLogLevel?: AccessLogLevel;
  readonly metrics?: Registry;
  readonly settings?: AppSettings;
  readonly waitDefaultMs: number;
  readonly waitMaxMs: number;
  /**
   * Resolves once the read model holds everything the journal held when it was called. Listings
   * and audit trails await it (bounded by `readModelWaitMaxMs`), so a merchant who was just
   * answered sees that order in them. Without it, queries answer from the read model as it is.
   */
  readonly readModelCaughtUp?: () => Promise<void>;
  /** The webhook endpoints and deliveries (`webhook-routes.ts`); without it those routes do not exist. */
  readonly webhooks?: WebhookApiDependencies;
  /** Refunds of executed orders (`refund-routes.ts`); without it those routes do not exist. */
  readonly refunds?: RefundOperations;
}

declare module 'fastify' {
  interface FastifyRequest {
    merchantId: string;
  }
}

export { problemSchema };

const nullableString = { type: ['string', 'null'] } as const;

/** The order as clients see it. The response schema is also a whitelist: nothing else can leak. */
const orderSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    status: { type: 'string', enum: orderStatuses },
    amount: { type: 'integer' },
    currency: { type: 'string' },
    card: {
      type: 'object',
      additionalProperties: false,
      properties: { brand: { type: 'string' }, last4: { type: 'string' } },
      required: ['brand', 'last4'],
    },
    bank: nullableString,
    reference: nullableString,
    description: nullableString,
    reason: nullableString,
    amountRefunded: {
      type: 'integer',
      description: 'The sum of the order’s succeeded refunds, in minor units; 0 when none.',
    },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
  required: [
    'id',
    'status',
    'amount',
    'currency',
    'card',
    'bank',
    'reference',
    'description',
    'reason',
    'amountRefunded',
    'createdAt',
    'updatedAt',
  ],
} as const;

const orderRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['amount', 'currency', 'card'],
  properties: {
    amount: {
      type: 'integer',
      minimum: 0,
      maximum: Number.MAX_SAFE_INTEGER,
      description: 'Integer minor units of the currency (cents for EUR).',
    },
    currency: { type: 'string', pattern: '^[A-Z]{3}$', description: 'ISO 4217 code, e.g. EUR.' },
    card: {
      type: 'object',
      additionalProperties: false,
      required: ['number', 'expMonth', 'expYear', 'cvc'],
      properties: {
        number: { type: 'string', pattern: '^[0-9]{12,19}$' },
        expMonth: { type: 'integer', minimum: 1, maximum: 12 },
        expYear: { type: 'integer', minimum: 2000, maximum: 2100 },
        cvc: { type: 'string', pattern: '^[0-9]{3,4}$' },
      },
    },
    description: { type: 'string', maxLength: 500 },
    reference: { type: 'string', minLength: 1, maxLength: 255 },
  },
} as const;

const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    status: { type: 'string', enum: orderStatuses },
    limit: { type: 'string', pattern: '^[0-9]{1,3}$' },
    startingAfter: { type: 'string', minLength: 1, maxLength: 64 },
  },
} as const;

const errorResponses = {
  400: problemSchema,
  401: problemSchema,
  404: problemSchema,
  422: problemSchema,
  503: problemSchema,
} as const;

const healthSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { status: { type: 'string' } },
  required: ['status'],
} as const;

/** Where the documentation UI lives; its routes are a page, not part of the API it documents. */
const docsPrefix = '/docs';

/** A route of the API: method and URL as registered (`/v1/orders/:id`). */
export interface RegisteredRoute {
  readonly method: string;
  readonly url: string;
}

const registeredRoutesByApp = new WeakMap<FastifyInstance, RegisteredRoute[]>();

/** Every route `buildApp` registered outside the documentation UI, HEAD aside. */
export function registeredRoutes(app: FastifyInstance): readonly RegisteredRoute[] {
  return registeredRoutesByApp.get(app) ?? [];
}

/**
 * A route without a summary, tags and a response schema would be missing from, or unexplained in,
 * the OpenAPI document: a programmer's error, caught when the route is registered.
 */
function assertDocumented(route: RouteOptions): void {
  const schema = route.schema;
  assert.ok(
    schema !== undefined &&
      schema.hide !== true &&
      typeof schema.summary === 'string' &&
      Array.isArray(schema.tags) &&
      schema.tags.length > 0 &&
      schema.response !== undefined,
    `route ${String(route.method)} ${route.url} needs a schema with a summary, tags and responses`,
  );
}

/** A cursor that is not an order of this merchant is the client's mistake: a 400, never a 500. */
async function listOrSayWhy(queries: OrderQueries, query: Parameters<OrderQueries['listOrders']>[0]) {
  try {
    return await queries.listOrders(query);
  } catch (error) {
    if (error instanceof InvalidCursorError) {
      throw new ApiError(400, 'invalid_cursor', 'startingAfter is not an order of yours.', 'startingAfter');
    }
    throw error;
  }
}

/**
 * Waits for the read model to catch up, at most `maxMs`; a read model that is slow or failing
 * does not fail the query (it answers with what it holds, as without a `caughtUp`).
 */
export async function caughtUpWithin(
  caughtUp: (() => Promise<void>) | undefined,
  maxMs: number,
): Promise<void> {
  if (caughtUp === undefined) return;
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, maxMs);
  });
  try {
    await Promise.race([caughtUp().catch(() => undefined), gaveUp]);
  } finally {
    clearTimeout(timer);
  }
}

/** `Prefer: wait=N` (seconds), bounded by the server's maximum. */
export function preferredWaitMs(header: string | undefined, defaultMs: number, maxMs: number): number {
  const match = header?.match(/(?:^|[,;\s])wait=(\d{1,6})(?:$|[,;\s])/);
  if (match?.[1] === undefined) return defaultMs;
  return Math.min(Number(match[1]) * 1000, maxMs);
}

function routeOf(request: FastifyRequest): string {
  return request.routeOptions.url ?? 'unknown';
}

/**
 * The access log: one line per request answered, `request answered`, at the operator's level.
 * Fastify's own is two lines per request (`incoming request`, `request completed`), and the first
 * quotes the URL, which a client fills with whatever it likes; this names the route instead. A
 * response that failed on the socket is still an error line, whatever the level.
 */
class AccessLog extends LogController {
  constructor(private readonly level: AccessLogLevel) {
    super();
  }

  override incomingRequest(): void {}

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    const fields = {
      method: request.method,
      route: routeOf(request),
      status: reply.statusCode,
      responseTimeMs: Math.round(reply.elapsedTime * 10) / 10,
    };
    if (error) reply.log.error({ ...fields, err: error }, 'request errored');
    else if (this.level !== 'silent') reply.log[this.level](fields, 'request answered');
  }
}

export async function buildApp(dependencies: AppDependencies): Promise<FastifyInstance> {
  const settings = dependencies.settings ?? defaultAppSettings;
  // Widened to Fastify's logger type, so the app is a plain FastifyInstance whatever logger it has.
  const logger: FastifyBaseLogger | false = dependencies.logger ?? false;
  const app = Fastify({
    ...(logger ? { loggerInstance: logger } : { logger: false }),
    logController: new AccessLog(dependencies.accessLogLevel ?? 'info'),
    bodyLimit: settings.bodyLimitBytes,
    requestTimeout: settings.requestTimeoutMs,
    // Fastify's own answer while closing is a bare 503 without Retry-After; ours (below) says to
    // retry, as every other 503 of the API does.
    return503OnClosing: false,
    // Validation is strict: no coercion, no silently dropped fields. Unknown fields are errors.
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false },
    },
  });
  installProblemHandlers(app);
  // A request that arrives while the server closes (on a kept-alive connection) is not served: the
  // process is stopping, and another node, or this one once started again, answers the retry.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (_request, reply) => {
    if (!closing) return;
    reply.header('connection', 'close');
    throw new ApiError(
      503,
      'shutting_down',
      'This server is stopping; retry with the same Idempotency-Key.',
      undefined,
      { 'retry-after': '1' },
    );
  });
  const readModelFresh = (): Promise<void> =>
    caughtUpWithin(dependencies.readModelCaughtUp, settings.readModelWaitMaxMs);
  const metrics = dependencies.metrics ?? new MetricsRegistry();
  const requests = new Histogram({
    name: 'remit_http_request_duration_seconds',
    help: 'HTTP request latency by route and status code',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [metrics],
  });
  const ordersAnswered = new Counter({
    name: 'remit_orders_answered_total',
    help: 'Orders answered by POST /v1/orders, by status and whether the answer was a replay',
    labelNames: ['status', 'replayed'],
    registers: [metrics],
  });
  if (dependencies.metrics === undefined) collectDefaultMetrics({ register: metrics });
  app.addHook('onResponse', async (request, reply) => {
    requests.observe(
      { method: request.method, route: routeOf(request), status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  const routes: RegisteredRoute[] = [];
  registeredRoutesByApp.set(app, routes);
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith(docsPrefix)) return;
    for (const method of [route.method].flat()) {
      if (method === 'HEAD') continue;
      assertDocumented(route);
      routes.push({ method, url: route.url });
    }
  });

  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Remit payment gateway',
        version: '1',
        description: 'Payment orders, executed effectively once.',
      },
      tags: [
        { name: 'orders', description: 'Payment orders of the merchant whose API key is sent' },
        {
          name: 'refunds',
          description: 'Refunds of the executed orders of the merchant whose API key is sent',
        },
        {
          name: 'webhooks',
          description: 'Webhook endpoints and deliveries of the merchant whose API key is sent',
        },
        { name: 'operations', description: 'Health, metrics and this document, without an API key' },
      ],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
  });
  await app.register(swaggerUi, { routePrefix: docsPrefix });

  const api = app.withTypeProvider<JsonSchemaToTsProvider>();
  api.get(
    '/health/live',
    {
      schema: {
        summary: 'Whether the process is up',
        tags: ['operations'],
        response: { 200: healthSchema },
      },
    },
    async () => ({ status: 'live' }),
  );
  api.get(
    '/health/ready',
    {
      schema: {
        summary: 'Whether the gateway takes orders (503 while its read model is not being updated)',
        tags: ['operations'],
        response: { 200: healthSchema, 503: healthSchema },
      },
    },
    async (_request, reply) => {
      if (!dependencies.ready()) return reply.code(503).send({ status: 'recovering' });
      return { status: 'ready' };
    },
  );
  api.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics, in the text exposition format',
        tags: ['operations'],
        produces: ['text/plain'],
        response: { 200: { type: 'string', description: 'Prometheus text exposition format 0.0.4' } },
      },
    },
    async (_request, reply) => reply.type(metrics.contentType).send(await metrics.metrics()),
  );
  // Untyped: the document is @fastify/swagger's own type, and its schema only describes it.
  app.get(
    '/openapi.json',
    {
      schema: {
        summary: 'This OpenAPI document',
        tags: ['operations'],
        response: { 200: { type: 'object', additionalProperties: true } },
      },
    },
    async () => app.swagger(),
  );

  await app.register(
    async (plugin) => {
      const v1 = plugin.withTypeProvider<JsonSchemaToTsProvider>();
      v1.decorateRequest('merchantId', '');
      v1.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
        const header = request.headers.authorization;
        const key = header?.startsWith('Bearer ') ? header.slice('Bearer '.length).trim() : undefined;
        const merchantId =
          key === undefined || key === '' ? undefined : dependencies.merchants.merchantFor(key);
        if (merchantId === undefined) {
          reply.header('www-authenticate', 'Bearer');
          throw new ApiError(
            401,
            'unauthorized',
            'Send a valid merchant API key as "Authorization: Bearer <key>".',
          );
        }
        request.merchantId = merchantId;
      });

      v1.post(
        '/orders',
        {
          schema: {
            summary: 'Submit a payment order',
            description:
              '201 with a final status (executed, rejected, declined or failed), or 202 while the order is still in flight. A Luhn-invalid card is not a 4xx: the order is created and rejected (201, status rejected).',
            tags: ['orders'],
            security: [{ bearer: [] }],
            headers: {
              type: 'object',
              properties: {
                'idempotency-key': { type: 'string' },
                prefer: {
                  type: 'string',
                  description: 'wait=N: wait up to N seconds (max 30) for a final status',
                },
              },
            },
            body: orderRequestSchema,
            response: { 201: orderSchema, 202: orderSchema, ...errorResponses },
          },
        },
        async (request, reply) => {
          const key = idempotencyKeyOf(request);
          const body = request.body;
          for (const field of ['description', 'reference'] as const) {
            if (containsCardNumber(body[field])) {
              throw new ApiError(
                400,
                'card_number_in_text',
                `Field ${field} looks like it holds a card number; card numbers go only in card.number.`,
                field,
              );
            }
          }
          const currency = body.currency;
          if (!isCurrency(currency)) {
            throw new ApiError(
              400,
              'currency_invalid',
              `${currency} is not an ISO 4217 currency Remit knows.`,
              'currency',
            );
          }
          const prefer = request.headers.prefer;
          const waitMs = preferredWaitMs(prefer, dependencies.waitDefaultMs, dependencies.waitMaxMs);
          const { order, replayed } = await dependencies.orders.create(
            request.merchantId,
            key,
            { ...body, currency },
            waitMs,
          );
          ordersAnswered.inc({ status: order.status, replayed: String(replayed) });
          if (replayed) reply.header('idempotent-replayed', 'true');
          reply.header('location', `/v1/orders/${order.id}`);
          return reply
            .code(order.status === 'new' || order.status === 'validated' ? 202 : 201)
            .send(orderJson(order));
        },
      );

      v1.get(
        '/orders/:id',
        {
          schema: {
            summary: 'Get an order',
            tags: ['orders'],
            security: [{ bearer: [] }],
            params: idParams,
            response: { 200: orderSchema, ...errorResponses },
          },
        },
        async (request) => {
          const { id } = request.params;
          const order = await dependencies.orders.get(request.merchantId, id);
          if (order === undefined) throw new ApiError(404, 'order_not_found', `No order ${id}.`, 'id');
          return orderJson(order);
        },
      );

      v1.get(
        '/orders',
        {
          schema: {
            summary: 'List orders, newest first, a page at a time',
            tags: ['orders'],
            security: [{ bearer: [] }],
            querystring: listQuery,
            response: {
              200: {
                type: 'object',
                additionalProperties: false,
                properties: { data: { type: 'array', items: orderSchema }, hasMore: { type: 'boolean' } },
                required: ['data', 'hasMore'],
              },
              ...errorResponses,
            },
          },
        },
        async (request) => {
          await readModelFresh();
          const query = request.query;
          const limit = query.limit === undefined ? 20 : Number(query.limit);
          if (limit < 1 || limit > 100)
            throw new ApiError(400, 'invalid_field', 'limit must be 1 to 100.', 'limit');
          const page = await listOrSayWhy(dependencies.queries, {
            merchantId: request.merchantId,
            limit,
            ...(query.status === undefined ? {} : { status: query.status }),
            ...(query.startingAfter === undefined ? {} : { startingAfter: query.startingAfter }),
          });
          return { data: page.data.map(orderJson), hasMore: page.hasMore };
        },
      );

      v1.get(
        '/orders/:id/events',
        {
          schema: {
            summary: "An order's audit trail: its events, oldest first",
            tags: ['orders'],
            security: [{ bearer: [] }],
            params: idParams,
            response: {
              200: {
                type: 'object',
                additionalProperties: false,
                properties: {
                  data: {
                    type: 'array',
                    items: {
                      type: 'object',
                      additionalProperties: false,
                      properties: {
                        type: { type: 'string' },
                        at: { type: 'string', format: 'date-time' },
                        data: { type: 'object', additionalProperties: true },
                      },
                      required: ['type', 'at', 'data'],
                    },
                  },
                },
                required: ['data'],
              },
              ...errorResponses,
            },
          },
        },
        async (request) => {
          const { id } = request.params;
          await readModelFresh();
          const events = await dependencies.queries.orderEvents(request.merchantId, id);
          if (events === undefined) throw new ApiError(404, 'order_not_found', `No order ${id}.`, 'id');
          return {
            data: events.map((entry) => ({
              type: entry.type,
              at: new Date(entry.at).toISOString(),
              data: entry.data,
            })),
          };
        },
      );

      if (dependencies.webhooks !== undefined) registerWebhookRoutes(plugin, dependencies.webhooks);
      if (dependencies.refunds !== undefined) {
        registerRefundRoutes(plugin, { refunds: dependencies.refunds, readModelFresh });
      }
    },
    { prefix: '/v1' },
  );

  return app;
}
