import { Map as ImmutableMap } from 'immutable';
import { z } from 'zod';
import { emptyOutbox, type Outbox, outboxWith } from '../delivery/outbox.js';
import { EventRegistry, eventSchema, toJsonData, type VersionedCodec } from '../persistence/serialization.js';
import type { CardSummary } from './card.js';
import { CardActivity } from './card-activity.js';
import { executeOrderEntry, type MerchantState } from './merchant-decider.js';
import type { Currency } from './money.js';
import type { FailureReason, Order } from './order.js';
import type { ExecuteOrder } from './protocol.js';
import {
  cardSummarySchema,
  currency,
  failureReason,
  identifier,
  minorUnits,
  orderId,
  timestamp,
} from './schemas.js';
import type { BankId, MerchantConfig, RejectionReason } from './validator.js';
import { rejectionReasons } from './validator.js';

/**
 * What a Merchant records: its events, their schemas (the JSON they are written as, which existing
 * journals hold and must stay readable), and the codec of its snapshots. Each event carries only
 * what changed; `merchant-decider.ts` decides them and folds them into the state.
 */

export type MerchantEvent =
  | { readonly type: 'MerchantConfigured'; readonly config: MerchantConfig }
  | {
      readonly type: 'OrderCreated';
      readonly orderId: string;
      readonly idempotencyKey: string;
      readonly requestHash: string;
      readonly amount: bigint;
      readonly currency: Currency;
      readonly card: CardSummary;
      readonly description: string | undefined;
      readonly reference: string | undefined;
      readonly at: number;
    }
  | {
      readonly type: 'OrderValidated';
      readonly orderId: string;
      readonly bank: BankId;
      readonly rulesVersion: number;
      readonly deadlineAt: number;
      readonly at: number;
    }
  | {
      readonly type: 'OrderRejected';
      readonly orderId: string;
      readonly reason: RejectionReason;
      readonly rulesVersion: number;
      readonly at: number;
    }
  /**
   * The Executor acknowledged the order (it holds it durably): from now on only its outcome ends
   * the order, never the Merchant's own deadline.
   */
  | { readonly type: 'ExecuteOrderConfirmed'; readonly orderId: string }
  | {
      readonly type: 'OrderExecuted';
      readonly orderId: string;
      readonly authorizationCode: string;
      readonly at: number;
    }
  | { readonly type: 'OrderDeclined'; readonly orderId: string; readonly reason: string; readonly at: number }
  | {
      readonly type: 'OrderFailed';
      readonly orderId: string;
      readonly reason: FailureReason;
      readonly at: number;
    };

const merchantConfigSchema = z
  .object({
    bank: identifier,
    currencies: z.array(z.object({ currency, perOrderLimit: minorUnits }).strict()),
    blockedBins: z.array(z.string()),
    velocity: z
      .object({ maxOrdersPerCard: z.number().int().positive(), windowMs: z.number().int().positive() })
      .strict(),
  })
  .strict();

export const merchantEvents = new EventRegistry<MerchantEvent>([
  eventSchema(
    'MerchantConfigured',
    z.object({ type: z.literal('MerchantConfigured'), config: merchantConfigSchema }).strict(),
  ),
  eventSchema(
    'OrderCreated',
    z
      .object({
        type: z.literal('OrderCreated'),
        orderId,
        idempotencyKey: identifier,
        requestHash: identifier,
        amount: minorUnits,
        currency,
        card: cardSummarySchema,
        description: z.string().optional(),
        reference: z.string().optional(),
        at: timestamp,
      })
      .strict()
      .transform((event) => ({ ...event, description: event.description, reference: event.reference })),
  ),
  eventSchema(
    'OrderValidated',
    z
      .object({
        type: z.literal('OrderValidated'),
        orderId,
        bank: identifier,
        rulesVersion: z.number().int().positive(),
        deadlineAt: timestamp,
        at: timestamp,
      })
      .strict(),
  ),
  eventSchema(
    'OrderRejected',
    z
      .object({
        type: z.literal('OrderRejected'),
        orderId,
        reason: z.enum(rejectionReasons as [RejectionReason, ...RejectionReason[]]),
        rulesVersion: z.number().int().positive(),
        at: timestamp,
      })
      .strict(),
  ),
  eventSchema(
    'ExecuteOrderConfirmed',
    z.object({ type: z.literal('ExecuteOrderConfirmed'), orderId }).strict(),
  ),
  eventSchema(
    'OrderExecuted',
    z
      .object({ type: z.literal('OrderExecuted'), orderId, authorizationCode: z.string(), at: timestamp })
      .strict(),
  ),
  eventSchema(
    'OrderDeclined',
    z
      .object({ type: z.literal('OrderDeclined'), orderId, reason: z.string().min(1), at: timestamp })
      .strict(),
  ),
  eventSchema(
    'OrderFailed',
    z.object({ type: z.literal('OrderFailed'), orderId, reason: failureReason, at: timestamp }).strict(),
  ),
]);

