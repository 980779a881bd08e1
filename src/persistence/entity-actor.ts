import { AtLeastOnceDelivery } from '../delivery/at-least-once.js';
import { IdempotentReceiver } from '../delivery/idempotent-receiver.js';
import { emptyOutbox, type Outbox } from '../delivery/outbox.js';
import type { Actor, ActorContext, Timers } from '../runtime/actor.js';
import { assertNever } from '../runtime/assert-never.js';
import type { Clock } from '../runtime/clock.js';
import type { Messenger } from '../runtime/entity-address.js';
import type { Logger } from '../runtime/logger.js';
import type { Random } from '../runtime/random.js';
import {
  type Fence,
  type Journal,
  type MessageKey,
  type SnapshotStore,
  StaleEpochError,
} from '../store/journal.js';
import type { Effect, SideEffect } from './effect.js';
import type { EntityContext, EntityDefinition, EntityObserver, EntitySettings } from './entity.js';
import { recoverState } from './recovery.js';

/** Messages the entity runtime sends itself; commands never look like these. */
export class EntitySignal {
  constructor(readonly kind: 'crash' | 'redeliver' | 'expire-processed') {}
}

export interface EntityDependencies {
  readonly journal: Journal;
  readonly snapshots?: SnapshotStore;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  readonly messenger: Messenger;
  readonly observer?: EntityObserver;
  /**
   * The lease of the entity's shard this incarnation runs under, in a cluster: every append and
   * snapshot carries it, and the store refuses them once the shard has been taken over.
   */
  readonly fence?: Fence;
}

const redeliverTimerKey = 'remit.redeliver';
const expireTimerKey = 'remit.expire-processed';

/** Side effects of one effect, released once every write before them (and theirs) is durable. */
interface PendingEffects<S, C> {
  durable: boolean;
  /** Undefined for effects that persisted nothing. */
  readonly lastSeqNr: number | undefined;
  readonly stateAfter: S;
  readonly sideEffects: ReadonlyArray<SideEffect<S, C>>;
  readonly messageId: string | undefined;
}

/**
 * One live incarnation of an event-sourced entity.
 *
 * Phases: recovery (in `preStart`: latest snapshot, then the later events through `evolve`, then
 * unconfirmed deliveries resent and `onRecoveryCompleted`) → running (commands decided and
 * persisted, pipelined) → stopped. A failed write ends the incarnation: supervision starts a new
 * one, which recovers from the journal — the journal, not memory, is the truth.
 *
 * Pipelining: while a write is in flight, later commands are decided against the *pending* state
 * (durable state plus the events in flight). Their side effects queue behind the writes before
 * them and run in order, each against the state right after its own events, once those are
 * durable. A reply can therefore never reveal state that a crash could still take back.
 */
export class EntityActor<S, C, E extends { readonly type: string }> implements Actor<C | EntitySignal> {
  private durableState: S;
  private pendingState: S;
  private nextSeqNr = 1;
  private lastSnapshotSeqNr = 0;
  private snapshotInProgress = false;
  private writesInFlight = 0;
  private readonly pending: Array<PendingEffects<S, C>> = [];
  private pipelineWaiters: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  private failure: Error | undefined;
  private readonly context: EntityContext<C>;
  private readonly receiver: IdempotentReceiver | undefined;
  private readonly delivery: AtLeastOnceDelivery | undefined;
  private readonly log: Logger;

  constructor(
    private readonly definition: EntityDefinition<S, C, E>,
    private readonly entityId: string,
    private readonly persistenceId: string,
    private readonly actor: ActorContext<C | EntitySignal>,
    private readonly dependencies: EntityDependencies,
    private readonly settings: EntitySettings,
  ) {
    this.durableState = definition.initialState(entityId);
    this.pendingState = this.durableState;
    this.log = actor.log;
    this.context = {
      entityId,
      persistenceId,
      self: actor.self,
      timers: actor.timers as Timers<C>,
      clock: dependencies.clock,
      random: dependencies.random,
      log: actor.log,
      messenger: dependencies.messenger,
    };
    const deduplication = definition.deduplication;
    this.receiver = deduplication
      ? new IdempotentReceiver(dependencies.journal, persistenceId, deduplication.recentIdsCapacity)
      : undefined;
    const delivery = definition.delivery;
    this.delivery = delivery
      ? new AtLeastOnceDelivery(dependencies.messenger, dependencies.clock, dependencies.random, delivery)
      : undefined;
  }

