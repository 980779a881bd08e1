import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts';
import type { FastifyInstance } from 'fastify';
import type { RefundOperations } from '../node/refund-operations.js';
import { refundJson } from '../node/resource-json.js';
import { isCurrency } from '../payments/money.js';
import { refundReasonLengthMax, refundStatuses } from '../payments/refund.js';
import { ApiError } from './problem.js';
import { containsCardNumber, idempotencyKeyOf } from './request-checks.js';
import { idParams, problemResponses } from './schemas.js';

/**
 * The refunds of the merchant whose API key is sent: `POST /v1/orders/:id/refunds`,
 * `GET /v1/orders/:id/refunds` and `GET /v1/refunds/:id`. The routes parse and answer; the node
 * (`RefundOperations`) decides, and its `ApiError`s (`order_not_found`, `order_not_refundable`,
 * `refund_exceeds_payment`, …) become problems as every other error does.
 */

/** What `buildApp` needs to serve the refund routes (`AppDependencies.refunds` and its own parts). */
export interface RefundApiDependencies {
  readonly refunds: RefundOperations;
  /** Waits (bounded) for the read model to catch up with the journal; never rejects. */
  readonly readModelFresh: () => Promise<void>;
}

const nullableString = { type: ['string', 'null'] } as const;

/** The refund as clients see it (`refundJson`). The response schema is also a whitelist. */
export const refundSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    orderId: { type: 'string' },
    status: { type: 'string', enum: refundStatuses },
    amount: { type: 'integer', description: 'Integer minor units of the currency.' },
    currency: { type: 'string' },
    reason: nullableString,
    failureReason: {
      ...nullableString,
      description: 'Why a failed refund failed: the bank’s stable code, such as refund_declined.',
    },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
  required: [
    'id',
    'orderId',
    'status',
    'amount',
    'currency',
    'reason',
    'failureReason',
    'createdAt',
    'updatedAt',
  ],
} as const;

const refundRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['amount'],
  properties: {
    amount: {
      type: 'integer',
      minimum: 1,
      maximum: Number.MAX_SAFE_INTEGER,
      description: 'Integer minor units to refund; the refunds of an order never exceed its amount.',
    },
    currency: {
      type: 'string',
      pattern: '^[A-Z]{3}$',
      description: 'ISO 4217 code; when given, it must be the order’s.',
    },
    reason: { type: 'string', maxLength: refundReasonLengthMax },
  },
} as const;

const refundListSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { data: { type: 'array', items: refundSchema } },
  required: ['data'],
} as const;

const tags = ['refunds'];
const security = [{ bearer: [] }];

/** Registers the refund routes on `plugin`, the `/v1` scope whose hook has authenticated the merchant. */
export function registerRefundRoutes(plugin: FastifyInstance, dependencies: RefundApiDependencies): void {
  const v1 = plugin.withTypeProvider<JsonSchemaToTsProvider>();
  const { refunds, readModelFresh } = dependencies;

  v1.post(
    '/orders/:id/refunds',
    {
      schema: {
        summary: 'Refund an executed order, in full or in part',
        description:
          '201 with the new refund (pending until the bank answers), or 200 with `Idempotent-Replayed: true` ' +
          'for the same Idempotency-Key and body again. The refunds of an order, pending ones included, never ' +
          'add up to more than its amount (422 refund_exceeds_payment). 409 order_not_refundable for an order ' +
          'that is not executed; 422 refund_currency_mismatch, idempotency_key_reused; 409 too_many_refunds.',
        tags,
        security,
        headers: {
          type: 'object',
          properties: { 'idempotency-key': { type: 'string' } },
        },
        params: idParams,
        body: refundRequestSchema,
        response: { 200: refundSchema, 201: refundSchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      const key = idempotencyKeyOf(request);
      const { id } = request.params;
      const { amount, currency, reason } = request.body;
      if (containsCardNumber(reason)) {
        throw new ApiError(
          400,
          'card_number_in_text',
          'Field reason looks like it holds a card number; card numbers go only in an order’s card.number.',
          'reason',
        );
      }
      if (currency !== undefined && !isCurrency(currency)) {
        throw new ApiError(
          400,
          'currency_invalid',
          `${currency} is not an ISO 4217 currency Remit knows.`,
          'currency',
        );
      }
      const { refund, replayed } = await refunds.requestRefund(
        request.merchantId,
        id,
        { amount: BigInt(amount), currency, reason },
        key,
      );
      if (replayed) reply.header('idempotent-replayed', 'true');
      reply.header('location', `/v1/refunds/${refund.id}`);
      return reply.code(replayed ? 200 : 201).send(refundJson(refund));
    },
  );

  v1.get(
    '/orders/:id/refunds',
    {
      schema: {
        summary: "An order's refunds, oldest first",
        tags,
        security,
        params: idParams,
        response: { 200: refundListSchema, ...problemResponses },
      },
    },
    async (request) => {
      const { id } = request.params;
      await readModelFresh();
      const list = await refunds.listRefunds(request.merchantId, id);
      if (list === undefined) throw new ApiError(404, 'order_not_found', `No order ${id}.`, 'id');
      return { data: list.map(refundJson) };
    },
  );

  v1.get(
    '/refunds/:id',
    {
      schema: {
        summary: 'Get a refund',
        tags,
        security,
        params: idParams,
        response: { 200: refundSchema, ...problemResponses },
      },
    },
    async (request) => {
      const { id } = request.params;
      await readModelFresh();
      const refund = await refunds.getRefund(request.merchantId, id);
      if (refund === undefined) throw new ApiError(404, 'refund_not_found', `No refund ${id}.`, 'id');
      return refundJson(refund);
    },
  );
}
