import { JournalClosedError, JournalOverloadedError } from './journal.js';

export interface GroupCommitSettings {
  /** The most requests one transaction takes; the rest wait for the next one. */
  readonly batchSizeMax: number;
  /** The most requests waiting or in flight; beyond it `submit` rejects with JournalOverloadedError. */
  readonly pendingAppendsMax: number;
}

export const defaultGroupCommitSettings: GroupCommitSettings = {
  batchSizeMax: 4096,
  pendingAppendsMax: 100_000,
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
 * Group commit: every request submitted while no transaction is running joins the next one, so
 * concurrent writers from many entities share one transaction and one fsync. A waiter is released
 * only after the transaction holding its request has committed. One transaction is in flight at a
 * time, which keeps a persistence id's appends in submission order.
 */
export class GroupCommitter<R> {
  private queue: Waiter<R>[] = [];
  private inFlight = 0;
  private scheduled = false;
  private running = false;
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
    if (!this.running && this.queue.length === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    // setImmediate, not a microtask: every append made in this turn of the event loop joins the batch.
    setImmediate(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      const batch = this.queue.splice(0, this.settings.batchSizeMax);
      this.inFlight = batch.length;
      let outcomes: ReadonlyArray<Error | undefined>;
      try {
        outcomes = await this.commitBatch(batch.map((waiter) => waiter.request));
      } catch (error) {
        const failure = error instanceof Error ? error : new Error(String(error));
        outcomes = batch.map(() => failure);
      }
      this.inFlight = 0;
      batch.forEach((waiter, index) => {
        const outcome = outcomes[index];
        if (outcome === undefined) waiter.resolve();
        else waiter.reject(outcome);
      });
    } finally {
      this.running = false;
    }
    if (this.queue.length > 0) this.schedule();
    else for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
