import assert from 'node:assert/strict';
import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3';
import type { Journal, OffsetEvent } from '../store/journal.js';
import { verifiedEvent, withOffset } from '../store/row-integrity.js';

/**
 * The one thing a projection needs of a journal: its global stream. A whole `Journal` is one; so
 * is `SqliteJournalReader`, which reads the journal's file over its own connection.
 */
export type JournalFeed = Pick<Journal, 'readAll'>;

/**
 * How long a read waits for a lock before SQLITE_BUSY. In WAL mode readers do not wait for the
 * writer; this only matters while a checkpoint restarts the WAL, which takes moments.
 */
export const journalReaderBusyTimeoutMs = 5_000;

/**
 * A read-only connection to the SQLite journal's file (`journal.db`), for a projection that runs
 * away from the thread that writes the journal. WAL lets it read while the writer commits; it sees
 * committed transactions only, so everything it reads is durable.
 *
 * It never writes and never migrates: the writer opens (creates, migrates) the file first. Rows are
 * checked as the journal itself checks them (`row-integrity.ts`: column types and checksum), so a
 * corrupt row stops the projection with `CorruptRowError` here too.
 */
export class SqliteJournalReader implements JournalFeed {
  private readonly selectAfter: Statement<[number, number], unknown[]>;

  private constructor(
    private readonly database: Database,
    readonly path: string,
  ) {
    // The same query and column order as `SqliteJournal.readAll`.
    this.selectAfter = database
      .prepare<[number, number], unknown[]>(
        'SELECT global_offset, persistence_id, seq_nr, event_type, event_version, payload, written_at, checksum ' +
          'FROM journal WHERE global_offset > ? ORDER BY global_offset LIMIT ?',
      )
      .raw(true);
  }

  /** Opens the journal file at `path`, which must exist and be in WAL mode. */
  static open(path: string): SqliteJournalReader {
    const database = new BetterSqlite3(path, { readonly: true, fileMustExist: true });
    try {
      database.pragma(`busy_timeout = ${journalReaderBusyTimeoutMs}`);
      const journalMode: unknown = database.pragma('journal_mode', { simple: true });
      // A rollback-journal file would block its writer for as long as a read runs.
      assert.ok(
        journalMode === 'wal',
        `journal ${path} is not in WAL mode (it is in ${String(journalMode)})`,
      );
      return new SqliteJournalReader(database, path);
    } catch (error) {
      database.close();
      throw error;
    }
  }

  async readAll(afterOffset: number, limit: number): Promise<OffsetEvent[]> {
    assert.ok(this.database.open, `journal reader ${this.path} is closed`);
    assert.ok(Number.isSafeInteger(afterOffset) && afterOffset >= 0, 'afterOffset must be an integer >= 0');
    assert.ok(Number.isSafeInteger(limit) && limit >= 0, 'limit must be an integer >= 0');
    const rows = this.selectAfter.all(afterOffset, limit);
    const events: OffsetEvent[] = new Array(rows.length);
    for (let index = 0; index < rows.length; index++) {
      const row = rows[index] ?? [];
      const event = verifiedEvent(row[1], row[2], row[3], row[4], row[5], row[6], row[7]);
      events[index] = withOffset(event, row[0]);
    }
    return events;
  }

  close(): void {
    if (this.database.open) this.database.close();
  }
}
