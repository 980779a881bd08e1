/**
 * The storage contracts every backend (memory, SQLite, later PostgreSQL) implements.
 *
 * The journal is append-only per persistence id with contiguous sequence numbers starting at 1.
 * An append names the sequence number it expects to write first; if the journal's highest sequence
 * number for that id is not exactly one less, the append fails with `ConcurrentWriteError`. That is
 * the fencing that makes a second (stale) writer for the same entity harmless.
 *
 * In a cluster, a write may also carry a `Fence`: the lease epoch of its entity's shard that the
 * writer holds. A store that supports fencing checks it in the same transaction as the write and
 * refuses the write with `StaleEpochError` when the shard's lease no longer holds that epoch and
 * owner, so an owner that was paused or partitioned while another node took its shard over can
 * write nothing after the takeover (Temporal checks its shard's `range_id` the same way).
 *
 * Payloads are opaque JSON strings here: encoding and schema versions belong to `persistence/`.
 */

/**
 * The proof a writer gives that it owns the shard of what it writes: the lease epoch it was
 * granted. Every takeover of a shard raises its epoch, so an older epoch is a stale owner.
 */
export interface Fence {
  readonly shardId: string;
  readonly epoch: number;
  /** The owner the lease names (a node id). */
  readonly owner: string;
}

/**
 * Whether a fence still holds at this moment. A store whose writes happen in this process (the
 * memory stores) asks it inside the write, where nothing can interleave; a database store checks
 * its lease rows in the write's own transaction instead. The cluster's in-memory lease store
 * implements it, so `store/` needs nothing of `cluster/`.
 */
export interface FenceCheck {
  isCurrent(fence: Fence): boolean;
}

/** An event as the journal stores it, before it has a global offset. */
export interface SerializedEvent {
  readonly type: string;
  readonly version: number;
  /** JSON text of the event's payload. */
  readonly payload: string;
}

/** An event read back from the journal. */
export interface PersistedEvent extends SerializedEvent {
  readonly persistenceId: string;
  readonly seqNr: number;
  /** Milliseconds since the epoch, from the writer's Clock. */
  readonly timestamp: number;
}

/** An event read from the global stream, for projections. Offsets grow strictly. */
export interface OffsetEvent extends PersistedEvent {
  readonly offset: number;
}

/**
 * A message as a receiver's processed-message record names it.
 *
 * `time` is a time the sender fixed for the message (milliseconds since the epoch), carried the
 * same on every delivery of it, or 0 when it has none. A store may keep records of nearby times
 * together: ids are hashes, and a record placed by its id alone lands on a random page of the
 * store, which each commit then writes whole. The same id must always come with the same time; a
 * record written with time 0 is found whatever the time of the lookup (records of older versions).
 */
export interface MessageKey {
  readonly id: string;
  readonly time: number;
}

/**
 * Messages a receiver has processed, written in the same transaction as the events that
 * processing produced, so "processed" and "its effects are durable" can never disagree.
 */
export interface ProcessedMessages {
  readonly receiverId: string;
  readonly messages: readonly MessageKey[];
}

export interface AppendRequest {
  readonly persistenceId: string;
  /** The sequence number of the first event; must be the journal's highest + 1. */
  readonly fromSeqNr: number;
  readonly events: readonly SerializedEvent[];
  readonly timestamp: number;
  readonly processed?: ProcessedMessages;
  /**
   * The shard lease the writer holds. Checked in the write's transaction: events and
   * processed-message records commit only while the lease holds this epoch and owner.
   */
  readonly fence?: Fence;
}

export interface JournalStats {
  /** Append calls that committed. */
  readonly appends: number;
  /** Events that committed. */
  readonly events: number;
  /** Transactions (each one fsync in a durable store). */
  readonly transactions: number;
  /** Append calls that failed. */
  readonly failedAppends: number;
}

