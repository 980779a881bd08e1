import { type BackoffSettings, backoffDelayMs } from '../runtime/backoff.js';
import type { Clock } from '../runtime/clock.js';
import type { Messenger } from '../runtime/entity-address.js';
import type { Random } from '../runtime/random.js';
import type { Outbox, OutboxEntry } from './outbox.js';

export interface RedeliverySettings {
  readonly backoff: BackoffSettings;
  readonly redeliveryBurstMax: number;
}

interface Attempt {
  count: number;
  nextAttemptAt: number;
  /** The receiver confirmed it (not journaled): not resent while this instance lives. */
  confirmed: boolean;
}

/**
 * Sends a producer's outbox entries and resends them until they leave the outbox (confirmed).
 * What must be delivered lives in the persisted state; this object only remembers, in memory,
 * when each entry was last sent, so a fresh instance after a crash simply sends everything again.
 * A confirmation may also be kept in memory only (`confirmed`): the entry is then not resent by
 * this instance, and a fresh one sends it once more.
 *
 * Its memory is bounded by the outbox, which the producer bounds with `unconfirmedMax`.
 */
export class AtLeastOnceDelivery {
  private readonly attempts = new Map<string, Attempt>();
  private sent = 0;

  constructor(
    private readonly messenger: Messenger,
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly settings: RedeliverySettings,
  ) {}

  /** Sends an entry now and schedules its redelivery. */
  send(entry: OutboxEntry<unknown>): void {
    const attempt = this.attempts.get(entry.deliveryId) ?? { count: 0, nextAttemptAt: 0, confirmed: false };
    this.transmit(entry, attempt);
    this.attempts.set(entry.deliveryId, attempt);
  }

  /** The receiver has the entry: no more resends of it from this instance. */
  confirmed(deliveryId: string): void {
    const attempt = this.attempts.get(deliveryId);
    if (attempt !== undefined) attempt.confirmed = true;
  }

  /** After recovery: everything unconfirmed goes out again (the receiver deduplicates). */
  sendAll(outbox: Outbox<unknown>): void {
    for (const entry of outbox.values()) this.send(entry);
  }

  /**
   * Resends entries whose backoff has elapsed, at most `redeliveryBurstMax` of them, and forgets
   * entries that have been confirmed. Returns how many were resent.
   */
  redeliverDue(outbox: Outbox<unknown>): number {
    const now = this.clock.now();
    let resent = 0;
    for (const deliveryId of this.attempts.keys()) {
      if (!outbox.has(deliveryId)) this.attempts.delete(deliveryId);
    }
    for (const entry of outbox.values()) {
      if (resent >= this.settings.redeliveryBurstMax) break;
      const attempt = this.attempts.get(entry.deliveryId);
      if (attempt === undefined) {
        // An entry we never sent (e.g. its `thenDeliver` was lost with a crash): send it now.
        this.send(entry);
        resent++;
      } else if (!attempt.confirmed && attempt.nextAttemptAt <= now) {
        this.transmit(entry, attempt);
        resent++;
      }
    }
    return resent;
  }

  get unconfirmedTracked(): number {
    return this.attempts.size;
  }

  get sentCount(): number {
    return this.sent;
  }

  private transmit(entry: OutboxEntry<unknown>, attempt: Attempt): void {
    attempt.nextAttemptAt =
      this.clock.now() + backoffDelayMs(attempt.count, this.settings.backoff, this.random);
    attempt.count++;
    this.sent++;
    this.messenger.tell(entry.destination, entry.message);
  }
}

/** Redelivery pacing for entities that do not need their own: 1 s, doubling to 30 s, ±20 %. */
export const defaultRedeliveryBackoff: BackoffSettings = {
  minBackoffMs: 1_000,
  maxBackoffMs: 30_000,
  randomFactor: 0.2,
};
