import assert from 'node:assert/strict';
import type { BackoffSettings } from '../runtime/backoff.js';
import type { Clock } from '../runtime/clock.js';
import { type Logger, silentLogger } from '../runtime/logger.js';
import type { Random } from '../runtime/random.js';
import type { JournalFeed } from './journal-reader.js';
import {
  OrderProjection,
  OrderProjectionBusyError,
  type OrderProjectionSettings,
  type OrderProjectionStats,
  OrderProjectionStoppedError,
  type ProjectedReadModel,
} from './order-projection.js';
import type { OrderProjectionWorkerState } from './order-projection-worker.js';
import { ProjectionRestarts } from './projection-restarts.js';

/**
 * The order projection in the calling thread, supervised: the node on PostgreSQL runs it so (its
 * journal reads and read-model writes are round trips to the database, not CPU on this thread).
 *
 * Supervised as `OrderProjectionWorker` supervises the worker thread on SQLite (`ProjectionRestarts`):
 * a projection that stops on an error (a lost database, an event it must not skip) is replaced by a
 * new one after an exponential backoff; it resumes at the read model's committed offset, so nothing
 * is applied twice or lost. After `restartsMax` failures in a row without progress the projection is
 * declared failed — waiters are rejected, `status().state` is `failed` (readiness and metrics show
 * it), an error is logged — and it is still restarted every `restart.maxBackoffMs`, so a database
 * that comes back heals it; the first progress clears the failure.
 */

export interface SupervisedOrderProjectionSettings {
  /** Settings of each projection loop. */
  readonly projection: Partial<OrderProjectionSettings>;
  /** Backoff between restarts of a projection that stopped on an error. */
  readonly restart: BackoffSettings;
  /** Failures in a row, without progress between them, before the projection is declared failed. */
  readonly restartsMax: number;
  /** Callers waiting for the next projection at once (while one restarts); more are refused. */
  readonly waitersMax: number;
}

export const defaultSupervisedOrderProjectionSettings: SupervisedOrderProjectionSettings = {
  projection: {},
  restart: { minBackoffMs: 200, maxBackoffMs: 30_000, randomFactor: 0.2 },
  restartsMax: 5,
  waitersMax: 10_000,
};

export interface SupervisedOrderProjectionOptions {
  readonly journal: JournalFeed;
  readonly readModel: ProjectedReadModel;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger?: Logger;
  readonly settings?: Partial<SupervisedOrderProjectionSettings>;
}

/** What the gateway reads of either projection (worker thread or in-process). */
export interface OrderProjectionStatus {
  readonly state: OrderProjectionWorkerState;
  /** The read model's offset as last applied. */
  readonly offset: number;
  /** Projections started again after stopping on an error, since start. */
  readonly restarts: number;
  /** Failures since the last progress. */
  readonly consecutiveFailures: number;
  /** Why the last projection stopped on an error, if one did. */
  readonly lastError: string | undefined;
}

interface Waiter {
  readonly resolve: (projection: OrderProjection) => void;
  readonly reject: (error: Error) => void;
}

export class SupervisedOrderProjection {
  readonly settings: SupervisedOrderProjectionSettings;
  private readonly log: Logger;
  private state: 'new' | 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped' = 'new';
  private current: OrderProjection | undefined;
  /** Settles when the current projection's loop has ended, however; never rejects. */
  private currentEnded: Promise<void> = Promise.resolve();
  private readonly restarts: ProjectionRestarts;
  private offset = 0;
  private finished = { batches: 0, events: 0 };
  /** Callers waiting for the next projection to start. */
  private waiters: Waiter[] = [];

  constructor(private readonly options: SupervisedOrderProjectionOptions) {
    this.settings = { ...defaultSupervisedOrderProjectionSettings, ...options.settings };
    this.log = (options.logger ?? silentLogger).child({ projection: 'orders' });
    const { restartsMax, restart, waitersMax } = this.settings;
    assert.ok(Number.isSafeInteger(waitersMax) && waitersMax >= 1, 'waitersMax must be an integer >= 1');
    this.restarts = new ProjectionRestarts({
      restart,
      restartsMax,
      clock: options.clock,
      random: options.random,
      log: this.log,
      messages: {
        crashed: 'order projection stopped on an error; restarting it',
        recovered: 'order projection recovered',
      },
      failed: (failure) => this.rejectWaiters(failure),
      restartProjection: () => {
        if (this.state !== 'restarting') return false;
        this.spawn();
        return true;
      },
    });
  }

