import { Map as ImmutableMap } from 'immutable';
import { z } from 'zod';
import { defaultRedeliveryBackoff } from '../delivery/at-least-once.js';
import {
  emptyOutbox,
  type Outbox,
  type OutboxEntry,
  outboxHasRoom,
  outboxWith,
  outboxWithout,
} from '../delivery/outbox.js';
import { effectsFor } from '../persistence/effect.js';
import { type EntityAddress, type EntityDefinition, entityAddress } from '../persistence/entity.js';
import {
  EventRegistry,
  eventSchema,
  toJsonData,
  toJsonText,
  type VersionedCodec,
} from '../persistence/serialization.js';
import type { ActorRef } from '../runtime/actor.js';
import type { BackoffSettings } from '../runtime/backoff.js';
import type { CardSummary } from './card.js';
import { CardActivity } from './card-activity.js';
import type { ExecuteOrder, ExecutorCommand } from './executor-protocol.js';
import { type Currency, isCurrency } from './money.js';
import { type FailureReason, isTerminal, type Order } from './order.js';
import type { OrderWaiters } from './order-waiters.js';
import {
  type BankId,
  type MerchantConfig,
  type RejectionReason,
  rejectionReasons,
  validateOrder,
} from './validator.js';

/**
 * The Merchant entity (`merchant-<id>`): owns its orders' lifecycle and its clients' idempotency
 * keys. It validates each new order, persists the verdict, delivers `ExecuteOrder` to the bank's
 * Executor at least once, and records the outcome the Executor delivers back.
 *
 * Its memory does not grow with history: its state holds only the orders in flight (at most
 * `ordersInFlightMax`), their unconfirmed deliveries, and the card activity of the velocity window
 * (at most `maxOrdersPerCard` times per card, at most `velocityCardsTrackedMax` cards). A finished
 * order leaves the state with its terminal event: its durable record is the journal and the read
 * model, and idempotency is kept by the order id itself (derived from the key) and by the
 * processed-message records of the store, with their retention window. Snapshots of this state are
 * therefore small, and recovery replays at most `snapshotEveryEvents` events.
 */

// ---- messages -------------------------------------------------------------------------------

export interface NewOrder {
  readonly orderId: string;
  readonly idempotencyKey: string;
  readonly requestHash: string;
  readonly amount: bigint;
  readonly currency: Currency;
  readonly card: CardSummary;
  readonly description: string | undefined;
  readonly reference: string | undefined;
  /** When the gateway received the request: the time the rules are applied at. */
  readonly receivedAt: number;
}

export type ExecutionOutcome =
  | { readonly kind: 'executed'; readonly authorizationCode: string }
  | { readonly kind: 'declined'; readonly reason: string }
  | { readonly kind: 'failed'; readonly reason: FailureReason };

export type MerchantCommand =
  | {
      readonly type: 'ConfigureMerchant';
      readonly config: MerchantConfig;
      readonly replyTo: ActorRef<ConfigureReply>;
    }
  | {
      readonly type: 'ProcessNewOrder';
      readonly order: NewOrder;
      /**
       * Answer a validated order once it has finished (`OrderFinished`) instead of once it is
       * accepted: one round trip instead of `ProcessNewOrder` then `AwaitOrder`. The asker bounds
       * the wait; an order still in flight then is read with `GetOrder`.
       */
      readonly awaitResult?: boolean;
      readonly replyTo: ActorRef<ProcessOrderReply>;
    }
  | { readonly type: 'AwaitOrder'; readonly orderId: string; readonly replyTo: ActorRef<AwaitOrderReply> }
  | { readonly type: 'GetOrder'; readonly orderId: string; readonly replyTo: ActorRef<GetOrderReply> }
  | { readonly type: 'ConfirmExecuteOrder'; readonly orderId: string }
  | {
      readonly type: 'ProcessExecutionResult';
      readonly orderId: string;
      readonly outcome: ExecutionOutcome;
      readonly at: number;
      readonly executor: EntityAddress<ExecutorCommand>;
    };

