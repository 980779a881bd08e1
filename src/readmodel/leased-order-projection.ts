import assert from 'node:assert/strict';
import type { Cancellable, Clock } from '../runtime/clock.js';
import { type Logger, silentLogger } from '../runtime/logger.js';
import type { Random } from '../runtime/random.js';
import type { Fence } from '../store/journal.js';
import type { JournalFeed } from './journal-reader.js';
import {
  OrderProjectionBusyError,
  type OrderProjectionStats,
  OrderProjectionStoppedError,
  type ProjectedReadModel,
} from './order-projection.js';
import {
  type OrderProjectionStatus,
  SupervisedOrderProjection,
  type SupervisedOrderProjectionSettings,
} from './supervised-order-projection.js';

/**
 * The order projection of a cluster: one for the whole cluster, run by the node that holds the
 * lease of the read model's shard (a shard group of one shard, placed, renewed, self-fenced and
 * handed over by `ShardManager` like any other). Every node writes the one journal and answers
 * reads from the one read model in PostgreSQL; only the holder projects.
 *
 * **The holder** runs a `SupervisedOrderProjection` whose batches are fenced by the lease
 * (`PostgresOrderReadModel.fencedBy`): a node that lost the lease, however long it was paused,
 * writes no batch. Gaining the lease starts a projection under the new fence; losing it (handover,
 * self-fencing, expiry) stops it. Appends of other nodes are not signalled to the holder, so it
 * reads the journal every `journalPollIntervalMs` besides the signals of its own appends.
 *
 * **Every node** can wait for the read model (`caughtUp`): the holder asks its projection; any
 * other node reads the journal's last committed offset, then reads the projection's stored offset
 * every `offsetPollIntervalMs` until it has reached it, for at most `offsetWaitMaxMs`. One poll
 * loop serves every waiter of the node, at most `waitersMax` at once.
 */

export interface LeasedOrderProjectionSettings {
  /** How often the holder's projection reads the journal for other nodes' appends. */
  readonly journalPollIntervalMs: number;
  /** How often a waiting node reads the projection's stored offset. */
  readonly offsetPollIntervalMs: number;
  /** How long a wait for the stored offset lasts at most before it is given up. */
  readonly offsetWaitMaxMs: number;
  /** Callers waiting for the stored offset at once; more are refused. */
  readonly waitersMax: number;
  /** The supervision of the holder's projection. */
  readonly supervision: Partial<Omit<SupervisedOrderProjectionSettings, 'projection'>>;
}

export const defaultLeasedOrderProjectionSettings: LeasedOrderProjectionSettings = {
  journalPollIntervalMs: 100,
  offsetPollIntervalMs: 50,
  offsetWaitMaxMs: 5_000,
  waitersMax: 10_000,
  supervision: {},
};

/** The journal as the cluster's projection uses it: its global stream and its last offset. */
export interface LeasedJournal extends JournalFeed {
  lastOffset(): Promise<number>;
}

/** The read model as the cluster's projection uses it: its stored offset, and writes under a fence. */
export interface LeasedReadModel {
  offset(): Promise<number>;
  fencedBy(fence: Fence): ProjectedReadModel;
}

export interface LeasedOrderProjectionOptions {
  readonly journal: LeasedJournal;
  readonly readModel: LeasedReadModel;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger?: Logger;
  readonly settings?: Partial<LeasedOrderProjectionSettings>;
}

/** A wait for the stored offset ran past `offsetWaitMaxMs`. */
export class ReadModelWaitTimeoutError extends Error {
  override readonly name = 'ReadModelWaitTimeoutError';
  constructor(target: number, reached: number) {
    super(`the order read model did not reach offset ${target} in time (it is at ${reached})`);
  }
}

interface Held {
  readonly fence: Fence;
  readonly projection: SupervisedOrderProjection;
}

interface OffsetWaiter {
  readonly target: number;
  readonly deadline: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

export class LeasedOrderProjection {
  readonly settings: LeasedOrderProjectionSettings;
  private readonly log: Logger;
  private held: Held | undefined;
  /** Starts and stops in the order asked, each after the one before has finished. */
  private transitions: Promise<void> = Promise.resolve();
  private closed = false;
  /** The highest stored offset read or applied here. */
  private knownOffset = 0;
  private finished = { batches: 0, events: 0, restarts: 0 };
  private waiters: OffsetWaiter[] = [];
  private polling = false;
  private pollTimer: { readonly timer: Cancellable; readonly wake: () => void } | undefined;

  constructor(private readonly options: LeasedOrderProjectionOptions) {
    this.settings = { ...defaultLeasedOrderProjectionSettings, ...options.settings };
    const { offsetPollIntervalMs, offsetWaitMaxMs, waitersMax } = this.settings;
    assert.ok(offsetPollIntervalMs > 0, 'offsetPollIntervalMs must be positive');
    assert.ok(offsetWaitMaxMs > 0, 'offsetWaitMaxMs must be positive');
    assert.ok(Number.isSafeInteger(waitersMax) && waitersMax >= 1, 'waitersMax must be an integer >= 1');
    this.log = (options.logger ?? silentLogger).child({ projection: 'orders' });
  }

  /** Whether this node runs the projection now. */
  holding(): boolean {
    return this.held !== undefined;
  }

