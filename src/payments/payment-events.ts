import { z } from 'zod';
import { EventRegistry, eventSchema } from '../persistence/serialization.js';
import type { Currency } from './money.js';
import { currency, identifier, minorUnits, orderId, timestamp } from './schemas.js';
import type { BankId } from './validator.js';

/**
 * What a Payment (`payment-<order id>`) records. Each `RefundRequested` repeats the order's fixed
 * facts (amount, currency, bank), so any one of them is enough to know the payment. The read
 * model projects these events into refunds and the order's `amountRefunded`; webhooks derive
 * `refund.succeeded` and `refund.failed` from them.
 */
export type PaymentEvent =
  | {
      readonly type: 'RefundRequested';
      readonly refundId: string;
      readonly orderId: string;
      readonly merchantId: string;
      readonly idempotencyKey: string;
      readonly requestHash: string;
      readonly amount: bigint;
      readonly currency: Currency;
      readonly reason: string | undefined;
      /** The order's charged amount and its bank. */
      readonly paymentAmount: bigint;
      readonly bank: BankId;
      readonly at: number;
    }
  /** The Executor holds the refund: stop redelivering `ExecuteRefund`. */
  | { readonly type: 'ExecuteRefundConfirmed'; readonly refundId: string }
  | { readonly type: 'RefundSucceeded'; readonly refundId: string; readonly at: number }
  | {
      readonly type: 'RefundFailed';
      readonly refundId: string;
      /** A stable code: the bank's decline (`refund_declined`) or the code of its refusal. */
      readonly reason: string;
      readonly at: number;
    };

export const paymentEvents = new EventRegistry<PaymentEvent>([
  eventSchema(
    'RefundRequested',
    z
      .object({
        type: z.literal('RefundRequested'),
        refundId: identifier,
        orderId,
        merchantId: identifier,
        idempotencyKey: identifier,
        requestHash: identifier,
        amount: minorUnits,
        currency,
        reason: z.string().optional(),
        paymentAmount: minorUnits,
        bank: identifier,
        at: timestamp,
      })
      .strict()
      .transform((event) => ({ ...event, reason: event.reason })),
  ),
  eventSchema(
    'ExecuteRefundConfirmed',
    z.object({ type: z.literal('ExecuteRefundConfirmed'), refundId: identifier }).strict(),
  ),
  eventSchema(
    'RefundSucceeded',
    z.object({ type: z.literal('RefundSucceeded'), refundId: identifier, at: timestamp }).strict(),
  ),
  eventSchema(
    'RefundFailed',
    z
      .object({
        type: z.literal('RefundFailed'),
        refundId: identifier,
        reason: z.string().min(1),
        at: timestamp,
      })
      .strict(),
  ),
]);
