import type { Refund } from '../payments/refund.js';
import type { OrderView } from './order-service.js';

/**
 * Orders and refunds as clients see them: what the API answers and what a webhook's `data` holds,
 * rendered by one function each so the two never differ. Amounts are integers of minor units,
 * times ISO 8601, absent values null.
 */
export function orderJson(order: OrderView) {
  return {
    id: order.id,
    status: order.status,
    amount: Number(order.amount),
    currency: order.currency,
    card: order.card,
    bank: order.bank ?? null,
    reference: order.reference ?? null,
    description: order.description ?? null,
    reason: order.reason ?? null,
    amountRefunded: Number(order.amountRefunded),
    createdAt: new Date(order.createdAt).toISOString(),
    updatedAt: new Date(order.updatedAt).toISOString(),
  };
}

export function refundJson(refund: Refund) {
  return {
    id: refund.id,
    orderId: refund.orderId,
    status: refund.status,
    amount: Number(refund.amount),
    currency: refund.currency,
    reason: refund.reason ?? null,
    failureReason: refund.failureReason ?? null,
    createdAt: new Date(refund.createdAt).toISOString(),
    updatedAt: new Date(refund.updatedAt).toISOString(),
  };
}