export type ConfigureReply = { readonly type: 'MerchantConfigured' };

/** An order reached its terminal status: the answer to `AwaitOrder`, or to an awaited `ProcessNewOrder`. */
export type OrderFinished = { readonly type: 'OrderFinished'; readonly order: Order };

export type ProcessOrderReply =
  | { readonly type: 'OrderAccepted'; readonly order: Order }
  | OrderFinished
  /** The same order id is known (a retry): `sameRequest` tells a replay from a key reused with another body. */
  | { readonly type: 'OrderExists'; readonly order: Order; readonly sameRequest: boolean }
  /** Processed long ago: no longer in the Merchant's memory; the read model has it. */
  | { readonly type: 'OrderProcessedEarlier'; readonly orderId: string }
  | { readonly type: 'MerchantBusy' }
  | { readonly type: 'MerchantNotConfigured' };

export type AwaitOrderReply =
  | OrderFinished
  /** Not in flight, and not among this process's recently finished orders: the read model has it, if anyone. */
  | { readonly type: 'OrderNotInMemory'; readonly orderId: string };

/** An order in flight, or one this process saw finish recently; undefined otherwise (ask the read model). */
export type GetOrderReply = { readonly type: 'OrderFound'; readonly order: Order | undefined };

export function merchantAddress(merchantId: string): EntityAddress<MerchantCommand> {
  return entityAddress<MerchantCommand>('merchant', merchantId);
}

export function executorAddress(bank: BankId): EntityAddress<ExecutorCommand> {
  return entityAddress<ExecutorCommand>('executor', bank);
}

// ---- events ---------------------------------------------------------------------------------

export type MerchantEvent =
  | { readonly type: 'MerchantConfigured'; readonly config: MerchantConfig }
  | {
      readonly type: 'OrderCreated';
      readonly orderId: string;
      readonly idempotencyKey: string;
      readonly requestHash: string;
      readonly amount: bigint;
      readonly currency: Currency;
      readonly card: CardSummary;
      readonly description: string | undefined;
      readonly reference: string | undefined;
      readonly at: number;
    }
  | {
      readonly type: 'OrderValidated';
      readonly orderId: string;
      readonly bank: BankId;
      readonly rulesVersion: number;
      readonly deadlineAt: number;
      readonly at: number;
    }
  | {
      readonly type: 'OrderRejected';
      readonly orderId: string;
      readonly reason: RejectionReason;
      readonly rulesVersion: number;
      readonly at: number;
    }
  // Written by earlier versions only (a confirmation is now kept in memory, see ConfirmExecuteOrder);
  // still read, as journals hold it.
  | { readonly type: 'ExecuteOrderConfirmed'; readonly orderId: string }
  | {
      readonly type: 'OrderExecuted';
      readonly orderId: string;
      readonly authorizationCode: string;
      readonly at: number;
    }
  | { readonly type: 'OrderDeclined'; readonly orderId: string; readonly reason: string; readonly at: number }
  | {
      readonly type: 'OrderFailed';
      readonly orderId: string;
      readonly reason: FailureReason;
      readonly at: number;
    };

const minorUnits = z
  .string()
  .regex(/^-?\d+$/)
  .transform(BigInt);
const currency = z.string().refine(isCurrency, 'not a known ISO 4217 currency');
const timestamp = z.number().int().nonnegative();
const orderId = z.string().min(1);
const failureReason = z.enum(['bank_unavailable', 'deadline_exceeded', 'card_unavailable', 'bank_refused']);

export const cardSummarySchema = z
  .object({
    token: z.string().min(1),
    brand: z.enum(['visa', 'mastercard', 'amex', 'discover', 'jcb', 'unknown']),
    bin: z.string().regex(/^\d{6}$/),
    last4: z.string().regex(/^\d{4}$/),
    expMonth: z.number().int().min(1).max(12),
    expYear: z.number().int(),
    luhnValid: z.boolean(),
  })
  .strict();