// ---- snapshot -------------------------------------------------------------------------------

const orderStatus = z.enum(['new', 'validated', 'rejected', 'executed', 'declined', 'failed']);

const inFlightOrderSchema = z
  .object({
    id: orderId,
    idempotencyKey: identifier,
    requestHash: identifier,
    status: orderStatus,
    amount: minorUnits,
    currency,
    card: cardSummarySchema,
    bank: identifier.optional(),
    reference: z.string().optional(),
    description: z.string().optional(),
    reason: z.string().min(1).optional(),
    authorizationCode: z.string().optional(),
    rulesVersion: z.number().int().positive().optional(),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .strict();

const merchantSnapshotSchema = z
  .object({
    merchantId: identifier,
    config: merchantConfigSchema.optional(),
    inFlight: z.array(inFlightOrderSchema),
    /** Orders whose ExecuteOrder is unconfirmed, with its deadline: the rest of the entry is the order. */
    unconfirmed: z.array(z.tuple([orderId, timestamp])),
    /** Least recently active card first, as in the state. */
    cardActivity: z.array(z.tuple([identifier, z.array(timestamp)])),
  })
  .strict();

/**
 * The snapshot of a Merchant (version 1): the state as JSON data, with the outbox reduced to what
 * is not already in the order (its deadline). Its size is bounded by the orders in flight and the
 * velocity window, like the state.
 */
export const merchantSnapshotCodec: VersionedCodec<MerchantState> = {
  version: 1,
  encode: (state) => ({
    merchantId: state.merchantId,
    ...(state.config === undefined ? {} : { config: toJsonData(state.config) }),
    inFlight: [...state.inFlight.values()].map((order) => toJsonData({ ...order, merchantId: undefined })),
    unconfirmed: [...state.outbox.values()].map((entry) => [entry.deliveryId, entry.message.deadlineAt]),
    cardActivity: [...state.cardActivity.entries()],
  }),
  decode: (json) => {
    const data = merchantSnapshotSchema.parse(json);
    const merchantId = data.merchantId;
    const inFlight = ImmutableMap(
      data.inFlight.map((order): [string, Order] => [
        order.id,
        {
          id: order.id,
          merchantId,
          idempotencyKey: order.idempotencyKey,
          requestHash: order.requestHash,
          status: order.status,
          amount: order.amount,
          currency: order.currency,
          card: order.card,
          bank: order.bank,
          reference: order.reference,
          description: order.description,
          reason: order.reason,
          authorizationCode: order.authorizationCode,
          rulesVersion: order.rulesVersion,
          createdAt: order.createdAt,
          updatedAt: order.updatedAt,
        },
      ]),
    );
    let outbox: Outbox<ExecuteOrder> = emptyOutbox;
    for (const [id, deadlineAt] of data.unconfirmed) {
      const order = inFlight.get(id);
      if (order?.bank === undefined) throw new Error(`unconfirmed delivery ${id} has no validated order`);
      outbox = outboxWith(outbox, executeOrderEntry(merchantId, order, order.bank, deadlineAt));
    }
    return {
      merchantId,
      config: data.config,
      inFlight,
      outbox,
      cardActivity: CardActivity.of(data.cardActivity),
    };
  },
};
