import { Map as ImmutableMap, List, OrderedMap } from 'immutable';
import { z } from 'zod';
import { defaultRedeliveryBackoff } from '../delivery/at-least-once.js';
import { emptyOutbox, type Outbox, outboxHasRoom, outboxWith, outboxWithout } from '../delivery/outbox.js';
import { effectsFor } from '../persistence/effect.js';
import { type EntityAddress, type EntityDefinition, entityAddress } from '../persistence/entity.js';
import { EventRegistry, eventSchema, toJsonText } from '../persistence/serialization.js';
import type { ActorRef } from '../runtime/actor.js';
import type { BackoffSettings } from '../runtime/backoff.js';
import type { CardSummary } from './card.js';
import type { ExecuteOrder, ExecutorCommand } from './executor-protocol.js';
import { type Currency, isCurrency } from './money.js';
import type { FailureReason, Order } from './order.js';
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
 * Its memory stays bounded: it holds orders in flight (at most `ordersInFlightMax`), a bounded
 * window of recently finished ones, and the card activity of the velocity window. Finished orders
 * live in the journal and the read model; idempotency is kept by the order id itself (derived from
 * the key) and by the processed-message records of the store.
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

export type ProcessOrderReply =
  | { readonly type: 'OrderAccepted'; readonly order: Order }
  /** The same order id is known (a retry): `sameRequest` tells a replay from a key reused with another body. */
  | { readonly type: 'OrderExists'; readonly order: Order; readonly sameRequest: boolean }
  /** Processed long ago: no longer in the Merchant's memory; the read model has it. */
  | { readonly type: 'OrderProcessedEarlier'; readonly orderId: string }
  | { readonly type: 'MerchantBusy' }
  | { readonly type: 'MerchantNotConfigured' };

export type AwaitOrderReply =
  | { readonly type: 'OrderFinished'; readonly order: Order }
  | { readonly type: 'OrderNotInMemory'; readonly orderId: string };

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
  /** Finished orders kept in memory for retries and waiters; older ones are read from the read model. */
  readonly recentlyFinishedMax: number;
  /** How long an order may take at the bank before the Executor gives up (and proves nothing was charged). */
  readonly executionDeadlineMs: number;
  readonly redeliverIntervalMs: number;
  readonly redeliveryBackoff: BackoffSettings;
  /** How long processed order ids are remembered by the store (retries within it are never re-created). */
  readonly idempotencyRetentionMs: number;
  readonly idempotencyCleanupIntervalMs: number;
}

export const defaultMerchantSettings: MerchantSettings = {
  ordersInFlightMax: 10_000,
  recentlyFinishedMax: 1_000,
  executionDeadlineMs: 60_000,
  redeliverIntervalMs: 1_000,
  redeliveryBackoff: defaultRedeliveryBackoff,
  idempotencyRetentionMs: 7 * 24 * 3_600_000,
  idempotencyCleanupIntervalMs: 3_600_000,
};

export interface MerchantState {
  readonly merchantId: string;
  readonly config: MerchantConfig | undefined;
  /** Validated orders waiting for the bank's outcome. */
  readonly inFlight: ImmutableMap<string, Order>;
  /** The last finished orders, oldest first. */
  readonly recentlyFinished: OrderedMap<string, Order>;
  readonly outbox: Outbox<ExecuteOrder>;
  /** Per card token, the times of its orders within the velocity window; least recently used first. */
  readonly cardActivity: OrderedMap<string, List<number>>;
}

export function initialMerchantState(merchantId: string): MerchantState {
  return {
    merchantId,
    config: undefined,
    inFlight: ImmutableMap(),
    recentlyFinished: OrderedMap(),
    outbox: emptyOutbox,
    cardActivity: OrderedMap(),
  };
}

export function findOrder(state: MerchantState, id: string): Order | undefined {
  return state.inFlight.get(id) ?? state.recentlyFinished.get(id);
}

