import type { ActorRef } from '../runtime/actor.js';
import type { EntityContext } from './entity.js';

/**
 * What a command handler returns: a directive, never I/O (Akka's `Effect`). The runtime persists
 * the events, and only once they are durable runs the side effects, in order, against the state
 * after those events. Side effects never run during recovery.
 */
export type SideEffect<S, C> =
  | { readonly kind: 'reply'; readonly to: ActorRef<unknown>; readonly message: (state: S) => unknown }
  | { readonly kind: 'run'; readonly run: (state: S, context: EntityContext<C>) => void }
  | { readonly kind: 'deliver'; readonly deliveryId: string }
  | { readonly kind: 'confirmed'; readonly deliveryId: string }
  | { readonly kind: 'unstash-all' }
  | { readonly kind: 'stop' };

export type Directive<E> =
  | { readonly kind: 'persist'; readonly events: readonly E[] }
  | { readonly kind: 'none' }
  | { readonly kind: 'stash' }
  | { readonly kind: 'unhandled' };

export class Effect<S, C, E> {
  private constructor(
    readonly directive: Directive<E>,
    readonly sideEffects: ReadonlyArray<SideEffect<S, C>>,
  ) {}

  /** Persist these events (atomically, in order), then run the side effects. */
  static persist<S, C, E>(events: E | readonly E[]): Effect<S, C, E> {
    const list = Array.isArray(events) ? (events as readonly E[]) : [events as E];
    if (list.length === 0) return new Effect<S, C, E>({ kind: 'none' }, []);
    return new Effect<S, C, E>({ kind: 'persist', events: list }, []);
  }

  /** Persist nothing; side effects still wait for any earlier write of this entity to be durable. */
  static none<S, C, E>(): Effect<S, C, E> {
    return new Effect<S, C, E>({ kind: 'none' }, []);
  }

  static reply<S, C, E, R>(to: ActorRef<R>, message: R): Effect<S, C, E> {
    return Effect.none<S, C, E>().thenReply(to, () => message);
  }

  /** Put the command aside until a later `thenUnstashAll()`. */
  static stash<S, C, E>(): Effect<S, C, E> {
    return new Effect<S, C, E>({ kind: 'stash' }, []);
  }

  /** The command makes no sense in this state: logged and dropped. */
  static unhandled<S, C, E>(): Effect<S, C, E> {
    return new Effect<S, C, E>({ kind: 'unhandled' }, []);
  }

  static stop<S, C, E>(): Effect<S, C, E> {
    return Effect.none<S, C, E>().thenStop();
  }

  thenReply<R>(to: ActorRef<R>, message: (state: S) => R): Effect<S, C, E> {
    return this.with({ kind: 'reply', to: to as ActorRef<unknown>, message });
  }

  thenRun(run: (state: S, context: EntityContext<C>) => void): Effect<S, C, E> {
    return this.with({ kind: 'run', run });
  }

  /** Send the outbox entry `deliveryId` (recorded by the persisted events) at least once. */
  thenDeliver(deliveryId: string): Effect<S, C, E> {
    return this.with({ kind: 'deliver', deliveryId });
  }

  /**
   * The receiver confirmed the outbox entry `deliveryId`: stop resending it in this incarnation,
   * without writing anything. The entry stays in the outbox until an event removes it, so after a
   * restart it is sent once more, and the (idempotent) receiver confirms it again. For deliveries
   * whose confirmation is not worth an event: one that a later event ends anyway.
   */
  thenConfirmed(deliveryId: string): Effect<S, C, E> {
    return this.with({ kind: 'confirmed', deliveryId });
  }

  thenUnstashAll(): Effect<S, C, E> {
    return this.with({ kind: 'unstash-all' });
  }

  thenStop(): Effect<S, C, E> {
    return this.with({ kind: 'stop' });
  }

  get events(): readonly E[] {
    return this.directive.kind === 'persist' ? this.directive.events : [];
  }

  private with(sideEffect: SideEffect<S, C>): Effect<S, C, E> {
    return new Effect(this.directive, [...this.sideEffects, sideEffect]);
  }
}

/**
 * The Effect constructors with an entity's types fixed once, so a `decide` reads without type
 * arguments: `const effect = effectsFor<State, Command, Event>(); … effect.persist(event)`.
 */
export function effectsFor<S, C, E>() {
  return {
    persist: (events: E | readonly E[]): Effect<S, C, E> => Effect.persist<S, C, E>(events),
    none: (): Effect<S, C, E> => Effect.none<S, C, E>(),
    reply: <R>(to: ActorRef<R>, message: R): Effect<S, C, E> => Effect.reply<S, C, E, R>(to, message),
    stash: (): Effect<S, C, E> => Effect.stash<S, C, E>(),
    unhandled: (): Effect<S, C, E> => Effect.unhandled<S, C, E>(),
    stop: (): Effect<S, C, E> => Effect.stop<S, C, E>(),
  };
}