  /** The read model's lease was taken by this node: runs the projection under its fence. Never rejects. */
  hold(fence: Fence): Promise<void> {
    return this.transition(async () => {
      await this.stopHeld();
      if (this.closed) return;
      const projection = new SupervisedOrderProjection({
        journal: this.options.journal,
        readModel: this.options.readModel.fencedBy(fence),
        clock: this.options.clock,
        random: this.options.random,
        ...(this.options.logger === undefined ? {} : { logger: this.options.logger }),
        settings: {
          ...this.settings.supervision,
          projection: { pollIntervalMs: this.settings.journalPollIntervalMs },
        },
      });
      this.held = { fence, projection };
      projection.start();
      this.log.info(
        { shardId: fence.shardId, epoch: fence.epoch },
        'order projection runs on this node (it holds the read model lease)',
      );
    });
  }

  /** The lease is given up or lost: stops the projection after the batch in progress. Never rejects. */
  release(): Promise<void> {
    return this.transition(() => this.stopHeld());
  }

  /** Every durable append of this node: the holder's projection looks now. Never throws. */
  notify(): void {
    this.held?.projection.notify();
  }

  /**
   * Resolves once the read model holds everything the journal held when this was called (or
   * shortly after). Rejects when the wait is given up (`offsetWaitMaxMs`), too many callers wait,
   * or the projection is closed.
   */
  async caughtUp(): Promise<void> {
    const held = this.held;
    if (held !== undefined) {
      try {
        await held.projection.caughtUp();
        return;
      } catch (error) {
        // Stopped because the lease moved on: wait for the stored offset as any node does.
        if (!(error instanceof OrderProjectionStoppedError) || this.closed) throw error;
      }
    }
    if (this.closed) throw new OrderProjectionStoppedError();
    const target = await this.options.journal.lastOffset();
    return this.storedOffsetReaches(target);
  }

  /** The held projection's status; on another node, `stopped` at the stored offset last read. */
  status(): OrderProjectionStatus {
    const held = this.held?.projection.status();
    if (held !== undefined) {
      this.knownOffset = Math.max(this.knownOffset, held.offset);
      return { ...held, restarts: held.restarts + this.finished.restarts };
    }
    return {
      state: 'stopped',
      offset: this.knownOffset,
      restarts: this.finished.restarts,
      consecutiveFailures: 0,
      lastError: undefined,
    };
  }

  /** Batches and events applied on this node, over every time it held the lease. */
  stats(): OrderProjectionStats {
    const running = this.held?.projection.stats() ?? { batches: 0, events: 0 };
    return {
      batches: this.finished.batches + running.batches,
      events: this.finished.events + running.events,
    };
  }

  /** Stops the projection for good and rejects every waiter. Never throws. */
  async stop(): Promise<void> {
    this.closed = true;
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.reject(new OrderProjectionStoppedError());
    this.pollTimer?.timer.cancel();
    this.pollTimer?.wake();
    await this.release();
  }

  /** Runs `step` after the transitions before it; a step that throws is logged, never rejected. */
  private transition(step: () => Promise<void>): Promise<void> {
    this.transitions = this.transitions.then(step).catch((error: unknown) => {
      this.log.error({ error: String(error) }, 'order projection could not be started or stopped');
    });
    return this.transitions;
  }

  private async stopHeld(): Promise<void> {
    const held = this.held;
    if (held === undefined) return;
    this.held = undefined;
    await held.projection.stop();
    const status = held.projection.status();
    const stats = held.projection.stats();
    this.knownOffset = Math.max(this.knownOffset, status.offset);
    this.finished = {
      batches: this.finished.batches + stats.batches,
      events: this.finished.events + stats.events,
      restarts: this.finished.restarts + status.restarts,
    };
    this.log.info(
      { shardId: held.fence.shardId, epoch: held.fence.epoch, offset: status.offset },
      'order projection stopped on this node (it gave up the read model lease)',
    );
  }

  private storedOffsetReaches(target: number): Promise<void> {
    if (target <= this.knownOffset) return Promise.resolve();
    if (this.waiters.length >= this.settings.waitersMax) {
      return Promise.reject(new OrderProjectionBusyError(this.settings.waitersMax));
    }
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({
        target,
        deadline: this.options.clock.now() + this.settings.offsetWaitMaxMs,
        resolve,
        reject,
      });
      if (!this.polling) void this.poll();
    });
  }

  /** Reads the stored offset until every waiter is answered. */
  private async poll(): Promise<void> {
    this.polling = true;
    try {
      while (this.waiters.length > 0 && !this.closed) {
        try {
          this.knownOffset = Math.max(this.knownOffset, await this.options.readModel.offset());
        } catch (error) {
          // The database does not answer now: the waiters run into their deadline unless it does.
          this.log.warn({ error: String(error) }, 'could not read the order read model offset');
        }
        this.settleWaiters();
        if (this.waiters.length > 0) await this.pause(this.settings.offsetPollIntervalMs);
      }
    } finally {
      this.polling = false;
    }
  }

  private settleWaiters(): void {
    const now = this.options.clock.now();
    const waiting: OffsetWaiter[] = [];
    for (const waiter of this.waiters) {
      if (waiter.target <= this.knownOffset) waiter.resolve();
      else if (now >= waiter.deadline)
        waiter.reject(new ReadModelWaitTimeoutError(waiter.target, this.knownOffset));
      else waiting.push(waiter);
    }
    this.waiters = waiting;
  }

  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        this.pollTimer = undefined;
        resolve();
      };
      this.pollTimer = { timer: this.options.clock.schedule(ms, wake), wake };
    });
  }
}
