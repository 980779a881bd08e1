/**
 * Time, behind an interface so a seeded simulator can drive the real code. Nothing in Remit reads
 * `Date.now()` or calls `setTimeout` directly: it asks its Clock.
 */
export interface Cancellable {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Runs `callback` once, `delayMs` from now. */
  schedule(delayMs: number, callback: () => void): Cancellable;
}

export class SystemClock implements Clock {
  now(): number {
    return Date.now();
  }

  schedule(delayMs: number, callback: () => void): Cancellable {
    const handle = setTimeout(callback, Math.max(0, delayMs));
    // A pending timer must never keep a stopping process alive.
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  }
}

export const systemClock: Clock = new SystemClock();

interface ScheduledTask {
  readonly dueAt: number;
  readonly order: number;
  readonly callback: () => void;
  cancelled: boolean;
}

/**
 * A clock that moves only when told. Due tasks run in time order, ties in the order they were
 * scheduled, each with `now()` equal to its due time — so a run is the same every time.
 */
export class SimulatedClock implements Clock {
  private current: number;
  private order = 0;
  private tasks: ScheduledTask[] = [];

  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.current = startMs;
  }

  now(): number {
    return this.current;
  }

  schedule(delayMs: number, callback: () => void): Cancellable {
    const task: ScheduledTask = {
      dueAt: this.current + Math.max(0, delayMs),
      order: this.order++,
      callback,
      cancelled: false,
    };
    this.insert(task);
    return {
      cancel: () => {
        task.cancelled = true;
      },
    };
  }

  /** Tasks scheduled and not yet run or cancelled. */
  pendingCount(): number {
    return this.tasks.filter((task) => !task.cancelled).length;
  }

  /** When the next task is due, or undefined if none is pending. */
  nextDueAt(): number | undefined {
    return this.tasks.find((task) => !task.cancelled)?.dueAt;
  }

  /** Moves time forward by `ms`, running every task due on the way, synchronously. */
  advance(ms: number): void {
    this.advanceTo(this.current + ms);
  }

  advanceTo(timestamp: number): void {
    for (;;) {
      const task = this.takeDue(timestamp);
      if (task === undefined) break;
      this.current = task.dueAt;
      task.callback();
    }
    this.current = Math.max(this.current, timestamp);
  }

  /**
   * Like `advance`, but lets promise continuations and I/O callbacks run after each task, so code
   * that awaits between timers (persistence, asks) makes progress as it would in real time.
   */
  async advanceAsync(ms: number): Promise<void> {
    const target = this.current + ms;
    await settle();
    for (;;) {
      const task = this.takeDue(target);
      if (task === undefined) break;
      this.current = task.dueAt;
      task.callback();
      await settle();
    }
    this.current = Math.max(this.current, target);
    await settle();
  }

  private takeDue(limit: number): ScheduledTask | undefined {
    while (this.tasks.length > 0) {
      const first = this.tasks[0];
      if (first === undefined || first.dueAt > limit) return undefined;
      this.tasks.shift();
      if (!first.cancelled) return first;
    }
    return undefined;
  }

  private insert(task: ScheduledTask): void {
    // Binary search for the first task due strictly later; ties keep scheduling order.
    let low = 0;
    let high = this.tasks.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const other = this.tasks[middle];
      if (
        other !== undefined &&
        (other.dueAt < task.dueAt || (other.dueAt === task.dueAt && other.order < task.order))
      )
        low = middle + 1;
      else high = middle;
    }
    this.tasks.splice(low, 0, task);
  }
}

/** Resolves after pending promise continuations and already-queued I/O callbacks have run. */
export async function settle(rounds = 3): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
