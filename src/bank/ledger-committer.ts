import assert from 'node:assert/strict';
import type { Logger } from '../runtime/logger.js';
import type { BankLedger } from './ledger.js';

/**
 * Group commit for the bank's ledger. A commit with synchronous=FULL costs an fsync, and
 * better-sqlite3 waits for it on the event loop, so one transaction per request caps the bank at
 * one request per fsync. Here every request's ledger work submitted while a batch runs, or in the
 * same turn of the event loop, joins one IMMEDIATE transaction: one fsync for all of them.
 *
 * - Writes run in submission order, each in a savepoint of its own, and each sees the writes
 *   before it: two payments of one reference in one batch charge once, and a cancel and a payment
 *   of one reference are decided as if they had come one after the other.
 * - A write's result is handed back only after the transaction holding it has committed, so an
 *   answer built from it is durable before it is sent, exactly as with a transaction of its own.
 * - A write that throws is undone alone (its savepoint is rolled back) and fails its request
 *   alone. A transaction that fails to commit fails every request of its batch: nothing of it was
 *   recorded.
 * - Bounded: at most `batchWritesMax` writes per transaction, at most `pendingWritesMax` waiting
 *   or being committed; beyond that a request is refused before anything is done.
 *
 * The bank is an outside system and shares no code with the gateway's journal. A ledger
 * transaction is synchronous (better-sqlite3), so one batch is committed at a time and a batch is
 * never in flight across a turn of the event loop: the queue alone is what waits.
 */

export interface LedgerCommitSettings {
  /** The most writes one ledger transaction takes; the rest wait for the next one. */
  readonly batchWritesMax: number;
  /** The most writes waiting or being committed; beyond it `write` fails with LedgerOverloadedError. */
  readonly pendingWritesMax: number;
}

/** The ledger's write queue is full: the request was refused before anything was done. */
export class LedgerOverloadedError extends Error {
  override readonly name = 'LedgerOverloadedError';
  constructor(readonly pendingWritesMax: number) {
    super(`the ledger's write queue is full (pendingWritesMax=${pendingWritesMax})`);
  }
}

/** The transaction holding the request failed to commit: nothing of its batch was recorded. */
export class LedgerCommitFailedError extends Error {
  override readonly name = 'LedgerCommitFailedError';
  constructor(
    readonly batchWrites: number,
    cause: unknown,
  ) {
    super(`a ledger transaction of ${batchWrites} writes failed to commit: ${messageOf(cause)}`, { cause });
  }
}

/** The ledger is closing: the request was refused before anything was done. */
export class LedgerClosedError extends Error {
  override readonly name = 'LedgerClosedError';
  constructor() {
    super('the ledger is closing');
  }
}

/** A write waiting in the queue, whatever its result type. */
interface PendingWrite {
  run(ledger: BankLedger): void;
  /** Hands the result to the request; called once the transaction holding the write committed. */
  answer(): void;
  reject(error: unknown): void;
}

/** One request's work on the ledger and the promise that waits for its transaction to commit. */
class LedgerWrite<T> implements PendingWrite {
  private outcome: { readonly value: T } | undefined;

  constructor(
    private readonly work: (ledger: BankLedger) => T,
    private readonly resolve: (value: T) => void,
    readonly reject: (error: unknown) => void,
  ) {}

  run(ledger: BankLedger): void {
    this.outcome = { value: this.work(ledger) };
  }

  answer(): void {
    assert.ok(this.outcome !== undefined, 'a committed ledger write has a result');
    this.resolve(this.outcome.value);
  }
}

export class LedgerCommitter {
  /** Writes waiting for the next transaction, in submission order; at most `pendingWritesMax`. */
  private queue: PendingWrite[] = [];
  private scheduled = false;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  /** Requests refused by the queue bound since the last warning about it. */
  private refusedSinceWarning = 0;

  constructor(
    private readonly ledger: BankLedger,
    private readonly settings: LedgerCommitSettings,
    private readonly logger: Logger,
  ) {
    assert.ok(
      Number.isSafeInteger(settings.batchWritesMax) && settings.batchWritesMax >= 1,
      `batchWritesMax must be a positive integer, not ${settings.batchWritesMax}`,
    );
    assert.ok(
      Number.isSafeInteger(settings.pendingWritesMax) && settings.pendingWritesMax >= 1,
      `pendingWritesMax must be a positive integer, not ${settings.pendingWritesMax}`,
    );
  }

  /**
   * Runs `work` inside the next ledger transaction and resolves with what it returned once that
   * transaction has committed. Rejects with what `work` threw (its writes undone), with
   * LedgerCommitFailedError, LedgerOverloadedError or LedgerClosedError.
   */
  write<T>(work: (ledger: BankLedger) => T): Promise<T> {
    if (this.closed) return Promise.reject(new LedgerClosedError());
    if (this.queue.length >= this.settings.pendingWritesMax) {
      this.refusedSinceWarning++;
      return Promise.reject(new LedgerOverloadedError(this.settings.pendingWritesMax));
    }
    return new Promise<T>((resolve, reject) => {
      this.queue.push(new LedgerWrite<T>(work, resolve, reject));
      this.schedule();
    });
  }

  /** Stops taking writes and resolves once every write submitted has committed or failed. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.queue.length === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate, not a microtask: every write submitted in this turn of the event loop joins the batch.
    setImmediate(() => {
      this.scheduled = false;
      this.commitNextBatch();
    });
  }

  private commitNextBatch(): void {
    const batch = this.queue.splice(0, this.settings.batchWritesMax);
    if (batch.length > 0) this.commitBatch(batch);
    if (this.queue.length > 0) this.schedule();
    else for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private commitBatch(batch: readonly PendingWrite[]): void {
    this.warnOfRefusals();
    let outcomes: ReadonlyArray<Error | undefined>;
    try {
      outcomes = this.ledger.transaction(() => batch.map((write) => this.runAlone(write)));
    } catch (error) {
      // Logged once here rather than once per request answered.
      this.logger.error(
        { writes: batch.length, error: messageOf(error) },
        'a ledger transaction failed to commit; every request in it is refused',
      );
      const failure = new LedgerCommitFailedError(batch.length, error);
      for (const write of batch) write.reject(failure);
      return;
    }
    batch.forEach((write, index) => {
      const outcome = outcomes[index];
      if (outcome === undefined) write.answer();
      else write.reject(outcome);
    });
  }

  /** Runs one write in a savepoint of the batch's transaction: a throw undoes and fails it alone. */
  private runAlone(write: PendingWrite): Error | undefined {
    // After some errors (SQLITE_FULL, SQLITE_IOERR, ...) SQLite rolls the whole transaction back
    // by itself. The writes before this one are gone, and this one would commit on its own,
    // outside the batch: the batch fails instead.
    if (!this.ledger.inTransaction) throw new Error('SQLite rolled back the batch transaction');
    try {
      this.ledger.transaction(() => write.run(this.ledger));
      return undefined;
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error));
    }
  }

  private warnOfRefusals(): void {
    if (this.refusedSinceWarning === 0) return;
    this.logger.warn(
      { refused: this.refusedSinceWarning, pendingWritesMax: this.settings.pendingWritesMax },
      'the ledger write queue was full; requests were refused with 503 bank_overloaded',
    );
    this.refusedSinceWarning = 0;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
