import { hash, Map as ImmutableMap, type ValueObject } from 'immutable';

/** A card's order times, oldest first; one time is kept as a bare number (most cards have one). */
type Times = number | readonly number[];

/** A generation closed to new cards: never changed again, so every state may share it. */
interface Generation {
  readonly byToken: ReadonlyMap<string, Times>;
  /** The latest time recorded in it: once that leaves the window, all of it has. */
  readonly newest: number;
}

/** What `record` keeps: cards active within `windowMs`, at most `cardsMax` entries. */
export interface CardActivityLimits {
  readonly windowMs: number;
  readonly cardsMax: number;
}

/** Generations the entries of a window (or of `cardsMax`) are split into. */
export const cardActivityGenerations = 8;

/** Generation size when the limits are unknown (`of`, decoding a snapshot). */
const generationSizeOfSnapshot = 4_096;

const timesOf = (times: Times): readonly number[] => (typeof times === 'number' ? [times] : times);
const newestOf = (times: Times): number =>
  typeof times === 'number' ? times : (times[times.length - 1] ?? Number.NEGATIVE_INFINITY);

/**
 * Per card token, the times of its latest orders: the Merchant's velocity memory. Immutable (every
 * change returns a new value, sharing structure), so pipelined `evolve` stays cheap.
 *
 * Cards are held in generations, in order of activity. The newest one is open: a small persistent
 * map that each `record` copies a path of. When it holds `cardsMax / 8` cards, or spans an eighth
 * of the window, it is closed: copied once into a plain `Map`, which no state ever changes again,
 * so all states share it. A card recorded again goes into the open generation with all its times
 * (the caller passes them), and the copy in an older generation is shadowed: lookups go from the
 * newest generation to the oldest. A closed generation is dropped whole once its newest time has
 * left the window, or, oldest first, while the entries of all generations exceed `cardsMax`.
 *
 * Why generations: one persistent map of every card would cost ~226 bytes of heap per card and a
 * path of a map of ~100,000 cards copied per order (the bench keeps ~108,000 cards in a one-minute
 * window at 1,800 orders/s); a closed generation costs ~40 bytes per card (bench/README.md). The
 * price: a card past the window may be held until its generation's newest time has left it too (an
 * eighth of the window at most), though it is never counted (callers count only times inside the
 * window); and `cardsMax` forgets a generation's cards at once (the least recently active eighth),
 * not one card at a time.
 */
export class CardActivity implements ValueObject {
  static readonly empty = new CardActivity([], ImmutableMap(), Number.NEGATIVE_INFINITY, 0);

  private constructor(
    /** Closed generations, oldest first. */
    private readonly closed: readonly Generation[],
    private readonly open: ImmutableMap<string, Times>,
    /** The earliest time recorded in the open generation. */
    private readonly openSince: number,
    /** Entries of all generations, shadowed copies included: what memory is bounded by. */
    private readonly held: number,
  ) {}

  /**
   * From cards in order of activity, least recent first (a snapshot's), in closed generations of
   * 4,096; the next `record` applies its limits.
   */
  static of(cards: Iterable<readonly [string, readonly number[]]>): CardActivity {
    const closed: Generation[] = [];
    let current = new Map<string, Times>();
    let newest = Number.NEGATIVE_INFINITY;
    let count = 0;
    for (const [token, times] of cards) {
      current.set(token, times.length === 1 ? (times[0] as number) : times);
      newest = Math.max(newest, times[times.length - 1] ?? newest);
      count++;
      if (current.size >= generationSizeOfSnapshot) {
        closed.push({ byToken: current, newest });
        current = new Map();
        newest = Number.NEGATIVE_INFINITY;
      }
    }
    if (current.size > 0) closed.push({ byToken: current, newest });
    return new CardActivity(closed, ImmutableMap(), Number.NEGATIVE_INFINITY, count);
  }

  /** Entries held, a card recorded in several generations counted in each: at least the cards. */
  get size(): number {
    return this.held;
  }