  async preStart(): Promise<void> {
    await this.recover();
    this.dependencies.observer?.onRecovered?.(this.persistenceId, this.durableState, this.nextSeqNr - 1);
    this.startHousekeeping();
    this.delivery?.sendAll(this.outboxOf(this.durableState));
    this.definition.onRecoveryCompleted?.(this.durableState, this.context);
  }

  receive(message: C | EntitySignal): void | Promise<void> {
    if (this.failure instanceof StaleEpochError) return; // stopping: the shard is another node's
    if (this.failure !== undefined) throw this.failure;
    if (message instanceof EntitySignal) return this.onSignal(message);
    const command = message;
    const deduplication = this.definition.deduplication;
    const messageId = deduplication?.messageIdOf(command);
    if (deduplication === undefined || messageId === undefined || this.receiver === undefined) {
      return this.apply(this.definition.decide(this.pendingState, command), command, undefined);
    }
    const known = this.receiver.knownDuplicate(messageId);
    if (known === true)
      return this.apply(deduplication.onDuplicate(this.pendingState, command), command, undefined);
    const key: MessageKey = { id: messageId, time: deduplication.messageTimeOf?.(command) ?? 0 };
    return this.receiver.isDuplicate(key).then((duplicate) => {
      if (this.failure !== undefined) throw this.failure;
      return duplicate
        ? this.apply(deduplication.onDuplicate(this.pendingState, command), command, undefined)
        : this.apply(this.definition.decide(this.pendingState, command), command, key);
    });
  }

  /**
   * Idle is not enough: an entity with writes in flight would lose their side effects, one with
   * unconfirmed deliveries would stop redelivering, and one its definition calls busy (bank calls
   * under way) would lose their answers — until some new message woke it, which may be never.
   */
  canPassivate(): boolean {
    return (
      this.pending.length === 0 &&
      this.writesInFlight === 0 &&
      !this.snapshotInProgress &&
      this.outboxOf(this.durableState).size === 0 &&
      this.definition.busy?.(this.durableState) !== true
    );
  }

  // ---- recovery -------------------------------------------------------------------------------

  private async recover(): Promise<void> {
    const recovered = await recoverState(
      this.definition,
      this.entityId,
      this.persistenceId,
      this.dependencies.journal,
      this.dependencies.snapshots,
      { pageSize: this.settings.recoveryPageSize },
    );
    this.durableState = recovered.state;
    this.pendingState = recovered.state;
    this.nextSeqNr = recovered.seqNr + 1;
    this.lastSnapshotSeqNr = recovered.snapshotSeqNr;
  }

  private startHousekeeping(): void {
    const { delivery, deduplication } = this.definition;
    if (delivery !== undefined) {
      this.actor.timers.startPeriodic(
        redeliverTimerKey,
        new EntitySignal('redeliver'),
        delivery.redeliverIntervalMs,
      );
    }
    if (deduplication !== undefined) {
      this.actor.timers.startPeriodic(
        expireTimerKey,
        new EntitySignal('expire-processed'),
        deduplication.cleanupIntervalMs,
      );
    }
  }

  // ---- running ----------------------------------------------------------------------------------

  private apply(effect: Effect<S, C, E>, command: C, message: MessageKey | undefined): void | Promise<void> {
    const directive = effect.directive;
    switch (directive.kind) {
      case 'unhandled':
        this.log.debug({ command: describe(command) }, 'command not handled in the current state');
        return;
      case 'stash':
        this.actor.stash(command);
        return;
      case 'none':
        this.enqueue({
          durable: true,
          lastSeqNr: undefined,
          stateAfter: this.pendingState,
          sideEffects: effect.sideEffects,
          messageId: undefined,
        });
        this.release();
        return;
      case 'persist':
        return this.persist(directive.events, effect.sideEffects, message);
      default:
        return assertNever(directive);
    }
  }

