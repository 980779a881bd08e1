import { Map as ImmutableMap } from 'immutable';
import { z } from 'zod';
import { defaultRedeliveryBackoff } from '../delivery/at-least-once.js';
import { emptyOutbox, type Outbox, type OutboxEntry, outboxWith, outboxWithout } from '../delivery/outbox.js';
import { effectsFor } from '../persistence/effect.js';
import {
  type EntityAddress,
  type EntityContext,
  type EntityDefinition,
  entityAddress,
} from '../persistence/entity.js';
import { EventRegistry, eventSchema, toJsonData, type VersionedCodec } from '../persistence/serialization.js';
import { type BackoffSettings, backoffDelayMs } from '../runtime/backoff.js';
import type { CardSummary } from './card.js';
import type {
  BankErrorKind,
  BankPort,
  BankResolution,
  CardReader,
  ExecuteOrder,
  ExecutorCommand,
} from './executor-protocol.js';
import { cardSummarySchema, type ExecutionOutcome, type MerchantCommand } from './merchant.js';
import { type Currency, isCurrency } from './money.js';
import type { FailureReason } from './order.js';
import type { BankId } from './validator.js';

/**
 * The Executor entity, one per acquiring bank (`executor-<bank>`): an idempotent receiver of
 * `ExecuteOrder`. It records each order id durably before calling the bank (the id is committed
 * with the event, so a redelivered order is confirmed again but never executed again), calls the
 * bank with the order id as the transaction reference, persists the bank's answer, and delivers
 * the result back to the Merchant at least once.
 *
 * The bank is never called blindly twice for an order whose outcome is unknown: after a timeout,
 * and after every restart, the first call for a pending order is a status inquiry. Past the
 * order's deadline the Executor asks the bank to cancel the reference, which settles it for good:
 * `failed` is recorded only when the bank confirms nothing was, or ever will be, charged.
 *
 * Its memory does not grow with history: an execution leaves the state once the Merchant confirmed
 * its result (`ResultConfirmed`), so the state holds only executions in flight (at most
 * `executionsInFlightMax`). Which orders were executed is the store's processed-message records,
 * kept for `deduplicationRetentionMs`; only the latest `deduplicationRecentIdsMax` ids are also
 * kept in memory. Snapshots of the state are as small as the state.
 */

export interface Execution {
  readonly orderId: string;
  readonly merchantId: string;
  readonly merchant: EntityAddress<MerchantCommand>;
  readonly amount: bigint;
  readonly currency: Currency;
  readonly card: CardSummary;
  readonly deadlineAt: number;
  /** Set once the bank's answer is durable; the entry stays until the Merchant confirms the result. */
  readonly outcome: ExecutionOutcome | undefined;
  /** When the outcome was recorded (the time reported to the Merchant); set with `outcome`. */
  readonly settledAt: number | undefined;
}

export type ProcessExecutionResult = Extract<MerchantCommand, { type: 'ProcessExecutionResult' }>;

export interface ExecutorState {
  readonly bank: BankId;
  /** Executions in flight: requested, and not yet confirmed back by the Merchant. */
  readonly executions: ImmutableMap<string, Execution>;
  /** Results not yet confirmed: exactly the executions with an outcome. */
  readonly outbox: Outbox<ProcessExecutionResult>;
}

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

const minorUnits = z
  .string()
  .regex(/^-?\d+$/)
  .transform(BigInt);
const timestamp = z.number().int().nonnegative();
const outcomeSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('executed'), authorizationCode: z.string() }).strict(),
  z.object({ kind: z.literal('declined'), reason: z.string().min(1) }).strict(),
  z
    .object({
      kind: z.literal('failed'),
      reason: z.enum(['bank_unavailable', 'deadline_exceeded', 'card_unavailable', 'bank_refused']),
    })
    .strict(),
]);

/** What an execution is asked to do: `ExecutionRequested` carries it, a snapshot keeps it. */
const requestedExecutionFields = {
  orderId: z.string().min(1),
  merchantId: z.string().min(1),
  amount: minorUnits,
  currency: z.string().refine(isCurrency),
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
        orderId: z.string().min(1),
        outcome: outcomeSchema,
        at: timestamp,
      })
      .strict(),
  ),
  eventSchema(
    'ResultConfirmed',
    z.object({ type: z.literal('ResultConfirmed'), orderId: z.string().min(1) }).strict(),
  ),
]);

