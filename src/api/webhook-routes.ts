import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts';
import type { FastifyInstance } from 'fastify';
import type { Clock } from '../runtime/clock.js';
import { generateWebhookSecret, type RandomBytes } from '../webhooks/signature.js';
import { checkWebhookUrl, type HostLookup, type WebhookUrlPolicy } from '../webhooks/url-policy.js';
import { type WebhookEventType, webhookEventTypes } from '../webhooks/webhook-event.js';
import { webhookEndpointId } from '../webhooks/webhook-ids.js';
import type {
  WebhookAttempt,
  WebhookDelivery,
  WebhookEndpoint,
  WebhookStore,
} from '../webhooks/webhook-store.js';
import { ApiError } from './problem.js';
import { idParams, problemResponses } from './schemas.js';

/**
 * The merchants' webhook endpoints and deliveries: `/v1/webhook-endpoints` and
 * `/v1/webhook-deliveries`, each scoped to the merchant whose API key is sent, as orders are. A
 * signing secret leaves the gateway only in the answer that made it (registration, rotation): the
 * other answers' schemas do not have it, and the response schema is a whitelist.
 */

export interface WebhookApiSettings {
  /** Endpoints one merchant may have at once. */
  readonly endpointsPerMerchantMax: number;
  /** How long the rotated-out secret still signs when the rotation names no overlap. */
  readonly secretOverlapDefaultSeconds: number;
  /** The longest overlap a rotation may ask for. */
  readonly secretOverlapMaxSeconds: number;
  /** The most deliveries one page of a listing holds. */
  readonly deliveriesPageMax: number;
}

export const defaultWebhookApiSettings: WebhookApiSettings = {
  endpointsPerMerchantMax: 16,
  secretOverlapDefaultSeconds: 24 * 60 * 60,
  secretOverlapMaxSeconds: 7 * 24 * 60 * 60,
  deliveriesPageMax: 100,
};

/** What `buildApp` needs to serve the webhook routes (`AppDependencies.webhooks`). */
export interface WebhookApiDependencies {
  readonly store: WebhookStore;
  /** Which URLs may be registered (`allowInsecure` from `--webhooks-allow-insecure`). */
  readonly urlPolicy: WebhookUrlPolicy;
  /** Stamps endpoints and deliveries, and times the secrets' overlaps. */
  readonly clock: Clock;
  /** Cryptographically random bytes for secrets and endpoint ids; node:crypto's unless a test fixes them. */
  readonly randomBytes?: RandomBytes;
  /** Resolves a URL's host at registration; the system's DNS unless a test gives a table. */
  readonly lookup?: HostLookup;
  readonly settings?: WebhookApiSettings;
  /** Told when deliveries became due at once (a resend, an endpoint enabled): the dispatcher looks now. */
  readonly onDeliveriesDue?: () => void;
}

const nullableDateTime = { type: ['string', 'null'], format: 'date-time' } as const;

const endpointProperties = {
  id: { type: 'string' },
  url: { type: 'string' },
  eventTypes: { type: 'array', items: { type: 'string', enum: webhookEventTypes } },
  status: { type: 'string', enum: ['enabled', 'disabled'] },
  disabledReason: {
    type: ['string', 'null'],
    description: '`disabled_by_merchant`, or `failing` (every delivery failed for too long)',
  },
  expiringSecretUntil: {
    ...nullableDateTime,
    description: 'Until when the secret rotated out still signs deliveries beside the current one',
  },
  failingSince: { ...nullableDateTime, description: 'Since when every attempt failed; null while healthy' },
  createdAt: { type: 'string', format: 'date-time' },
  updatedAt: { type: 'string', format: 'date-time' },
} as const;
const endpointRequired = [
  'id',
  'url',
  'eventTypes',
  'status',
  'disabledReason',
  'expiringSecretUntil',
  'failingSince',
  'createdAt',
  'updatedAt',
] as const;

/** An endpoint as every answer but the one that made its secret shows it: without the secret. */
const endpointSchema = {
  type: 'object',
  additionalProperties: false,
  properties: endpointProperties,
  required: endpointRequired,
} as const;