const merchantConfigSchema = z
  .object({
    bank: z.string().min(1),
    currencies: z.array(z.object({ currency, perOrderLimit: minorUnits }).strict()),
    blockedBins: z.array(z.string()),
    velocity: z
      .object({ maxOrdersPerCard: z.number().int().positive(), windowMs: z.number().int().positive() })
      .strict(),
  })
  .strict();

export const merchantEvents = new EventRegistry<MerchantEvent>([
  eventSchema(
    'MerchantConfigured',
    z.object({ type: z.literal('MerchantConfigured'), config: merchantConfigSchema }).strict(),
  ),
  eventSchema(
    'OrderCreated',
    z
      .object({
        type: z.literal('OrderCreated'),
        orderId,
        idempotencyKey: z.string().min(1),
        requestHash: z.string().min(1),
        amount: minorUnits,
        currency,
        card: cardSummarySchema,
        description: z.string().optional(),
        reference: z.string().optional(),
        at: timestamp,
      })
      .strict()
      .transform((event) => ({ ...event, description: event.description, reference: event.reference })),
  ),
  eventSchema(
    'OrderValidated',
    z
      .object({
        type: z.literal('OrderValidated'),
        orderId,
        bank: z.string().min(1),
        rulesVersion: z.number().int().positive(),
        deadlineAt: timestamp,
        at: timestamp,
      })
      .strict(),
  ),
  eventSchema(
    'OrderRejected',
    z
      .object({
        type: z.literal('OrderRejected'),
        orderId,
        reason: z.enum(rejectionReasons as [RejectionReason, ...RejectionReason[]]),
        rulesVersion: z.number().int().positive(),
        at: timestamp,
      })
      .strict(),
  ),
  eventSchema(
    'ExecuteOrderConfirmed',
    z.object({ type: z.literal('ExecuteOrderConfirmed'), orderId }).strict(),
  ),
  eventSchema(
    'OrderExecuted',
    z
      .object({ type: z.literal('OrderExecuted'), orderId, authorizationCode: z.string(), at: timestamp })
      .strict(),
  ),
  eventSchema(
    'OrderDeclined',
    z
      .object({ type: z.literal('OrderDeclined'), orderId, reason: z.string().min(1), at: timestamp })
      .strict(),
  ),
  eventSchema(
    'OrderFailed',
    z.object({ type: z.literal('OrderFailed'), orderId, reason: failureReason, at: timestamp }).strict(),
  ),
]);

// ---- state ----------------------------------------------------------------------------------

export interface MerchantSettings {
  /** Orders validated and not yet finished; past it new orders are refused (busy). */
  readonly ordersInFlightMax: number;
  /** How long an order may take at the bank before the Executor gives up (and proves nothing was charged). */
  readonly executionDeadlineMs: number;
  readonly redeliverIntervalMs: number;
  readonly redeliveryBackoff: BackoffSettings;
  /** How long processed order ids are remembered by the store (retries within it are never re-created). */
  readonly idempotencyRetentionMs: number;
  readonly idempotencyCleanupIntervalMs: number;
  /** Processed order ids also kept in memory, so hot retries need no store lookup; the store keeps them all. */
  readonly idempotencyRecentIdsMax: number;
  /**
   * Card entries the velocity memory holds at most (`CardActivity`: ~100 bytes of heap each, token
   * included). Past it the least recently active eighth is forgotten before its window ends, so the
   * rule is exact for up to ~7/8 of this many distinct cards per window: with a one-minute window,
   * ~730 new cards a second for one merchant, more than this node executes in all. A merchant with a
   * much longer window needs more.
   */
  readonly velocityCardsTrackedMax: number;
  /** A snapshot every this many events: recovery replays at most this many after the latest one. */
  readonly snapshotEveryEvents: number;
}