  /** The card's latest times as last recorded, or undefined when it is not held. */
  get(token: string): readonly number[] | undefined {
    const times = this.lookup(token);
    return times === undefined ? undefined : timesOf(times);
  }

  has(token: string): boolean {
    return this.lookup(token) !== undefined;
  }

  /**
   * Sets a card's times (`at` is the time of the order being recorded, its latest) and forgets what
   * `limits` no longer keeps.
   */
  record(token: string, times: readonly number[], at: number, limits: CardActivityLimits): CardActivity {
    const generationSize = Math.max(1, Math.ceil(limits.cardsMax / cardActivityGenerations));
    const generationSpanMs = limits.windowMs / cardActivityGenerations;
    let closed = this.closed;
    let open = this.open;
    let openSince = this.openSince;
    if (open.size >= generationSize || (open.size > 0 && at - openSince >= generationSpanMs)) {
      closed = [...closed, close(open)];
      open = ImmutableMap();
    }
    if (open.size === 0) openSince = at;
    const before = open.size;
    open = open.set(token, times.length === 1 ? (times[0] as number) : times);
    let entries = this.held + open.size - before;
    // Forget whole generations: those that left the window, then the oldest while over the cap.
    const horizon = at - limits.windowMs;
    let drop = 0;
    while (drop < closed.length) {
      const oldest = closed[drop] as Generation;
      if (oldest.newest > horizon && entries <= limits.cardsMax) break;
      entries -= oldest.byToken.size;
      drop++;
    }
    if (drop > 0) closed = closed.slice(drop);
    return new CardActivity(closed, open, openSince, entries);
  }

  /**
   * Cards held, each once with its latest times, generation by generation from the least recently
   * active (within the open generation, in no particular order). For snapshots.
   */
  *entries(): IterableIterator<[string, readonly number[]]> {
    const generations = [...this.closed.map((generation) => generation.byToken), this.open];
    for (let index = 0; index < generations.length; index++) {
      for (const [token, times] of generations[index] as Iterable<[string, Times]>) {
        let shadowed = false;
        for (let newer = index + 1; newer < generations.length && !shadowed; newer++) {
          shadowed = (generations[newer] as { has(token: string): boolean }).has(token);
        }
        if (!shadowed) yield [token, timesOf(times)];
      }
    }
  }

  *keys(): IterableIterator<string> {
    for (const [token] of this.entries()) yield token;
  }

  /**
   * The same cards with the same times. How they are split into generations is not compared: a
   * snapshot keeps the cards and their order of activity, not the generations (see `of`).
   */
  equals(other: unknown): boolean {
    if (!(other instanceof CardActivity)) return false;
    let count = 0;
    for (const [token, times] of this.entries()) {
      const others = other.get(token);
      if (others === undefined || others.length !== times.length) return false;
      if (times.some((time, index) => others[index] !== time)) return false;
      count++;
    }
    let otherCount = 0;
    for (const _ of other.keys()) otherCount++;
    return count === otherCount;
  }

  /** Agrees with `equals`: a sum over the cards, so independent of their order. */
  hashCode(): number {
    let sum = 0;
    for (const [token, times] of this.entries()) sum = (sum + hash(token) + hash(times.join(','))) | 0;
    return sum;
  }

  private lookup(token: string): Times | undefined {
    const times = this.open.get(token);
    if (times !== undefined) return times;
    for (let index = this.closed.length - 1; index >= 0; index--) {
      const found = (this.closed[index] as Generation).byToken.get(token);
      if (found !== undefined) return found;
    }
    return undefined;
  }
}

function close(open: ImmutableMap<string, Times>): Generation {
  const byToken = new Map<string, Times>();
  let newest = Number.NEGATIVE_INFINITY;
  for (const [token, times] of open) {
    byToken.set(token, times);
    newest = Math.max(newest, newestOf(times));
  }
  return { byToken, newest };
}
