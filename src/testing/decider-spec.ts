import { expect } from 'vitest';
import type { Effect } from '../persistence/effect.js';
import type { EntityDefinition } from '../persistence/entity.js';
import type { ActorRef } from '../runtime/actor.js';

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

export interface DeciderOutcome<S, E> {
  readonly effect: Effect<S, unknown, E>;
  readonly events: readonly E[];
  /** The state after the given events and the new ones. */
  readonly state: S;
}

type Decider<S, C, E extends { readonly type: string }> = Pick<
  EntityDefinition<S, C, E>,
  'initialState' | 'decide' | 'evolve'
>;

/**
 * Specifications for pure deciders, read as sentences:
 *
 *     spec.given([orderCreated]).when(validate).expectEvents([orderValidated]);
 *
 * `expectEvents` also runs the effect's reply side effects against the resulting state, so the replies
 * land in their probes; `run` side effects are left alone (they are the entity runtime's business).
 */
export function deciderSpec<S, C, E extends { readonly type: string }>(
  decider: Decider<S, C, E>,
  entityId = 'test',
) {
  return {
    given(events: readonly E[]) {
      const givenState = events.reduce(
        (state, event) => decider.evolve(state, event),
        decider.initialState(entityId),
      );
      return {
        when(command: C) {
          const effect = decider.decide(givenState, command);
          const state = effect.events.reduce((current, event) => decider.evolve(current, event), givenState);
          const outcome: DeciderOutcome<S, E> = {
            effect: effect as Effect<S, unknown, E>,
            events: effect.events,
            state,
          };
          const sendReplies = (): void => {
            for (const sideEffect of effect.sideEffects) {
              if (sideEffect.kind === 'reply') sideEffect.to.tell(sideEffect.message(state));
            }
          };
          return {
            outcome,
            /** Expects exactly these events, then sends the replies. */
            expectEvents(expected: readonly E[]): DeciderOutcome<S, E> {
              expect(effect.directive.kind === 'persist' ? effect.events : []).toEqual(expected);
              sendReplies();
              return outcome;
            },
            /** Expects no events, then sends the replies. */
            expectNothingPersisted(): DeciderOutcome<S, E> {
              expect(effect.events).toEqual([]);
              sendReplies();
              return outcome;
            },
            expectDirective(kind: 'persist' | 'none' | 'stash' | 'unhandled'): DeciderOutcome<S, E> {
              expect(effect.directive.kind).toBe(kind);
              return outcome;
            },
          };
        },
      };
    },
  };
}
