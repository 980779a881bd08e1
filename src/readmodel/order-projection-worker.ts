import assert from 'node:assert/strict';
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { assertNever } from '../runtime/assert-never.js';
import type { BackoffSettings } from '../runtime/backoff.js';
import type { Clock } from '../runtime/clock.js';
import { type Logger, silentLogger } from '../runtime/logger.js';
import type { Random } from '../runtime/random.js';
import type { GuestHost } from '../runtime/thread-guest.js';
import { startTsWorker } from '../runtime/ts-worker.js';
import {
  CommitSignal,
  type CommitWatchSettings,
  defaultCommitWatchSettings,
  newCommitSignalMemory,
} from './commit-signal.js';
import {
  OrderProjectionBusyError,
  type OrderProjectionSettings,
  type OrderProjectionStats,
  OrderProjectionStoppedError,
} from './order-projection.js';
import {
  type FromProjectionThread,
  fromProjectionThreadSchema,
  type ProjectionThreadSettings,
  type ToProjectionThread,
} from './projection-protocol.js';
import { ProjectionRestarts } from './projection-restarts.js';

/**
 * The order projection in a worker thread, seen from the gateway's main thread.
 *
 * The projection (read the journal, decode, write `readmodel.db`) costs about a fifth of the main
 * thread under load; here it runs in a worker with its own connections to both files, and the main
 * thread keeps only a read-only connection to the read model for the API's queries
 * (`OrderReadModel.openForQueries`). The worker tells the main thread of its progress after every
 * committed batch. The main thread tells the worker of every durable append (`notify()`) through
 * shared memory, without a message, except for one nudge when the worker has gone to sleep after a
 * quiet spell (`commit-signal.ts`, which also gives the measurements behind this); the projection
 * also polls every `pollIntervalMs` as a fallback.
 *
 * Supervision: a worker that ends unasked — the projection stopped on an error, an uncaught throw,
 * a crash — is started again after an exponential backoff (`restart`). The read model loses
 * nothing: a batch commits whole with its offset, and the new worker continues from it. After
 * `restartsMax` crashes in a row without progress the projection is declared failed: waiters are
 * rejected, `status().state` is `failed` (the gateway's readiness and metrics show it) and it is
 * logged as an error. It is still restarted every `restart.maxBackoffMs`, so a cause that goes away
 * (a full disk) heals without restarting the process; the first progress clears the failure.
 *
 * `stop()` drains: the worker applies what the journal holds (for at most `drainTimeoutMs`), closes
 * its files and ends; a worker that does not end within `stopTimeoutMs` more is terminated, which
 * loses at most an uncommitted batch. `rebuild()` replaces the worker with one that empties the
 * read model first and projects the journal again from offset 0.
 */

/** The projection thread's heap limit: it holds one batch of events and its statements. */
export const projectionHeapMbMax = 96;

export interface OrderProjectionWorkerSettings {
  /** Settings of the projection loop inside the worker. */
  readonly projection: Partial<OrderProjectionSettings>;
  /** How the worker watches for commits while busy, and when it sleeps (see `commit-signal.ts`). */
  readonly wake: CommitWatchSettings;
  /** Backoff between restarts of a worker that ended unasked. */
  readonly restart: BackoffSettings;
  /** Crashes in a row, without progress between them, before the projection is declared failed. */
  readonly restartsMax: number;
  /** How long `stop()` lets the worker apply what the journal holds before it ends. */
  readonly drainTimeoutMs: number;
  /** How long after the drain a stopping worker may take to end before it is terminated. */
  readonly stopTimeoutMs: number;
  /** Callers of `caughtUp`/`waitForOffset` waiting at once; more are refused. */
  readonly waitersMax: number;
}