  /** Starts the projection. Progress and failures are reported through `status()`, logs and waiters. */
  start(): void {
    assert.ok(this.state === 'new', `order projection cannot start: it is ${this.state}`);
    this.state = 'starting';
    this.spawn();
  }

  /** The journal has grown: the projection looks now instead of at its next poll. Never throws. */
  notify(): void {
    this.current?.notify();
  }

  /**
   * Resolves once everything the journal held when this was called is applied. Survives restarts
   * (the next projection is asked again); rejects if the projection is declared failed or stopped
   * first.
   */
  async caughtUp(): Promise<void> {
    let previous: OrderProjection | undefined;
    for (;;) {
      const projection = await this.next(previous);
      try {
        await projection.caughtUp();
        return;
      } catch (error) {
        if (error instanceof OrderProjectionBusyError) throw error;
        // That projection stopped or failed: the next one is asked, unless the supervisor stopped.
        previous = projection;
      }
    }
  }

  /** Stops the projection after the batch in progress; rejects the callers still waiting. Never throws. */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return this.currentEnded;
    this.state = 'stopping';
    this.restarts.cancel();
    await this.current?.stop();
    await this.currentEnded;
    this.state = 'stopped';
    this.rejectWaiters(new OrderProjectionStoppedError());
    this.log.info({ offset: this.offset }, 'order projection supervisor stopped');
  }

  status(): OrderProjectionStatus {
    const { failure, restarts, consecutiveFailures, lastError } = this.restarts;
    return {
      state: failure !== undefined && this.isActive() ? 'failed' : this.state,
      offset: this.offset,
      restarts,
      consecutiveFailures,
      lastError,
    };
  }

  stats(): OrderProjectionStats {
    const running = this.current?.stats() ?? { batches: 0, events: 0 };
    return {
      batches: this.finished.batches + running.batches,
      events: this.finished.events + running.events,
    };
  }

  /** The running projection other than `previous`, or the next one to start. */
  private next(previous: OrderProjection | undefined): Promise<OrderProjection> {
    if (this.restarts.failure !== undefined) return Promise.reject(this.restarts.failure);
    if (!this.isActive()) return Promise.reject(new OrderProjectionStoppedError());
    const current = this.current;
    if (current !== undefined && current !== previous) return Promise.resolve(current);
    if (this.waiters.length >= this.settings.waitersMax) {
      return Promise.reject(new OrderProjectionBusyError(this.settings.waitersMax));
    }
    return new Promise<OrderProjection>((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private spawn(): void {
    const projection = new OrderProjection({
      journal: this.options.journal,
      readModel: this.options.readModel,
      clock: this.options.clock,
      ...(this.options.logger === undefined ? {} : { logger: this.options.logger }),
      settings: this.settings.projection,
      onApplied: (offset) => {
        this.offset = offset;
        this.progressed();
      },
    });
    this.current = projection;
    this.currentEnded = projection.start().then(
      () => this.ended(projection, undefined),
      (error: unknown) => this.ended(projection, error),
    );
    // Reaching the journal's end is progress too: a quiet journal gives no batch to apply.
    projection.caughtUp().then(
      () => this.progressed(),
      () => undefined,
    );
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.resolve(projection);
  }

  private progressed(): void {
    if (this.state === 'starting' || this.state === 'restarting') this.state = 'running';
    this.restarts.progressed(this.offset);
  }

  private ended(projection: OrderProjection, error: unknown): void {
    const stats = projection.stats();
    this.finished.batches += stats.batches;
    this.finished.events += stats.events;
    if (projection !== this.current) return;
    this.current = undefined;
    if (!this.isActive() || this.state === 'stopping') return;
    this.crashed(error instanceof Error ? error.message : 'the projection stopped unasked');
  }

  private crashed(reason: string): void {
    this.state = 'restarting';
    this.restarts.crashed(reason, this.offset);
  }

  private isActive(): boolean {
    return this.state !== 'new' && this.state !== 'stopping' && this.state !== 'stopped';
  }

  private rejectWaiters(error: Error): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.reject(error);
  }
}
