import type { Journal, SnapshotStore } from '../store/journal.js';
import type { EntityDefinition } from './entity.js';
import { decodeVersioned } from './serialization.js';

export interface RecoveredState<S> {
  readonly state: S;
  /** The sequence number of the last event applied; 0 for a new entity. */
  readonly seqNr: number;
  /** The sequence number of the snapshot recovery started from; 0 if none. */
  readonly snapshotSeqNr: number;
}

export interface RecoveryOptions {
  readonly pageSize: number;
  /** Ignore snapshots and replay the whole journal (test kits compare both ways). */
  readonly useSnapshot?: boolean;
}

/**
 * Rebuilds an entity's state: the latest snapshot, if any, then every later event through the
 * same `evolve` the live entity uses. Pure with respect to the outside world — nothing but reads.
 * A gap in the sequence numbers, a corrupt row or an undecodable event stops recovery with an
 * error naming the persistence id and sequence number: skipping would rebuild the wrong state.
 */
export async function recoverState<S, C, E extends { readonly type: string }>(
  definition: EntityDefinition<S, C, E>,
  entityId: string,
  persistenceId: string,
  journal: Journal,
  snapshots: SnapshotStore | undefined,
  options: RecoveryOptions,
): Promise<RecoveredState<S>> {
  let state = definition.initialState(entityId);
  let seqNr = 0;
  let snapshotSeqNr = 0;
  const snapshotSettings = definition.snapshot;
  if (snapshotSettings !== undefined && snapshots !== undefined && options.useSnapshot !== false) {
    const snapshot = await snapshots.loadLatest(persistenceId);
    if (snapshot !== undefined) {
      state = decodeVersioned(snapshotSettings.codec, 'snapshot', snapshot.payload, snapshot.version, {
        persistenceId,
        seqNr: snapshot.seqNr,
      });
      seqNr = snapshot.seqNr;
      snapshotSeqNr = snapshot.seqNr;
    }
  }
  for (;;) {
    const rows = await journal.read(persistenceId, seqNr + 1, undefined, options.pageSize);
    for (const row of rows) {
      if (row.seqNr !== seqNr + 1) {
        throw new Error(
          `journal of ${persistenceId} has a gap: expected seqNr ${seqNr + 1}, read ${row.seqNr}`,
        );
      }
      const event = definition.events.deserialize(row, { persistenceId, seqNr: row.seqNr });
      state = definition.evolve(state, event);
      seqNr = row.seqNr;
    }
    if (rows.length < options.pageSize) break;
  }
  return { state, seqNr, snapshotSeqNr };
}
