import { Map as ImmutableMap } from 'immutable';
import { z } from 'zod';
import { emptyOutbox, type Outbox, outboxWith } from '../delivery/outbox.js';
import { EventRegistry, eventSchema, toJsonData, type VersionedCodec } from '../persistence/serialization.js';
import type { CardSummary } from './card.js';
import {
  type Execution,
  type ExecutorResult,
  type ExecutorState,
  type RefundExecution,
  refundResultEntry,
  resultEntry,
} from './executor-decider.js';
import type { Currency } from './money.js';
import { type ExecutionOutcome, merchantInbox, paymentInbox, type RefundOutcome } from './protocol.js';
import {
  cardSummarySchema,
  currency,
  executionOutcomeSchema,
  identifier,
  minorUnits,
  orderId,
  timestamp,
} from './schemas.js';

/**
 * What an Executor records: its events, their schemas (the JSON they are written as, which existing
 * journals hold and must stay readable), and the codec of its snapshots. `executor-decider.ts`
 * decides the events and folds them into the state.
 */

export type ExecutorEvent =
  | {
      readonly type: 'ExecutionRequested';
      readonly orderId: string;
      readonly merchantId: string;
      readonly amount: bigint;
      readonly currency: Currency;
      readonly card: CardSummary;
      readonly deadlineAt: number;
    }
  | {
      readonly type: 'ExecutionSettled';
      readonly orderId: string;
      readonly outcome: ExecutionOutcome;
      readonly at: number;
    }
  | { readonly type: 'ResultConfirmed'; readonly orderId: string }
  /** A refund received from its Payment; committed with its id before the bank is called. */
  | {
      readonly type: 'RefundExecutionRequested';
      readonly refundId: string;
      readonly orderId: string;
      readonly merchantId: string;
      readonly amount: bigint;
      readonly currency: Currency;
      readonly requestedAt: number;
    }
  | {
      readonly type: 'RefundExecutionSettled';
      readonly refundId: string;
      readonly orderId: string;
      readonly outcome: RefundOutcome;
      readonly at: number;
    }
  | { readonly type: 'RefundResultConfirmed'; readonly refundId: string; readonly orderId: string };

/** Whether an Executor event is a refund's (the others are an order execution's). */
export function isRefundExecutionEvent(
  event: ExecutorEvent,
): event is Extract<
  ExecutorEvent,
  { type: 'RefundExecutionRequested' | 'RefundExecutionSettled' | 'RefundResultConfirmed' }
> {
  return (
    event.type === 'RefundExecutionRequested' ||
    event.type === 'RefundExecutionSettled' ||
    event.type === 'RefundResultConfirmed'
  );
}

/** What an execution is asked to do: `ExecutionRequested` carries it, a snapshot keeps it. */
const requestedExecutionFields = {
  orderId,
  merchantId: identifier,
  amount: minorUnits,
  currency,
  card: cardSummarySchema,
  deadlineAt: timestamp,
};

/** What a refund is asked to do: `RefundExecutionRequested` carries it, a snapshot keeps it. */
const requestedRefundFields = {
  refundId: identifier,
  orderId,
  merchantId: identifier,
  amount: minorUnits,
  currency,
  requestedAt: timestamp,
};

const refundOutcomeSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('succeeded') }).strict(),
  z.object({ kind: z.literal('failed'), reason: z.string().min(1) }).strict(),
]);