function recentOrdersForCard(state: MerchantState, token: string, now: number, windowMs: number): number {
  const times = state.cardActivity.get(token);
  return times === undefined ? 0 : times.count((time) => time > now - windowMs);
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
      return processNewOrder(state, command.order, command.replyTo, settings);
    case 'AwaitOrder': {
      const { orderId, replyTo } = command;
      const finished = state.recentlyFinished.get(orderId);
      if (finished !== undefined) return effect.reply(replyTo, { type: 'OrderFinished', order: finished });
      if (!state.inFlight.has(orderId)) return effect.reply(replyTo, { type: 'OrderNotInMemory', orderId });
      return effect.none().thenRun(() => waiters.add(orderId, replyTo));
    }
    case 'GetOrder':
      return effect.reply(command.replyTo, { type: 'OrderFound', order: findOrder(state, command.orderId) });
    case 'ConfirmExecuteOrder':
      // A confirmation for a delivery no longer outstanding (a duplicate, or after the result) changes nothing.
      if (!state.outbox.has(command.orderId)) return effect.none();
      return effect.persist({ type: 'ExecuteOrderConfirmed', orderId: command.orderId });
    case 'ProcessExecutionResult':
      return processExecutionResult(state, command, waiters);
    default:
      return assertNever(command);
  }
}

/** What a retry of a known order gets: the order as it stands, or word that it is in the read model. */
export function answerKnownOrder(state: MerchantState, command: MerchantCommand): Effect {
  if (command.type !== 'ProcessNewOrder') return effect.none();
  const known = findOrder(state, command.order.orderId);
  if (known === undefined) {
    return effect.reply(command.replyTo, { type: 'OrderProcessedEarlier', orderId: command.order.orderId });
  }
  const sameRequest = known.requestHash === command.order.requestHash;
  return effect.reply(command.replyTo, { type: 'OrderExists', order: known, sameRequest });
}

