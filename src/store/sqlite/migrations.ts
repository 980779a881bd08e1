import assert from 'node:assert/strict';
import type { Database } from 'better-sqlite3';
import { latestVersionOf, type MigrationResult } from '../migration-sequence.js';

/**
 * Schema migrations of the SQLite store. Each runs once, in order, inside the one transaction that
 * opening the store starts; `schema_migrations` records which ran. Never edit a migration that has
 * shipped: add the next version instead, because files in the field already ran the old text.
 */
export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    description: 'journal, snapshots and processed messages',
    // STRICT tables refuse a value of the wrong type instead of storing it, so a bug cannot write a
    // row that reads back as something else.
    //
    // AUTOINCREMENT on the journal: global offsets are what projections remember, so an offset must
    // never be handed out twice. Without it SQLite reuses max(rowid) + 1 after the newest row is
    // deleted; the journal is append-only today, but event deletion (retention, erasure) would turn
    // that into projections silently skipping events. The price is one sqlite_sequence update per
    // insert statement: about 4% of raw insert throughput, measured with batches of 4,096 rows.
    sql: `
      CREATE TABLE journal (
        global_offset INTEGER PRIMARY KEY AUTOINCREMENT,
        persistence_id TEXT NOT NULL,
        seq_nr INTEGER NOT NULL CHECK (seq_nr >= 1),
        event_type TEXT NOT NULL,
        event_version INTEGER NOT NULL,
        payload TEXT NOT NULL,
        written_at INTEGER NOT NULL,
        checksum INTEGER NOT NULL,
        UNIQUE (persistence_id, seq_nr)
      ) STRICT;

      CREATE TABLE snapshots (
        persistence_id TEXT NOT NULL,
        seq_nr INTEGER NOT NULL CHECK (seq_nr >= 1),
        version INTEGER NOT NULL,
        payload TEXT NOT NULL,
        written_at INTEGER NOT NULL,
        checksum INTEGER NOT NULL,
        PRIMARY KEY (persistence_id, seq_nr)
      ) STRICT;

      CREATE TABLE processed_messages (
        receiver_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        processed_at INTEGER NOT NULL,
        PRIMARY KEY (receiver_id, message_id)
      ) STRICT, WITHOUT ROWID;

      -- purgeProcessed deletes one receiver's records older than a cutoff.
      CREATE INDEX processed_messages_by_age ON processed_messages (receiver_id, processed_at);
    `,
  },
  {
    version: 2,
    description: 'processed messages placed by the time their sender fixed',
    // Message ids are hashes (an order id is one of its idempotency key): keyed by id alone, every
    // record lands on a random page, and each commit writes every page it touched into the WAL,
    // 8 KiB per record. With the sender's time ahead of the id, records of one receiver written
    // together sit together. Records of version 1 have no time: they get 0, which a lookup also
    // tries (see MessageKey), and they leave with the retention window like any other.
    sql: `
      CREATE TABLE processed_messages_v2 (
        receiver_id TEXT NOT NULL,
        message_time INTEGER NOT NULL CHECK (message_time >= 0),
        message_id TEXT NOT NULL,
        processed_at INTEGER NOT NULL,
        PRIMARY KEY (receiver_id, message_time, message_id)
      ) STRICT, WITHOUT ROWID;

      INSERT INTO processed_messages_v2 (receiver_id, message_time, message_id, processed_at)
        SELECT receiver_id, 0, message_id, processed_at FROM processed_messages;
      DROP TABLE processed_messages;
      ALTER TABLE processed_messages_v2 RENAME TO processed_messages;

      CREATE INDEX processed_messages_by_age ON processed_messages (receiver_id, processed_at);
    `,
  },
];

export const latestSchemaVersion = latestVersionOf(migrations);

/** The file was written by a newer Remit: reading it with this code could misread or damage it. */
export class SchemaTooNewError extends Error {
  override readonly name = 'SchemaTooNewError';
  constructor(
    readonly path: string,
    readonly fileVersion: number,
    readonly knownVersion: number,
  ) {
    super(
      `database ${path} has schema version ${fileVersion}, newer than this build of Remit knows ` +
        `(${knownVersion}); run a newer Remit against it, or open another file`,
    );
  }
}

/** Brings the database to the latest schema in one IMMEDIATE transaction; a no-op when it is there. */
export function migrate(database: Database, path: string, appliedAt: number): MigrationResult {
  return migrateTo(database, path, appliedAt, migrations);
}

/**
 * Applies the `migrations` the file has not had yet (its `schema_migrations` says which), in one
 * IMMEDIATE transaction; refuses a file newer than them. Every SQLite file of Remit's (the
 * journal's, `webhooks.db`) migrates through it, each with its own list.
 */
export function migrateTo(
  database: Database,
  path: string,
  appliedAt: number,
  list: readonly Migration[],
): MigrationResult {
  const latest = latestVersionOf(list);
  const run = database.transaction((): MigrationResult => {
    database.exec(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT',
    );
    const current: unknown = database.prepare('SELECT max(version) FROM schema_migrations').pluck().get();
    const fromVersion = current === null || current === undefined ? 0 : current;
    assert.ok(
      typeof fromVersion === 'number' && Number.isSafeInteger(fromVersion) && fromVersion >= 0,
      `schema_migrations of ${path} holds a malformed version: ${String(current)}`,
    );
    if (fromVersion > latest) {
      throw new SchemaTooNewError(path, fromVersion, latest);
    }
    const record = database.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)');
    for (const migration of list.slice(fromVersion)) {
      database.exec(migration.sql);
      record.run(migration.version, appliedAt);
    }
    return { fromVersion, toVersion: latest };
  });
  // IMMEDIATE: two processes opening the same new file must not both try to create the tables.
  return run.immediate();
}
