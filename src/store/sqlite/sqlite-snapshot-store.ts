import type { Statement } from 'better-sqlite3';
import {
  type Fence,
  FencingUnsupportedError,
  JournalClosedError,
  type Snapshot,
  type SnapshotStore,
} from '../journal.js';
import {
  assertSnapshot,
  assertSnapshotDeletion,
  snapshotChecksum,
  verifiedSnapshotOf,
} from '../row-integrity.js';
import type { SharedDatabase } from './open-database.js';
import type { StoreWriter } from './sqlite-writer.js';

/**
 * Snapshots in the same SQLite file as the journal, written through the store's writer. A save is
 * its own small transaction, not part of group commit: snapshots are an optimisation of recovery, rare, and losing the newest one only
 * means replaying a few more events.
 */
export class SqliteSnapshotStore implements SnapshotStore {
  private readonly selectLatest: Statement<[string], unknown[]>;
  private closed = false;

  constructor(
    private readonly shared: SharedDatabase,
    private readonly writer: StoreWriter,
  ) {
    shared.retain();
    const database = shared.database;
    this.selectLatest = database
      .prepare<[string], unknown[]>(
        'SELECT persistence_id, seq_nr, version, payload, written_at, checksum FROM snapshots ' +
          'WHERE persistence_id = ? ORDER BY seq_nr DESC LIMIT 1',
      )
      .raw(true);
  }

  /** A fenced save is refused, as a fenced append is (see SqliteJournal.append). */
  async save(snapshot: Snapshot, fence?: Fence): Promise<void> {
    this.assertOpen();
    assertSnapshot(snapshot);
    if (fence !== undefined) throw new FencingUnsupportedError('the SQLite snapshot store');
    await this.writer.saveSnapshot({ ...snapshot, checksum: snapshotChecksum(snapshot) });
  }

  async loadLatest(persistenceId: string): Promise<Snapshot | undefined> {
    this.assertOpen();
    const row = this.selectLatest.get(persistenceId);
    if (row === undefined) return undefined;
    return verifiedSnapshotOf(persistenceId, row);
  }

  async deleteOlderThan(persistenceId: string, beforeSeqNr: number): Promise<void> {
    this.assertOpen();
    assertSnapshotDeletion(persistenceId, beforeSeqNr);
    await this.writer.deleteSnapshots(persistenceId, beforeSeqNr);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.shared.release();
  }

  private assertOpen(): void {
    if (this.closed) throw new JournalClosedError();
  }
}
