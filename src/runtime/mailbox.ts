/**
 * A bounded FIFO queue on a ring buffer: `offer` and `shift` are O(1) and allocate nothing once the
 * buffer has grown to the working size, which is what an actor's hot path needs.
 *
 * The buffer starts small and doubles on demand, because most actors (idle entities) hold few
 * messages and a system may hold many thousands of them. When it drains empty after having grown
 * large it shrinks back, so one burst does not pin memory for the actor's whole life.
 */
export class Mailbox<T> {
  private items: (T | undefined)[];
  private head = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`mailbox capacity must be a positive integer, got ${capacity}`);
    }
    this.items = new Array<T | undefined>(mailboxInitialSlots);
  }

  get length(): number {
    return this.count;
  }

  get isFull(): boolean {
    return this.count >= this.capacity;
  }

  /** Appends at the tail; returns false, leaving the queue unchanged, if it is full. */
  offer(item: T): boolean {
    if (this.count >= this.capacity) return false;
    if (this.count === this.items.length) this.grow();
    this.items[(this.head + this.count) & (this.items.length - 1)] = item;
    this.count++;
    return true;
  }

  /**
   * Puts an item at the head, ignoring the capacity: unstashed messages must come back even into
   * a full mailbox (the stash has its own bound, so the overshoot is bounded too).
   */
  pushFront(item: T): void {
    if (this.count === this.items.length) this.grow();
    this.head = (this.head - 1) & (this.items.length - 1);
    this.items[this.head] = item;
    this.count++;
  }

  /** Puts `items` at the head, keeping their order: `items[0]` comes out first. */
  pushFrontAll(items: readonly T[]): void {
    for (let index = items.length - 1; index >= 0; index--) {
      this.pushFront(items[index] as T);
    }
  }

  /**
   * Removes and returns the head, or undefined if the queue is empty. Callers that may queue
   * `undefined` itself check `length` first.
   */
  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.items[this.head];
    // Clear the slot so the message can be collected once processed.
    this.items[this.head] = undefined;
    this.head = (this.head + 1) & (this.items.length - 1);
    this.count--;
    if (this.count === 0) this.shrinkIfLarge();
    return item;
  }

  /** Removes every item, returning them in queue order. */
  drainAll(): T[] {
    const drained: T[] = [];
    while (this.count > 0) drained.push(this.shift() as T);
    return drained;
  }

  private grow(): void {
    // The slot count stays a power of two so that wrapping is a bit mask.
    const larger = new Array<T | undefined>(this.items.length * 2);
    for (let index = 0; index < this.count; index++) {
      larger[index] = this.items[(this.head + index) & (this.items.length - 1)];
    }
    this.items = larger;
    this.head = 0;
  }

  private shrinkIfLarge(): void {
    this.head = 0;
    if (this.items.length > mailboxRetainedSlotsMax) {
      this.items = new Array<T | undefined>(mailboxInitialSlots);
    }
  }
}

/** Slots allocated up front; a power of two. */
const mailboxInitialSlots = 8;

/** An empty mailbox with more slots than this gives them back. */
const mailboxRetainedSlotsMax = 1024;
