import type { EntityAddress } from '../persistence/entity.js';

/**
 * The unconfirmed deliveries of a producer, as part of its event-sourced state: `evolve` adds an
 * entry when an event calls for a delivery and removes it when the confirmation's event is
 * replayed. Because it is rebuilt from the journal, a crash loses no unconfirmed delivery.
 *
 * The functions are pure and never mutate their input, as `evolve` requires.
 */
export interface OutboxEntry<M> {
  /** Stable across redeliveries and recoveries; the receiver deduplicates on it. */
  readonly deliveryId: string;
  readonly destination: EntityAddress<M>;
  readonly message: M;
}

export type Outbox<M> = ReadonlyMap<string, OutboxEntry<M>>;

export const emptyOutbox: Outbox<never> = new Map();

export function outboxWith<M>(outbox: Outbox<M>, entry: OutboxEntry<M>): Outbox<M> {
  if (outbox.has(entry.deliveryId)) throw new Error(`delivery ${entry.deliveryId} is already in the outbox`);
  const next = new Map(outbox);
  next.set(entry.deliveryId, entry);
  return next;
}

/** Removes a confirmed delivery; confirming one that is not there changes nothing. */
export function outboxWithout<M>(outbox: Outbox<M>, deliveryId: string): Outbox<M> {
  if (!outbox.has(deliveryId)) return outbox;
  const next = new Map(outbox);
  next.delete(deliveryId);
  return next;
}

/** Whether a producer may start another delivery; at the bound it must refuse new work. */
export function outboxHasRoom(outbox: Outbox<unknown>, unconfirmedMax: number): boolean {
  return outbox.size < unconfirmedMax;
}
