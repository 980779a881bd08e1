import { Map as ImmutableMap } from 'immutable';
import {
  emptyOutbox,
  type Outbox,
  type OutboxEntry,
  outboxHasRoom,
  outboxWith,
  outboxWithout,
} from '../delivery/outbox.js';
import { type Effect, effectsFor } from '../persistence/effect.js';
import type { EntityContext } from '../persistence/entity.js';
import { toJsonText } from '../persistence/serialization.js';
import { assertNever } from '../runtime/assert-never.js';
import { entityAddress } from '../runtime/entity-address.js';
import { CardActivity } from './card-activity.js';
import type { MerchantSettings } from './merchant.js';
import type { MerchantEvent } from './merchant-events.js';
import type {
  AwaitOrderReply,
  GetOrderReply,
  MerchantCommand,
  ProcessOrderReply,
} from './merchant-protocol.js';
import { isTerminal, type Order } from './order.js';
import type { OrderWaiters } from './order-waiters.js';
import {
  type ExecuteOrder,
  executorTypeName,
  merchantInbox,
  type ProcessExecutionResult,
} from './protocol.js';
import { type BankId, type MerchantConfig, validateOrder } from './validator.js';

/**
 * How a Merchant decides (`decideMerchant`: a command and the state in, an effect out, no I/O)
 * and how its events change its state (`evolveMerchant`, the only place they do, live and in
 * recovery alike). The commands are in `merchant-protocol.ts`, the events in `merchant-events.ts`,
 * the entity's wiring and settings in `merchant.ts`.
 */

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

type MerchantEffect = Effect<MerchantState, MerchantCommand, MerchantEvent>;
const effect = effectsFor<MerchantState, MerchantCommand, MerchantEvent>();

export function decideMerchant(
  state: MerchantState,
  command: MerchantCommand,
  settings: MerchantSettings,
  waiters: OrderWaiters,
): MerchantEffect {
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
      if (!state.outbox.has(command.orderId) || !state.inFlight.has(command.orderId)) return effect.none();
      // Journaled: it is what keeps the order from being ended by `ExpireUnacknowledgedOrders`, and
      // that must hold across a restart of the Merchant, whatever became of the Executor since.
      return effect.persist({ type: 'ExecuteOrderConfirmed', orderId: command.orderId });
    case 'ExpireUnacknowledgedOrders':
      return expireUnacknowledgedOrders(state, command.dueAt, settings, waiters);
    case 'ProcessExecutionResult':
      return processExecutionResult(state, command, waiters);
    default:
      return assertNever(command, 'Merchant command');
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
): MerchantEffect {
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
): MerchantEffect {
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
    .thenDeliver(order.orderId)
    .thenRun((after, context) => scheduleExpiry(after, settings, context));
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

const expiryTimer = 'expire-unacknowledged';

/**
 * The earliest time an unacknowledged order may be ended by the Merchant: its deadline plus the
 * grace. Orders are validated in time order with one deadline setting, so the first entries of the
 * outbox are the oldest; the whole outbox is read only to be exact when the setting changed.
 */
function firstExpiryAt(state: MerchantState, settings: MerchantSettings): number | undefined {
  let first: number | undefined;
  for (const entry of state.outbox.values()) {
    const at = entry.message.deadlineAt + settings.unacknowledgedGraceMs;
    if (first === undefined || at < first) first = at;
  }
  return first;
}

/**
 * Starts the expiry timer for the earliest unacknowledged order, unless it runs already (it then
 * fires at or before that order's time and starts itself again for the next one).
 */
export function scheduleExpiry(
  state: MerchantState,
  settings: MerchantSettings,
  context: EntityContext<MerchantCommand>,
): void {
  if (context.timers.isActive(expiryTimer)) return;
  const dueAt = firstExpiryAt(state, settings);
  if (dueAt === undefined) return;
  context.timers.startSingle(
    expiryTimer,
    { type: 'ExpireUnacknowledgedOrders', dueAt },
    Math.max(0, dueAt - context.clock.now()),
  );
}

/**
 * Ends as `failed` (`bank_unreachable`) the orders no Executor acknowledged by their deadline plus
 * `unacknowledgedGraceMs` — with no live node holding the bank's credentials, nobody else will.
 * Safe because an Executor acknowledges an order (and the Merchant journals it) before it first
 * calls the bank, and never starts a call past the order's deadline: an order unacknowledged so
 * long after it was never sent, and an `ExecuteOrder` still on its way is cancelled at the bank.
 */
function expireUnacknowledgedOrders(
  state: MerchantState,
  dueAt: number,
  settings: MerchantSettings,
  waiters: OrderWaiters,
): MerchantEffect {
  const expired: OrderEvent[] = [];
  for (const entry of state.outbox.values()) {
    if (entry.message.deadlineAt + settings.unacknowledgedGraceMs > dueAt) continue;
    if (!state.inFlight.has(entry.deliveryId)) continue;
    expired.push({ type: 'OrderFailed', orderId: entry.deliveryId, reason: 'bank_unreachable', at: dueAt });
  }
  const next = (after: MerchantState, context: EntityContext<MerchantCommand>) =>
    scheduleExpiry(after, settings, context);
  if (expired.length === 0) return effect.none().thenRun(next);
  return effect.persist(expired).thenRun((after, context) => {
    for (const event of expired) {
      const order = state.inFlight.get(event.orderId);
      if (order !== undefined) waiters.complete(event.orderId, orderAfter(order, event, state.merchantId));
    }
    next(after, context);
  });
}

function processExecutionResult(
  state: MerchantState,
  command: ProcessExecutionResult,
  waiters: OrderWaiters,
): MerchantEffect {
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

export function executeOrderEntry(
  merchantId: string,
  order: Order,
  bank: BankId,
  deadlineAt: number,
): OutboxEntry<ExecuteOrder> {
  return {
    deliveryId: order.id,
    // The Executor accepts more than ExecuteOrder; this entry only ever carries that one.
    destination: entityAddress<ExecuteOrder>(executorTypeName, bank),
    message: {
      type: 'ExecuteOrder',
      orderId: order.id,
      merchantId,
      amount: order.amount,
      currency: order.currency,
      card: order.card,
      deadlineAt,
      merchant: merchantInbox(merchantId),
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
