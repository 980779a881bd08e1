import pg from 'pg';
import { type Clock, systemClock } from '../../runtime/clock.js';
import type { GroupCommitSettings } from '../group-commit.js';
import { migrate } from './migrations.js';
import { type CommitObserver, PostgresJournal } from './postgres-journal.js';
import {
  type ConnectionLostObserver,
  connectionFailureReason,
  createPool,
  DatabaseUnreachableError,
  describeDatabase,
} from './postgres-pool.js';
import type { PostgresSettings } from './postgres-settings.js';
import { PostgresSnapshotStore } from './postgres-snapshot-store.js';
import { PostgresVaultStorage } from './postgres-vault-storage.js';

export interface PostgresStoreOptions {
  readonly settings: PostgresSettings;
  readonly groupCommit?: Partial<GroupCommitSettings>;
  /** Stamps applied migrations. */
  readonly clock?: Clock;
  /** Told of every journal batch committed, with its duration (e.g. for a latency histogram). */
  readonly onCommitted?: CommitObserver;
  /** Told of every connection the server or the network ended (the pool replaces it). */
  readonly onConnectionLost?: ConnectionLostObserver;
}

/** Every store of a node in one PostgreSQL schema, over one pool. */
export interface PostgresStore {
  readonly journal: PostgresJournal;
  readonly snapshots: PostgresSnapshotStore;
  readonly vault: PostgresVaultStorage;
  readonly pool: pg.Pool;
  /** The schema's quoted name, for other stores of the node (the read model). */
  readonly quotedSchema: string;
  /**
   * Whether the database answers a trivial query now: for a readiness probe. Never rejects; a
   * database that does not answer within the settings' connection and query timeouts is `false`.
   */
  isReachable(): Promise<boolean>;
  /** Drains queued appends and vault puts, then closes every connection. */
  close(): Promise<void>;
}

/**
 * Connects, migrates the schema (safe when several nodes start at once) and opens the stores.
 * A database that cannot be reached or refuses the login rejects with `DatabaseUnreachableError`,
 * a sentence for the operator.
 */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<PostgresStore> {
  const { settings } = options;
  const pool = createPool(settings, options.onConnectionLost);
  try {
    await pool.query('SELECT 1');
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw new DatabaseUnreachableError(describeDatabase(settings.url), connectionFailureReason(error));
  }
  try {
    await migrate(pool, settings.schema, (options.clock ?? systemClock).now());
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
  const quotedSchema = pg.escapeIdentifier(settings.schema);
  const journal = new PostgresJournal(pool, quotedSchema, options.groupCommit, options.onCommitted);
  const snapshots = new PostgresSnapshotStore(pool, quotedSchema);
  const vault = new PostgresVaultStorage(pool, quotedSchema);
  let closed = false;
  return {
    journal,
    snapshots,
    vault,
    pool,
    quotedSchema,
    isReachable: async () => {
      try {
        await pool.query('SELECT 1');
        return true;
      } catch {
        return false;
      }
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await journal.close();
      await vault.close();
      await snapshots.close();
      await pool.end();
    },
  };
}
