import type { ActorRef } from './actor.js';

/**
 * An entity is addressed by its type and id, never by an in-process object, so the same code
 * works when the entity lives on another node. `M` is the type of message it accepts; it exists
 * only for the compiler.
 */
export interface EntityAddress<M> {
  readonly typeName: string;
  readonly entityId: string;
  /** Phantom: never set. */
  readonly __message?: M;
}

export function entityAddress<M>(typeName: string, entityId: string): EntityAddress<M> {
  return { typeName, entityId };
}

/**
 * Sends messages to entities wherever they live: the entity registry of this process, a lossy
 * network in the simulator, or the shard regions of a cluster.
 */
export interface Messenger {
  tell<M>(address: EntityAddress<M>, message: M): void;
}

/** Asks entities wherever they live; the reply comes back to the asking process. */
export interface EntityAsker {
  ask<M, R>(address: EntityAddress<M>, make: (replyTo: ActorRef<R>) => M, timeoutMs: number): Promise<R>;
}
