import { defaultRedeliveryBackoff } from '../delivery/at-least-once.js';
import type { EntityDefinition } from '../persistence/entity.js';
import type { BackoffSettings } from '../runtime/backoff.js';
import { BankCalls, type ExecutorServices } from './bank-calls.js';
import {
  confirmDelivery,
  decideExecutor,
  type ExecutorDeciderSettings,
  type ExecutorState,
  evolveExecutor,
  initialExecutorState,
} from './executor-decider.js';
import { type ExecutorEvent, executorEvents, executorSnapshotCodec } from './executor-events.js';
import type { ExecutorCommand } from './executor-protocol.js';
import { executorTypeName } from './protocol.js';
import { RefundCalls } from './refund-calls.js';

/**
 * The Executor entity, one per acquiring bank (`executor-<bank>`): an idempotent receiver of
 * `ExecuteOrder` and of `ExecuteRefund`. It records each order id durably before calling the bank (the id is committed
 * with the event, so a redelivered order is confirmed again but never executed again), calls the
 * bank with the order id as the transaction reference, persists the bank's answer, and delivers
 * the result back to the Merchant at least once.
 *
 * The bank is never called blindly twice for an order whose outcome is unknown: after a timeout,
 * and after every restart, the first call for a pending order is a status inquiry. Past the
 * order's deadline the Executor asks the bank to cancel the reference, which settles it for good:
 * `failed` is recorded only when the bank confirms nothing was, or ever will be, charged.
 *
 * Refunds take the same path (`refund-calls.ts`): the refund id is committed with
 * `RefundExecutionRequested` and acknowledged to the Payment before the bank is called with the
 * refund id as its reference; an unknown outcome is settled by an inquiry; the outcome is persisted
 * and delivered to the Payment at least once until it confirms it.
 *
 * Its memory does not grow with history: an execution leaves the state once the Merchant confirmed
 * its result (`ResultConfirmed`), a refund once its Payment did (`RefundResultConfirmed`), so the
 * state holds only executions and refunds in flight (at most `executionsInFlightMax` and
 * `refundsInFlightMax`). Which orders were executed is the store's processed-message records,
 * kept for `deduplicationRetentionMs`; only the latest `deduplicationRecentIdsMax` ids are also
 * kept in memory. Snapshots of the state are as small as the state.
 *
 * This file wires the entity together and holds its settings; its commands and the bank's port are
 * in `executor-protocol.ts`, its events and snapshot codec in `executor-events.ts`, its decisions in
 * `executor-decider.ts`, its bank calls in `bank-calls.ts`.
 */

export interface ExecutorSettings extends ExecutorDeciderSettings {
  /** Backoff between attempts for one order (bank unavailable, or its answer lost). */
  readonly retryBackoff: BackoffSettings;
  readonly redeliverIntervalMs: number;
  readonly redeliveryBackoff: BackoffSettings;
  /** How long executed order ids are remembered, so a late duplicate is never executed again. */
  readonly deduplicationRetentionMs: number;
  readonly deduplicationCleanupIntervalMs: number;
  /** Executed order ids also kept in memory, so hot redeliveries need no store lookup; the store keeps them all. */
  readonly deduplicationRecentIdsMax: number;
  /** A snapshot every this many events: recovery replays at most this many after the latest one. */
  readonly snapshotEveryEvents: number;
}

export const defaultExecutorSettings: ExecutorSettings = {
  executionsInFlightMax: 20_000,
  refundsInFlightMax: 2_000,
  retryBackoff: { minBackoffMs: 200, maxBackoffMs: 10_000, randomFactor: 0.2 },
  redeliverIntervalMs: 1_000,
  redeliveryBackoff: defaultRedeliveryBackoff,
  deduplicationRetentionMs: 30 * 24 * 3_600_000,
  deduplicationCleanupIntervalMs: 3_600_000,
  deduplicationRecentIdsMax: 10_000,
  snapshotEveryEvents: 20_000,
};

export function executorDefinition(
  services: ExecutorServices,
  settings: ExecutorSettings = defaultExecutorSettings,
): EntityDefinition<ExecutorState, ExecutorCommand, ExecutorEvent> {
  const calls = new BankCalls(services, settings.retryBackoff);
  const refundCalls = new RefundCalls(services, settings.retryBackoff);
  return {
    typeName: executorTypeName,
    initialState: initialExecutorState,
    decide: (state, command) => decideExecutor(state, command, settings, calls, refundCalls),
    evolve: evolveExecutor,
    events: executorEvents,
    snapshot: { codec: executorSnapshotCodec, everyEvents: settings.snapshotEveryEvents },
    onRecoveryCompleted: (state, context) => {
      calls.recovered(state, context);
      refundCalls.recovered(state, context);
    },
    // Executions and refunds without an outcome have bank calls under way or due: their answers need a live entity.
    busy: (state) => state.executions.size > 0 || state.refunds.size > 0,
    delivery: {
      outboxOf: (state) => state.outbox,
      redeliverIntervalMs: settings.redeliverIntervalMs,
      backoff: settings.redeliveryBackoff,
      redeliveryBurstMax: 1_000,
    },
    deduplication: {
      messageIdOf: (command) =>
        command.type === 'ExecuteOrder'
          ? command.orderId
          : command.type === 'ExecuteRefund'
            ? command.refundId
            : undefined,
      // The order's deadline: the Merchant fixed it when it accepted the order, persisted it, and
      // sends it on every delivery. Orders accepted together have deadlines together, so their
      // records share pages where order ids (hashes) alone would scatter them. A refund's time is
      // when it was requested, fixed and persisted by its Payment likewise.
      messageTimeOf: (command) =>
        command.type === 'ExecuteOrder'
          ? command.deadlineAt
          : command.type === 'ExecuteRefund'
            ? command.requestedAt
            : 0,
      onDuplicate: (_state, command) => confirmDelivery(command),
      retentionMs: settings.deduplicationRetentionMs,
      cleanupIntervalMs: settings.deduplicationCleanupIntervalMs,
      recentIdsCapacity: settings.deduplicationRecentIdsMax,
    },
  };
}