export const defaultMerchantSettings: MerchantSettings = {
  ordersInFlightMax: 10_000,
  executionDeadlineMs: 60_000,
  redeliverIntervalMs: 1_000,
  redeliveryBackoff: defaultRedeliveryBackoff,
  idempotencyRetentionMs: 7 * 24 * 3_600_000,
  idempotencyCleanupIntervalMs: 3_600_000,
  idempotencyRecentIdsMax: 1_000,
  velocityCardsTrackedMax: 50_000,
  snapshotEveryEvents: 20_000,
};

/**
 * Bounded by in-flight work and the velocity window, never by history: finished orders are not
 * here (see `orderAfter` for an order's whole lifecycle, and the read model for finished orders).
 */
export interface MerchantState {
  readonly merchantId: string;
  readonly config: MerchantConfig | undefined;
  /** Orders created and not yet finished (validated, waiting for the bank's outcome). */
  readonly inFlight: ImmutableMap<string, Order>;
  /** `ExecuteOrder` deliveries not yet confirmed by the Executor; a subset of `inFlight`. */
  readonly outbox: Outbox<ExecuteOrder>;
  /**
   * Per card token, the times of its latest orders (at most `maxOrdersPerCard`, all the rule needs)
   * within the velocity window, oldest first; cards held in generations by activity
   * (`card-activity.ts`). Arrays are never mutated: `evolve` replaces them.
   */
  readonly cardActivity: CardActivity;
}

export function initialMerchantState(merchantId: string): MerchantState {
  return {
    merchantId,
    config: undefined,
    inFlight: ImmutableMap(),
    outbox: emptyOutbox,
    cardActivity: CardActivity.empty,
  };
}

/** An order the Merchant holds: only orders in flight. Finished orders are the read model's. */
export function findOrder(state: MerchantState, id: string): Order | undefined {
  return state.inFlight.get(id);
}

function recentOrdersForCard(state: MerchantState, token: string, now: number, windowMs: number): number {
  const times = state.cardActivity.get(token);
  if (times === undefined) return 0;
  let count = 0;
  for (const time of times) if (time > now - windowMs) count++;
  return count;
}

// ---- one order's lifecycle --------------------------------------------------------------------

type OrderEvent = Exclude<MerchantEvent, { type: 'MerchantConfigured' } | { type: 'ExecuteOrderConfirmed' }>;

/** Whether an event belongs to one order's lifecycle (everything but configuration and delivery). */
export function isOrderEvent(event: MerchantEvent): event is OrderEvent {
  return event.type !== 'MerchantConfigured' && event.type !== 'ExecuteOrderConfirmed';
}

/**
 * One order after one of its events: the pure core of `evolveMerchant`, also how an order's whole
 * history is read back from the journal (the Merchant itself forgets an order once it is finished).
 * An event that is impossible for the order (anything but `OrderCreated` before it exists, anything
 * after it finished) is a bug and throws.
 */
export function orderAfter(order: Order | undefined, event: OrderEvent, merchantId: string): Order {
  if (event.type === 'OrderCreated') {
    return {
      id: event.orderId,
      merchantId,
      idempotencyKey: event.idempotencyKey,
      requestHash: event.requestHash,
      status: 'new',
      amount: event.amount,
      currency: event.currency,
      card: event.card,
      bank: undefined,
      reference: event.reference,
      description: event.description,
      reason: undefined,
      authorizationCode: undefined,
      rulesVersion: undefined,
      createdAt: event.at,
      updatedAt: event.at,
    };
  }
  if (order === undefined || isTerminal(order.status)) {
    throw new Error(`${event.type} for order ${event.orderId}, which is not in flight`);
  }
  switch (event.type) {
    case 'OrderValidated':
      return {
        ...order,
        status: 'validated',
        bank: event.bank,
        rulesVersion: event.rulesVersion,
        updatedAt: event.at,
      };
    case 'OrderRejected':
      return {
        ...order,
        status: 'rejected',
        reason: event.reason,
        rulesVersion: event.rulesVersion,
        updatedAt: event.at,
      };
    case 'OrderExecuted':
      return {
        ...order,
        status: 'executed',
        authorizationCode: event.authorizationCode,
        updatedAt: event.at,
      };
    case 'OrderDeclined':
      return { ...order, status: 'declined', reason: event.reason, updatedAt: event.at };
    case 'OrderFailed':
      return { ...order, status: 'failed', reason: event.reason, updatedAt: event.at };
    default:
      return assertNever(event);
  }
}

