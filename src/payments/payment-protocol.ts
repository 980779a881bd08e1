import type { ActorRef } from '../runtime/actor.js';
import { type EntityAddress, entityAddress } from '../runtime/entity-address.js';
import type { Currency } from './money.js';
import { type PaymentInbox, paymentTypeName } from './protocol.js';
import type { Refund } from './refund.js';
import type { BankId } from './validator.js';

/**
 * What a Payment is asked, and what it answers. A Payment (`payment-<order id>`) is an executed
 * order's refunds: it checks each new refund against what remains of the order (counting refunds
 * still pending), persists it before anything is sent, delivers it at least once to the Executor
 * of the order's bank, and records the bank's outcome. Its events are in `payment-events.ts`.
 */

/** What a Payment must know of its order: facts fixed once the order was executed. */
export interface PaymentFacts {
  readonly orderId: string;
  readonly merchantId: string;
  /** The charged amount, in minor units. */
  readonly amount: bigint;
  readonly currency: Currency;
  /** The acquiring bank that charged it: its Executor sends the refunds. */
  readonly bank: BankId;
}

export interface NewRefund {
  readonly refundId: string;
  readonly idempotencyKey: string;
  readonly requestHash: string;
  readonly amount: bigint;
  readonly reason: string | undefined;
  /** When the gateway received the request. */
  readonly receivedAt: number;
}

export type PaymentCommand =
  | {
      readonly type: 'RequestRefund';
      readonly refund: NewRefund;
      /** Read by the caller from the executed order; the Payment's first refund records them. */
      readonly payment: PaymentFacts;
      readonly replyTo: ActorRef<RequestRefundReply>;
    }
  | { readonly type: 'GetRefunds'; readonly replyTo: ActorRef<GetRefundsReply> }
  | PaymentInbox;

export type RequestRefundReply =
  /** Persisted as `pending`; the bank is called from here on. */
  | { readonly type: 'RefundAccepted'; readonly refund: Refund }
  /** The refund id is known (a retry): `sameRequest` tells a replay from a key reused with another body. */
  | { readonly type: 'RefundExists'; readonly refund: Refund; readonly sameRequest: boolean }
  /** It would take the refunds (pending ones counted) above the order's amount; nothing recorded. */
  | { readonly type: 'RefundExceedsPayment'; readonly amountRefundable: bigint }
  /** The order has `refundsPerOrderMax` refunds already, or too many pending; nothing recorded. */
  | { readonly type: 'PaymentBusy' };

/** Every refund of the order, oldest first. */
export type GetRefundsReply = { readonly type: 'Refunds'; readonly refunds: readonly Refund[] };

export function paymentAddress(orderId: string): EntityAddress<PaymentCommand> {
  return entityAddress<PaymentCommand>(paymentTypeName, orderId);
}
