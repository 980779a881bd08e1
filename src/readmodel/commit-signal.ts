import assert from 'node:assert/strict';
import type { Cancellable, Clock } from '../runtime/clock.js';

/**
 * How the projection's worker thread learns that the journal has grown, without a message per
 * commit. Measured on the 2-core benchmark machine: a message to the worker after every journal
 * transaction (~100/s) took 3–6 % of the main thread's profile samples — each `postMessage` wakes
 * the worker, and on a busy machine the woken thread takes the waker's core — while polling the
 * journal every 10 ms cost an idle gateway ~2 % of a core for nothing.
 *
 * So the two threads share two integers (a `SharedArrayBuffer`):
 *
 * - `commits`: the main thread adds 1 after every durable append (`CommitSignal.committed`, an
 *   atomic add, no system call);
 * - `sleeping`: 1 while the worker waits for a nudge.
 *
 * While the journal keeps growing the worker is *busy*: every `busyPollIntervalMs` it compares
 * `commits` with what it saw last and reads the journal only when it changed — no message at all.
 * After `quietAfterMs` without a change it goes to sleep: it sets `sleeping`, and the next commit's
 * `committed()` clears it and posts one nudge. The handshake cannot lose a wake-up: the main thread
 * adds to `commits` *then* reads `sleeping`, the worker sets `sleeping` *then* reads `commits`
 * (sequentially consistent atomics), so at least one of them sees the other's write — either the
 * main thread nudges or the worker stays busy. The projection's own `pollIntervalMs` poll remains
 * underneath as a fallback.
 */

const commitsIndex = 0;
const sleepingIndex = 1;

/** Makes the shared memory both sides use. */
export function newCommitSignalMemory(): SharedArrayBuffer {
  return new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT);
}

function view(memory: SharedArrayBuffer): Int32Array {
  assert.ok(memory.byteLength >= 2 * Int32Array.BYTES_PER_ELEMENT, 'commit signal memory is too small');
  return new Int32Array(memory);
}

/** The main thread's side. */
export class CommitSignal {
  private readonly cells: Int32Array;

  constructor(memory: SharedArrayBuffer) {
    this.cells = view(memory);
  }

  /** Counts a durable commit; true when the worker was asleep and must now be sent a nudge. */
  committed(): boolean {
    Atomics.add(this.cells, commitsIndex, 1);
    return Atomics.compareExchange(this.cells, sleepingIndex, 1, 0) === 1;
  }

  /** A new worker starts busy. */
  reset(): void {
    Atomics.store(this.cells, sleepingIndex, 0);
  }

  /** Whether the worker says it is asleep (for status and tests). */
  workerAsleep(): boolean {
    return Atomics.load(this.cells, sleepingIndex) === 1;
  }
}

export interface CommitWatchSettings {
  /** While busy: how often the worker compares the commit count. */
  readonly busyPollIntervalMs: number;
  /** How long without a commit before the worker sleeps until nudged. */
  readonly quietAfterMs: number;
}

export const defaultCommitWatchSettings: CommitWatchSettings = {
  busyPollIntervalMs: 10,
  quietAfterMs: 1_000,
};

/** The worker thread's side: calls `onGrown` when the journal has (probably) grown. */
export class CommitWatch {
  private readonly cells: Int32Array;
  private seen: number;
  private lastChangeAt: number;
  private timer: Cancellable | undefined;
  private stopped = false;

  constructor(
    memory: SharedArrayBuffer,
    private readonly clock: Clock,
    private readonly settings: CommitWatchSettings,
    private readonly onGrown: () => void,
  ) {
    this.cells = view(memory);
    assert.ok(settings.busyPollIntervalMs > 0, 'busyPollIntervalMs must be > 0');
    assert.ok(settings.quietAfterMs >= 0, 'quietAfterMs must be >= 0');
    this.seen = Atomics.load(this.cells, commitsIndex);
    this.lastChangeAt = clock.now();
  }

  /** Starts busy. */
  start(): void {
    this.schedule();
  }

  /** The main thread's nudge: it has cleared `sleeping`; the journal grew. */
  nudged(): void {
    if (this.stopped) return;
    this.grew(Atomics.load(this.cells, commitsIndex));
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** Whether this side sleeps (waits for a nudge); for tests. */
  asleep(): boolean {
    return Atomics.load(this.cells, sleepingIndex) === 1;
  }

  private schedule(): void {
    if (this.stopped || this.timer !== undefined) return;
    this.timer = this.clock.schedule(this.settings.busyPollIntervalMs, () => {
      this.timer = undefined;
      this.tick();
    });
  }

  private tick(): void {
    const commits = Atomics.load(this.cells, commitsIndex);
    if (commits !== this.seen) {
      this.grew(commits);
      this.schedule();
      return;
    }
    if (this.clock.now() - this.lastChangeAt < this.settings.quietAfterMs) {
      this.schedule();
      return;
    }
    Atomics.store(this.cells, sleepingIndex, 1);
    const after = Atomics.load(this.cells, commitsIndex);
    if (after === this.seen) return;
    // A commit came in between: stay busy. Should the main thread have seen `sleeping` already,
    // its nudge is on its way and costs only one more look.
    Atomics.compareExchange(this.cells, sleepingIndex, 1, 0);
    this.grew(after);
    this.schedule();
  }

  private grew(commits: number): void {
    this.seen = commits;
    this.lastChangeAt = this.clock.now();
    this.onGrown();
  }
}
