import type { Outbox } from '../delivery/outbox.js';
import type { ActorRef, Timers } from '../runtime/actor.js';
import type { BackoffSettings } from '../runtime/backoff.js';
import type { Clock } from '../runtime/clock.js';
import type { Messenger } from '../runtime/entity-address.js';
import type { Logger } from '../runtime/logger.js';
import type { Random } from '../runtime/random.js';
import type { Effect } from './effect.js';
import type { EventRegistry, VersionedCodec } from './serialization.js';

export function persistenceIdOf(address: { readonly typeName: string; readonly entityId: string }): string {
  return `${address.typeName}-${address.entityId}`;
}

/** What a side effect may use. Only side effects see it: `decide` and `evolve` stay pure. */
export interface EntityContext<C> {
  readonly entityId: string;
  readonly persistenceId: string;
  readonly self: ActorRef<C>;
  readonly timers: Timers<C>;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  readonly messenger: Messenger;
}

export interface SnapshotSettings<S> {
  readonly codec: VersionedCodec<S>;
  /** A snapshot is taken each time this many events have been written since the last one. */
  readonly everyEvents: number;
}

export interface DeliverySettings<S> {
  /** The unconfirmed deliveries, as derived from persisted events by `evolve`. */
  outboxOf(state: S): Outbox<unknown>;
  /** How often unconfirmed deliveries are checked for resending. */
  readonly redeliverIntervalMs: number;
  /** The per-delivery resend delay grows from min to max with jitter. */
  readonly backoff: BackoffSettings;
  /** The most deliveries resent in one check; the rest wait for the next. */
  readonly redeliveryBurstMax: number;
}

/**
 * Idempotent receiving: the id of each processed message is recorded in the store, in the same
 * transaction as the events its processing wrote, and kept for `retentionMs`. A message whose id
 * was already processed is not decided again: `onDuplicate` answers it (typically, confirm again).
 */
export interface DeduplicationSettings<S, C, E> {
  messageIdOf(command: C): string | undefined;
  /**
   * A time the sender fixed for the message and carries on every delivery of it (see
   * `MessageKey`): the store then keeps the records of messages sent together together. Without
   * it, or for a message whose sender fixed none, 0.
   */
  messageTimeOf?(command: C): number;
  onDuplicate(state: S, command: C): Effect<S, C, E>;
  readonly retentionMs: number;
  readonly cleanupIntervalMs: number;
  /** Ids remembered in memory to answer hot duplicates without a store lookup. */
  readonly recentIdsCapacity: number;
}

export interface EntityDefinition<S, C, E extends { readonly type: string }> {
  readonly typeName: string;
  initialState(entityId: string): S;
  /** Pure: state and command in, directive out. Time comes in on the command. */
  decide(state: S, command: C): Effect<S, C, E>;
  /** Pure, and the only place state changes; runs live and during recovery. */
  evolve(state: S, event: E): S;
  readonly events: EventRegistry<E>;
  readonly snapshot?: SnapshotSettings<S>;
  readonly delivery?: DeliverySettings<S>;
  readonly deduplication?: DeduplicationSettings<S, C, E>;
  /** Runs once recovery has replayed the journal, before the first command; side effects allowed. */
  onRecoveryCompleted?(state: S, context: EntityContext<C>): void;
  /**
   * True while the entity has work under way that no message will prompt again if it stops —
   * bank calls, say. A busy entity does not passivate. (Unconfirmed deliveries already count.)
   */
  busy?(state: S): boolean;
}

export interface EntitySettings {
  /** Commands decided while earlier writes are still in flight; past it the mailbox waits. */
  readonly pipelineDepthMax: number;
  /** Events read per journal query during recovery. */
  readonly recoveryPageSize: number;
  /** How long after supervision gives up on an entity it is started again (it may own pending work). */
  readonly failedRestartDelayMs: number;
  readonly passivateAfterMs?: number;
  readonly mailboxCapacity?: number;
  readonly stashCapacity?: number;
}

export const defaultEntitySettings: EntitySettings = {
  pipelineDepthMax: 256,
  recoveryPageSize: 1000,
  failedRestartDelayMs: 5_000,
};

/** Hooks for test kits and the simulator to watch an entity without touching its behaviour. */
export interface EntityObserver {
  onRecovered?(persistenceId: string, state: unknown, seqNr: number): void;
  onDurable?(persistenceId: string, state: unknown, seqNr: number): void;
  onSideEffect?(persistenceId: string, kind: string): void;
}
