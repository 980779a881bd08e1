import { type EntityAddress, entityAddress } from '../runtime/entity-address.js';
import type { Currency } from './money.js';
import {
  type ExecutionOutcome,
  type ExecutorInbox,
  type ExecutorRefundInbox,
  executorTypeName,
  type RefundOutcome,
} from './protocol.js';
import type { BankId } from './validator.js';

/**
 * Messages the Executor accepts, and the bank it talks to. `ExecuteOrder` and `ConfirmResult` come
 * from Merchants, `ExecuteRefund` and `ConfirmRefundResult` from Payments (`protocol.ts`); the
 * others are the Executor's own bank calls reporting back and its retry timers — the bank is called outside the actor, and what it said comes back in as a
 * command, so it is decided and persisted like any other.
 */
export type ExecutorCommand =
  | ExecutorInbox
  | ExecutorRefundInbox
  /** Record what the bank's answer came to (from an authorization, an inquiry or a cancellation). */
  | {
      readonly type: 'RecordBankOutcome';
      readonly orderId: string;
      readonly outcome: ExecutionOutcome;
      readonly at: number;
    }
  /** A bank call settled nothing (see `BankErrorKind`): try the order again after a backoff. */
  | { readonly type: 'RetryExecutionLater'; readonly orderId: string; readonly reason: BankErrorKind }
  /** The backoff is over: make the next bank call for the order. */
  | { readonly type: 'RetryExecution'; readonly orderId: string }
  /** Record what a refund came to at the bank (from a refund or an inquiry, or a refusal's code). */
  | {
      readonly type: 'RecordRefundOutcome';
      readonly refundId: string;
      readonly outcome: RefundOutcome;
      readonly at: number;
    }
  /** A refund's bank call settled nothing: try it again after a backoff. */
  | { readonly type: 'RetryRefundLater'; readonly refundId: string; readonly reason: BankErrorKind }
  /** The backoff is over: make the next bank call for the refund. */
  | { readonly type: 'RetryRefund'; readonly refundId: string };

export function executorAddress(bank: BankId): EntityAddress<ExecutorCommand> {
  return entityAddress<ExecutorCommand>(executorTypeName, bank);
}

/** A card as the bank needs it: only ever in memory, only on the way to the bank. */
export interface CardDetails {
  readonly number: string;
  readonly expMonth: number;
  readonly expYear: number;
}

export interface PaymentRequest {
  readonly reference: string;
  readonly merchantId: string;
  readonly amount: bigint;
  readonly currency: Currency;
  readonly card: CardDetails;
}

export type BankAnswer =
  | { readonly kind: 'approved'; readonly reference: string; readonly authorizationCode: string }
  | { readonly kind: 'declined'; readonly reference: string; readonly declineReason: string };

export type BankResolution = BankAnswer | { readonly kind: 'cancelled'; readonly reference: string };

/**
 * A refund as the bank takes it: `reference` is the refund's id (the bank deduplicates by it, so
 * one refund is given back at most once), `paymentReference` the order id of an approved payment.
 */
export interface RefundRequest {
  readonly reference: string;
  readonly paymentReference: string;
  /** The payment's merchant: a cluster node sends a refund only while it owns the Executor of its bank. */
  readonly merchantId: string;
  readonly amount: bigint;
  readonly currency: Currency;
}

/** What a refund came to at the bank: given back, or failed (nothing moved) with the bank's reason. */
export type RefundAnswer =
  | { readonly kind: 'succeeded'; readonly reference: string }
  | { readonly kind: 'failed'; readonly reference: string; readonly failureReason: string };

/**
 * What the Executor needs from an acquiring bank. Errors thrown are classified by
 * `classifyBankError`: retryable (nothing happened), unknown outcome (it may have been charged:
 * resolve by inquiry, never by a blind resend) or refused (terminal).
 */
export interface BankPort {
  authorize(request: PaymentRequest): Promise<BankAnswer>;
  /**
   * The bank's record of a reference (`cancelled` included: a cancel may have succeeded just
   * before a crash), or not_found if it never saw it.
   */
  inquire(
    reference: string,
  ): Promise<BankResolution | { readonly kind: 'not_found'; readonly reference: string }>;
  /**
   * Settles a reference for good: if it was never charged, it never will be (`cancelled`, and
   * later authorizations of it are refused); if it was, the bank's answer is returned instead.
   */
  cancel(reference: string): Promise<BankResolution>;
  /**
   * Gives back part or all of an approved payment, once per refund reference: the same reference
   * again gets the first answer. Refused (terminal) when it would take the payment's refunds above
   * its amount, when the payment is not approved or in another currency, or when the reference is
   * already a refund with another body. An unknown outcome is settled by `inquireRefund`, never
   * by sending it again.
   */
  refund(request: RefundRequest): Promise<RefundAnswer>;
  /** The bank's answer for a refund reference, or not_found if it never saw it (nothing moved). */
  inquireRefund(
    reference: string,
  ): Promise<RefundAnswer | { readonly kind: 'not_found'; readonly reference: string }>;
}

export type BankErrorKind = 'retryable' | 'unknown_outcome' | 'refused';

/**
 * Reads a token's card number from the vault; undefined if the vault has no such card. Only the
 * number is secret; the expiry travels with the order's card summary.
 */
export interface CardReader {
  reveal(token: string): Promise<string | undefined>;
}
