import assert from 'node:assert/strict';
import { type BackoffSettings, backoffDelayMs } from '../runtime/backoff.js';
import type { Cancellable, Clock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import type { Random } from '../runtime/random.js';
import { OrderProjectionError } from './order-projection.js';

/**
 * The restart supervision both order-projection supervisors share (`OrderProjectionWorker`, its
 * projection in a worker thread, and `SupervisedOrderProjection`, in the calling thread): a
 * projection that ended unasked is started again after an exponential backoff. After `restartsMax`
 * failures in a row without progress it is declared failed — `failure` is set, the owner is told
 * (it rejects its waiters), an error is logged — and it is still restarted every
 * `restart.maxBackoffMs`, so a store that comes back heals it; the first progress clears the
 * failure.
 */

export interface ProjectionRestartsOptions {
  /** Backoff between restarts of a projection that ended unasked. */
  readonly restart: BackoffSettings;
  /** Failures in a row, without progress between them, before the projection is declared failed. */
  readonly restartsMax: number;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  /** The log messages of a crash and of the recovery after failures, naming what is supervised. */
  readonly messages: { readonly crashed: string; readonly recovered: string };
  /** The projection was declared failed with this error. */
  readonly failed: (failure: OrderProjectionError) => void;
  /** Starts the projection again if its owner still wants it; whether it did. */
  readonly restartProjection: () => boolean;
}

export class ProjectionRestarts {
  /** Projections started again after ending unasked. */
  restarts = 0;
  /** Failures since the last progress. */
  consecutiveFailures = 0;
  /** Why the last projection ended unasked, if one did. */
  lastError: string | undefined;
  /** Set while declared failed (`restartsMax` exceeded); cleared by progress. */
  failure: OrderProjectionError | undefined;
  private timer: Cancellable | undefined;

  constructor(private readonly options: ProjectionRestartsOptions) {
    const { restartsMax, restart } = options;
    assert.ok(Number.isSafeInteger(restartsMax) && restartsMax >= 0, 'restartsMax must be an integer >= 0');
    assert.ok(
      restart.minBackoffMs > 0 && restart.maxBackoffMs >= restart.minBackoffMs,
      'bad restart backoff',
    );
  }

  /** The projection ended unasked at `offset`: counts the failure and schedules its restart. */
  crashed(reason: string, offset: number): void {
    const { restartsMax, restart, random, log, messages, clock } = this.options;
    this.lastError = reason;
    this.consecutiveFailures++;
    const delayMs = backoffDelayMs(this.consecutiveFailures - 1, restart, random);
    log.error(
      { error: reason, consecutiveFailures: this.consecutiveFailures, restartInMs: delayMs, offset },
      messages.crashed,
    );
    if (this.consecutiveFailures > restartsMax && this.failure === undefined) {
      this.failure = new OrderProjectionError(offset, new Error(reason));
      // The read model is behind and stays behind until a restart gets further: loud, not stale.
      log.error(
        { error: reason, consecutiveFailures: this.consecutiveFailures, offset },
        'order projection failed: the read model is not being updated',
      );
      this.options.failed(this.failure);
    }
    this.timer = clock.schedule(delayMs, () => {
      this.timer = undefined;
      if (this.options.restartProjection()) this.restarts++;
    });
  }

  /** The projection has done useful work (at `offset`): whatever failed before is over. */
  progressed(offset: number): void {
    if (this.consecutiveFailures === 0) return;
    this.options.log.info(
      { restarts: this.restarts, afterFailures: this.consecutiveFailures, offset },
      this.options.messages.recovered,
    );
    this.forgetFailures();
  }

  /** Starts counting failures afresh, as for a projection rebuilt from nothing. */
  forgetFailures(): void {
    this.consecutiveFailures = 0;
    this.failure = undefined;
  }

  /** Cancels a restart that is waiting out its backoff. */
  cancel(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }
}
