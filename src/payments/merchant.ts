import { defaultRedeliveryBackoff } from '../delivery/at-least-once.js';
import type { EntityDefinition } from '../persistence/entity.js';
import type { BackoffSettings } from '../runtime/backoff.js';
import {
  answerKnownOrder,
  decideMerchant,
  evolveMerchant,
  initialMerchantState,
  type MerchantState,
  scheduleExpiry,
} from './merchant-decider.js';
import { type MerchantEvent, merchantEvents, merchantSnapshotCodec } from './merchant-events.js';
import type { MerchantCommand } from './merchant-protocol.js';
import type { OrderWaiters } from './order-waiters.js';
import { merchantTypeName } from './protocol.js';

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
 *
 * This file wires the entity together and holds its settings; its commands and replies are in
 * `merchant-protocol.ts`, its events and snapshot codec in `merchant-events.ts`, its decisions in
 * `merchant-decider.ts`.
 */

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
  /**
   * How long past its deadline an order no Executor acknowledged is ended `failed`
   * (`bank_unreachable`) by the Merchant — when no node holding the bank's credentials is alive.
   * Must exceed the clock skew between nodes plus a message's transit: an Executor decides "past
   * the deadline" on its own clock.
   */
  readonly unacknowledgedGraceMs: number;
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
  unacknowledgedGraceMs: 10_000,
};

export function merchantDefinition(
  waiters: OrderWaiters,
  settings: MerchantSettings = defaultMerchantSettings,
): EntityDefinition<MerchantState, MerchantCommand, MerchantEvent> {
  return {
    typeName: merchantTypeName,
    initialState: initialMerchantState,
    decide: (state, command) => decideMerchant(state, command, settings, waiters),
    evolve: (state, event) => evolveMerchant(state, event, settings),
    events: merchantEvents,
    snapshot: { codec: merchantSnapshotCodec, everyEvents: settings.snapshotEveryEvents },
    onRecoveryCompleted: (state, context) => scheduleExpiry(state, settings, context),
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