export const executorEvents = new EventRegistry<ExecutorEvent>([
  eventSchema(
    'ExecutionRequested',
    z.object({ type: z.literal('ExecutionRequested'), ...requestedExecutionFields }).strict(),
  ),
  eventSchema(
    'ExecutionSettled',
    z
      .object({
        type: z.literal('ExecutionSettled'),
        orderId,
        outcome: executionOutcomeSchema,
        at: timestamp,
      })
      .strict(),
  ),
  eventSchema('ResultConfirmed', z.object({ type: z.literal('ResultConfirmed'), orderId }).strict()),
  eventSchema(
    'RefundExecutionRequested',
    z.object({ type: z.literal('RefundExecutionRequested'), ...requestedRefundFields }).strict(),
  ),
  eventSchema(
    'RefundExecutionSettled',
    z
      .object({
        type: z.literal('RefundExecutionSettled'),
        refundId: identifier,
        orderId,
        outcome: refundOutcomeSchema,
        at: timestamp,
      })
      .strict(),
  ),
  eventSchema(
    'RefundResultConfirmed',
    z.object({ type: z.literal('RefundResultConfirmed'), refundId: identifier, orderId }).strict(),
  ),
]);

// ---- snapshot -------------------------------------------------------------------------------

const executorSnapshotSchema = z
  .object({
    bank: identifier,
    executions: z.array(
      z
        .object({
          ...requestedExecutionFields,
          outcome: executionOutcomeSchema.optional(),
          settledAt: timestamp.optional(),
        })
        .strict(),
    ),
    refunds: z.array(
      z
        .object({
          ...requestedRefundFields,
          outcome: refundOutcomeSchema.optional(),
          settledAt: timestamp.optional(),
        })
        .strict(),
    ),
  })
  .strict();

/**
 * The snapshot of an Executor (version 2): its executions and refunds in flight. The outbox is not
 * stored: it is exactly the executions and refunds with an outcome, and is rebuilt from them.
 * Version 1 held no refunds (`upcasters[1]` adds none).
 */
export const executorSnapshotCodec: VersionedCodec<ExecutorState> = {
  version: 2,
  upcasters: {
    1: (json) => {
      if (typeof json !== 'object' || json === null) throw new Error('executor snapshot is not an object');
      return { ...json, refunds: [] };
    },
  },
  encode: (state) => ({
    bank: state.bank,
    executions: [...state.executions.values()].map((execution) =>
      toJsonData({ ...execution, merchant: undefined }),
    ),
    refunds: [...state.refunds.values()].map((refund) => toJsonData({ ...refund, payment: undefined })),
  }),
  decode: (json) => {
    const data = executorSnapshotSchema.parse(json);
    let executions = ImmutableMap<string, Execution>();
    let refunds = ImmutableMap<string, RefundExecution>();
    let outbox: Outbox<ExecutorResult> = emptyOutbox;
    for (const stored of data.executions) {
      const execution: Execution = {
        orderId: stored.orderId,
        merchantId: stored.merchantId,
        merchant: merchantInbox(stored.merchantId),
        amount: stored.amount,
        currency: stored.currency,
        card: stored.card,
        deadlineAt: stored.deadlineAt,
        outcome: stored.outcome,
        settledAt: stored.settledAt,
      };
      executions = executions.set(execution.orderId, execution);
      if (execution.outcome === undefined) continue;
      if (execution.settledAt === undefined)
        throw new Error(`execution ${execution.orderId} has no settledAt`);
      outbox = outboxWith(outbox, resultEntry(data.bank, execution, execution.outcome, execution.settledAt));
    }
    for (const stored of data.refunds) {
      const refund: RefundExecution = {
        refundId: stored.refundId,
        orderId: stored.orderId,
        merchantId: stored.merchantId,
        payment: paymentInbox(stored.orderId),
        amount: stored.amount,
        currency: stored.currency,
        requestedAt: stored.requestedAt,
        outcome: stored.outcome,
        settledAt: stored.settledAt,
      };
      refunds = refunds.set(refund.refundId, refund);
      if (refund.outcome === undefined) continue;
      if (refund.settledAt === undefined) throw new Error(`refund ${refund.refundId} has no settledAt`);
      outbox = outboxWith(outbox, refundResultEntry(data.bank, refund, refund.outcome, refund.settledAt));
    }
    return { bank: data.bank, executions, refunds, outbox };
  },
};
