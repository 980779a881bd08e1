import assert from 'node:assert/strict';
import {
  type Fence,
  type FenceCheck,
  FencingUnsupportedError,
  JournalClosedError,
  type Snapshot,
  type SnapshotStore,
  StaleEpochError,
  StoreUnavailableError,
} from '../journal.js';
import { assertFence, assertSnapshot, snapshotChecksum, verifiedSnapshot } from '../row-integrity.js';

/**
 * Snapshots in memory. Rows are kept as JSON text, `[persistenceId, seqNr, version, payload,
 * timestamp, checksum]`, so a caller can never mutate what was saved, and every load verifies the
 * checksum like the durable stores do.
 */
export class MemorySnapshotStore implements SnapshotStore {
  /** persistenceId → seqNr → stored row. */
  private readonly rows = new Map<string, Map<number, string>>();
  private closed = false;
  /** While true every call is refused with `StoreUnavailableError`, as by a database that cannot be reached. */
  unavailable = false;

  constructor(
    /** Checks the fence of a fenced save (see MemoryJournalOptions.fenceCheck). */
    private readonly fenceCheck?: FenceCheck,
  ) {}

  async save(snapshot: Snapshot, fence?: Fence): Promise<void> {
    this.assertOpen();
    if (this.unavailable) throw new StoreUnavailableError('the memory snapshot store');
    assertSnapshot(snapshot);
    if (fence !== undefined) {
      assertFence(fence);
      if (this.fenceCheck === undefined)
        throw new FencingUnsupportedError('a memory snapshot store without a fence check');
      if (!this.fenceCheck.isCurrent(fence)) throw new StaleEpochError(snapshot.persistenceId, fence);
    }
    let ofId = this.rows.get(snapshot.persistenceId);
    if (ofId === undefined) {
      ofId = new Map();
      this.rows.set(snapshot.persistenceId, ofId);
    }
    // A second snapshot at the same seqNr replaces the first, as the durable stores' upsert does.
    ofId.set(
      snapshot.seqNr,
      JSON.stringify([
        snapshot.persistenceId,
        snapshot.seqNr,
        snapshot.version,
        snapshot.payload,
        snapshot.timestamp,
        snapshotChecksum(snapshot),
      ]),
    );
  }

  async loadLatest(persistenceId: string): Promise<Snapshot | undefined> {
    this.assertOpen();
    if (this.unavailable) throw new StoreUnavailableError('the memory snapshot store');
    const ofId = this.rows.get(persistenceId);
    if (ofId === undefined || ofId.size === 0) return undefined;
    const latest = Math.max(...ofId.keys());
    const snapshot = parseRow(ofId.get(latest));
    assert.ok(
      snapshot.persistenceId === persistenceId && snapshot.seqNr === latest,
      'snapshot index is broken',
    );
    return snapshot;
  }

  async deleteOlderThan(persistenceId: string, beforeSeqNr: number): Promise<void> {
    this.assertOpen();
    if (this.unavailable) throw new StoreUnavailableError('the memory snapshot store');
    const ofId = this.rows.get(persistenceId);
    if (ofId === undefined) return;
    for (const seqNr of ofId.keys()) if (seqNr < beforeSeqNr) ofId.delete(seqNr);
    if (ofId.size === 0) this.rows.delete(persistenceId);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  // ---- Test hooks ------------------------------------------------------------------------------

  /** Alters a stored snapshot's payload without updating its checksum. */
  corrupt(persistenceId: string, seqNr: number): void {
    const ofId = this.rows.get(persistenceId);
    const stored = ofId?.get(seqNr);
    assert.ok(ofId !== undefined && stored !== undefined, `no snapshot ${persistenceId}#${seqNr} to corrupt`);
    const columns: unknown = JSON.parse(stored);
    assert.ok(Array.isArray(columns) && typeof columns[3] === 'string', 'stored snapshot is not a row');
    columns[3] = `${columns[3]} `;
    ofId.set(seqNr, JSON.stringify(columns));
  }

  /** The sequence numbers of the snapshots kept for one id, ascending. */
  seqNrsOf(persistenceId: string): number[] {
    return [...(this.rows.get(persistenceId)?.keys() ?? [])].sort((a, b) => a - b);
  }

  private assertOpen(): void {
    if (this.closed) throw new JournalClosedError();
  }
}

function parseRow(stored: string | undefined): Snapshot {
  assert.ok(stored !== undefined, 'snapshot index is broken');
  const columns: unknown = JSON.parse(stored);
  assert.ok(Array.isArray(columns) && columns.length === 6, 'stored snapshot is not a row');
  const [persistenceId, seqNr, version, payload, timestamp, checksum] = columns;
  return verifiedSnapshot(persistenceId, seqNr, version, payload, timestamp, checksum);
}
