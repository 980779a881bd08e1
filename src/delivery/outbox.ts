import { Map as ImmutableMap } from 'immutable';
import type { EntityAddress } from '../runtime/entity-address.js';

/**
 * The unconfirmed deliveries of a producer, as part of its event-sourced state: `evolve` adds an
 * entry when an event calls for a delivery and removes it when the confirmation's event is
 * replayed. Because it is rebuilt from the journal, a crash loses no unconfirmed delivery.
 *
 * It is a persistent (structurally shared) map: adding or removing an entry is O(log n) and never
 * mutates the previous version, as `evolve` and pipelined persistence require.
 */
export interface OutboxEntry<M> {
  /** Stable across redeliveries and recoveries; the receiver deduplicates on it. */
  readonly deliveryId: string;
  readonly destination: EntityAddress<M>;
  readonly message: M;
}

export type Outbox<M> = ImmutableMap<string, OutboxEntry<M>>;

export const emptyOutbox: Outbox<never> = ImmutableMap();

export function outboxWith<M>(outbox: Outbox<M>, entry: OutboxEntry<M>): Outbox<M> {
  if (outbox.has(entry.deliveryId)) throw new Error(`delivery ${entry.deliveryId} is already in the outbox`);
  return outbox.set(entry.deliveryId, entry);
}

/** Removes a confirmed delivery; confirming one that is not there changes nothing. */
export function outboxWithout<M>(outbox: Outbox<M>, deliveryId: string): Outbox<M> {
  return outbox.delete(deliveryId);
}

/** Whether a producer may start another delivery; at the bound it must refuse new work. */
export function outboxHasRoom(outbox: Outbox<unknown>, unconfirmedMax: number): boolean {
  return outbox.size < unconfirmedMax;
}
