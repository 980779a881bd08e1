import { paymentAddress } from '../payments/payment-protocol.js';
import { EntityNotOwnedError } from '../persistence/entity-registry.js';
import type { ActorRef } from '../runtime/actor.js';
import type { Cancellable, Clock } from '../runtime/clock.js';
import type { EntityAddress } from '../runtime/entity-address.js';
import type { Logger } from '../runtime/logger.js';
import type { RefundQueries } from './refund-queries.js';

export interface PendingRefundSweepSettings {
  /** How often the node wakes the Payments of pending refunds. */
  readonly pendingRefundSweepIntervalMs: number;
  /** Pending refunds read (and their Payments woken) in one pass; the next pass goes on from there. */
  readonly pendingRefundsPerSweepMax: number;
}

export const defaultPendingRefundSweepSettings: PendingRefundSweepSettings = {
  pendingRefundSweepIntervalMs: 30_000,
  pendingRefundsPerSweepMax: 500,
};

/** Starts an entity on this node; throws `EntityNotOwnedError` for one of another node's shards. */
export interface EntityStarter {
  refFor<M>(address: EntityAddress<M>): ActorRef<M>;
}

/**
 * Resumes refunds a crash cut short. A Payment delivers `ExecuteRefund` at least once, but only
 * while it runs, and Payments are per order: nothing starts one after a restart. So every
 * `pendingRefundSweepIntervalMs` (and once at start) the node reads refunds still pending from the
 * read model and starts their Payments, whose recovery sends every unconfirmed delivery again (a
 * refund the Executor holds already is only confirmed). Each pass reads at most
 * `pendingRefundsPerSweepMax`, from where the last pass stopped, so a long list is covered over
 * several passes. On a cluster a node starts only the Payments of its own shards; each owner sweeps
 * its own.
 */
export class PendingRefundSweep {
  private timer: Cancellable | undefined;
  private after: string | undefined;
  private running = false;
  private stopped = false;

  constructor(
    private readonly queries: RefundQueries,
    private readonly entities: EntityStarter,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly settings: PendingRefundSweepSettings = defaultPendingRefundSweepSettings,
  ) {}

  start(): void {
    if (this.stopped || this.timer !== undefined || this.running) return;
    void this.pass();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** One pass: wakes the Payments of up to `pendingRefundsPerSweepMax` pending refunds. Resolves when done. */
  async sweepOnce(): Promise<number> {
    const pending = await this.queries.pendingRefunds(this.settings.pendingRefundsPerSweepMax, this.after);
    const last = pending.at(-1);
    // A short page is the end of the list: the next pass starts from the beginning again.
    this.after = pending.length < this.settings.pendingRefundsPerSweepMax ? undefined : last?.refundId;
    let woken = 0;
    for (const orderId of new Set(pending.map((refund) => refund.orderId))) {
      if (this.stopped) break;
      try {
        this.entities.refFor(paymentAddress(orderId));
        woken++;
      } catch (error) {
        // Another node owns this Payment's shard; its own sweep wakes it.
        if (!(error instanceof EntityNotOwnedError)) throw error;
      }
    }
    return woken;
  }

  private async pass(): Promise<void> {
    this.running = true;
    try {
      const woken = await this.sweepOnce();
      if (woken > 0) this.logger.info({ woken }, 'pending refunds: payments woken');
    } catch (error) {
      this.logger.warn({ err: error }, 'pending refund sweep failed; trying again next interval');
    } finally {
      this.running = false;
    }
    if (this.stopped) return;
    this.timer = this.clock.schedule(this.settings.pendingRefundSweepIntervalMs, () => {
      this.timer = undefined;
      void this.pass();
    });
  }
}
