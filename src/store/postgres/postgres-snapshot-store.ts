import type pg from 'pg';
import {
  type Fence,
  JournalClosedError,
  type Snapshot,
  type SnapshotStore,
  StaleEpochError,
} from '../journal.js';
import {
  assertFence,
  assertSnapshot,
  assertSnapshotDeletion,
  snapshotChecksum,
  verifiedSnapshotOf,
} from '../row-integrity.js';
import { statementName } from './postgres-pool.js';

/**
 * Snapshots in the stores' PostgreSQL schema. A save is its own small statement, not part of group
 * commit: snapshots are an optimisation of recovery, rare, and losing the newest one only means
 * replaying a few more events.
 */
export class PostgresSnapshotStore implements SnapshotStore {
  private readonly upsert: { readonly name: string; readonly text: string };
  private readonly fencedUpsert: { readonly name: string; readonly text: string };
  private readonly selectLatest: { readonly name: string; readonly text: string };
  private readonly deleteBefore: { readonly name: string; readonly text: string };
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    /** The schema's quoted name (`escapeIdentifier`). */
    quotedSchema: string,
  ) {
    const table = `${quotedSchema}.snapshots`;
    // A second snapshot at the same seqNr (e.g. after a restart) supersedes the first.
    this.upsert = {
      name: statementName('snapshot-save', quotedSchema),
      text:
        `INSERT INTO ${table} (persistence_id, seq_nr, version, payload, written_at, checksum) ` +
        'VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (persistence_id, seq_nr) DO UPDATE SET ' +
        'version = excluded.version, payload = excluded.payload, written_at = excluded.written_at, ' +
        'checksum = excluded.checksum',
    };
    // Fenced, the row is written only if the lease row holds the fence, share-locked in this
    // statement so a takeover cannot commit between the check and the write (as a fenced append).
    this.fencedUpsert = {
      name: statementName('snapshot-save-fenced', quotedSchema),
      text:
        `INSERT INTO ${table} (persistence_id, seq_nr, version, payload, written_at, checksum) ` +
        'SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (' +
        `SELECT 1 FROM ${quotedSchema}.shard_leases WHERE shard_id = $7 AND epoch = $8 AND owner = $9 FOR SHARE) ` +
        'ON CONFLICT (persistence_id, seq_nr) DO UPDATE SET ' +
        'version = excluded.version, payload = excluded.payload, written_at = excluded.written_at, ' +
        'checksum = excluded.checksum',
    };
    this.selectLatest = {
      name: statementName('snapshot-latest', quotedSchema),
      text:
        'SELECT persistence_id, seq_nr, version, payload, written_at, checksum ' +
        `FROM ${table} WHERE persistence_id = $1 ORDER BY seq_nr DESC LIMIT 1`,
    };
    this.deleteBefore = {
      name: statementName('snapshot-delete', quotedSchema),
      text: `DELETE FROM ${table} WHERE persistence_id = $1 AND seq_nr < $2`,
    };
  }

  async save(snapshot: Snapshot, fence?: Fence): Promise<void> {
    this.assertOpen();
    assertSnapshot(snapshot);
    const values = [
      snapshot.persistenceId,
      snapshot.seqNr,
      snapshot.version,
      snapshot.payload,
      snapshot.timestamp,
      snapshotChecksum(snapshot),
    ];
    if (fence === undefined) {
      await this.pool.query({ ...this.upsert, values });
      return;
    }
    assertFence(fence);
    const result = await this.pool.query({
      ...this.fencedUpsert,
      values: [...values, fence.shardId, fence.epoch, fence.owner],
    });
    if (result.rowCount !== 1) throw new StaleEpochError(snapshot.persistenceId, fence);
  }

  async loadLatest(persistenceId: string): Promise<Snapshot | undefined> {
    this.assertOpen();
    const result = await this.pool.query<unknown[]>({
      ...this.selectLatest,
      values: [persistenceId],
      rowMode: 'array',
    });
    const row = result.rows[0];
    if (row === undefined) return undefined;
    return verifiedSnapshotOf(persistenceId, row);
  }

  async deleteOlderThan(persistenceId: string, beforeSeqNr: number): Promise<void> {
    this.assertOpen();
    assertSnapshotDeletion(persistenceId, beforeSeqNr);
    await this.pool.query({ ...this.deleteBefore, values: [persistenceId, beforeSeqNr] });
  }

  /** The pool is its owner's to end. */
  async close(): Promise<void> {
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw new JournalClosedError();
  }
}
