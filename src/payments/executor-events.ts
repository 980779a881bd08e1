import { Map as ImmutableMap } from 'immutable';
import { z } from 'zod';
import { emptyOutbox, type Outbox, outboxWith } from '../delivery/outbox.js';
import { EventRegistry, eventSchema, toJsonData, type VersionedCodec } from '../persistence/serialization.js';
import type { CardSummary } from './card.js';
import { type Execution, type ExecutorState, resultEntry } from './executor-decider.js';
import type { Currency } from './money.js';
import { type ExecutionOutcome, merchantInbox, type ProcessExecutionResult } from './protocol.js';
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
  | { readonly type: 'ResultConfirmed'; readonly orderId: string };

/** What an execution is asked to do: `ExecutionRequested` carries it, a snapshot keeps it. */
const requestedExecutionFields = {
  orderId,
  merchantId: identifier,
  amount: minorUnits,
  currency,
  card: cardSummarySchema,
  deadlineAt: timestamp,
};

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
  })
  .strict();

/**
 * The snapshot of an Executor (version 1): its executions in flight. The outbox is not stored: it
 * is exactly the executions with an outcome, and is rebuilt from them.
 */
export const executorSnapshotCodec: VersionedCodec<ExecutorState> = {
  version: 1,
  encode: (state) => ({
    bank: state.bank,
    executions: [...state.executions.values()].map((execution) =>
      toJsonData({ ...execution, merchant: undefined }),
    ),
  }),
  decode: (json) => {
    const data = executorSnapshotSchema.parse(json);
    let executions = ImmutableMap<string, Execution>();
    let outbox: Outbox<ProcessExecutionResult> = emptyOutbox;
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
    return { bank: data.bank, executions, outbox };
  },
};