// ---- decide ---------------------------------------------------------------------------------

type Effect = ReturnType<
  ReturnType<typeof effectsFor<MerchantState, MerchantCommand, MerchantEvent>>['none']
>;
const effect = effectsFor<MerchantState, MerchantCommand, MerchantEvent>();

export function decideMerchant(
  state: MerchantState,
  command: MerchantCommand,
  settings: MerchantSettings,
  waiters: OrderWaiters,
): Effect {
  switch (command.type) {
    case 'ConfigureMerchant':
      // Configuring again with the same settings (every start does) changes nothing.
      if (state.config !== undefined && sameConfig(state.config, command.config)) {
        return effect.reply(command.replyTo, { type: 'MerchantConfigured' });
      }
      return effect
        .persist({ type: 'MerchantConfigured', config: command.config })
        .thenReply(command.replyTo, () => ({ type: 'MerchantConfigured' }));
    case 'ProcessNewOrder':
      return processNewOrder(state, command, settings, waiters);
    case 'AwaitOrder': {
      const { orderId, replyTo } = command;
      if (state.inFlight.has(orderId)) return effect.none().thenRun(() => waiters.add(orderId, replyTo));
      // Finished (or unknown). Looked up once every earlier write is durable, so an order whose
      // terminal event was in flight when this was decided is found among the recently finished.
      return effect.none().thenReply(replyTo, (): AwaitOrderReply => {
        const finished = waiters.recentlyFinished(state.merchantId, orderId);
        return finished === undefined
          ? { type: 'OrderNotInMemory', orderId }
          : { type: 'OrderFinished', order: finished };
      });
    }
    case 'GetOrder': {
      const { orderId, replyTo } = command;
      const order = findOrder(state, orderId);
      if (order !== undefined) return effect.reply(replyTo, { type: 'OrderFound', order });
      return effect.none().thenReply(
        replyTo,
        (): GetOrderReply => ({
          type: 'OrderFound',
          order: waiters.recentlyFinished(state.merchantId, orderId),
        }),
      );
    }
    case 'ConfirmExecuteOrder':
      // A confirmation for a delivery no longer outstanding (a duplicate, or after the result) changes nothing.
      if (!state.outbox.has(command.orderId)) return effect.none();
      // Not journaled: the order's result ends the delivery anyway. Until then it is only not resent
      // by this incarnation; after a restart the Executor gets it once more and confirms it again.
      return effect.none().thenConfirmed(command.orderId);
    case 'ProcessExecutionResult':
      return processExecutionResult(state, command, waiters);
    default:
      return assertNever(command);
  }
}

/**
 * What a retry of a known order gets: the order as it stands if it is in flight or finished
 * recently in this process, or word that it was processed earlier (the read model has it).
 */
export function answerKnownOrder(
  state: MerchantState,
  command: MerchantCommand,
  waiters: OrderWaiters,
): Effect {
  if (command.type !== 'ProcessNewOrder') return effect.none();
  const { orderId, requestHash } = command.order;
  const exists = (known: Order): ProcessOrderReply => ({
    type: 'OrderExists',
    order: known,
    sameRequest: known.requestHash === requestHash,
  });
  const inFlight = findOrder(state, orderId);
  if (inFlight !== undefined) return effect.reply(command.replyTo, exists(inFlight));
  return effect.none().thenReply(command.replyTo, (): ProcessOrderReply => {
    const finished = waiters.recentlyFinished(state.merchantId, orderId);
    return finished === undefined ? { type: 'OrderProcessedEarlier', orderId } : exists(finished);
  });
}

