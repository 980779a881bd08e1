import { type Currency, isCurrency } from '../payments/money.js';
import {
  type GetRefundsReply,
  type PaymentCommand,
  type PaymentFacts,
  paymentAddress,
  type RequestRefundReply,
} from '../payments/payment-protocol.js';
import { orderIdOfRefund, type Refund, refundIdFor } from '../payments/refund.js';
import { type ActorRef, AskTimeoutError } from '../runtime/actor.js';
import { assertNever } from '../runtime/assert-never.js';
import type { Clock } from '../runtime/clock.js';
import type { EntityAsker } from '../runtime/entity-address.js';
import { ApiError } from './api-error.js';
import { canonicalJson, type OrderView } from './order-service.js';
import type { RefundOperations, RefundRequest, RequestedRefund } from './refund-operations.js';
import type { RefundQueries } from './refund-queries.js';

export interface RefundServiceSettings {
  /** How long to wait for the order's Payment to answer before telling the client to retry. */
  readonly askTimeoutMs: number;
  /**
   * How long a refund request waits for an order seen in flight to finish: the read model may
   * trail an order the client was already told is executed.
   */
  readonly orderSettleWaitMs: number;
}

export const defaultRefundServiceSettings: RefundServiceSettings = {
  askTimeoutMs: 10_000,
  orderSettleWaitMs: 2_000,
};

/**
 * How the refund service reads an order: as `OrderService.getSettled` does (read model, else the
 * Merchant; an order seen in flight awaited, bounded, so a read model that trails the Merchant
 * never makes an executed order look not refundable).
 */
export interface OrderReader {
  getSettled(merchantId: string, orderId: string, waitMs: number): Promise<OrderView | undefined>;
}

/**
 * What the API asks of refunds (`RefundOperations`), one call per HTTP request. A refund request
 * is checked against the order as clients see it (executed, same currency), named by its id
 * (derived from merchant, order and key, so a retry names the same refund), fingerprinted, and
 * handed to the order's Payment, which decides it against what remains of the order and answers
 * once it is persisted. Reads go to the read model first, and to the Payment for a refund the read
 * model does not show yet.
 */
export class RefundService implements RefundOperations {
  constructor(
    private readonly entities: EntityAsker,
    private readonly orders: OrderReader,
    private readonly queries: RefundQueries | undefined,
    /** The request body's fingerprint, as orders' (`CardVault.fingerprint`). */
    private readonly fingerprint: (text: string) => string,
    private readonly clock: Clock,
    private readonly settings: RefundServiceSettings = defaultRefundServiceSettings,
  ) {}

  async requestRefund(
    merchantId: string,
    orderId: string,
    request: RefundRequest,
    idempotencyKey: string,
  ): Promise<RequestedRefund> {
    if (request.amount <= 0n) {
      throw new ApiError(
        422,
        'refund_amount_invalid',
        'A refund amount must be a positive integer.',
        'amount',
      );
    }
    const order = await this.orders.getSettled(merchantId, orderId, this.settings.orderSettleWaitMs);
    if (order === undefined) throw orderNotFound();
    const payment = paymentFactsOf(order, request.currency);
    const refundId = refundIdFor(merchantId, orderId, idempotencyKey);
    const requestHash = this.fingerprint(refundRequestText(request));
    const reply = await this.ask<RequestRefundReply>(orderId, (replyTo) => ({
      type: 'RequestRefund',
      refund: {
        refundId,
        idempotencyKey,
        requestHash,
        amount: request.amount,
        reason: request.reason,
        receivedAt: this.clock.now(),
      },
      payment,
      replyTo,
    }));
    switch (reply.type) {
      case 'RefundAccepted':
        return { refund: reply.refund, replayed: false };
      case 'RefundExists':
        if (!reply.sameRequest) {
          throw new ApiError(
            422,
            'idempotency_key_reused',
            'This Idempotency-Key was already used with a different refund request.',
            'Idempotency-Key',
          );
        }
        return { refund: reply.refund, replayed: true };
      case 'RefundExceedsPayment':
        throw new ApiError(
          422,
          'refund_exceeds_payment',
          `The refunds of this order would exceed its amount; at most ${reply.amountRefundable} (minor units) can be refunded, counting pending refunds.`,
          'amount',
        );
      case 'PaymentBusy':
        throw new ApiError(
          409,
          'too_many_refunds',
          'This order has too many refunds, or too many still pending; retry once pending refunds finish.',
        );
      default:
        return assertNever(reply);
    }
  }

