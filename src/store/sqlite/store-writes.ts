import assert from 'node:assert/strict';
import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3';
import { rowChecksum } from '../checksum.js';
import type { AppendRequest, Snapshot } from '../journal.js';
import { assertAppendRequest } from '../row-integrity.js';

/**
 * Every write to a SQLite store, in one place: journal appends (with the fencing check and the
 * processed-message ids), snapshot saves and deletes, purges of processed ids, and sealed cards
 * for the vault. `SqliteWriter` runs these either on the caller's thread or in the writer thread
 * (src/store/sqlite/writer-worker.ts); the logic is the same.
 */

/** The outcome of one append in a batch: committed, or refused alone for a fencing conflict. */
export type AppendOutcome =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly persistenceId: string;
      readonly expectedSeqNr: number;
      readonly actualHighestSeqNr: number;
    };

/** What one committed batch wrote. */
export interface BatchResult {
  readonly outcomes: AppendOutcome[];
  readonly appends: number;
  readonly events: number;
  /**
   * Transactions with events this batch's commit made: 1, or 0 when it wrote no event or when the
   * writer thread committed it in the transaction of the batch before it (batches queued together
   * share one, see writer-worker.ts).
   */
  readonly transactions: number;
}

/** A snapshot row, its checksum computed by the caller. */
export interface SnapshotRow extends Snapshot {
  readonly checksum: number;
}

/** One sealed card number for the vault. */
export interface VaultRow {
  readonly token: string;
  readonly sealed: Uint8Array;
  readonly createdAt: number;
}

const committed: AppendOutcome = { ok: true };

/** The highest sequence number of a persistence id, 0 when it has none. */
export function highestSeqNrOf(statement: Statement<[string], number>, persistenceId: string): number {
  const highest: unknown = statement.get(persistenceId);
  if (highest === undefined) return 0;
  if (typeof highest !== 'number' || !Number.isSafeInteger(highest) || highest < 1) {
    assert.fail(`journal holds a malformed seq_nr for ${persistenceId}: ${String(highest)}`);
  }
  return highest;
}

/** An index seek on UNIQUE(persistence_id, seq_nr), from its high end. */
export function prepareSelectHighest(database: Database): Statement<[string], number> {
  return database
    .prepare<[string], number>(
      'SELECT seq_nr FROM journal WHERE persistence_id = ? ORDER BY seq_nr DESC LIMIT 1',
    )
    .pluck();
}

/** The journal file's writes. One instance per connection. */
export class JournalWrites {
  private readonly selectHighest: Statement<[string], number>;
  private readonly insertEvent: Statement<[string, number, string, number, string, number, number]>;
  private readonly insertProcessed: Statement<[string, number, string, number]>;
  private readonly deleteProcessed: Statement<[string, number]>;
  private readonly upsertSnapshot: Statement<[string, number, number, string, number, number]>;
  private readonly deleteSnapshots: Statement<[string, number]>;
  private readonly writeBatch: { immediate(batch: readonly AppendRequest[]): BatchResult };