export interface ExecutorSettings {
  /** Orders accepted and not yet confirmed back; past it new ones are not confirmed (the Merchant retries). */
  readonly executionsInFlightMax: number;
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
  retryBackoff: { minBackoffMs: 200, maxBackoffMs: 10_000, randomFactor: 0.2 },
  redeliverIntervalMs: 1_000,
  redeliveryBackoff: defaultRedeliveryBackoff,
  deduplicationRetentionMs: 30 * 24 * 3_600_000,
  deduplicationCleanupIntervalMs: 3_600_000,
  deduplicationRecentIdsMax: 10_000,
  snapshotEveryEvents: 20_000,
};

export interface ExecutorServices {
  readonly bank: BankPort;
  readonly cards: CardReader;
  /** Classifies an error thrown by the bank port. */
  classify(error: unknown): BankErrorKind;
}

type Context = EntityContext<ExecutorCommand>;
const effect = effectsFor<ExecutorState, ExecutorCommand, ExecutorEvent>();

/**
 * How the next bank call for a pending order goes. Attempt counters live beside the entity, not in
 * its state: they only pace retries, and a fresh incarnation starts by inquiring anyway.
 */
class BankCalls {
  private readonly attempts = new Map<string, number>();
  /** Orders whose last call may have reached the bank: the next call must be an inquiry. */
  private readonly mustInquire = new Set<string>();
  /** Orders the bank refused outright (e.g. a card it cannot process): settle them by cancelling. */
  private readonly refused = new Set<string>();
  /**
   * Orders with a bank call under way. One call at a time per order, across incarnations: a
   * call started by an incarnation that has since crashed still finishes, and reports to the
   * live one, instead of racing a second call started after the restart.
   */
  private readonly running = new Set<string>();
  /** The live incarnation of each executor entity, to which finished calls report. */
  private readonly live = new Map<string, Context>();

  constructor(
    private readonly services: ExecutorServices,
    private readonly settings: ExecutorSettings,
  ) {}

  /** Every pending order of a fresh incarnation: its earlier call may have reached the bank. */
  recovered(state: ExecutorState, context: Context): void {
    this.live.set(context.entityId, context);
    for (const execution of state.executions.values()) {
      if (execution.outcome !== undefined || this.running.has(execution.orderId)) continue;
      this.mustInquire.add(execution.orderId);
      this.start(execution, context);
    }
  }

  start(execution: Execution, context: Context): void {
    const { orderId } = execution;
    if (this.running.has(orderId)) return;
    this.running.add(orderId);
    void this.call(execution, context)
      .then(
        (outcome) => {
          if (outcome === undefined) return;
          const reportTo = this.live.get(context.entityId) ?? context;
          const at = reportTo.clock.now();
          // The bank's answer is durable in the bank's ledger already, and an inquiry gives it again
          // after any crash here: the Merchant may hear it now, while it is being recorded here
          // (ExecutionSettled), rather than one commit later. The recorded result is then delivered
          // at least once as before; the Merchant takes whichever copy comes first.
          reportTo.messenger.tell(
            execution.merchant,
            resultMessage(execution, outcome, at, reportTo.entityId),
          );
          reportTo.self.tell({ type: 'BankSettled', orderId, outcome, at });
        },
        (error: unknown) => this.failed(orderId, error, this.live.get(context.entityId) ?? context),
      )
      .finally(() => this.running.delete(orderId));
  }

  retryLater(orderId: string, context: Context): void {
    const attempt = this.attempts.get(orderId) ?? 0;
    this.attempts.set(orderId, attempt + 1);
    const delayMs = backoffDelayMs(attempt, this.settings.retryBackoff, context.random);
    context.timers.startSingle(`retry-${orderId}`, { type: 'RetryExecution', orderId }, delayMs);
  }

  settled(orderId: string, context: Context): void {
    this.attempts.delete(orderId);
    this.mustInquire.delete(orderId);
    this.refused.delete(orderId);
    context.timers.cancel(`retry-${orderId}`);
  }

  private failed(orderId: string, error: unknown, context: Context): void {
    const kind = this.services.classify(error);
    // A timeout may have charged the card: never send again without asking first.
    if (kind === 'unknown_outcome') this.mustInquire.add(orderId);
    // Retrying a refusal would be refused again, forever: settle the reference instead.
    if (kind === 'refused') this.refused.add(orderId);
    const reason = error instanceof Error ? error.message : String(error);
    context.log.warn({ orderId, kind, reason }, 'bank call failed; will retry');
    context.self.tell({ type: 'BankAttemptFailed', orderId, reason: kind });
  }