/** The answer to a registration or rotation: the endpoint and its new secret, shown this once. */
const endpointWithSecretSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...endpointProperties,
    secret: {
      type: 'string',
      description: 'The signing secret (`whsec_…`), shown only here: keep it, it is the HMAC key as it is',
    },
  },
  required: [...endpointRequired, 'secret'],
} as const;

const deliveryProperties = {
  id: { type: 'string' },
  endpointId: { type: 'string' },
  eventId: { type: 'string', description: 'The id of the event delivered: receivers deduplicate by it' },
  eventType: { type: 'string', enum: webhookEventTypes },
  status: {
    type: 'string',
    enum: ['pending', 'succeeded', 'failed'],
    description: '`pending` (due at nextAttemptAt), `succeeded` (a 2xx), `failed` (the retry window ran out)',
  },
  attemptCount: { type: 'integer' },
  firstAttemptAt: nullableDateTime,
  nextAttemptAt: nullableDateTime,
  createdAt: { type: 'string', format: 'date-time' },
  updatedAt: { type: 'string', format: 'date-time' },
} as const;
const deliveryRequired = [
  'id',
  'endpointId',
  'eventId',
  'eventType',
  'status',
  'attemptCount',
  'firstAttemptAt',
  'nextAttemptAt',
  'createdAt',
  'updatedAt',
] as const;

const deliverySchema = {
  type: 'object',
  additionalProperties: false,
  properties: deliveryProperties,
  required: deliveryRequired,
} as const;

const attemptSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    number: { type: 'integer', description: '1 for the first attempt' },
    startedAt: { type: 'string', format: 'date-time' },
    durationMs: { type: 'integer' },
    httpStatus: { type: ['integer', 'null'] },
    outcome: {
      type: 'string',
      description: '`ok`, `http_error`, `timeout`, `connection_failed` or `address_refused`',
    },
    detail: { type: ['string', 'null'] },
  },
  required: ['number', 'startedAt', 'durationMs', 'httpStatus', 'outcome', 'detail'],
} as const;

const deliveryWithAttemptsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { ...deliveryProperties, attempts: { type: 'array', items: attemptSchema } },
  required: [...deliveryRequired, 'attempts'],
} as const;

const createBody = {
  type: 'object',
  additionalProperties: false,
  required: ['url', 'eventTypes'],
  properties: {
    url: { type: 'string', description: 'https, on a public address (see --webhooks-allow-insecure)' },
    eventTypes: {
      type: 'array',
      minItems: 1,
      maxItems: 32,
      items: { type: 'string', maxLength: 64 },
      description: `Any of ${webhookEventTypes.join(', ')}`,
    },
  },
} as const;

const tags = ['webhooks'];
const security = [{ bearer: [] }];

function iso(time: number): string {
  return new Date(time).toISOString();
}

function isoOrNull(time: number | undefined): string | null {
  return time === undefined ? null : iso(time);
}

function endpointJson(endpoint: WebhookEndpoint, now: number) {
  // A secret whose overlap has ended signs nothing; the stored time then says nothing either.
  const expiring = endpoint.expiringSecretUntil !== undefined && endpoint.expiringSecretUntil > now;
  return {
    id: endpoint.id,
    url: endpoint.url,
    eventTypes: [...endpoint.eventTypes],
    status: endpoint.status,
    disabledReason: endpoint.disabledReason ?? null,
    expiringSecretUntil: expiring ? isoOrNull(endpoint.expiringSecretUntil) : null,
    failingSince: isoOrNull(endpoint.failingSince),
    createdAt: iso(endpoint.createdAt),
    updatedAt: iso(endpoint.updatedAt),
  };
}

function deliveryJson(delivery: WebhookDelivery) {
  return {
    id: delivery.id,
    endpointId: delivery.endpointId,
    eventId: delivery.eventId,
    eventType: delivery.eventType,
    status: delivery.status,
    attemptCount: delivery.attempts,
    firstAttemptAt: isoOrNull(delivery.firstAttemptAt),
    nextAttemptAt: isoOrNull(delivery.nextAttemptAt),
    createdAt: iso(delivery.createdAt),
    updatedAt: iso(delivery.updatedAt),
  };
}

