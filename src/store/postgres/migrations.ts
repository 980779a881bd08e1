import assert from 'node:assert/strict';
import type pg from 'pg';
import { latestVersionOf, type MigrationResult } from '../migration-sequence.js';
import { withClient } from './postgres-pool.js';

/**
 * Schema migrations of the PostgreSQL stores, all tables in one schema named by the settings. Each
 * migration runs once, in order; `schema_migrations` records which ran. Never edit a migration
 * that has shipped: add the next version instead.
 *
 * Several nodes may start at once against a new database. All of them run `migrate`, one at a
 * time: the transaction first takes an advisory lock keyed by the schema's name, so the second
 * waits, then finds the migrations done. An advisory lock is enough here because it only orders
 * the migrations; it is not fencing of anything that matters after the transaction ends.
 */
export interface Migration {
  readonly version: number;
  readonly description: string;
  /** The statements, given the schema's quoted name. */
  sql(schema: string): string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    description: 'journal, its offset counter, snapshots, processed messages and the card vault',
    // COLLATE "C" on identifiers: byte order is what they need, and it is the cheapest to compare.
    //
    // Global offsets are not taken from a sequence: a sequence hands out numbers before commit, so
    // a reader could see offset 12 committed while 11 is still in flight, move past 11 and lose it.
    // They come from the one row of `journal_offset`, which an append updates in the statement that
    // inserts its events: the row stays locked until that transaction has committed and is visible,
    // so offsets become visible in the order they are handed out (see postgres-journal.ts).
    sql: (schema) => `
      CREATE TABLE ${schema}.journal (
        global_offset bigint PRIMARY KEY CHECK (global_offset >= 1),
        persistence_id text COLLATE "C" NOT NULL,
        seq_nr bigint NOT NULL CHECK (seq_nr >= 1),
        event_type text NOT NULL,
        event_version integer NOT NULL,
        payload text NOT NULL,
        written_at bigint NOT NULL,
        checksum bigint NOT NULL,
        CONSTRAINT journal_persistence_id_seq_nr UNIQUE (persistence_id, seq_nr)
      );

      CREATE TABLE ${schema}.journal_offset (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        last_offset bigint NOT NULL CHECK (last_offset >= 0)
      );
      INSERT INTO ${schema}.journal_offset (singleton, last_offset) VALUES (true, 0);

      CREATE TABLE ${schema}.snapshots (
        persistence_id text COLLATE "C" NOT NULL,
        seq_nr bigint NOT NULL CHECK (seq_nr >= 1),
        version integer NOT NULL,
        payload text NOT NULL,
        written_at bigint NOT NULL,
        checksum bigint NOT NULL,
        PRIMARY KEY (persistence_id, seq_nr)
      );

      CREATE TABLE ${schema}.processed_messages (
        receiver_id text COLLATE "C" NOT NULL,
        message_time bigint NOT NULL CHECK (message_time >= 0),
        message_id text COLLATE "C" NOT NULL,
        processed_at bigint NOT NULL,
        PRIMARY KEY (receiver_id, message_time, message_id)
      );
      -- purgeProcessed deletes one receiver's records older than a cutoff.
      CREATE INDEX processed_messages_by_age ON ${schema}.processed_messages (receiver_id, processed_at);

      CREATE TABLE ${schema}.card_vault (
        token text COLLATE "C" PRIMARY KEY,
        sealed bytea NOT NULL,
        created_at bigint NOT NULL
      );
    `,
  },
  {
    version: 2,
    description: 'cluster membership and shard leases',
    // Times are timestamptz set from the server's now(), never from a node: a node's clock may be
    // skewed, the database's is the one clock every node shares (src/cluster/).
    //
    // A lease row, once created, is never deleted: its epoch must only ever rise, or a fence of an
    // earlier owner could match again. A released lease keeps its epoch with no owner.
    sql: (schema) => `
      CREATE TABLE ${schema}.cluster_members (
        node_id text COLLATE "C" PRIMARY KEY,
        address text NOT NULL,
        roles text[] NOT NULL,
        incarnation bigint NOT NULL CHECK (incarnation >= 1),
        joined_at timestamptz NOT NULL,
        last_heartbeat_at timestamptz NOT NULL,
        state text NOT NULL CHECK (state IN ('up', 'leaving'))
      );

      CREATE TABLE ${schema}.shard_leases (
        shard_id text COLLATE "C" PRIMARY KEY,
        owner text COLLATE "C",
        epoch bigint NOT NULL CHECK (epoch >= 1),
        expires_at timestamptz NOT NULL
      );
    `,
  },
  {
    version: 3,
    description: 'the merchants every node of a cluster serves, and the admin token, as hashes',
    // Only SHA-256 hashes of keys and tokens: the plain values go once to the credentials file of
    // the node that created them.
    sql: (schema) => `
      CREATE TABLE ${schema}.merchants (
        merchant_id text COLLATE "C" PRIMARY KEY,
        bank text NOT NULL,
        api_key_hash text NOT NULL CHECK (length(api_key_hash) = 64)
      );
      CREATE TABLE ${schema}.admin_tokens (
        token_hash text COLLATE "C" PRIMARY KEY CHECK (length(token_hash) = 64)
      );
    `,
  },
];

export const latestSchemaVersion = latestVersionOf(migrations);

/** The schema was written by a newer Remit: using it with this code could misread or damage it. */
export class SchemaTooNewError extends Error {
  override readonly name = 'SchemaTooNewError';
  constructor(
    readonly schema: string,
    readonly storedVersion: number,
    readonly knownVersion: number,
  ) {
    super(
      `PostgreSQL schema ${schema} has version ${storedVersion}, newer than this build of Remit knows ` +
        `(${knownVersion}); run a newer Remit against it, or name another schema`,
    );
  }
}

/** Brings the schema to the latest version in one transaction; a no-op when it is there. */
export async function migrate(
  pool: pg.Pool,
  schemaName: string,
  appliedAt: number,
): Promise<MigrationResult> {
  return withClient(pool, async (client) => {
    const schema = client.escapeIdentifier(schemaName);
    await client.query('BEGIN');
    try {
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`remit migrations of ${schemaName}`]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${schema}.schema_migrations (version integer PRIMARY KEY, applied_at bigint NOT NULL)`,
      );
      const current = await client.query<{ version: unknown }>(
        `SELECT coalesce(max(version), 0) AS version FROM ${schema}.schema_migrations`,
      );
      const fromVersion = current.rows[0]?.version;
      assert.ok(
        typeof fromVersion === 'number' && Number.isSafeInteger(fromVersion) && fromVersion >= 0,
        `schema_migrations of ${schemaName} holds a malformed version: ${String(fromVersion)}`,
      );
      if (fromVersion > latestSchemaVersion) {
        throw new SchemaTooNewError(schemaName, fromVersion, latestSchemaVersion);
      }
      for (const migration of migrations.slice(fromVersion)) {
        await client.query(migration.sql(schema));
        await client.query(`INSERT INTO ${schema}.schema_migrations (version, applied_at) VALUES ($1, $2)`, [
          migration.version,
          appliedAt,
        ]);
      }
      await client.query('COMMIT');
      return { fromVersion, toVersion: latestSchemaVersion };
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  });
}