export const defaultOrderProjectionWorkerSettings: OrderProjectionWorkerSettings = {
  projection: {},
  wake: defaultCommitWatchSettings,
  restart: { minBackoffMs: 200, maxBackoffMs: 30_000, randomFactor: 0.2 },
  restartsMax: 5,
  drainTimeoutMs: 5_000,
  stopTimeoutMs: 5_000,
  waitersMax: 10_000,
};

/** A started projection thread, as this side uses it; `workerThread` makes the real one. */
export interface ProjectionThread {
  post(message: ToProjectionThread): void;
  /** Ends the thread at once (its `exit` listener is called). */
  terminate(): Promise<unknown>;
  listen(listeners: {
    readonly message: (raw: unknown) => void;
    readonly error: (error: Error) => void;
    readonly exit: (code: number) => void;
  }): void;
}

const entry = new URL('./projection-worker-entry.ts', import.meta.url);

/** The order projection in a real worker thread (`projection-worker-entry.ts`). */
export function workerThread(settings: ProjectionThreadSettings): ProjectionThread {
  // Not unref'd: while it runs it keeps the process alive (a gateway booting waits for its first
  // catch-up with little else to do); `stop()` ends it.
  const worker = startTsWorker(entry, settings, 'order-projection', projectionHeapMbMax);
  return {
    post: (message) => worker.postMessage(message),
    terminate: () => worker.terminate(),
    listen: (listeners) => {
      worker.on('message', listeners.message);
      worker.on('error', listeners.error);
      worker.once('exit', listeners.exit);
    },
  };
}

const guestEntry = new URL('./projection-guest.ts', import.meta.url);

/**
 * The order projection as a guest in a thread `host` owns (the gateway: the journal's writer
 * thread), which saves a thread of its own (~20 MB of resident memory). Seen from here it is a
 * thread like the other: it ends when the projection stops or fails, or when the host's thread
 * ends under it. `terminate` cannot end it abruptly without ending its host's thread too: it asks
 * it to stop at once, without draining.
 */
export function hostedThread(host: GuestHost): (settings: ProjectionThreadSettings) => ProjectionThread {
  return (settings) => {
    const { port1, port2 } = new MessageChannel();
    const guest = host.host(guestEntry, settings, port2);
    return {
      post: (message) => port1.postMessage(message),
      terminate: async () => {
        port1.postMessage({ type: 'stop', drainMs: 0 } satisfies ToProjectionThread);
        await guest.ended;
      },
      listen: (listeners) => {
        port1.on('message', listeners.message);
        void guest.ended.then((error) => {
          // The guest's last messages were posted before its end was: take them first.
          for (
            let queued = receiveMessageOnPort(port1);
            queued !== undefined;
            queued = receiveMessageOnPort(port1)
          ) {
            listeners.message(queued.message);
          }
          port1.close();
          if (error !== undefined) listeners.error(new Error(error));
          listeners.exit(error === undefined ? 0 : 1);
        });
      },
    };
  };
}

export interface OrderProjectionWorkerOptions {
  /** The journal's SQLite file (opened, so created and migrated, by the writer first). */
  readonly journalPath: string;
  /** The read model's file; the worker is its only writer. */
  readonly readModelPath: string;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger?: Logger;
  readonly settings?: Partial<OrderProjectionWorkerSettings>;
  /** Starts a thread; `workerThread` unless a test substitutes one. */
  readonly startThread?: (settings: ProjectionThreadSettings) => ProjectionThread;
}

/** `failed` is reported while the projection is declared failed, even as it is being retried. */
export type OrderProjectionWorkerState =
  | 'new'
  | 'starting'
  | 'running'
  | 'restarting'
  | 'failed'
  | 'stopping'
  | 'stopped';

