import assert from 'node:assert/strict';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import type { Journal, OffsetEvent } from '../store/journal.js';
import { GlobalStreamQuery } from '../store/sqlite/global-stream.js';
import { busyTimeoutMs } from '../store/sqlite/open-database.js';

/**
 * The one thing a projection needs of a journal: its global stream. A whole `Journal` is one; so
 * is `SqliteJournalReader`, which reads the journal's file over its own connection.
 */
export type JournalFeed = Pick<Journal, 'readAll'>;

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
  private readonly globalStream: GlobalStreamQuery;

  private constructor(
    private readonly database: Database,
    readonly path: string,
  ) {
    // The same query and row checks as `SqliteJournal.readAll`.
    this.globalStream = new GlobalStreamQuery(database);
  }

  /** Opens the journal file at `path`, which must exist and be in WAL mode. */
  static open(path: string): SqliteJournalReader {
    const database = new BetterSqlite3(path, { readonly: true, fileMustExist: true });
    try {
      // In WAL mode readers do not wait for the writer; this only matters while a checkpoint
      // restarts the WAL, which takes moments.
      database.pragma(`busy_timeout = ${busyTimeoutMs}`);
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
    return this.globalStream.read(afterOffset, limit);
  }

  close(): void {
    if (this.database.open) this.database.close();
  }
}