  async getRefund(merchantId: string, refundId: string): Promise<Refund | undefined> {
    const row = await this.queries?.getRefund(merchantId, refundId);
    if (row !== undefined) return row;
    const orderId = orderIdOfRefund(refundId);
    if (orderId === undefined) return undefined;
    const refunds = await this.fromPayment(merchantId, orderId);
    return refunds?.find((refund) => refund.id === refundId);
  }

  async listRefunds(merchantId: string, orderId: string): Promise<readonly Refund[] | undefined> {
    return this.fromPayment(merchantId, orderId);
  }

  /**
   * The order's refunds as its Payment holds them (all of them, bounded by `refundsPerOrderMax`),
   * fresher than the read model; undefined when the merchant has no such order. Only an executed
   * order can have refunds: for any other no Payment is asked (nor started).
   */
  private async fromPayment(merchantId: string, orderId: string): Promise<readonly Refund[] | undefined> {
    const order = await this.orders.getSettled(merchantId, orderId, this.settings.orderSettleWaitMs);
    if (order === undefined) return undefined;
    if (order.status !== 'executed') return [];
    const reply = await this.ask<GetRefundsReply>(orderId, (replyTo) => ({ type: 'GetRefunds', replyTo }));
    return reply.refunds.filter((refund) => refund.merchantId === merchantId);
  }

  /** An ask the client is waiting on: no answer in time is a 503 the client can safely retry. */
  private async ask<R>(orderId: string, make: (replyTo: ActorRef<R>) => PaymentCommand): Promise<R> {
    try {
      return await this.entities.ask<PaymentCommand, R>(
        paymentAddress(orderId),
        make,
        this.settings.askTimeoutMs,
      );
    } catch (error) {
      if (!(error instanceof AskTimeoutError)) throw error;
      throw new ApiError(
        503,
        'gateway_busy',
        'The gateway could not answer in time; retry with the same Idempotency-Key.',
        undefined,
        { 'retry-after': '1' },
      );
    }
  }
}

/** What the Payment must know of the order, once the order is found refundable in that currency. */
function paymentFactsOf(order: OrderView, currency: Currency | undefined): PaymentFacts {
  if (order.status !== 'executed') {
    throw new ApiError(
      409,
      'order_not_refundable',
      `Only an executed order can be refunded; this one is ${order.status}.`,
    );
  }
  if (currency !== undefined && currency !== order.currency) {
    throw new ApiError(
      422,
      'refund_currency_mismatch',
      `A refund must be in the order's currency, ${order.currency}.`,
      'currency',
    );
  }
  // An executed order was routed to a bank, in a currency the gateway knows: anything else is a bug.
  if (order.bank === undefined) throw new Error(`executed order ${order.id} has no bank`);
  if (!isCurrency(order.currency))
    throw new Error(`order ${order.id} has unknown currency ${order.currency}`);
  return {
    orderId: order.id,
    merchantId: order.merchantId,
    amount: order.amount,
    currency: order.currency,
    bank: order.bank,
  };
}

function orderNotFound(): ApiError {
  return new ApiError(404, 'order_not_found', 'No order with this id exists for this merchant.', 'id');
}

/** The request's canonical JSON (keys sorted, absent fields left out), whose fingerprint tells a replay from a reuse. */
export function refundRequestText(request: RefundRequest): string {
  return canonicalJson({
    amount: request.amount.toString(),
    currency: request.currency,
    reason: request.reason,
  });
}
