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

/** What a Merchant accepts from an Executor. */
export type MerchantInbox = ConfirmExecuteOrder | ProcessExecutionResult;

/** What an Executor accepts from a Merchant. */
export type ExecutorInbox = ExecuteOrder | ConfirmResult;

export function merchantInbox(merchantId: string): EntityAddress<MerchantInbox> {
  return entityAddress<MerchantInbox>(merchantTypeName, merchantId);
}

export function executorInbox(bank: BankId): EntityAddress<ExecutorInbox> {
  return entityAddress<ExecutorInbox>(executorTypeName, bank);
}