export interface OrderProjectionWorkerStatus {
  readonly state: OrderProjectionWorkerState;
  /** The read model's offset as the worker last reported it. */
  readonly offset: number;
  /** Workers started again after ending unasked, since start. */
  readonly restarts: number;
  /** Crashes since the last progress. */
  readonly consecutiveFailures: number;
  /** Why the last worker ended unasked, if one did. */
  readonly lastError: string | undefined;
  /** Nudges posted to the worker since start (one each time it went to sleep and commits resumed). */
  readonly nudges: number;
  /** The worker sleeps until the next commit's nudge (or its fallback poll). */
  readonly workerAsleep: boolean;
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

interface OffsetWaiter extends Waiter {
  readonly offset: number;
}

/** One worker thread and what it has reported. */
interface Run {
  readonly thread: ProjectionThread;
  readonly exited: Promise<number>;
  /** Set when this side asked it to end (stop, rebuild): its end is no crash. */
  endRequested: boolean;
  batches: number;
  events: number;
  error: string | undefined;
}

export class OrderProjectionWorker {
  readonly settings: OrderProjectionWorkerSettings;
  private readonly log: Logger;
  private state: 'new' | 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped' = 'new';
  private readonly restarts: ProjectionRestarts;
  private run: Run | undefined;
  /** The next worker must empty the read model first (a rebuild not yet under way). */
  private resetPending = false;
  private offset = 0;
  private nudges = 0;
  private readonly commitSignalMemory = newCommitSignalMemory();
  private readonly commitSignal = new CommitSignal(this.commitSignalMemory);
  /** Batches and events of workers that have ended. */
  private finished = { batches: 0, events: 0 };
  private nextWaiterId = 1;
  private caughtUpWaiters = new Map<number, Waiter>();
  private offsetWaiters: OffsetWaiter[] = [];
  private stopped: Promise<void> | undefined;

  constructor(private readonly options: OrderProjectionWorkerOptions) {
    this.settings = { ...defaultOrderProjectionWorkerSettings, ...options.settings };
    this.log = (options.logger ?? silentLogger).child({ projection: 'orders' });
    const { restartsMax, drainTimeoutMs, stopTimeoutMs, waitersMax, restart } = this.settings;
    assert.ok(drainTimeoutMs >= 0 && stopTimeoutMs > 0, 'drainTimeoutMs must be >= 0, stopTimeoutMs > 0');
    assert.ok(Number.isSafeInteger(waitersMax) && waitersMax >= 1, 'waitersMax must be an integer >= 1');
    this.restarts = new ProjectionRestarts({
      restart,
      restartsMax,
      clock: options.clock,
      random: options.random,
      log: this.log,
      messages: {
        crashed: 'order projection worker ended unasked; restarting it',
        recovered: 'order projection worker recovered',
      },
      failed: (failure) => this.rejectWaiters(failure),
      restartProjection: () => {
        if (this.state !== 'restarting') return false;
        this.spawn();
        return true;
      },
    });
  }

  /** Starts the worker. Progress and failures are reported through `status()`, logs and waiters. */
  start(): void {
    assert.ok(this.state === 'new', `order projection worker cannot start: it is ${this.state}`);
    this.spawn();
  }

  /**
   * A durable append: the worker sees it within `wake.busyPollIntervalMs`, or at once if it was
   * asleep (then this posts the nudge that wakes it). Costs two atomic operations; never throws.
   */
  notify(): void {
    if (!this.commitSignal.committed()) return;
    const run = this.run;
    if (run === undefined) return;
    this.nudges++;
    this.post(run, { type: 'nudge' });
  }

  /**
   * Resolves once everything the journal held when this was called is applied. Survives worker
   * restarts (the next worker is asked again); rejects if the projection is declared failed or
   * stopped first.
   */
  caughtUp(): Promise<void> {
    return this.enqueue((waiter) => {
      const id = this.nextWaiterId++;
      this.caughtUpWaiters.set(id, waiter);
      if (this.run !== undefined) this.post(this.run, { type: 'caughtUp', id });
    });
  }

  /** Resolves once the event at global `offset` (and all before it) is applied. */
  waitForOffset(offset: number): Promise<void> {
    assert.ok(Number.isSafeInteger(offset) && offset >= 0, 'offset must be an integer >= 0');
    if (this.offset >= offset) return Promise.resolve();
    return this.enqueue((waiter) => this.offsetWaiters.push({ ...waiter, offset }));
  }