function attemptJson(attempt: WebhookAttempt) {
  return {
    number: attempt.number,
    startedAt: iso(attempt.startedAt),
    durationMs: attempt.durationMs,
    httpStatus: attempt.httpStatus ?? null,
    outcome: attempt.outcome,
    detail: attempt.detail ?? null,
  };
}

function endpointNotFound(id: string): ApiError {
  return new ApiError(404, 'webhook_endpoint_not_found', `No webhook endpoint ${id}.`, 'id');
}

function deliveryNotFound(id: string): ApiError {
  return new ApiError(404, 'webhook_delivery_not_found', `No webhook delivery ${id}.`, 'id');
}

const urlErrorStatus = {
  webhook_url_invalid: 400,
  webhook_url_not_https: 400,
  webhook_url_private_address: 422,
  webhook_url_unresolvable: 422,
} as const;

/** The event types asked for, each once, in the order given; an unknown one is the client's mistake. */
function eventTypesOf(input: readonly string[]): WebhookEventType[] {
  const known = new Set<string>(webhookEventTypes);
  input.forEach((type, index) => {
    if (!known.has(type)) {
      throw new ApiError(
        400,
        'webhook_event_type_unknown',
        `${JSON.stringify(type)} is not an event type; they are ${webhookEventTypes.join(', ')}.`,
        `eventTypes.${index}`,
      );
    }
  });
  return [...new Set(input)] as WebhookEventType[];
}

/**
 * A write that carries a secret failed: the error goes on without its details, since a database's
 * error can quote the row it refused, and the error handler logs what it is given.
 */
async function withoutSecrets<T>(what: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    const code = error instanceof Error && 'code' in error ? ` (${String(error.code)})` : '';
    throw new Error(`${what} failed${code}`);
  }
}

