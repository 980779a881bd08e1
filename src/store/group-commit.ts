import { JournalClosedError, JournalOverloadedError } from './journal.js';

export interface GroupCommitSettings {
  /** The most requests one transaction takes; the rest wait for the next one. */
  readonly batchSizeMax: number;
  /** The most requests waiting or in flight; beyond it `submit` rejects with JournalOverloadedError. */
  readonly pendingAppendsMax: number;
  /**
   * The most batches handed to `commitBatch` and not yet settled. 1: the next batch gathers while
   * one commits. More only for a `commitBatch` that commits batches one after the other in the
   * order it was given them (the SQLite writer thread): each turn's appends are handed over at
   * once, and the writer takes what queued meanwhile as soon as it is free.
   */
  readonly batchesInFlightMax: number;
}

export const defaultGroupCommitSettings: GroupCommitSettings = {
  batchSizeMax: 4096,
  pendingAppendsMax: 100_000,
  batchesInFlightMax: 1,
};

/**
 * Commits one batch in one transaction. Returns, per request and in order, `undefined` when that
 * request is durable or the error that refused it alone (e.g. a concurrent writer). Throwing fails
 * the whole batch.
 */
export type CommitBatch<R> = (batch: readonly R[]) => Promise<ReadonlyArray<Error | undefined>>;

interface Waiter<R> {
  readonly request: R;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/**
 * Group commit: every request submitted while no batch can be handed over joins the next one, so
 * concurrent writers from many entities share one transaction and one fsync. A waiter is released
 * only after the transaction holding its request has committed. At most `batchesInFlightMax`
 * batches are in flight (1 by default), handed over in submission order; with more than one,
 * `commitBatch` must commit them in that order, which keeps a persistence id's appends in
 * submission order.
 */
export class GroupCommitter<R> {
  private queue: Waiter<R>[] = [];
  /** Requests in batches handed over and not yet settled. */
  private inFlight = 0;
  private batchesInFlight = 0;
  private scheduled = false;
  private closed = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly commitBatch: CommitBatch<R>,
    private readonly settings: GroupCommitSettings = defaultGroupCommitSettings,
  ) {}

  submit(request: R): Promise<void> {
    if (this.closed) return Promise.reject(new JournalClosedError());
    if (this.queue.length + this.inFlight >= this.settings.pendingAppendsMax) {
      return Promise.reject(new JournalOverloadedError(this.settings.pendingAppendsMax));
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      this.schedule();
    });
  }

  /** Stops taking requests and resolves once everything submitted has been committed or failed. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.batchesInFlight === 0 && this.queue.length === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.scheduled || this.batchesInFlight >= this.settings.batchesInFlightMax) return;
    this.scheduled = true;
    // setImmediate, not a microtask: every append made in this turn of the event loop joins the batch.
    setImmediate(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  private async run(): Promise<void> {
    if (this.queue.length === 0) return;
    this.batchesInFlight++;
    const batch = this.queue.splice(0, this.settings.batchSizeMax);
    this.inFlight += batch.length;
    // More room for batches in flight: what is submitted from now on is handed over next turn.
    if (this.queue.length > 0) this.schedule();
    let outcomes: ReadonlyArray<Error | undefined>;
    try {
      outcomes = await this.commitBatch(batch.map((waiter) => waiter.request));
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      outcomes = batch.map(() => failure);
    }
    this.inFlight -= batch.length;
    this.batchesInFlight--;
    batch.forEach((waiter, index) => {
      const outcome = outcomes[index];
      if (outcome === undefined) waiter.resolve();
      else waiter.reject(outcome);
    });
    if (this.queue.length > 0) this.schedule();
    else if (this.batchesInFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
