import { expect } from 'vitest';
import type { Effect } from '../persistence/effect.js';
import type { EntityContext, EntityDefinition } from '../persistence/entity.js';
import type { ActorRef, Timers } from '../runtime/actor.js';
import { type Clock, SimulatedClock } from '../runtime/clock.js';
import type { EntityAddress, Messenger } from '../runtime/entity-address.js';
import { silentLogger } from '../runtime/logger.js';
import { type Random, SeededRandom } from '../runtime/random.js';

/** A reply address that records what it is told, for specs that never start an actor. */
export interface ReplyProbe<R> extends ActorRef<R> {
  readonly received: R[];
  /** The one reply, or a failed expectation if there was not exactly one. */
  single(): R;
}

export function replyProbe<R>(path = '/test/reply-probe'): ReplyProbe<R> {
  const received: R[] = [];
  return {
    path,
    received,
    tell: (message: R) => {
      received.push(message);
    },
    single: () => {
      expect(received).toHaveLength(1);
      return received[0] as R;
    },
  };
}

export interface SentMessage {
  readonly to: EntityAddress<unknown>;
  readonly message: unknown;
}

export interface TimerStarted<C> {
  readonly key: string;
  readonly message: C;
  readonly delayMs: number;
  readonly periodic: boolean;
}

/**
 * What a side effect sees (`EntityContext`), recording what it does instead of doing it: messages
 * sent to other entities, messages told to the entity itself, timers started and cancelled. Time
 * and randomness are the injected, deterministic ones. With it a spec runs a decision's side
 * effects and states what they did, without an actor system.
 */
export class EntityContextProbe<C> implements EntityContext<C> {
  readonly sent: SentMessage[] = [];
  readonly toSelf: C[] = [];
  readonly timersStarted: TimerStarted<C>[] = [];
  readonly timersCancelled: string[] = [];
  readonly persistenceId: string;
  readonly log = silentLogger;
  readonly self: ActorRef<C>;
  readonly messenger: Messenger;
  readonly timers: Timers<C>;
  private readonly active = new Set<string>();

  constructor(
    readonly entityId = 'test',
    readonly clock: Clock = new SimulatedClock(),
    readonly random: Random = new SeededRandom(1),
    typeName = 'test',
  ) {
    this.persistenceId = `${typeName}-${entityId}`;
    this.self = { path: `/test/${this.persistenceId}`, tell: (message) => this.toSelf.push(message) };
    this.messenger = {
      tell: <M>(to: EntityAddress<M>, message: M) => {
        this.sent.push({ to, message });
      },
    };
    this.timers = {
      startSingle: (key, message, delayMs) => this.startTimer({ key, message, delayMs, periodic: false }),
      startPeriodic: (key, message, intervalMs) =>
        this.startTimer({ key, message, delayMs: intervalMs, periodic: true }),
      cancel: (key) => {
        this.active.delete(key);
        this.timersCancelled.push(key);
      },
      isActive: (key) => this.active.has(key),
      cancelAll: () => {
        for (const key of this.active) this.timersCancelled.push(key);
        this.active.clear();
      },
    };
  }

  /** Forgets what was recorded so far (active timers stay active). */
  clear(): void {
    this.sent.length = 0;
    this.toSelf.length = 0;
    this.timersStarted.length = 0;
    this.timersCancelled.length = 0;
  }

  private startTimer(timer: TimerStarted<C>): void {
    this.active.add(timer.key);
    this.timersStarted.push(timer);
  }
}

export interface DeciderOutcome<S, E> {
  readonly effect: Effect<S, unknown, E>;
  readonly events: readonly E[];
  /** The state after the given events and the new ones. */
  readonly state: S;
  /** Outbox entries the effect asks the runtime to send (`thenDeliver`). */
  readonly delivered: readonly string[];
  /** Outbox entries the effect reports confirmed without an event (`thenConfirmed`). */
  readonly confirmed: readonly string[];
}

type Decider<S, C, E extends { readonly type: string }> = Pick<
  EntityDefinition<S, C, E>,
  'initialState' | 'decide' | 'evolve'
> &
  Partial<Pick<EntityDefinition<S, C, E>, 'deduplication'>>;

export interface DeciderSpecOptions<C> {
  readonly entityId?: string;
  /**
   * Where `run` side effects run. Without one they are left alone (they are the entity runtime's
   * business); with one — an `EntityContextProbe`, say — they run, in order, after the replies
   * before them, as the runtime runs them once the events are durable.
   */
  readonly context?: EntityContext<C>;
}

/**
 * Specifications for pure deciders, read as sentences:
 *
 *     spec.given([orderCreated]).when(validate).expectEvents([orderValidated]);
 *
 * `expectEvents` and `expectNothingPersisted` also run the effect's side effects against the
 * resulting state: replies land in their probes, and `run` side effects run in the spec's context
 * if it has one. `whenDuplicate` decides a command the runtime's idempotent receiver found among
 * the processed messages (the definition's `deduplication.onDuplicate`).
 */
export function deciderSpec<S, C, E extends { readonly type: string }>(
  decider: Decider<S, C, E>,
  options: DeciderSpecOptions<C> = {},
) {
  const entityId = options.entityId ?? 'test';
  return {
    given(events: readonly E[]) {
      const givenState = events.reduce(
        (state, event) => decider.evolve(state, event),
        decider.initialState(entityId),
      );
      const then = (effect: Effect<S, C, E>) => {
        const state = effect.events.reduce((current, event) => decider.evolve(current, event), givenState);
        const sideEffectIds = (kind: 'deliver' | 'confirmed'): string[] =>
          effect.sideEffects.flatMap((sideEffect) =>
            sideEffect.kind === kind ? [sideEffect.deliveryId] : [],
          );
        const outcome: DeciderOutcome<S, E> = {
          effect: effect as Effect<S, unknown, E>,
          events: effect.events,
          state,
          delivered: sideEffectIds('deliver'),
          confirmed: sideEffectIds('confirmed'),
        };
        const runSideEffects = (): void => {
          for (const sideEffect of effect.sideEffects) {
            if (sideEffect.kind === 'reply') sideEffect.to.tell(sideEffect.message(state));
            if (sideEffect.kind === 'run' && options.context !== undefined) {
              sideEffect.run(state, options.context);
            }
          }
        };
        return {
          outcome,
          /** Expects exactly these events, then runs the side effects. */
          expectEvents(expected: readonly E[]): DeciderOutcome<S, E> {
            expect(effect.directive.kind === 'persist' ? effect.events : []).toEqual(expected);
            runSideEffects();
            return outcome;
          },
          /** Expects no events, then runs the side effects. */
          expectNothingPersisted(): DeciderOutcome<S, E> {
            expect(effect.events).toEqual([]);
            runSideEffects();
            return outcome;
          },
          expectDirective(kind: 'persist' | 'none' | 'stash' | 'unhandled'): DeciderOutcome<S, E> {
            expect(effect.directive.kind).toBe(kind);
            return outcome;
          },
        };
      };
      return {
        when(command: C) {
          return then(decider.decide(givenState, command));
        },
        /** The command again, after the idempotent receiver has recorded its message id as processed. */
        whenDuplicate(command: C) {
          const deduplication = decider.deduplication;
          if (deduplication === undefined) throw new Error('this decider has no deduplication');
          expect(deduplication.messageIdOf(command)).toBeDefined();
          return then(deduplication.onDuplicate(givenState, command));
        },
      };
    },
  };
}