  constructor(database: Database) {
    this.selectHighest = prepareSelectHighest(database);
    this.insertEvent = database.prepare(
      'INSERT INTO journal (persistence_id, seq_nr, event_type, event_version, payload, written_at, checksum) ' +
        'VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    // OR IGNORE: a message recorded before keeps its first processing time.
    this.insertProcessed = database.prepare(
      'INSERT OR IGNORE INTO processed_messages (receiver_id, message_time, message_id, processed_at) ' +
        'VALUES (?, ?, ?, ?)',
    );
    this.deleteProcessed = database.prepare(
      'DELETE FROM processed_messages WHERE receiver_id = ? AND processed_at < ?',
    );
    // OR REPLACE: a second snapshot at the same seqNr (e.g. after a restart) supersedes the first.
    this.upsertSnapshot = database.prepare(
      'INSERT OR REPLACE INTO snapshots (persistence_id, seq_nr, version, payload, written_at, checksum) ' +
        'VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.deleteSnapshots = database.prepare('DELETE FROM snapshots WHERE persistence_id = ? AND seq_nr < ?');
    this.writeBatch = database.transaction((batch: readonly AppendRequest[]) =>
      this.writeInTransaction(batch),
    );
  }

  /**
   * Commits a batch in one `BEGIN IMMEDIATE … COMMIT` (one WAL fsync). IMMEDIATE takes the write
   * lock at BEGIN, so the highest-seqNr checks cannot be invalidated by another connection before
   * COMMIT. A throw rolls back the whole batch.
   */
  append(batch: readonly AppendRequest[]): BatchResult {
    return this.writeBatch.immediate(batch);
  }

  /**
   * Commits several batches in **one** transaction, in order, and answers each with its own
   * outcomes — as if each had committed alone right after the one before it: a later batch's
   * appends are checked against an earlier one's. The writer thread uses it for the batches handed
   * over while it was busy (one fsync for all). A throw rolls back all of them.
   */
  appendBatches(batches: ReadonlyArray<readonly AppendRequest[]>): BatchResult[] {
    if (batches.length === 1) return [this.append(batches[0] as readonly AppendRequest[])];
    const merged: AppendRequest[] = [];
    for (const batch of batches) for (const request of batch) merged.push(request);
    const all = this.append(merged);
    const results: BatchResult[] = [];
    let at = 0;
    for (const batch of batches) {
      const outcomes = all.outcomes.slice(at, at + batch.length);
      let appends = 0;
      let events = 0;
      outcomes.forEach((outcome, index) => {
        if (!outcome.ok) return;
        appends++;
        events += (batch[index] as AppendRequest).events.length;
      });
      at += batch.length;
      // The transaction is counted once, with the first batch.
      results.push({ outcomes, appends, events, transactions: results.length === 0 ? all.transactions : 0 });
    }
    return results;
  }

  saveSnapshot(row: SnapshotRow): void {
    this.upsertSnapshot.run(
      row.persistenceId,
      row.seqNr,
      row.version,
      row.payload,
      row.timestamp,
      row.checksum,
    );
  }

  deleteSnapshotsBefore(persistenceId: string, beforeSeqNr: number): void {
    this.deleteSnapshots.run(persistenceId, beforeSeqNr);
  }

  purgeProcessed(receiverId: string, beforeTimestamp: number): number {
    return this.deleteProcessed.run(receiverId, beforeTimestamp).changes;
  }

  private writeInTransaction(batch: readonly AppendRequest[]): BatchResult {
    const outcomes: AppendOutcome[] = new Array(batch.length);
    let appends = 0;
    let events = 0;
    // The highest seqNr of each id, read once per transaction and then carried forward past this
    // transaction's own inserts: the transaction holds the write lock (IMMEDIATE), so nothing else
    // changes it meanwhile, and appends of one id pipelined into the same batch are checked
    // against each other too. One query per entity per batch instead of one per append.
    const highestById = new Map<string, number>();
    for (let index = 0; index < batch.length; index++) {
      const request = batch[index];
      assert.ok(request !== undefined);
      const persistenceId = request.persistenceId;
      const highest = highestById.get(persistenceId) ?? highestSeqNrOf(this.selectHighest, persistenceId);
      highestById.set(persistenceId, highest);
      if (request.fromSeqNr !== highest + 1) {
        outcomes[index] = {
          ok: false,
          persistenceId,
          expectedSeqNr: request.fromSeqNr,
          actualHighestSeqNr: highest,
        };
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
        for (const message of processed.messages) {
          this.insertProcessed.run(processed.receiverId, message.time, message.id, request.timestamp);
        }
      }
      highestById.set(persistenceId, seqNr - 1);
      outcomes[index] = committed;
      appends++;
      events += request.events.length;
    }
    return { outcomes, appends, events, transactions: events > 0 ? 1 : 0 };
  }
}

/** The vault's table, created by whichever connection opens the file first. */
export const vaultSchema =
  'CREATE TABLE IF NOT EXISTS card_vault (token TEXT PRIMARY KEY, sealed BLOB NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID';

/**
 * Opens a vault file with the durability it needs: WAL and `synchronous=FULL` (an order's token
 * must never outlive the sealed number it stands for).
 */
export function openVaultDatabase(path: string, busyTimeoutMs: number): Database {
  const database = new BetterSqlite3(path);
  try {
    database.pragma(`busy_timeout = ${busyTimeoutMs}`);
    database.pragma('journal_mode = WAL');
    database.pragma('synchronous = FULL');
    database.pragma('temp_store = MEMORY');
    database.exec(vaultSchema);
    return database;
  } catch (error) {
    database.close();
    throw error;
  }
}

/** The vault file's writes: a group of sealed cards in one transaction. */
export class VaultWrites {
  private readonly insert: Statement<[string, Buffer, number]>;
  private readonly writeRows: (rows: readonly VaultRow[]) => void;

  constructor(readonly database: Database) {
    // OR IGNORE: one card always has one token, and its first sealed copy stays.
    this.insert = database.prepare(
      'INSERT OR IGNORE INTO card_vault (token, sealed, created_at) VALUES (?, ?, ?)',
    );
    this.writeRows = database.transaction((rows: readonly VaultRow[]) => {
      for (const row of rows) {
        // A Buffer sent to the writer thread arrives as a plain Uint8Array: view it, do not copy.
        const sealed = Buffer.from(row.sealed.buffer, row.sealed.byteOffset, row.sealed.byteLength);
        this.insert.run(row.token, sealed, row.createdAt);
      }
    });
  }

  put(rows: readonly VaultRow[]): void {
    this.writeRows(rows);
  }
}