  private persist(
    events: readonly E[],
    sideEffects: ReadonlyArray<SideEffect<S, C>>,
    message: MessageKey | undefined,
  ): void | Promise<void> {
    let state = this.pendingState;
    for (const event of events) state = this.definition.evolve(state, event);
    const serialized = events.map((event) => this.definition.events.serialize(event));
    const fromSeqNr = this.nextSeqNr;
    const entry: PendingEffects<S, C> = {
      durable: false,
      lastSeqNr: fromSeqNr + events.length - 1,
      stateAfter: state,
      sideEffects,
      messageId: message?.id,
    };
    this.pendingState = state;
    this.nextSeqNr += events.length;
    this.enqueue(entry);
    this.writesInFlight++;
    if (message !== undefined) this.receiver?.writing(message.id);
    const timestamp = this.dependencies.clock.now();
    this.dependencies.journal
      .append({
        persistenceId: this.persistenceId,
        fromSeqNr,
        events: serialized,
        timestamp,
        ...(message === undefined
          ? {}
          : { processed: { receiverId: this.persistenceId, messages: [message] } }),
        ...(this.dependencies.fence === undefined ? {} : { fence: this.dependencies.fence }),
      })
      .then(
        () => this.onWritten(entry, timestamp),
        (error: unknown) => this.onWriteFailed(entry, error),
      );
    if (this.writesInFlight < this.settings.pipelineDepthMax) return;
    return new Promise<void>((resolve, reject) => this.pipelineWaiters.push({ resolve, reject }));
  }

  private enqueue(entry: PendingEffects<S, C>): void {
    this.pending.push(entry);
  }

  private onWritten(entry: PendingEffects<S, C>, timestamp: number): void {
    if (this.failure !== undefined) return;
    entry.durable = true;
    this.writesInFlight--;
    if (entry.messageId !== undefined) this.receiver?.written(entry.messageId, true, timestamp);
    try {
      this.release();
    } catch (error) {
      this.crash(asError(error));
      return;
    }
    if (this.writesInFlight < this.settings.pipelineDepthMax) {
      for (const waiter of this.pipelineWaiters.splice(0)) waiter.resolve();
    }
  }

  private onWriteFailed(entry: PendingEffects<S, C>, error: unknown): void {
    if (this.failure !== undefined) return;
    const cause = asError(error);
    if (cause instanceof StaleEpochError) {
      // Expected after a takeover (this node was paused or cut off past its lease): an operator
      // reading the log must see that the fence did its work, not a write failure to investigate.
      this.log.warn(
        {
          persistenceId: this.persistenceId,
          seqNr: entry.lastSeqNr,
          shardId: cause.fence.shardId,
          epoch: cause.fence.epoch,
          owner: cause.fence.owner,
        },
        'write refused by the epoch check: the shard has a newer owner; the entity stops here for good',
      );
    } else {
      this.log.warn(
        { persistenceId: this.persistenceId, seqNr: entry.lastSeqNr, error: cause.message },
        'write failed; the entity stops and recovers from the journal',
      );
    }
    this.crash(cause);
  }

  /**
   * Ends this incarnation. Nothing queued behind the failure runs: its events may never have
   * become durable. Supervision restarts the entity from the journal.
   */
  private crash(error: Error): void {
    this.failure = error;
    for (const entry of this.pending) {
      if (!entry.durable && entry.messageId !== undefined) this.receiver?.written(entry.messageId, false, 0);
    }
    this.pending.length = 0;
    const waiters = this.pipelineWaiters.splice(0);
    if (error instanceof StaleEpochError) {
      // Another node owns the shard now: restarting here would only be refused again. The entity
      // stops for good (its registry does not revive it); its new owner recovers it.
      for (const waiter of waiters) waiter.resolve();
      this.actor.stop();
      return;
    }
    if (waiters.length > 0) for (const waiter of waiters) waiter.reject(error);
    else this.actor.self.tell(new EntitySignal('crash'));
  }

  /** Runs, in order, every queued group of side effects whose writes (and all before) are durable. */
  private release(): void {
    while (this.pending.length > 0) {
      const head = this.pending[0];
      if (head === undefined || !head.durable) return;
      this.pending.shift();
      if (head.lastSeqNr !== undefined) this.becameDurable(head.stateAfter, head.lastSeqNr);
      for (const sideEffect of head.sideEffects) this.run(sideEffect, head.stateAfter);
    }
  }

