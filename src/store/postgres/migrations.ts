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
  {
    version: 4,
    description: "webhooks: merchants' endpoints, derived events, deliveries and their attempts",
    // Configuration and delivery history, never rebuilt: unlike the read model these tables are
    // not derived data that can be dropped. A delivery has no foreign key to its endpoint: a
    // finished delivery stays readable after its endpoint is deleted (the pending ones go with it).
    // `webhook_offset` is the journal offset the events are derived up to, written in the
    // transaction that stores them; its row lock also keeps two derivations from interleaving.
    sql: (schema) => `
      CREATE TABLE ${schema}.webhook_endpoints (
        endpoint_id text COLLATE "C" PRIMARY KEY,
        merchant_id text COLLATE "C" NOT NULL,
        url text NOT NULL,
        event_types text[] NOT NULL CHECK (cardinality(event_types) >= 1),
        status text NOT NULL CHECK (status IN ('enabled', 'disabled')),
        disabled_reason text,
        secret text NOT NULL CHECK (secret <> ''),
        expiring_secret text,
        expiring_secret_until bigint,
        failing_since bigint,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL
      );
      CREATE INDEX webhook_endpoints_by_merchant
        ON ${schema}.webhook_endpoints (merchant_id, created_at, endpoint_id);

      CREATE TABLE ${schema}.webhook_events (
        event_id text COLLATE "C" PRIMARY KEY,
        merchant_id text COLLATE "C" NOT NULL,
        event_type text NOT NULL,
        subject_id text NOT NULL,
        body text NOT NULL,
        created_at bigint NOT NULL
      );

      CREATE TABLE ${schema}.webhook_offset (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        last_offset bigint NOT NULL CHECK (last_offset >= 0)
      );
      INSERT INTO ${schema}.webhook_offset (singleton, last_offset) VALUES (true, 0);

      CREATE TABLE ${schema}.webhook_deliveries (
        delivery_id text COLLATE "C" PRIMARY KEY,
        endpoint_id text COLLATE "C" NOT NULL,
        merchant_id text COLLATE "C" NOT NULL,
        event_id text COLLATE "C" NOT NULL REFERENCES ${schema}.webhook_events (event_id),
        event_type text NOT NULL,
        status text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
        attempts integer NOT NULL CHECK (attempts >= 0),
        first_attempt_at bigint,
        next_attempt_at bigint,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL,
        CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL)),
        CONSTRAINT webhook_deliveries_event_endpoint UNIQUE (event_id, endpoint_id)
      );
      -- The dispatcher's poll: pending deliveries by due time.
      CREATE INDEX webhook_deliveries_due
        ON ${schema}.webhook_deliveries (next_attempt_at, delivery_id) WHERE status = 'pending';
      -- An endpoint's deliveries, newest first (the API's listing, and deleting the pending ones).
      CREATE INDEX webhook_deliveries_by_endpoint
        ON ${schema}.webhook_deliveries (endpoint_id, created_at DESC, delivery_id DESC);

      CREATE TABLE ${schema}.webhook_attempts (
        attempt_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        delivery_id text COLLATE "C" NOT NULL
          REFERENCES ${schema}.webhook_deliveries (delivery_id) ON DELETE CASCADE,
        number integer NOT NULL CHECK (number >= 1),
        started_at bigint NOT NULL,
        duration_ms bigint NOT NULL CHECK (duration_ms >= 0),
        http_status integer,
        outcome text NOT NULL,
        detail text
      );
      CREATE INDEX webhook_attempts_by_delivery ON ${schema}.webhook_attempts (delivery_id, attempt_id);
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
