import assert from 'node:assert/strict';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import type { Clock } from '../../runtime/clock.js';
import { systemClock } from '../../runtime/clock.js';
import type { GroupCommitSettings } from '../group-commit.js';
import { migrate } from './migrations.js';
import { SqliteJournal } from './sqlite-journal.js';
import { SqliteSnapshotStore } from './sqlite-snapshot-store.js';

/**
 * How long a write waits for another connection's transaction (another process on the same file,
 * e.g. a stale owner) before failing with SQLITE_BUSY. better-sqlite3 waits synchronously, so this
 * also bounds how long the event loop can stall on a contended file.
 */
export const busyTimeoutMs = 5_000;

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
export function openDatabase(path: string, clock: Clock = systemClock): Database {
  const database = new BetterSqlite3(path);
  try {
    database.pragma(`busy_timeout = ${busyTimeoutMs}`);
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
    migrate(database, path, clock.now());
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
}

/** The journal and the snapshot store of one SQLite file. */
export interface SqliteStore {
  readonly journal: SqliteJournal;
  readonly snapshots: SqliteSnapshotStore;
  readonly path: string;
  /** Closes the journal (draining its queued appends) and the snapshot store, then the file. */
  close(): Promise<void>;
}

export function openSqliteStore(options: SqliteStoreOptions): SqliteStore {
  const shared = new SharedDatabase(openDatabase(options.path, options.clock), options.path);
  const journal = new SqliteJournal(shared, options.groupCommit);
  const snapshots = new SqliteSnapshotStore(shared);
  return {
    journal,
    snapshots,
    path: options.path,
    close: async () => {
      await journal.close();
      await snapshots.close();
    },
  };
}
