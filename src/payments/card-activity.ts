import { Map as ImmutableMap, List } from 'immutable';

interface Activity {
  readonly times: readonly number[];
  /** The position of this card's latest entry in `order`: older entries of the card are stale. */
  readonly seq: number;
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
 */
export class CardActivity {
  static readonly empty = new CardActivity(ImmutableMap(), List(), 0);

  private constructor(
    private readonly byToken: ImmutableMap<string, Activity>,
    private readonly order: List<readonly [string, number]>,
    private readonly nextSeq: number,
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
    const seq = this.nextSeq;
    return new CardActivity(this.byToken.set(token, { times, seq }), this.order.push([token, seq]), seq + 1);
  }

  /** The least recently active card, or undefined when there is none. */
  oldest(): readonly [string, readonly number[]] | undefined {
    for (const [token, seq] of this.order) {
      const activity = this.byToken.get(token);
      if (activity?.seq === seq) return [token, activity.times];
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
      const [token, seq] = front;
      const activity = byToken.get(token);
      if (activity === undefined || activity.seq !== seq) {
        order = order.shift();
        continue;
      }
      if (!forget(activity.times, byToken.size)) break;
      byToken = byToken.delete(token);
      order = order.shift();
    }
    return byToken === this.byToken && order === this.order
      ? this
      : new CardActivity(byToken, order, this.nextSeq);
  }

  /** Cards in order of activity, least recent first. */
  *entries(): IterableIterator<[string, readonly number[]]> {
    for (const [token, seq] of this.order) {
      const activity = this.byToken.get(token);
      if (activity?.seq === seq) yield [token, activity.times];
    }
  }

  *keys(): IterableIterator<string> {
    for (const [token] of this.entries()) yield token;
  }
}