function processNewOrder(
  state: MerchantState,
  command: Extract<MerchantCommand, { type: 'ProcessNewOrder' }>,
  settings: MerchantSettings,
  waiters: OrderWaiters,
): Effect {
  const { order, replyTo } = command;
  const config = state.config;
  if (config === undefined) return effect.reply(replyTo, { type: 'MerchantNotConfigured' });
  if (findOrder(state, order.orderId) !== undefined) return answerKnownOrder(state, command, waiters);
  if (
    state.inFlight.size >= settings.ordersInFlightMax ||
    !outboxHasRoom(state.outbox, settings.ordersInFlightMax)
  ) {
    return effect.reply(replyTo, { type: 'MerchantBusy' });
  }
  const recent = recentOrdersForCard(state, order.card.token, order.receivedAt, config.velocity.windowMs);
  const verdict = validateOrder(order, config, recent, order.receivedAt);
  const created: Extract<MerchantEvent, { type: 'OrderCreated' }> = {
    type: 'OrderCreated',
    orderId: order.orderId,
    idempotencyKey: order.idempotencyKey,
    requestHash: order.requestHash,
    amount: order.amount,
    currency: order.currency,
    card: order.card,
    description: order.description,
    reference: order.reference,
    at: order.receivedAt,
  };
  if (verdict.kind === 'rejected') {
    const rejected: Extract<MerchantEvent, { type: 'OrderRejected' }> = {
      type: 'OrderRejected',
      orderId: order.orderId,
      reason: verdict.reason,
      rulesVersion: verdict.rulesVersion,
      at: order.receivedAt,
    };
    // Finished as soon as it exists: it never enters the state, so the reply is built from its events.
    const finished = orderAfter(orderAfter(undefined, created, state.merchantId), rejected, state.merchantId);
    return effect
      .persist([created, rejected])
      .thenRun(() => waiters.complete(finished.id, finished))
      .thenReply(replyTo, (): ProcessOrderReply => ({ type: 'OrderAccepted', order: finished }));
  }
  const accepted = effect
    .persist([
      created,
      {
        type: 'OrderValidated',
        orderId: order.orderId,
        bank: verdict.bank,
        rulesVersion: verdict.rulesVersion,
        deadlineAt: order.receivedAt + settings.executionDeadlineMs,
        at: order.receivedAt,
      },
    ])
    .thenDeliver(order.orderId);
  const acceptedReply = (after: MerchantState): ProcessOrderReply => {
    const validated = findOrder(after, order.orderId);
    if (validated === undefined)
      throw new Error(`order ${order.orderId} vanished from the state that created it`);
    return { type: 'OrderAccepted', order: validated };
  };
  if (command.awaitResult !== true) return accepted.thenReply(replyTo, acceptedReply);
  // Answered when it finishes (waiters.complete), or now if the table of waiters is full.
  return accepted.thenRun((after) => {
    if (!waiters.add(order.orderId, replyTo)) replyTo.tell(acceptedReply(after));
  });
}

function processExecutionResult(
  state: MerchantState,
  command: Extract<MerchantCommand, { type: 'ProcessExecutionResult' }>,
  waiters: OrderWaiters,
): Effect {
  const { orderId, outcome, at, executor } = command;
  const order = state.inFlight.get(orderId);
  // Not in flight: this result was recorded before (a redelivery). Confirm again, change nothing.
  if (order === undefined) {
    return effect.none().thenRun((_state, context) => {
      context.messenger.tell(executor, { type: 'ConfirmResult', orderId });
    });
  }
  const event: OrderEvent =
    outcome.kind === 'executed'
      ? { type: 'OrderExecuted', orderId, authorizationCode: outcome.authorizationCode, at }
      : outcome.kind === 'declined'
        ? { type: 'OrderDeclined', orderId, reason: outcome.reason, at }
        : { type: 'OrderFailed', orderId, reason: outcome.reason, at };
  const finished = orderAfter(order, event, state.merchantId);
  return effect.persist(event).thenRun((_after, context) => {
    context.messenger.tell(executor, { type: 'ConfirmResult', orderId });
    waiters.complete(orderId, finished);
  });
}

