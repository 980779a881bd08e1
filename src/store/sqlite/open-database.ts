import assert from 'node:assert/strict';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import type { Clock } from '../../runtime/clock.js';
import { systemClock } from '../../runtime/clock.js';
import type { GroupCommitSettings } from '../group-commit.js';
import { migrate } from './migrations.js';
import { type CommitObserver, SqliteJournal } from './sqlite-journal.js';
import { SqliteSnapshotStore } from './sqlite-snapshot-store.js';
import { InlineWriter, type StoreWriter, ThreadWriter, type WriterMode } from './sqlite-writer.js';

/**
 * How long a write waits for another connection's transaction (another process on the same file,
 * e.g. a stale owner) before failing with SQLITE_BUSY. better-sqlite3 waits synchronously, so this
 * also bounds how long the event loop can stall on a contended file.
 */
export const busyTimeoutMs = 5_000;

/**
 * The page size of a new file (it cannot change once the file is in WAL mode). Each appended event
 * dirties a leaf of the (persistence_id, seq_nr) index at a random place, and a commit writes every
 * dirty page to the WAL, one frame per page: with many writers, bigger pages mean fewer frames for
 * the same rows; with few, they mean more bytes per commit. Measured with bench/journal.bench.ts on
 * the 2-core development machine (events/s with 100 | 10,000 entities): 4 KiB ≈ 63k | 100k,
 * 8 KiB ≈ 61k | 126k, 16 KiB ≈ 46k | 125k, 64 KiB ≈ 48k | 140k. 8 KiB serves both well.
 */
export const pageSizeBytes = 8_192;

/**
 * The page cache of the connection that writes the journal (the writer thread's, or the only one
 * with the inline writer). The hot part of the journal's index (the newest leaves of a few
 * entities) is small; bench:journal with 10,000 entities gave the same figures with 16 MiB as with
 * 64 MiB (146,927 and 145,260 events/s), and each MiB here is resident memory.
 */
export const writerCacheSizeBytes = 8 * 1024 * 1024;

/**
 * The page cache of the owner's connection when a writer thread does the writing: it only reads
 * (recovery, processed-id lookups, highest sequence numbers), and SQLite empties it at the first
 * read after any commit of the writer's connection (WAL), so under load it holds little more than
 * one lookup's pages; the OS's page cache is underneath either way.
 */
export const readerCacheSizeBytes = 4 * 1024 * 1024;

/**
 * How large the WAL may grow before a commit also checkpoints it into the database file. A page
 * rewritten by many commits is copied back only once per checkpoint, so a larger WAL means less
 * writing; the price is a longer (synchronous) checkpoint now and then, and more disk.
 */
export const walAutocheckpointBytes = 64 * 1024 * 1024;

/** The value `PRAGMA synchronous` reports for FULL: every commit fsyncs the WAL. */
const synchronousFull = 2;

/**
 * One open database file shared by the journal and the snapshot store. Each user releases it when
 * it closes; the connection closes with the last one, so neither can close it under the other.
 */
export class SharedDatabase {
  private users = 0;

  constructor(
    readonly database: Database,
    readonly path: string,
  ) {}

  retain(): void {
    assert.ok(this.database.open, `database ${this.path} is already closed`);
    this.users++;
  }

  release(): void {
    assert.ok(this.users > 0, `database ${this.path} released more often than retained`);
    this.users--;
    if (this.users === 0) this.database.close();
  }
}

/**
 * Opens (creating if needed) a database file with the durability settings the journal's promise
 * rests on, and migrates it to the latest schema.
 */
export function openDatabase(
  path: string,
  clock: Clock = systemClock,
  cacheSizeBytes = writerCacheSizeBytes,
): Database {
  const database = openWriterDatabase(path, busyTimeoutMs, cacheSizeBytes);
  try {
    migrate(database, path, clock.now());
    return database;
  } catch (error) {
    database.close();
    throw error;
  }
}