function processNewOrder(
  state: MerchantState,
  order: NewOrder,
  replyTo: ActorRef<ProcessOrderReply>,
  settings: MerchantSettings,
): Effect {
  const config = state.config;
  if (config === undefined) return effect.reply(replyTo, { type: 'MerchantNotConfigured' });
  if (findOrder(state, order.orderId) !== undefined) {
    return answerKnownOrder(state, { type: 'ProcessNewOrder', order, replyTo });
  }
  if (
    state.inFlight.size >= settings.ordersInFlightMax ||
    !outboxHasRoom(state.outbox, settings.ordersInFlightMax)
  ) {
    return effect.reply(replyTo, { type: 'MerchantBusy' });
  }
  const recent = recentOrdersForCard(state, order.card.token, order.receivedAt, config.velocity.windowMs);
  const verdict = validateOrder(order, config, recent, order.receivedAt);
  const created: MerchantEvent = {
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
  const reply = (after: MerchantState): ProcessOrderReply => {
    const accepted = findOrder(after, order.orderId);
    if (accepted === undefined)
      throw new Error(`order ${order.orderId} vanished from the state that created it`);
    return { type: 'OrderAccepted', order: accepted };
  };
  if (verdict.kind === 'rejected') {
    return effect
      .persist([
        created,
        {
          type: 'OrderRejected',
          orderId: order.orderId,
          reason: verdict.reason,
          rulesVersion: verdict.rulesVersion,
          at: order.receivedAt,
        },
      ])
      .thenReply(replyTo, reply);
  }
  return effect
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
    .thenDeliver(order.orderId)
    .thenReply(replyTo, reply);
}

function processExecutionResult(
  state: MerchantState,
  command: Extract<MerchantCommand, { type: 'ProcessExecutionResult' }>,
  waiters: OrderWaiters,
): Effect {
  const { orderId, outcome, at, executor } = command;
  const confirm = effect.none().thenRun((_state, context) => {
    context.messenger.tell(executor, { type: 'ConfirmResult', orderId });
  });
  // Not in flight: this result was recorded before (a redelivery). Confirm again, change nothing.
  if (!state.inFlight.has(orderId)) return confirm;
  const event: MerchantEvent =
    outcome.kind === 'executed'
      ? { type: 'OrderExecuted', orderId, authorizationCode: outcome.authorizationCode, at }
      : outcome.kind === 'declined'
        ? { type: 'OrderDeclined', orderId, reason: outcome.reason, at }
        : { type: 'OrderFailed', orderId, reason: outcome.reason, at };
  return effect.persist(event).thenRun((after, context) => {
    context.messenger.tell(executor, { type: 'ConfirmResult', orderId });
    const order = after.recentlyFinished.get(orderId);
    if (order !== undefined) waiters.complete(orderId, order);
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
    case 'OrderCreated':
      return created(state, event);
    case 'OrderValidated': {
      const order = requireInFlight(state, event.orderId, event.type);
      const validated: Order = {
        ...order,
        status: 'validated',
        bank: event.bank,
        rulesVersion: event.rulesVersion,
        updatedAt: event.at,
      };
      return {
        ...state,
        inFlight: state.inFlight.set(order.id, validated),
        outbox: outboxWith(state.outbox, {
          deliveryId: order.id,
          // The Executor accepts more than ExecuteOrder; this entry only ever carries that one.
          destination: entityAddress<ExecuteOrder>('executor', event.bank),
          message: {
            type: 'ExecuteOrder',
            orderId: order.id,
            merchantId: state.merchantId,
            amount: order.amount,
            currency: order.currency,
            card: order.card,
            deadlineAt: event.deadlineAt,
            merchant: merchantAddress(state.merchantId),
          },
        }),
      };
    }
    case 'OrderRejected': {
      const order = requireInFlight(state, event.orderId, event.type);
      return finish(
        state,
        {
          ...order,
          status: 'rejected',
          reason: event.reason,
          rulesVersion: event.rulesVersion,
          updatedAt: event.at,
        },
        settings,
      );
    }
    case 'ExecuteOrderConfirmed':
      return { ...state, outbox: outboxWithout(state.outbox, event.orderId) };
    case 'OrderExecuted': {
      const order = requireInFlight(state, event.orderId, event.type);
      const executed: Order = {
        ...order,
        status: 'executed',
        authorizationCode: event.authorizationCode,
        updatedAt: event.at,
      };
      return finish(state, executed, settings);
    }
    case 'OrderDeclined':
    case 'OrderFailed': {
      const order = requireInFlight(state, event.orderId, event.type);
      const status = event.type === 'OrderDeclined' ? 'declined' : 'failed';
      return finish(state, { ...order, status, reason: event.reason, updatedAt: event.at }, settings);
    }
    default:
      return assertNever(event);
  }
}

function created(
  state: MerchantState,
  event: Extract<MerchantEvent, { type: 'OrderCreated' }>,
): MerchantState {
  const order: Order = {
    id: event.orderId,
    merchantId: state.merchantId,
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
  return {
    ...state,
    inFlight: state.inFlight.set(order.id, order),
    cardActivity: recordCardActivity(state, event.card.token, event.at),
  };
}

/** Adds an order time for the card and forgets cards whose activity all left the window. */
function recordCardActivity(
  state: MerchantState,
  token: string,
  at: number,
): OrderedMap<string, List<number>> {
  const windowMs = state.config?.velocity.windowMs ?? 0;
  const horizon = at - windowMs;
  const times = (state.cardActivity.get(token) ?? List<number>()).filter((time) => time > horizon).push(at);
  // Re-inserting moves the card to the end, so the least recently active cards stay first.
  let activity = state.cardActivity.delete(token).set(token, times);
  for (;;) {
    const oldest = activity.first();
    if (oldest === undefined || (oldest.last() ?? 0) > horizon) break;
    const oldestKey = activity.keySeq().first();
    if (oldestKey === undefined) break;
    activity = activity.delete(oldestKey);
  }
  return activity;
}

function finish(state: MerchantState, order: Order, settings: MerchantSettings): MerchantState {
  let recentlyFinished = state.recentlyFinished.set(order.id, order);
  while (recentlyFinished.size > settings.recentlyFinishedMax) {
    const oldest = recentlyFinished.keySeq().first();
    if (oldest === undefined) break;
    recentlyFinished = recentlyFinished.delete(oldest);
  }
  return {
    ...state,
    inFlight: state.inFlight.delete(order.id),
    recentlyFinished,
    // A result proves the Executor had the order, even if its confirmation was lost.
    outbox: outboxWithout(state.outbox, order.id),
  };
}

function requireInFlight(state: MerchantState, id: string, eventType: string): Order {
  const order = state.inFlight.get(id);
  // An event that is impossible in the current state is a bug, never something to paper over.
  if (order === undefined) throw new Error(`${eventType} for order ${id}, which is not in flight`);
  return order;
}

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
    delivery: {
      outboxOf: (state) => state.outbox,
      redeliverIntervalMs: settings.redeliverIntervalMs,
      backoff: settings.redeliveryBackoff,
      redeliveryBurstMax: 1_000,
    },
    deduplication: {
      messageIdOf: (command) => (command.type === 'ProcessNewOrder' ? command.order.orderId : undefined),
      onDuplicate: answerKnownOrder,
      retentionMs: settings.idempotencyRetentionMs,
      cleanupIntervalMs: settings.idempotencyCleanupIntervalMs,
      recentIdsCapacity: settings.recentlyFinishedMax,
    },
  };
}

function assertNever(value: never): never {
  throw new Error(`unexpected: ${JSON.stringify(value)}`);
}