  /** One step towards settling an order; undefined means "nothing settled yet, try again". */
  private async call(execution: Execution, context: Context): Promise<ExecutionOutcome | undefined> {
    const { bank, cards } = this.services;
    const reference = execution.orderId;
    if (this.mustInquire.has(reference)) {
      const known = await bank.inquire(reference);
      this.mustInquire.delete(reference);
      // Cancelled already (we crashed after cancelling): why is lost, but not whether it was charged.
      const cancelledBecause =
        context.clock.now() >= execution.deadlineAt ? 'deadline_exceeded' : 'bank_refused';
      if (known.kind !== 'not_found') return outcomeOf(known, cancelledBecause);
    }
    if (this.refused.has(reference)) return outcomeOf(await bank.cancel(reference), 'bank_refused');
    if (context.clock.now() >= execution.deadlineAt) {
      return outcomeOf(await bank.cancel(reference), 'deadline_exceeded');
    }
    const number = await cards.reveal(execution.card.token);
    if (number === undefined) return outcomeOf(await bank.cancel(reference), 'card_unavailable');
    const card = { number, expMonth: execution.card.expMonth, expYear: execution.card.expYear };
    // From here the bank may charge: if this call fails in an unknown way, the next one inquires.
    this.mustInquire.add(reference);
    const answer = await bank.authorize({
      reference,
      merchantId: execution.merchantId,
      amount: execution.amount,
      currency: execution.currency,
      card,
    });
    this.mustInquire.delete(reference);
    return outcomeOf(answer, 'bank_unavailable');
  }
}

function outcomeOf(resolution: BankResolution, cancelledBecause: FailureReason): ExecutionOutcome {
  switch (resolution.kind) {
    case 'approved':
      return { kind: 'executed', authorizationCode: resolution.authorizationCode };
    case 'declined':
      return { kind: 'declined', reason: resolution.declineReason };
    case 'cancelled':
      return { kind: 'failed', reason: cancelledBecause };
    default:
      return assertNever(resolution);
  }
}

export function decideExecutor(
  state: ExecutorState,
  command: ExecutorCommand,
  settings: ExecutorSettings,
  calls: BankCalls,
): ReturnType<typeof effect.none> {
  switch (command.type) {
    case 'ExecuteOrder': {
      if (state.executions.has(command.orderId)) return confirmDelivery(command);
      // Full: say nothing. The Merchant redelivers later; nothing is lost, only delayed.
      if (state.executions.size >= settings.executionsInFlightMax) return effect.none();
      return (
        effect
          .persist({
            type: 'ExecutionRequested',
            orderId: command.orderId,
            merchantId: command.merchantId,
            amount: command.amount,
            currency: command.currency,
            card: command.card,
            deadlineAt: command.deadlineAt,
          })
          // No confirmation now: the result, a few milliseconds away, ends the delivery at the
          // Merchant anyway. Only an order that takes longer than the Merchant's first redelivery
          // backoff (1 s) comes again, and that duplicate is confirmed (confirmDelivery): one
          // message per order saved on the way of every order, one resend for a slow one.
          .thenRun((after, context) => {
            const execution = after.executions.get(command.orderId);
            if (execution !== undefined) calls.start(execution, context);
          })
      );
    }
    case 'BankSettled': {
      const execution = state.executions.get(command.orderId);
      if (execution === undefined || execution.outcome !== undefined) return effect.none();
      return (
        effect
          .persist({
            type: 'ExecutionSettled',
            orderId: command.orderId,
            outcome: command.outcome,
            at: command.at,
          })
          // No thenDeliver: the Merchant was told when the bank answered. The recorded result stays in
          // the outbox, and redelivery sends it (within redeliverIntervalMs) until it is confirmed.
          .thenRun((_after, context) => calls.settled(command.orderId, context))
      );
    }
    case 'BankAttemptFailed':
      if (state.executions.get(command.orderId)?.outcome !== undefined) return effect.none();
      return effect.none().thenRun((_after, context) => calls.retryLater(command.orderId, context));
    case 'RetryExecution': {
      const execution = state.executions.get(command.orderId);
      if (execution === undefined || execution.outcome !== undefined) return effect.none();
      return effect.none().thenRun((_after, context) => calls.start(execution, context));
    }
    case 'ConfirmResult':
      if (!state.outbox.has(command.orderId)) return effect.none();
      return effect.persist({ type: 'ResultConfirmed', orderId: command.orderId });
    default:
      return assertNever(command);
  }
}