  /**
   * Drains (see the class comment) and ends the worker; rejects the callers still waiting with
   * `OrderProjectionStoppedError`. Never throws; once.
   */
  stop(): Promise<void> {
    this.stopped ??= this.stopNow();
    return this.stopped;
  }

  /**
   * Empties the read model and projects the journal again from offset 0, in a new worker; resolves
   * once it has caught up. Meanwhile queries see the read model fill up again.
   */
  async rebuild(): Promise<void> {
    assert.ok(this.isActive(), `order projection worker cannot rebuild: it is ${this.state}`);
    this.log.warn({ offset: this.offset }, 'order read model rebuild requested');
    this.restarts.cancel();
    const previous = this.run;
    this.run = undefined;
    if (previous !== undefined) await this.end(previous, 0);
    if (!this.isActive()) throw new OrderProjectionStoppedError();
    this.resetPending = true;
    this.offset = 0;
    this.restarts.forgetFailures();
    this.spawn();
    return this.caughtUp();
  }

  /**
   * Ends the worker thread abruptly, as a crash would; it is restarted like after any crash. For a
   * worker that hangs, and for tests of supervision.
   */
  async terminateWorker(): Promise<void> {
    const run = this.run;
    if (run === undefined) return;
    await run.thread.terminate();
    await run.exited;
  }

  stats(): OrderProjectionStats {
    const run = this.run;
    return {
      batches: this.finished.batches + (run?.batches ?? 0),
      events: this.finished.events + (run?.events ?? 0),
    };
  }

  status(): OrderProjectionWorkerStatus {
    const { failure, restarts, consecutiveFailures, lastError } = this.restarts;
    return {
      state: failure !== undefined && this.isActive() ? 'failed' : this.state,
      offset: this.offset,
      restarts,
      consecutiveFailures,
      lastError,
      nudges: this.nudges,
      workerAsleep: this.commitSignal.workerAsleep(),
    };
  }

  // ---- the worker's life --------------------------------------------------------------------

  private isActive(): boolean {
    return this.state === 'starting' || this.state === 'running' || this.state === 'restarting';
  }

  private spawn(): void {
    const settings: ProjectionThreadSettings = {
      journalPath: this.options.journalPath,
      readModelPath: this.options.readModelPath,
      reset: this.resetPending,
      commitSignal: this.commitSignalMemory,
      busyPollIntervalMs: this.settings.wake.busyPollIntervalMs,
      quietAfterMs: this.settings.wake.quietAfterMs,
      projection: this.settings.projection,
    };
    // A new worker starts busy.
    this.commitSignal.reset();
    const thread = (this.options.startThread ?? workerThread)(settings);
    let exit: (code: number) => void = () => undefined;
    const run: Run = {
      thread,
      exited: new Promise<number>((resolve) => {
        exit = resolve;
      }),
      endRequested: false,
      batches: 0,
      events: 0,
      error: undefined,
    };
    this.run = run;
    this.state = 'starting';
    thread.listen({
      message: (raw) => this.received(run, raw),
      error: (error) => {
        run.error ??= error.message;
      },
      exit: (code) => exit(code),
    });
    void run.exited.then((code) => this.ended(run, code));
    // Waiters from before a restart are still waiting: ask the new worker on their behalf.
    for (const id of this.caughtUpWaiters.keys()) this.post(run, { type: 'caughtUp', id });
  }

