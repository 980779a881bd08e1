import { Map as ImmutableMap, List } from 'immutable';

/**
 * One card's entry: its token and the times of its latest orders. The same object is the map's
 * value and the queue's entry, so a queue entry is current exactly when the map still holds it.
 */
class Activity {
  constructor(
    readonly token: string,
    readonly times: readonly number[],
  ) {}
}

/**
 * Per card token, the times of its latest orders, least recently active card first: the
 * Merchant's velocity memory. Immutable (every change returns a new value, sharing structure).
 *
 * Not an immutable.js `OrderedMap`: deleting from its front leaves holes that `first()` walks
 * over until the map compacts, so evicting the oldest card on every order cost time growing with
 * the orders of the window (measured: 40% of the gateway's event loop after ~200,000 orders, and
 * throughput falling in waves). Here a card's activity is a map entry plus an entry in a queue in
 * order of activity; re-recording a card leaves its older queue entry stale, and stale entries
 * are dropped when they reach the front. Each operation is O(log n); the queue holds at most one
 * entry per recording still inside the window.
 *
 * A card costs one map entry, one queue slot and one `Activity` (with its array of times): the
 * bench's workload, a new card per order, keeps ~75,000 cards in a one-minute window at 1,250
 * orders/s, so every object per card is megabytes of heap.
 */
export class CardActivity {
  static readonly empty = new CardActivity(ImmutableMap(), List());

  private constructor(
    private readonly byToken: ImmutableMap<string, Activity>,
    private readonly order: List<Activity>,
  ) {}

  /** From entries in order of activity, least recent first (e.g. a snapshot's). */
  static of(entries: Iterable<readonly [string, readonly number[]]>): CardActivity {
    let activity = CardActivity.empty;
    for (const [token, times] of entries) activity = activity.record(token, times);
    return activity;
  }

  get size(): number {
    return this.byToken.size;
  }

  get(token: string): readonly number[] | undefined {
    return this.byToken.get(token)?.times;
  }

  has(token: string): boolean {
    return this.byToken.has(token);
  }

  /** Sets a card's times and makes it the most recently active card. */
  record(token: string, times: readonly number[]): CardActivity {
    const activity = new Activity(token, times);
    return new CardActivity(this.byToken.set(token, activity), this.order.push(activity));
  }

  /** Whether a queue entry is the card's latest (not left stale by a later recording). */
  private current(entry: Activity, byToken = this.byToken): boolean {
    return byToken.get(entry.token) === entry;
  }

  /** The least recently active card, or undefined when there is none. */
  oldest(): readonly [string, readonly number[]] | undefined {
    for (const entry of this.order) {
      if (this.current(entry)) return [entry.token, entry.times];
    }
    return undefined;
  }

  /**
   * Forgets least recently active cards while `forget(times, size)` says so, and drops the stale
   * queue entries in front of them.
   */
  forgetOldestWhile(forget: (times: readonly number[], size: number) => boolean): CardActivity {
    let byToken = this.byToken;
    let order = this.order;
    for (;;) {
      const front = order.first();
      if (front === undefined) break;
      if (!this.current(front, byToken)) {
        order = order.shift();
        continue;
      }
      if (!forget(front.times, byToken.size)) break;
      byToken = byToken.delete(front.token);
      order = order.shift();
    }
    return byToken === this.byToken && order === this.order ? this : new CardActivity(byToken, order);
  }

  /** Cards in order of activity, least recent first. */
  *entries(): IterableIterator<[string, readonly number[]]> {
    for (const entry of this.order) {
      if (this.current(entry)) yield [entry.token, entry.times];
    }
  }

  *keys(): IterableIterator<string> {
    for (const [token] of this.entries()) yield token;
  }
}