/** The order is (or was) ours: confirm the delivery again, change nothing. */
function confirmDelivery(command: ExecutorCommand): ReturnType<typeof effect.none> {
  if (command.type !== 'ExecuteOrder') return effect.none();
  return effect.none().thenRun((_state, context) => {
    context.messenger.tell(command.merchant, { type: 'ConfirmExecuteOrder', orderId: command.orderId });
  });
}

export function evolveExecutor(state: ExecutorState, event: ExecutorEvent): ExecutorState {
  switch (event.type) {
    case 'ExecutionRequested':
      return {
        ...state,
        executions: state.executions.set(event.orderId, {
          orderId: event.orderId,
          merchantId: event.merchantId,
          merchant: entityAddress<MerchantCommand>('merchant', event.merchantId),
          amount: event.amount,
          currency: event.currency,
          card: event.card,
          deadlineAt: event.deadlineAt,
          outcome: undefined,
          settledAt: undefined,
        }),
      };
    case 'ExecutionSettled': {
      const execution = state.executions.get(event.orderId);
      if (execution === undefined) throw new Error(`ExecutionSettled for unknown order ${event.orderId}`);
      const settled: Execution = { ...execution, outcome: event.outcome, settledAt: event.at };
      return {
        ...state,
        executions: state.executions.set(event.orderId, settled),
        outbox: outboxWith(state.outbox, resultEntry(state.bank, settled, event.outcome, event.at)),
      };
    }
    case 'ResultConfirmed':
      return {
        ...state,
        executions: state.executions.delete(event.orderId),
        outbox: outboxWithout(state.outbox, event.orderId),
      };
    default:
      return assertNever(event);
  }
}

function resultEntry(
  bank: BankId,
  execution: Execution,
  outcome: ExecutionOutcome,
  at: number,
): OutboxEntry<ProcessExecutionResult> {
  return {
    deliveryId: execution.orderId,
    destination: execution.merchant as EntityAddress<ProcessExecutionResult>,
    message: resultMessage(execution, outcome, at, bank),
  };
}

function resultMessage(
  execution: Execution,
  outcome: ExecutionOutcome,
  at: number,
  bank: BankId,
): ProcessExecutionResult {
  return {
    type: 'ProcessExecutionResult',
    orderId: execution.orderId,
    outcome,
    at,
    executor: entityAddress<ExecutorCommand>('executor', bank),
  };
}

// ---- snapshot -------------------------------------------------------------------------------

const executorSnapshotSchema = z
  .object({
    bank: z.string().min(1),
    executions: z.array(
      z
        .object({
          ...requestedExecutionFields,
          outcome: outcomeSchema.optional(),
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
        merchant: entityAddress<MerchantCommand>('merchant', stored.merchantId),
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

// ---- the entity -----------------------------------------------------------------------------

export function executorDefinition(
  services: ExecutorServices,
  settings: ExecutorSettings = defaultExecutorSettings,
): EntityDefinition<ExecutorState, ExecutorCommand, ExecutorEvent> {
  const calls = new BankCalls(services, settings);
  return {
    typeName: 'executor',
    initialState: (bank) => ({ bank, executions: ImmutableMap(), outbox: emptyOutbox }),
    decide: (state, command) => decideExecutor(state, command, settings, calls),
    evolve: evolveExecutor,
    events: executorEvents,
    snapshot: { codec: executorSnapshotCodec, everyEvents: settings.snapshotEveryEvents },
    onRecoveryCompleted: (state, context) => calls.recovered(state, context),
    // Executions without an outcome have bank calls under way or due: their answers need a live entity.
    busy: (state) => state.executions.size > 0,
    delivery: {
      outboxOf: (state) => state.outbox,
      redeliverIntervalMs: settings.redeliverIntervalMs,
      backoff: settings.redeliveryBackoff,
      redeliveryBurstMax: 1_000,
    },
    deduplication: {
      messageIdOf: (command) => (command.type === 'ExecuteOrder' ? command.orderId : undefined),
      // The order's deadline: the Merchant fixed it when it accepted the order, persisted it, and
      // sends it on every delivery. Orders accepted together have deadlines together, so their
      // records share pages where order ids (hashes) alone would scatter them.
      messageTimeOf: (command) => (command.type === 'ExecuteOrder' ? command.deadlineAt : 0),
      onDuplicate: (_state, command) => confirmDelivery(command),
      retentionMs: settings.deduplicationRetentionMs,
      cleanupIntervalMs: settings.deduplicationCleanupIntervalMs,
      recentIdsCapacity: settings.deduplicationRecentIdsMax,
    },
  };
}

export type { ExecuteOrder };

function assertNever(value: never): never {
  throw new Error(`unexpected: ${JSON.stringify(value)}`);
}
