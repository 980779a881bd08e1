import type { Currency } from '../payments/money.js';
import type { Refund } from '../payments/refund.js';

/** A refund request as the API parsed it: `amount` in minor units (> 0), `currency` if the client gave one. */
export interface RefundRequest {
  readonly amount: bigint;
  readonly currency: Currency | undefined;
  readonly reason: string | undefined;
}

export interface RequestedRefund {
  readonly refund: Refund;
  /** True when the key was seen with the same body before: the API answers 200 with `Idempotent-Replayed: true`. */
  readonly replayed: boolean;
}

/**
 * What the API asks of refunds. Errors are `ApiError`s with stable codes:
 * 404 `order_not_found`; 409 `order_not_refundable` (not executed); 422 `refund_currency_mismatch`,
 * `refund_exceeds_payment` (counting pending refunds), `idempotency_key_reused`; 409
 * `too_many_refunds`; 503 `gateway_busy` / `merchant_unavailable` / `order_not_yet_visible` (the order
 * finished but the read model does not show it yet) with `Retry-After`.
 */
export interface RefundOperations {
  requestRefund(
    merchantId: string,
    orderId: string,
    request: RefundRequest,
    idempotencyKey: string,
  ): Promise<RequestedRefund>;
  /** Undefined when the merchant has no such refund. */
  getRefund(merchantId: string, refundId: string): Promise<Refund | undefined>;
  /** The order's refunds, oldest first; undefined when the merchant has no such order. */
  listRefunds(merchantId: string, orderId: string): Promise<readonly Refund[] | undefined>;
}
