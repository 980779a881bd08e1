import assert from 'node:assert/strict';
import type { Statement } from 'better-sqlite3';
import { defaultGroupCommitSettings, type GroupCommitSettings, GroupCommitter } from '../group-commit.js';
import {
  type AppendRequest,
  ConcurrentWriteError,
  FencingUnsupportedError,
  type Journal,
  JournalClosedError,
  type JournalStats,
  type MessageKey,
  type OffsetEvent,
  type PersistedEvent,
} from '../journal.js';
import { assertAppendRequest, assertReadRange, verifiedEventOf } from '../row-integrity.js';
import { GlobalStreamQuery } from './global-stream.js';
import type { SharedDatabase } from './open-database.js';
import type { StoreWriter } from './sqlite-writer.js';
import { highestSeqNrOf, prepareSelectHighest } from './store-writes.js';

/**
 * Append batches handed to a writer thread and not yet answered (GroupCommitSettings). Past it, the
 * next batch gathers on this thread until one is answered.
 */
export const threadBatchesInFlightMax = 4;

/** SQLite's LIMIT for "no limit". */
const noLimit = -1;

/**
 * Told of every batch the writer committed: how long it took from the hand-over to the writer until
 * it was durable (the writer's queue, the transaction, its fsync and the answer), and its size.
 */
export type CommitObserver = (seconds: number, appends: number) => void;

/**
 * The journal on SQLite (better-sqlite3). Appends are group-committed: every append queued while a
 * transaction runs joins the next one, so one `BEGIN IMMEDIATE … COMMIT` (one WAL fsync) makes a
 * whole batch durable. Inside it each request is checked against the id's highest sequence number
 * and refused alone if it is not the next one, which is the fencing against a second writer.
 *
 * The writes themselves run in a `StoreWriter`: inline (a commit blocks the event loop for its
 * fsync) or in a writer thread (the event loop goes on; the next batch gathers meanwhile). Reads
 * run on this thread's own connection.
 */
/**
 * One record, by its full key. A lookup with a time tries it, then time 0 (records written without
 * one, see MessageKey): two point seeks, cheaper than one `message_time IN (?, 0)`, which SQLite
 * runs through an ephemeral table per call. Exported for the test of its query plan.
 */
export const selectProcessedSql =
  'SELECT 1 FROM processed_messages WHERE receiver_id = ? AND message_time = ? AND message_id = ?';

export class SqliteJournal implements Journal {
  private readonly committer: GroupCommitter<AppendRequest>;
  private readonly counters = { appends: 0, events: 0, transactions: 0, failedAppends: 0 };
  private readonly selectHighest: Statement<[string], number>;
  private readonly selectRange: Statement<[string, number, number, number], unknown[]>;
  private readonly globalStream: GlobalStreamQuery;
  private readonly selectProcessed: Statement<[string, number, string], number>;
  private closed = false;

  constructor(
    private readonly shared: SharedDatabase,
    private readonly writer: StoreWriter,
    groupCommit: Partial<GroupCommitSettings> = {},
    private readonly onCommitted?: CommitObserver,
  ) {
    shared.retain();
    const database = shared.database;
    this.selectHighest = prepareSelectHighest(database);
    this.selectRange = database
      .prepare<[string, number, number, number], unknown[]>(
        'SELECT persistence_id, seq_nr, event_type, event_version, payload, written_at, checksum FROM journal ' +
          'WHERE persistence_id = ? AND seq_nr >= ? AND seq_nr <= ? ORDER BY seq_nr LIMIT ?',
      )
      .raw(true);
    this.globalStream = new GlobalStreamQuery(database);
    this.selectProcessed = database.prepare<[string, number, string], number>(selectProcessedSql).pluck();
    this.committer = new GroupCommitter<AppendRequest>((batch) => this.commitBatch(batch), {
      ...defaultGroupCommitSettings,
      // The writer thread commits batches in the order it gets them, and those queued while it is
      // busy in one transaction: each turn's appends can go at once.
      ...(writer.mode === 'thread' ? { batchesInFlightMax: threadBatchesInFlightMax } : {}),
      ...groupCommit,
    });
  }

  /**
   * A fenced append is refused with `FencingUnsupportedError`: a SQLite file serves one node,
   * which never fences, and a fence accepted without a check would promise what nothing keeps.
   */
  append(request: AppendRequest): Promise<void> {
    try {
      assertAppendRequest(request);
    } catch (error) {
      return Promise.reject(error);
    }
    if (request.fence !== undefined) {
      this.counters.failedAppends++;
      return Promise.reject(new FencingUnsupportedError('the SQLite journal'));
    }
    return this.committer.submit(request).catch((error: unknown) => {
      this.counters.failedAppends++;
      throw error;
    });
  }

  async read(
    persistenceId: string,
    fromSeqNr: number,
    toSeqNr?: number,
    max?: number,
  ): Promise<PersistedEvent[]> {
    this.assertOpen();
    assertReadRange(fromSeqNr, toSeqNr, max);
    const rows = this.selectRange.all(
      persistenceId,
      fromSeqNr,
      toSeqNr ?? Number.MAX_SAFE_INTEGER,
      max ?? noLimit,
    );
    const events: PersistedEvent[] = new Array(rows.length);
    for (let index = 0; index < rows.length; index++) {
      const row = rows[index] ?? [];
      const event = verifiedEventOf(persistenceId, row);
      events[index] = event;
    }
    return events;
  }

  async highestSeqNr(persistenceId: string): Promise<number> {
    this.assertOpen();
    return this.highestStored(persistenceId);
  }

  async readAll(afterOffset: number, limit: number): Promise<OffsetEvent[]> {
    this.assertOpen();
    return this.globalStream.read(afterOffset, limit);
  }

  async isProcessed(receiverId: string, message: MessageKey): Promise<boolean> {
    this.assertOpen();
    const select = this.selectProcessed;
    if (select.get(receiverId, message.time, message.id) !== undefined) return true;
    return message.time !== 0 && select.get(receiverId, 0, message.id) !== undefined;
  }

  async purgeProcessed(receiverId: string, beforeTimestamp: number): Promise<number> {
    this.assertOpen();
    assert.ok(Number.isSafeInteger(beforeTimestamp), 'beforeTimestamp must be an integer');
    return this.writer.purgeProcessed(receiverId, beforeTimestamp);
  }

  stats(): JournalStats {
    return { ...this.counters };
  }

  /** Commits what is queued, refuses anything later, then releases the database file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.committer.close();
    this.shared.release();
  }

  // ---- Write path ------------------------------------------------------------------------------

  private async commitBatch(batch: readonly AppendRequest[]): Promise<ReadonlyArray<Error | undefined>> {
    const startedAt = performance.now();
    const result = await this.writer.append(batch);
    this.onCommitted?.((performance.now() - startedAt) / 1_000, result.appends);
    this.counters.appends += result.appends;
    this.counters.events += result.events;
    this.counters.transactions += result.transactions;
    return result.outcomes.map((outcome) =>
      outcome.ok
        ? undefined
        : new ConcurrentWriteError(outcome.persistenceId, outcome.expectedSeqNr, outcome.actualHighestSeqNr),
    );
  }

  private highestStored(persistenceId: string): number {
    return highestSeqNrOf(this.selectHighest, persistenceId);
  }

  private assertOpen(): void {
    if (this.closed) throw new JournalClosedError();
  }
}
