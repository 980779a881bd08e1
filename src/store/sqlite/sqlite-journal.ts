import assert from 'node:assert/strict';
import type { Database, Statement } from 'better-sqlite3';
import { rowChecksum } from '../checksum.js';
import { defaultGroupCommitSettings, type GroupCommitSettings, GroupCommitter } from '../group-commit.js';
import {
  type AppendRequest,
  ConcurrentWriteError,
  type Journal,
  JournalClosedError,
  type JournalStats,
  type OffsetEvent,
  type PersistedEvent,
} from '../journal.js';
import { assertAppendRequest, assertReadRange, verifiedEvent, withOffset } from '../row-integrity.js';
import type { SharedDatabase } from './open-database.js';

/** What one committed batch wrote, counted only once its transaction has committed. */
interface BatchResult {
  readonly outcomes: Array<Error | undefined>;
  readonly appends: number;
  readonly events: number;
}

/** SQLite's LIMIT for "no limit". */
const noLimit = -1;

/**
 * The journal on SQLite (better-sqlite3). Appends are group-committed: every append queued while a
 * transaction runs joins the next one, so one `BEGIN IMMEDIATE … COMMIT` (one WAL fsync) makes a
 * whole batch durable. Inside it each request is checked against the id's highest sequence number
 * and refused alone if it is not the next one, which is the fencing against a second writer.
 *
 * better-sqlite3 is synchronous: a commit blocks the event loop for its fsync. That is accepted for
 * now; the interface stays async so the work can move to a worker thread without callers changing.
 */
export class SqliteJournal implements Journal {
  private readonly database: Database;
  private readonly committer: GroupCommitter<AppendRequest>;
  private readonly counters = { appends: 0, events: 0, transactions: 0, failedAppends: 0 };
  private readonly writeBatch: { immediate(batch: readonly AppendRequest[]): BatchResult };
  private readonly selectHighest: Statement<[string], number>;
  private readonly insertEvent: Statement<[string, number, string, number, string, number, number]>;
  private readonly insertProcessed: Statement<[string, string, number]>;
  private readonly selectRange: Statement<[string, number, number, number], unknown[]>;
  private readonly selectAfter: Statement<[number, number], unknown[]>;
  private readonly selectProcessed: Statement<[string, string], number>;
  private readonly deleteProcessed: Statement<[string, number]>;
  private closed = false;