/** Registers the webhook routes on the `/v1` plugin, after its API-key check. */
export function registerWebhookRoutes(plugin: FastifyInstance, dependencies: WebhookApiDependencies): void {
  const { store, urlPolicy, clock } = dependencies;
  const settings = dependencies.settings ?? defaultWebhookApiSettings;
  const bytes = dependencies.randomBytes ?? cryptoRandomBytes;
  const v1 = plugin.withTypeProvider<JsonSchemaToTsProvider>();

  // Registrations of one merchant run one at a time, so the count checked is the count when the
  // endpoint is stored: two at once cannot both take the last place.
  const registrations = new Map<string, Promise<unknown>>();
  function oneAtATime<T>(merchantId: string, work: () => Promise<T>): Promise<T> {
    const previous = registrations.get(merchantId) ?? Promise.resolve();
    const next = previous.then(work, work);
    const settled = next.catch(() => undefined);
    registrations.set(merchantId, settled);
    void settled.then(() => {
      if (registrations.get(merchantId) === settled) registrations.delete(merchantId);
    });
    return next;
  }

  async function endpointOf(merchantId: string, id: string): Promise<WebhookEndpoint> {
    const endpoint = await store.getEndpoint(merchantId, id);
    if (endpoint === undefined) throw endpointNotFound(id);
    return endpoint;
  }

  async function updated(
    merchantId: string,
    id: string,
    change: Parameters<WebhookStore['updateEndpoint']>[2],
  ): Promise<WebhookEndpoint> {
    const endpoint = await withoutSecrets('updating a webhook endpoint', () =>
      store.updateEndpoint(merchantId, id, change),
    );
    if (endpoint === undefined) throw endpointNotFound(id);
    return endpoint;
  }

  v1.post(
    '/webhook-endpoints',
    {
      schema: {
        summary: 'Register a webhook endpoint',
        description:
          '201 with the endpoint and its signing secret, which is shown only in this answer (and on a rotation). ' +
          `At most ${settings.endpointsPerMerchantMax} endpoints per merchant.`,
        tags,
        security,
        body: createBody,
        response: { 201: endpointWithSecretSchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      const { merchantId } = request;
      const eventTypes = eventTypesOf(request.body.eventTypes);
      const checked = await checkWebhookUrl(request.body.url, urlPolicy, dependencies.lookup);
      if (!checked.ok) throw new ApiError(urlErrorStatus[checked.code], checked.code, checked.detail, 'url');
      const endpoint = await oneAtATime(merchantId, async () => {
        const existing = await store.listEndpoints(merchantId);
        if (existing.length >= settings.endpointsPerMerchantMax) {
          throw new ApiError(
            409,
            'too_many_webhook_endpoints',
            `A merchant has at most ${settings.endpointsPerMerchantMax} webhook endpoints; delete one first.`,
          );
        }
        const now = clock.now();
        const made: WebhookEndpoint = {
          id: webhookEndpointId(now, bytes),
          merchantId,
          url: checked.value.href,
          eventTypes,
          status: 'enabled',
          disabledReason: undefined,
          secret: generateWebhookSecret(bytes),
          expiringSecret: undefined,
          expiringSecretUntil: undefined,
          failingSince: undefined,
          createdAt: now,
          updatedAt: now,
        };
        await withoutSecrets('storing a webhook endpoint', () => store.createEndpoint(made));
        return made;
      });
      reply.header('location', `/v1/webhook-endpoints/${endpoint.id}`);
      return reply.code(201).send({ ...endpointJson(endpoint, endpoint.createdAt), secret: endpoint.secret });
    },
  );

  v1.get(
    '/webhook-endpoints',
    {
      schema: {
        summary: "List the merchant's webhook endpoints, oldest first",
        tags,
        security,
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { data: { type: 'array', items: endpointSchema } },
            required: ['data'],
          },
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const now = clock.now();
      const endpoints = await store.listEndpoints(request.merchantId);
      return { data: endpoints.map((endpoint) => endpointJson(endpoint, now)) };
    },
  );

  v1.get(
    '/webhook-endpoints/:id',
    {
      schema: {
        summary: 'Get a webhook endpoint (without its secret)',
        tags,
        security,
        params: idParams,
        response: { 200: endpointSchema, ...problemResponses },
      },
    },
    async (request) => endpointJson(await endpointOf(request.merchantId, request.params.id), clock.now()),
  );

  v1.post(
    '/webhook-endpoints/:id/disable',
    {
      schema: {
        summary: 'Disable a webhook endpoint: its deliveries wait until it is enabled again',
        tags,
        security,
        params: idParams,
        response: { 200: endpointSchema, ...problemResponses },
      },
    },
    async (request) => {
      const now = clock.now();
      const endpoint = await updated(request.merchantId, request.params.id, {
        status: 'disabled',
        disabledReason: 'disabled_by_merchant',
        updatedAt: now,
      });
      return endpointJson(endpoint, now);
    },
  );

  v1.post(
    '/webhook-endpoints/:id/enable',
    {
      schema: {
        summary: 'Enable a webhook endpoint: its waiting deliveries are sent',
        description: 'Also clears a `failing` state: the endpoint gets a whole failure window again.',
        tags,
        security,
        params: idParams,
        response: { 200: endpointSchema, ...problemResponses },
      },
    },
    async (request) => {
      const now = clock.now();
      const endpoint = await updated(request.merchantId, request.params.id, {
        status: 'enabled',
        disabledReason: undefined,
        failingSince: undefined,
        updatedAt: now,
      });
      dependencies.onDeliveriesDue?.();
      return endpointJson(endpoint, now);
    },
  );

  v1.delete(
    '/webhook-endpoints/:id',
    {
      schema: {
        summary: 'Delete a webhook endpoint and its pending deliveries',
        description: 'Deliveries already succeeded or failed stay readable at /v1/webhook-deliveries/:id.',
        tags,
        security,
        params: idParams,
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { id: { type: 'string' }, deleted: { type: 'boolean', enum: [true] } },
            required: ['id', 'deleted'],
          },
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      if (!(await store.deleteEndpoint(request.merchantId, id))) throw endpointNotFound(id);
      return { id, deleted: true as const };
    },
  );

  v1.post(
    '/webhook-endpoints/:id/rotate-secret',
    {
      schema: {
        summary: "Rotate a webhook endpoint's signing secret",
        description:
          'Answers the endpoint with its new secret, shown only here. During the overlap ' +
          `(overlapSeconds, default ${settings.secretOverlapDefaultSeconds}, at most ${settings.secretOverlapMaxSeconds}; ` +
          '0 ends the old secret at once) every delivery carries a signature by each secret.',
        tags,
        security,
        params: idParams,
        body: {
          type: ['object', 'null'],
          additionalProperties: false,
          properties: {
            overlapSeconds: { type: 'integer', minimum: 0, maximum: settings.secretOverlapMaxSeconds },
          },
        },
        response: { 200: endpointWithSecretSchema, ...problemResponses },
      },
    },
    async (request) => {
      const { merchantId } = request;
      const { id } = request.params;
      const overlapSeconds = request.body?.overlapSeconds ?? settings.secretOverlapDefaultSeconds;
      const current = await endpointOf(merchantId, id);
      const now = clock.now();
      const secret = generateWebhookSecret(bytes);
      const endpoint = await updated(merchantId, id, {
        secret,
        expiringSecret: overlapSeconds === 0 ? undefined : current.secret,
        expiringSecretUntil: overlapSeconds === 0 ? undefined : now + overlapSeconds * 1000,
        updatedAt: now,
      });
      return { ...endpointJson(endpoint, now), secret: endpoint.secret };
    },
  );

  v1.get(
    '/webhook-endpoints/:id/deliveries',
    {
      schema: {
        summary: "List a webhook endpoint's deliveries, newest first, a page at a time",
        tags,
        security,
        params: idParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            limit: { type: 'string', pattern: '^[0-9]{1,3}$' },
            startingAfter: { type: 'string', minLength: 1, maxLength: 64 },
          },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { data: { type: 'array', items: deliverySchema }, hasMore: { type: 'boolean' } },
            required: ['data', 'hasMore'],
          },
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const { merchantId } = request;
      const { id } = request.params;
      const { startingAfter } = request.query;
      const limit = request.query.limit === undefined ? 20 : Number(request.query.limit);
      if (limit < 1 || limit > settings.deliveriesPageMax) {
        throw new ApiError(
          400,
          'invalid_field',
          `limit must be 1 to ${settings.deliveriesPageMax}.`,
          'limit',
        );
      }
      await endpointOf(merchantId, id);
      if (startingAfter !== undefined) {
        const cursor = await store.getDelivery(merchantId, startingAfter);
        if (cursor === undefined || cursor.endpointId !== id) {
          throw new ApiError(
            400,
            'invalid_cursor',
            'startingAfter is not a delivery of this endpoint.',
            'startingAfter',
          );
        }
      }
      const page = await store.listDeliveries({ merchantId, endpointId: id, limit, startingAfter });
      return { data: page.data.map(deliveryJson), hasMore: page.hasMore };
    },
  );

  v1.get(
    '/webhook-deliveries/:id',
    {
      schema: {
        summary: 'Get a webhook delivery with its attempts, oldest first',
        tags,
        security,
        params: idParams,
        response: { 200: deliveryWithAttemptsSchema, ...problemResponses },
      },
    },
    async (request) => {
      const { id } = request.params;
      const delivery = await store.getDelivery(request.merchantId, id);
      if (delivery === undefined) throw deliveryNotFound(id);
      const attempts = await store.listAttempts(delivery.id);
      return { ...deliveryJson(delivery), attempts: attempts.map(attemptJson) };
    },
  );

  v1.post(
    '/webhook-deliveries/:id/resend',
    {
      schema: {
        summary: 'Send a webhook delivery again, now',
        description:
          'The delivery is pending again and due at once, whatever its status; a failure then retries ' +
          'only within the delivery’s original window. Its endpoint must still exist.',
        tags,
        security,
        params: idParams,
        response: { 200: deliverySchema, ...problemResponses },
      },
    },
    async (request) => {
      const { merchantId } = request;
      const { id } = request.params;
      const delivery = await store.getDelivery(merchantId, id);
      if (delivery === undefined) throw deliveryNotFound(id);
      if ((await store.getEndpoint(merchantId, delivery.endpointId)) === undefined) {
        throw new ApiError(
          404,
          'webhook_endpoint_not_found',
          `The endpoint ${delivery.endpointId} of delivery ${id} was deleted.`,
          'id',
        );
      }
      const resent = await store.resendDelivery(merchantId, id, clock.now());
      if (resent === undefined) throw deliveryNotFound(id);
      dependencies.onDeliveriesDue?.();
      return deliveryJson(resent);
    },
  );
}