function sameConfig(a: MerchantConfig, b: MerchantConfig): boolean {
  return toJsonText(a) === toJsonText(b);
}

// ---- evolve ---------------------------------------------------------------------------------

export function evolveMerchant(
  state: MerchantState,
  event: MerchantEvent,
  settings: MerchantSettings,
): MerchantState {
  switch (event.type) {
    case 'MerchantConfigured':
      return { ...state, config: event.config };
    case 'ExecuteOrderConfirmed':
      return { ...state, outbox: outboxWithout(state.outbox, event.orderId) };
    case 'OrderCreated':
      return {
        ...state,
        inFlight: state.inFlight.set(event.orderId, orderAfter(undefined, event, state.merchantId)),
        cardActivity: recordCardActivity(state, event.card.token, event.at, settings),
      };
    case 'OrderValidated': {
      const validated = orderAfter(state.inFlight.get(event.orderId), event, state.merchantId);
      return {
        ...state,
        inFlight: state.inFlight.set(validated.id, validated),
        outbox: outboxWith(
          state.outbox,
          executeOrderEntry(state.merchantId, validated, event.bank, event.deadlineAt),
        ),
      };
    }
    case 'OrderRejected':
    case 'OrderExecuted':
    case 'OrderDeclined':
    case 'OrderFailed':
      // Checks the transition, then forgets the order: its record is the journal and the read model.
      orderAfter(state.inFlight.get(event.orderId), event, state.merchantId);
      return {
        ...state,
        inFlight: state.inFlight.delete(event.orderId),
        // A result proves the Executor had the order, even if its confirmation was lost.
        outbox: outboxWithout(state.outbox, event.orderId),
      };
    default:
      return assertNever(event);
  }
}

function executeOrderEntry(
  merchantId: string,
  order: Order,
  bank: BankId,
  deadlineAt: number,
): OutboxEntry<ExecuteOrder> {
  return {
    deliveryId: order.id,
    // The Executor accepts more than ExecuteOrder; this entry only ever carries that one.
    destination: entityAddress<ExecuteOrder>('executor', bank),
    message: {
      type: 'ExecuteOrder',
      orderId: order.id,
      merchantId,
      amount: order.amount,
      currency: order.currency,
      card: order.card,
      deadlineAt,
      merchant: merchantAddress(merchantId),
    },
  };
}

/**
 * Adds an order time for the card, keeping only its latest `maxOrdersPerCard` times in the window;
 * the card activity forgets what left the window and, past `velocityCardsTrackedMax`, the least
 * recently active cards.
 */
function recordCardActivity(
  state: MerchantState,
  token: string,
  at: number,
  settings: MerchantSettings,
): CardActivity {
  const velocity = state.config?.velocity ?? { windowMs: 0, maxOrdersPerCard: 1 };
  const horizon = at - velocity.windowMs;
  const times = [...(state.cardActivity.get(token) ?? []).filter((time) => time > horizon), at].slice(
    -Math.max(1, velocity.maxOrdersPerCard),
  );
  return state.cardActivity.record(token, times, at, {
    windowMs: velocity.windowMs,
    cardsMax: settings.velocityCardsTrackedMax,
  });
}

// ---- snapshot -------------------------------------------------------------------------------

const orderStatus = z.enum(['new', 'validated', 'rejected', 'executed', 'declined', 'failed']);

const inFlightOrderSchema = z
  .object({
    id: orderId,
    idempotencyKey: z.string().min(1),
    requestHash: z.string().min(1),
    status: orderStatus,
    amount: minorUnits,
    currency,
    card: cardSummarySchema,
    bank: z.string().min(1).optional(),
    reference: z.string().optional(),
    description: z.string().optional(),
    reason: z.string().min(1).optional(),
    authorizationCode: z.string().optional(),
    rulesVersion: z.number().int().positive().optional(),
    createdAt: timestamp,
    updatedAt: timestamp,
  })
  .strict();