export interface Journal {
  /**
   * Appends events atomically. Resolves only once they are durable; rejects with
   * `ConcurrentWriteError` when `fromSeqNr` is not the next sequence number, with
   * `StaleEpochError` when its fence no longer holds, with `JournalOverloadedError` when the write
   * queue is full, or with the store's error. A refused append writes nothing; the other appends
   * of its batch commit.
   */
  append(request: AppendRequest): Promise<void>;
  /** Events of one persistence id with `fromSeqNr <= seqNr <= toSeqNr`, in order, at most `max`. */
  read(persistenceId: string, fromSeqNr: number, toSeqNr?: number, max?: number): Promise<PersistedEvent[]>;
  /** 0 when the id has no events. */
  highestSeqNr(persistenceId: string): Promise<number>;
  /** Events of all ids with `offset > afterOffset`, in offset order, at most `limit`. */
  readAll(afterOffset: number, limit: number): Promise<OffsetEvent[]>;
  /** Whether `receiverId` has durably processed the message (and the record is not yet purged). */
  isProcessed(receiverId: string, message: MessageKey): Promise<boolean>;
  /** Deletes processed-message records of `receiverId` older than `beforeTimestamp`; returns how many. */
  purgeProcessed(receiverId: string, beforeTimestamp: number): Promise<number>;
  stats(): JournalStats;
  close(): Promise<void>;
}

export interface Snapshot {
  readonly persistenceId: string;
  /** The sequence number of the last event the snapshot includes. */
  readonly seqNr: number;
  readonly version: number;
  readonly payload: string;
  readonly timestamp: number;
}

export interface SnapshotStore {
  /** Saves a snapshot; with a fence, only while it holds (else `StaleEpochError`, nothing saved). */
  save(snapshot: Snapshot, fence?: Fence): Promise<void>;
  /** The newest snapshot, or undefined. A corrupt snapshot rejects with `CorruptRowError`. */
  loadLatest(persistenceId: string): Promise<Snapshot | undefined>;
  /** Deletes snapshots with `seqNr < beforeSeqNr`. */
  deleteOlderThan(persistenceId: string, beforeSeqNr: number): Promise<void>;
  close(): Promise<void>;
}

export class ConcurrentWriteError extends Error {
  override readonly name = 'ConcurrentWriteError';
  constructor(
    readonly persistenceId: string,
    readonly expectedSeqNr: number,
    readonly actualHighestSeqNr: number,
  ) {
    super(
      `concurrent write to ${persistenceId}: append expected to write seqNr ${expectedSeqNr} ` +
        `but the journal's highest is ${actualHighestSeqNr}`,
    );
  }
}

/** A write's fence no longer holds: its shard was taken over (or released) since it was granted. */
export class StaleEpochError extends Error {
  override readonly name = 'StaleEpochError';
  constructor(
    readonly persistenceId: string,
    readonly fence: Fence,
  ) {
    super(
      `stale write to ${persistenceId}: shard ${fence.shardId} is no longer held by ${fence.owner} ` +
        `at epoch ${fence.epoch}`,
    );
  }
}

/**
 * The store could not be reached (a refused or broken connection): nothing was read or written by
 * this call. The in-memory stores raise it while the simulator holds them unavailable.
 */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
  constructor(readonly store: string) {
    super(`${store} is unavailable`);
  }
}

/** A fenced write reached a store that cannot check fences (one that only a single node uses). */
export class FencingUnsupportedError extends Error {
  override readonly name = 'FencingUnsupportedError';
  constructor(readonly store: string) {
    super(`${store} cannot check shard fences: a fenced write needs a cluster store`);
  }
}

export class JournalOverloadedError extends Error {
  override readonly name = 'JournalOverloadedError';
  constructor(readonly pendingAppendsMax: number) {
    super(`journal write queue is full (pendingAppendsMax=${pendingAppendsMax})`);
  }
}

/** A stored row failed its checksum: recovery must stop, never skip it. */
export class CorruptRowError extends Error {
  override readonly name = 'CorruptRowError';
  constructor(
    readonly persistenceId: string,
    readonly seqNr: number,
    readonly what: 'event' | 'snapshot' = 'event',
  ) {
    super(
      `corrupt ${what} row: persistence id ${persistenceId}, sequence number ${seqNr} (checksum mismatch)`,
    );
  }
}

export class JournalClosedError extends Error {
  override readonly name = 'JournalClosedError';
  constructor() {
    super('journal is closed');
  }
}
