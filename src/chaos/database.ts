import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { type RunningPostgres, startEmbeddedPostgres } from '../store/postgres/embedded-postgres.js';
import type { JournalSequence } from './checker.js';

/**
 * The chaos run's PostgreSQL: either one the harness runs itself (an embedded server with its data
 * in the run's folder, fsync on, which the chaos may SIGKILL and start again) or one it is given by
 * URL (never killed). Either way the gateway gets a fresh schema of its own for the run.
 */

export const databaseLimits = {
  /** Connections the server accepts: the gateway's pool, the harness's reads, and room to spare. */
  connectionsMax: 60,
  /** Waiting for a query of the harness itself. */
  queryTimeoutMs: 30_000,
};

/**
 * The run's own server, with its cluster in `<folder>/data`; the harness removes the folder itself,
 * and keeps it after a failed run. Durable (fsync and synchronous commit on): the run tests what
 * survives a SIGKILL. `serverSettings` are extra `name=value` server settings.
 */
export function startRunPostgres(
  folder: string,
  serverSettings: readonly string[] = [],
): Promise<RunningPostgres> {
  return startEmbeddedPostgres({
    durable: true,
    connectionsMax: databaseLimits.connectionsMax,
    serverSettings,
    folder,
  });
}

/** A schema name of its own for one run: `chaos_<seed>_<random>`. */
export function runSchemaName(seed: number): string {
  return `chaos_${seed}_${randomBytes(4).toString('hex')}`;
}

async function withDatabase<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({
    connectionString: url,
    application_name: 'remit-chaos',
    query_timeout: databaseLimits.queryTimeoutMs,
    connectionTimeoutMillis: databaseLimits.queryTimeoutMs,
  });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/**
 * Every persistence id's sequence numbers from the gateway's journal in PostgreSQL, read after the
 * gateway has stopped. Ordered by persistence id and sequence number, as the checker wants.
 */
export function readPostgresJournalSequences(url: string, schema: string): Promise<JournalSequence[]> {
  return withDatabase(url, async (client) => {
    const { rows } = await client.query<{ persistence_id: string; seq_nr: string }>(
      `SELECT persistence_id, seq_nr FROM ${client.escapeIdentifier(schema)}.journal ORDER BY persistence_id, seq_nr`,
    );
    const sequences = new Map<string, number[]>();
    for (const row of rows) {
      const seqNrs = sequences.get(row.persistence_id) ?? [];
      seqNrs.push(Number(row.seq_nr));
      sequences.set(row.persistence_id, seqNrs);
    }
    return [...sequences].map(([persistenceId, seqNrs]) => ({ persistenceId, seqNrs }));
  });
}

/** The `drop-event` sabotage on PostgreSQL: deletes the middle event of the longest persistence id. */
export function dropPostgresJournalEvent(
  url: string,
  schema: string,
): Promise<{ persistenceId: string; seqNr: number }> {
  return withDatabase(url, async (client) => {
    const journal = `${client.escapeIdentifier(schema)}.journal`;
    const { rows } = await client.query<{ persistence_id: string; max_seq_nr: string }>(
      `SELECT persistence_id, max(seq_nr) AS max_seq_nr FROM ${journal} GROUP BY persistence_id ORDER BY max(seq_nr) DESC LIMIT 1`,
    );
    const longest = rows[0];
    if (longest === undefined || Number(longest.max_seq_nr) < 3) {
      throw new Error('the journal is too short to drop an event from its middle');
    }
    const seqNr = Math.floor(Number(longest.max_seq_nr) / 2);
    await client.query(`DELETE FROM ${journal} WHERE persistence_id = $1 AND seq_nr = $2`, [
      longest.persistence_id,
      seqNr,
    ]);
    return { persistenceId: longest.persistence_id, seqNr };
  });
}

/** Drops the run's schema and everything in it. */
export function dropSchema(url: string, schema: string): Promise<void> {
  return withDatabase(url, async (client) => {
    await client.query(`DROP SCHEMA IF EXISTS ${client.escapeIdentifier(schema)} CASCADE`);
  });
}