/**
 * Opens a database file with the durability settings the journal's promise rests on, without
 * migrating it: the writer thread's connection, opened after the owner has migrated the file.
 */
export function openWriterDatabase(
  path: string,
  busyTimeout: number,
  cacheSizeBytes = writerCacheSizeBytes,
): Database {
  const database = new BetterSqlite3(path);
  try {
    database.pragma(`busy_timeout = ${busyTimeout}`);
    // Only takes effect on a new, empty file; an existing file keeps the page size it was made with.
    database.pragma(`page_size = ${pageSizeBytes}`);
    // WAL: readers never block the writer, and a commit is one sequential append plus one fsync.
    const journalMode: unknown = database.pragma('journal_mode = WAL', { simple: true });
    assert.ok(
      journalMode === 'wal',
      `database ${path} refused WAL mode (it is in ${String(journalMode)} mode)`,
    );
    // FULL: a commit is durable when it returns. NORMAL would lose the last commits on power loss,
    // after replies for them were sent.
    database.pragma('synchronous = FULL');
    const synchronous: unknown = database.pragma('synchronous', { simple: true });
    assert.ok(synchronous === synchronousFull, `database ${path} refused synchronous=FULL`);
    database.pragma(`cache_size = ${-Math.round(cacheSizeBytes / 1024)}`);
    // Statement journals (a statement's or a savepoint's undo pages) in memory, not a temp file
    // created, written and unlinked per transaction; they hold at most one transaction's pages.
    database.pragma('temp_store = MEMORY');
    const pageSize: unknown = database.pragma('page_size', { simple: true });
    assert.ok(
      typeof pageSize === 'number' && pageSize > 0,
      `database ${path} reports page size ${String(pageSize)}`,
    );
    database.pragma(`wal_autocheckpoint = ${Math.ceil(walAutocheckpointBytes / pageSize)}`);
    return database;
  } catch (error) {
    database.close();
    throw error;
  }
}

export interface SqliteStoreOptions {
  /** The database file; created with the schema if it does not exist. */
  readonly path: string;
  readonly groupCommit?: Partial<GroupCommitSettings>;
  /** Stamps applied migrations. */
  readonly clock?: Clock;
  /** Where writes run (see StoreWriter): `inline` (default) or in a writer `thread`. */
  readonly writer?: WriterMode;
  /** Told when the writer thread fails (every write pending then failed; the next restarts it). */
  readonly onWriterFailure?: (error: Error) => void;
  /** Told of every journal batch committed, with its duration (e.g. for a latency histogram). */
  readonly onCommitted?: CommitObserver;
}

/** The journal and the snapshot store of one SQLite file. */
export interface SqliteStore {
  readonly journal: SqliteJournal;
  readonly snapshots: SqliteSnapshotStore;
  /** Where the journal's, the snapshots' and the vault's writes run. */
  readonly writer: StoreWriter;
  readonly path: string;
  /** Closes the journal (draining its queued appends), the snapshot store and the writer, then the file. */
  close(): Promise<void>;
}

export function openSqliteStore(options: SqliteStoreOptions): SqliteStore {
  const cacheSizeBytes = options.writer === 'thread' ? readerCacheSizeBytes : writerCacheSizeBytes;
  const shared = new SharedDatabase(openDatabase(options.path, options.clock, cacheSizeBytes), options.path);
  const writer: StoreWriter =
    options.writer === 'thread'
      ? new ThreadWriter({ journalPath: options.path, busyTimeoutMs }, options.onWriterFailure)
      : new InlineWriter(shared.database, busyTimeoutMs);
  const journal = new SqliteJournal(shared, writer, options.groupCommit, options.onCommitted);
  const snapshots = new SqliteSnapshotStore(shared, writer);
  return {
    journal,
    snapshots,
    writer,
    path: options.path,
    close: async () => {
      await journal.close();
      await writer.close();
      await snapshots.close();
    },
  };
}