  private becameDurable(state: S, seqNr: number): void {
    this.durableState = state;
    this.dependencies.observer?.onDurable?.(this.persistenceId, state, seqNr);
    this.maybeSnapshot(seqNr);
  }

  private run(sideEffect: SideEffect<S, C>, state: S): void {
    this.dependencies.observer?.onSideEffect?.(this.persistenceId, sideEffect.kind);
    switch (sideEffect.kind) {
      case 'reply':
        sideEffect.to.tell(sideEffect.message(state));
        return;
      case 'run':
        sideEffect.run(state, this.context);
        return;
      case 'deliver': {
        const entry = this.outboxOf(state).get(sideEffect.deliveryId);
        if (entry === undefined) {
          throw new Error(
            `thenDeliver(${sideEffect.deliveryId}): the persisted events put no such entry in the outbox`,
          );
        }
        this.requireDelivery().send(entry);
        return;
      }
      case 'confirmed':
        this.requireDelivery().confirmed(sideEffect.deliveryId);
        return;
      case 'unstash-all':
        this.actor.unstashAll();
        return;
      case 'stop':
        this.actor.stop();
        return;
      default:
        assertNever(sideEffect);
    }
  }

  private maybeSnapshot(seqNr: number): void {
    const settings = this.definition.snapshot;
    const snapshots = this.dependencies.snapshots;
    if (settings === undefined || snapshots === undefined || this.snapshotInProgress) return;
    if (seqNr - this.lastSnapshotSeqNr < settings.everyEvents) return;
    this.snapshotInProgress = true;
    const payload = JSON.stringify(settings.codec.encode(this.durableState));
    const snapshot = {
      persistenceId: this.persistenceId,
      seqNr,
      version: settings.codec.version,
      payload,
      timestamp: this.dependencies.clock.now(),
    };
    snapshots
      .save(snapshot, this.dependencies.fence)
      .then(async () => {
        this.lastSnapshotSeqNr = seqNr;
        await snapshots.deleteOlderThan(this.persistenceId, seqNr);
      })
      .catch((error: unknown) => {
        // A missing snapshot only makes the next recovery slower; the journal still has every event.
        if (error instanceof StaleEpochError) {
          this.log.warn(
            {
              persistenceId: this.persistenceId,
              seqNr,
              shardId: error.fence.shardId,
              epoch: error.fence.epoch,
              owner: error.fence.owner,
            },
            'snapshot refused by the epoch check: the shard has a newer owner',
          );
          return;
        }
        this.log.warn(
          { persistenceId: this.persistenceId, seqNr, error: asError(error).message },
          'snapshot failed',
        );
      })
      .finally(() => {
        this.snapshotInProgress = false;
      });
  }

  // ---- housekeeping signals --------------------------------------------------------------------

  private onSignal(signal: EntitySignal): void {
    switch (signal.kind) {
      case 'crash':
        throw this.failure ?? new Error('entity crashed');
      case 'redeliver':
        this.requireDelivery().redeliverDue(this.outboxOf(this.durableState));
        return;
      case 'expire-processed':
        this.expireProcessed();
        return;
      default:
        assertNever(signal.kind);
    }
  }

  private expireProcessed(): void {
    const { receiver } = this;
    const retentionMs = this.definition.deduplication?.retentionMs;
    if (receiver === undefined || retentionMs === undefined) return;
    receiver.expire(this.dependencies.clock.now(), retentionMs).catch((error: unknown) => {
      this.log.warn(
        { error: asError(error).message },
        'expiring processed-message records failed; will retry',
      );
    });
  }

  private outboxOf(state: S): Outbox<unknown> {
    return this.definition.delivery?.outboxOf(state) ?? emptyOutbox;
  }

  private requireDelivery(): AtLeastOnceDelivery {
    if (this.delivery === undefined) {
      throw new Error(`entity type ${this.definition.typeName} delivers but declares no delivery settings`);
    }
    return this.delivery;
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

function describe(command: unknown): string {
  if (typeof command === 'object' && command !== null && 'type' in command) return String(command.type);
  return typeof command;
}