  constructor(
    private readonly shared: SharedDatabase,
    groupCommit: Partial<GroupCommitSettings> = {},
  ) {
    shared.retain();
    const database = shared.database;
    this.database = database;
    // An index seek on UNIQUE(persistence_id, seq_nr), from its high end.
    this.selectHighest = database
      .prepare<[string], number>(
        'SELECT seq_nr FROM journal WHERE persistence_id = ? ORDER BY seq_nr DESC LIMIT 1',
      )
      .pluck();
    this.insertEvent = database.prepare(
      'INSERT INTO journal (persistence_id, seq_nr, event_type, event_version, payload, written_at, checksum) ' +
        'VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    // OR IGNORE: a message recorded before keeps its first processing time.
    this.insertProcessed = database.prepare(
      'INSERT OR IGNORE INTO processed_messages (receiver_id, message_id, processed_at) VALUES (?, ?, ?)',
    );
    this.selectRange = database
      .prepare<[string, number, number, number], unknown[]>(
        'SELECT persistence_id, seq_nr, event_type, event_version, payload, written_at, checksum FROM journal ' +
          'WHERE persistence_id = ? AND seq_nr >= ? AND seq_nr <= ? ORDER BY seq_nr LIMIT ?',
      )
      .raw(true);
    this.selectAfter = database
      .prepare<[number, number], unknown[]>(
        'SELECT global_offset, persistence_id, seq_nr, event_type, event_version, payload, written_at, checksum ' +
          'FROM journal WHERE global_offset > ? ORDER BY global_offset LIMIT ?',
      )
      .raw(true);
    this.selectProcessed = database
      .prepare<[string, string], number>(
        'SELECT 1 FROM processed_messages WHERE receiver_id = ? AND message_id = ?',
      )
      .pluck();
    this.deleteProcessed = database.prepare(
      'DELETE FROM processed_messages WHERE receiver_id = ? AND processed_at < ?',
    );
    this.writeBatch = database.transaction((batch: readonly AppendRequest[]) =>
      this.writeInTransaction(batch),
    );
    this.committer = new GroupCommitter<AppendRequest>((batch) => this.commitBatch(batch), {
      ...defaultGroupCommitSettings,
      ...groupCommit,
    });
  }

  append(request: AppendRequest): Promise<void> {
    try {
      assertAppendRequest(request);
    } catch (error) {
      return Promise.reject(error);
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
      const event = verifiedEvent(row[0], row[1], row[2], row[3], row[4], row[5], row[6]);
      if (event.persistenceId !== persistenceId) {
        assert.fail(`read of ${persistenceId} returned ${event.persistenceId}`);
      }
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
    assert.ok(Number.isSafeInteger(afterOffset) && afterOffset >= 0, 'afterOffset must be an integer >= 0');
    assert.ok(Number.isSafeInteger(limit) && limit >= 0, 'limit must be an integer >= 0');
    return this.selectAfter.all(afterOffset, limit).map((row) => {
      const event = verifiedEvent(row[1], row[2], row[3], row[4], row[5], row[6], row[7]);
      return withOffset(event, row[0]);
    });
  }

  async isProcessed(receiverId: string, messageId: string): Promise<boolean> {
    this.assertOpen();
    return this.selectProcessed.get(receiverId, messageId) !== undefined;
  }

  async purgeProcessed(receiverId: string, beforeTimestamp: number): Promise<number> {
    this.assertOpen();
    assert.ok(Number.isSafeInteger(beforeTimestamp), 'beforeTimestamp must be an integer');
    return this.deleteProcessed.run(receiverId, beforeTimestamp).changes;
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

  private commitBatch(batch: readonly AppendRequest[]): Promise<ReadonlyArray<Error | undefined>> {
    // IMMEDIATE takes the write lock at BEGIN, so the highest-seqNr checks below cannot be
    // invalidated by another connection before COMMIT. A throw rolls back and fails the batch.
    const result = this.writeBatch.immediate(batch);
    this.counters.appends += result.appends;
    this.counters.events += result.events;
    if (result.events > 0) this.counters.transactions++;
    return Promise.resolve(result.outcomes);
  }

  private writeInTransaction(batch: readonly AppendRequest[]): BatchResult {
    const outcomes: Array<Error | undefined> = new Array(batch.length);
    let appends = 0;
    let events = 0;
    for (let index = 0; index < batch.length; index++) {
      const request = batch[index];
      assert.ok(request !== undefined);
      const persistenceId = request.persistenceId;
      // The query sees this transaction's own earlier inserts, so appends of one id pipelined into
      // the same batch are checked against each other too. It is an index seek per request; a map
      // of ids already seen in the batch would save it only for pipelined writers, and costs every
      // other request a map insert.
      const highest = this.highestStored(persistenceId);
      if (request.fromSeqNr !== highest + 1) {
        outcomes[index] = new ConcurrentWriteError(persistenceId, request.fromSeqNr, highest);
        continue;
      }
      // Asserted again right before writing: the request object may have changed since it was queued.
      assertAppendRequest(request);
      let seqNr = request.fromSeqNr;
      for (const event of request.events) {
        const checksum = rowChecksum(persistenceId, seqNr, event.type, event.version, event.payload);
        this.insertEvent.run(
          persistenceId,
          seqNr,
          event.type,
          event.version,
          event.payload,
          request.timestamp,
          checksum,
        );
        seqNr++;
      }
      const processed = request.processed;
      if (processed !== undefined) {
        for (const messageId of processed.messageIds) {
          this.insertProcessed.run(processed.receiverId, messageId, request.timestamp);
        }
      }
      outcomes[index] = undefined;
      appends++;
      events += request.events.length;
    }
    return { outcomes, appends, events };
  }

  private highestStored(persistenceId: string): number {
    const highest: unknown = this.selectHighest.get(persistenceId);
    if (highest === undefined) return 0;
    if (typeof highest !== 'number' || !Number.isSafeInteger(highest) || highest < 1) {
      assert.fail(`journal holds a malformed seq_nr for ${persistenceId}: ${String(highest)}`);
    }
    return highest;
  }

  private assertOpen(): void {
    if (this.closed) throw new JournalClosedError();
  }
}
