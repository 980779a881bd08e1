import { type EntityAddress, entityAddress } from '../runtime/entity-address.js';
import type { CardSummary } from './card.js';
import type { Currency } from './money.js';
import type { FailureReason } from './order.js';
import type { BankId } from './validator.js';

/**
 * What a Merchant and the Executor of its bank say to each other, and nothing else: the Merchant
 * sends `ExecuteOrder` at least once, and the Executor confirms a redelivered one
 * (`ConfirmExecuteOrder`); the Executor sends the bank's outcome (`ProcessExecutionResult`) at
 * least once, and the Merchant confirms it (`ConfirmResult`). Each entity's other commands — a
 * client's orders, the Executor's bank answers and timers — are its own (`merchant-protocol.ts`,
 * `executor-protocol.ts`).
 *
 * The reply addresses carried here are typed by what the receiver accepts from the other side, so
 * this module depends on neither entity, and neither entity's protocol on the other's.
 */

/** The entity type names the two address each other by (`merchant-<id>`, `executor-<bank>`). */
export const merchantTypeName = 'merchant';
export const executorTypeName = 'executor';
/** The entity holding an executed order's refunds (`payment-<order id>`). */
export const paymentTypeName = 'payment';

/** What the bank's answer came to for one order. */
export type ExecutionOutcome =
  | { readonly kind: 'executed'; readonly authorizationCode: string }
  | { readonly kind: 'declined'; readonly reason: string }
  | { readonly kind: 'failed'; readonly reason: FailureReason };

/** Merchant → Executor: execute this validated order at the bank, before `deadlineAt`. */
export type ExecuteOrder = {
  readonly type: 'ExecuteOrder';
  readonly orderId: string;
  readonly merchantId: string;
  readonly amount: bigint;
  readonly currency: Currency;
  readonly card: CardSummary;
  readonly deadlineAt: number;
  readonly merchant: EntityAddress<MerchantInbox>;
};

/** Executor → Merchant: the Executor holds this order already; stop redelivering it. */
export type ConfirmExecuteOrder = { readonly type: 'ConfirmExecuteOrder'; readonly orderId: string };

/** Executor → Merchant: the order's outcome at the bank, recorded at `at`. */
export type ProcessExecutionResult = {
  readonly type: 'ProcessExecutionResult';
  readonly orderId: string;
  readonly outcome: ExecutionOutcome;
  readonly at: number;
  readonly executor: EntityAddress<ExecutorInbox>;
};

/** Merchant → Executor: the result is recorded; stop redelivering it and forget the execution. */
export type ConfirmResult = { readonly type: 'ConfirmResult'; readonly orderId: string };

/** What a refund came to at the bank: given back, or failed (nothing moved) with a stable code. */
export type RefundOutcome =
  | { readonly kind: 'succeeded' }
  | { readonly kind: 'failed'; readonly reason: string };

/**
 * Payment → Executor: give back `amount` of the executed order `orderId` at the bank, with the
 * refund id as the bank's reference. Delivered at least once; the Executor records it before it
 * calls the bank, and confirms it (`ConfirmExecuteRefund`).
 */
export type ExecuteRefund = {
  readonly type: 'ExecuteRefund';
  readonly refundId: string;
  readonly orderId: string;
  readonly merchantId: string;
  readonly amount: bigint;
  readonly currency: Currency;
  /** When the refund was requested (persisted by the Payment, sent on every delivery). */
  readonly requestedAt: number;
  readonly payment: EntityAddress<PaymentInbox>;
};

/** Executor → Payment: the Executor holds this refund already; stop redelivering it. */
export type ConfirmExecuteRefund = { readonly type: 'ConfirmExecuteRefund'; readonly refundId: string };

/** Executor → Payment: the refund's outcome at the bank, recorded at `at`. Delivered at least once. */
export type ProcessRefundResult = {
  readonly type: 'ProcessRefundResult';
  readonly refundId: string;
  readonly outcome: RefundOutcome;
  readonly at: number;
  readonly executor: EntityAddress<ExecutorRefundInbox>;
};

/** Payment → Executor: the refund's result is recorded; stop redelivering it and forget the refund. */
export type ConfirmRefundResult = { readonly type: 'ConfirmRefundResult'; readonly refundId: string };

/** What a Merchant accepts from an Executor. */
export type MerchantInbox = ConfirmExecuteOrder | ProcessExecutionResult;

/** What a Payment accepts from an Executor. */
export type PaymentInbox = ConfirmExecuteRefund | ProcessRefundResult;

/** What an Executor accepts from a Merchant. */
export type ExecutorInbox = ExecuteOrder | ConfirmResult;

/** What an Executor accepts from a Payment. */
export type ExecutorRefundInbox = ExecuteRefund | ConfirmRefundResult;

export function merchantInbox(merchantId: string): EntityAddress<MerchantInbox> {
  return entityAddress<MerchantInbox>(merchantTypeName, merchantId);
}

export function paymentInbox(orderId: string): EntityAddress<PaymentInbox> {
  return entityAddress<PaymentInbox>(paymentTypeName, orderId);
}

export function executorInbox(bank: BankId): EntityAddress<ExecutorInbox> {
  return entityAddress<ExecutorInbox>(executorTypeName, bank);
}