const merchantSnapshotSchema = z
  .object({
    merchantId: z.string().min(1),
    config: merchantConfigSchema.optional(),
    inFlight: z.array(inFlightOrderSchema),
    /** Orders whose ExecuteOrder is unconfirmed, with its deadline: the rest of the entry is the order. */
    unconfirmed: z.array(z.tuple([orderId, timestamp])),
    /** Least recently active card first, as in the state. */
    cardActivity: z.array(z.tuple([z.string().min(1), z.array(timestamp)])),
  })
  .strict();

/**
 * The snapshot of a Merchant (version 1): the state as JSON data, with the outbox reduced to what
 * is not already in the order (its deadline). Its size is bounded by the orders in flight and the
 * velocity window, like the state.
 */
export const merchantSnapshotCodec: VersionedCodec<MerchantState> = {
  version: 1,
  encode: (state) => ({
    merchantId: state.merchantId,
    ...(state.config === undefined ? {} : { config: toJsonData(state.config) }),
    inFlight: [...state.inFlight.values()].map((order) => toJsonData({ ...order, merchantId: undefined })),
    unconfirmed: [...state.outbox.values()].map((entry) => [entry.deliveryId, entry.message.deadlineAt]),
    cardActivity: [...state.cardActivity.entries()],
  }),
  decode: (json) => {
    const data = merchantSnapshotSchema.parse(json);
    const merchantId = data.merchantId;
    const inFlight = ImmutableMap(
      data.inFlight.map((order): [string, Order] => [
        order.id,
        {
          id: order.id,
          merchantId,
          idempotencyKey: order.idempotencyKey,
          requestHash: order.requestHash,
          status: order.status,
          amount: order.amount,
          currency: order.currency,
          card: order.card,
          bank: order.bank,
          reference: order.reference,
          description: order.description,
          reason: order.reason,
          authorizationCode: order.authorizationCode,
          rulesVersion: order.rulesVersion,
          createdAt: order.createdAt,
          updatedAt: order.updatedAt,
        },
      ]),
    );
    let outbox: Outbox<ExecuteOrder> = emptyOutbox;
    for (const [id, deadlineAt] of data.unconfirmed) {
      const order = inFlight.get(id);
      if (order?.bank === undefined) throw new Error(`unconfirmed delivery ${id} has no validated order`);
      outbox = outboxWith(outbox, executeOrderEntry(merchantId, order, order.bank, deadlineAt));
    }
    return {
      merchantId,
      config: data.config,
      inFlight,
      outbox,
      cardActivity: CardActivity.of(data.cardActivity),
    };
  },
};

// ---- the entity -----------------------------------------------------------------------------

export function merchantDefinition(
  waiters: OrderWaiters,
  settings: MerchantSettings = defaultMerchantSettings,
): EntityDefinition<MerchantState, MerchantCommand, MerchantEvent> {
  return {
    typeName: 'merchant',
    initialState: initialMerchantState,
    decide: (state, command) => decideMerchant(state, command, settings, waiters),
    evolve: (state, event) => evolveMerchant(state, event, settings),
    events: merchantEvents,
    snapshot: { codec: merchantSnapshotCodec, everyEvents: settings.snapshotEveryEvents },
    delivery: {
      outboxOf: (state) => state.outbox,
      redeliverIntervalMs: settings.redeliverIntervalMs,
      backoff: settings.redeliveryBackoff,
      redeliveryBurstMax: 1_000,
    },
    deduplication: {
      messageIdOf: (command) => (command.type === 'ProcessNewOrder' ? command.order.orderId : undefined),
      onDuplicate: (state, command) => answerKnownOrder(state, command, waiters),
      retentionMs: settings.idempotencyRetentionMs,
      cleanupIntervalMs: settings.idempotencyCleanupIntervalMs,
      recentIdsCapacity: settings.idempotencyRecentIdsMax,
    },
  };
}

function assertNever(value: never): never {
  throw new Error(`unexpected: ${JSON.stringify(value)}`);
}