  private received(run: Run, raw: unknown): void {
    const parsed = fromProjectionThreadSchema.safeParse(raw);
    if (!parsed.success) {
      this.log.error({ error: parsed.error.message }, 'order projection worker sent a malformed message');
      return;
    }
    const message: FromProjectionThread = parsed.data;
    if (message.type === 'log') {
      // The thread's record carries the projection's own bindings; `projection` is bound here
      // already, and pino would write a key given twice twice.
      const { projection: _alreadyBound, ...fields } = message.fields;
      this.log[message.level](fields, message.message);
      return;
    }
    if (message.type === 'failed') {
      run.error = message.message;
      return;
    }
    if (run !== this.run) return;
    switch (message.type) {
      case 'started':
        this.resetPending = false;
        this.advance(message.offset);
        return;
      case 'applied':
        run.batches = message.batches;
        run.events = message.events;
        this.progressed();
        this.advance(message.offset);
        return;
      case 'caughtUp':
        this.progressed();
        this.advance(message.offset);
        for (const id of message.ids) {
          const waiter = this.caughtUpWaiters.get(id);
          this.caughtUpWaiters.delete(id);
          waiter?.resolve();
        }
        return;
      case 'stopped':
        this.advance(message.offset);
        return;
      default:
        assertNever(message);
    }
  }

  /** The worker has done useful work: whatever failed before is over. */
  private progressed(): void {
    if (this.state === 'starting') this.state = 'running';
    this.restarts.progressed(this.offset);
  }

  private advance(offset: number): void {
    this.offset = offset;
    if (this.offsetWaiters.length === 0) return;
    const still: OffsetWaiter[] = [];
    for (const waiter of this.offsetWaiters) {
      if (waiter.offset <= offset) waiter.resolve();
      else still.push(waiter);
    }
    this.offsetWaiters = still;
  }

  private ended(run: Run, code: number): void {
    this.finished.batches += run.batches;
    this.finished.events += run.events;
    run.batches = 0;
    run.events = 0;
    if (run.endRequested || run !== this.run) return;
    this.run = undefined;
    this.crashed(run.error ?? `the worker thread exited with code ${code}`);
  }

  private crashed(reason: string): void {
    this.state = 'restarting';
    this.restarts.crashed(reason, this.offset);
  }

  private async stopNow(): Promise<void> {
    if (this.state === 'new') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    this.restarts.cancel();
    const run = this.run;
    if (run !== undefined) await this.end(run, this.settings.drainTimeoutMs);
    this.run = undefined;
    this.state = 'stopped';
    this.rejectWaiters(new OrderProjectionStoppedError());
    this.log.info({ offset: this.offset }, 'order projection worker stopped');
  }

  /** Asks the worker to drain for at most `drainMs` and end; terminates it if it does not. */
  private async end(run: Run, drainMs: number): Promise<void> {
    run.endRequested = true;
    this.post(run, { type: 'stop', drainMs });
    const timer = this.options.clock.schedule(drainMs + this.settings.stopTimeoutMs, () => {
      this.log.warn({ drainMs }, 'order projection worker did not end in time; terminating it');
      void run.thread.terminate();
    });
    await run.exited;
    timer.cancel();
  }

  private post(run: Run, message: ToProjectionThread): void {
    // A worker that has ended drops messages; its end is handled by `ended`.
    run.thread.post(message);
  }

  private enqueue(add: (waiter: Waiter) => void): Promise<void> {
    const { failure } = this.restarts;
    if (failure !== undefined && this.isActive()) return Promise.reject(failure);
    if (this.state === 'stopping' || this.state === 'stopped') {
      return Promise.reject(new OrderProjectionStoppedError());
    }
    const { waitersMax } = this.settings;
    if (this.caughtUpWaiters.size + this.offsetWaiters.length >= waitersMax) {
      return Promise.reject(new OrderProjectionBusyError(waitersMax));
    }
    return new Promise<void>((resolve, reject) => add({ resolve, reject }));
  }

  private rejectWaiters(error: Error): void {
    const waiters = [...this.caughtUpWaiters.values(), ...this.offsetWaiters];
    this.caughtUpWaiters.clear();
    this.offsetWaiters = [];
    for (const waiter of waiters) waiter.reject(error);
  }
}
