import assert from 'node:assert/strict';
import type { Logger } from '../runtime/logger.js';
import { GroupCommitter } from '../store/group-commit.js';
import { JournalClosedError, JournalOverloadedError } from '../store/journal.js';
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

/** One request's work on the ledger and, once its batch has run it, what the work returned. */
class LedgerWrite<T> {
  private outcome: { readonly value: T } | undefined;

  constructor(private readonly work: (ledger: BankLedger) => T) {}

  run(ledger: BankLedger): void {
    this.outcome = { value: this.work(ledger) };
  }

  result(): T {
    assert.ok(this.outcome !== undefined, 'a committed ledger write has a result');
    return this.outcome.value;
  }
}

export class LedgerCommitter {
  private readonly committer: GroupCommitter<LedgerWrite<unknown>>;
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
    this.committer = new GroupCommitter((batch) => this.commitBatch(batch), {
      batchSizeMax: settings.batchWritesMax,
      batchesInFlightMax: 1,
      pendingAppendsMax: settings.pendingWritesMax,
    });
  }

  /**
   * Runs `work` inside the next ledger transaction and resolves with what it returned once that
   * transaction has committed. Rejects with what `work` threw (its writes undone), with
   * LedgerCommitFailedError, LedgerOverloadedError or LedgerClosedError.
   */
  async write<T>(work: (ledger: BankLedger) => T): Promise<T> {
    const write = new LedgerWrite(work);
    try {
      await this.committer.submit(write);
    } catch (error) {
      throw this.refusal(error);
    }
    return write.result();
  }

  /** Stops taking writes and resolves once every write submitted has committed or failed. */
  close(): Promise<void> {
    return this.committer.close();
  }

  private refusal(error: unknown): unknown {
    if (error instanceof JournalOverloadedError) {
      this.refusedSinceWarning++;
      return new LedgerOverloadedError(this.settings.pendingWritesMax);
    }
    if (error instanceof JournalClosedError) return new LedgerClosedError();
    return error;
  }

  private commitBatch(batch: readonly LedgerWrite<unknown>[]): Promise<ReadonlyArray<Error | undefined>> {
    this.warnOfRefusals();
    try {
      return Promise.resolve(this.ledger.transaction(() => batch.map((write) => this.runAlone(write))));
    } catch (error) {
      // Logged once here rather than once per request answered.
      this.logger.error(
        { writes: batch.length, error: messageOf(error) },
        'a ledger transaction failed to commit; every request in it is refused',
      );
      return Promise.reject(new LedgerCommitFailedError(batch.length, error));
    }
  }

  /** Runs one write in a savepoint of the batch's transaction: a throw undoes and fails it alone. */
  private runAlone(write: LedgerWrite<unknown>): Error | undefined {
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
