/**
 * The storage contracts every backend (memory, SQLite, later PostgreSQL) implements.
 *
 * The journal is append-only per persistence id with contiguous sequence numbers starting at 1.
 * An append names the sequence number it expects to write first; if the journal's highest sequence
 * number for that id is not exactly one less, the append fails with `ConcurrentWriteError`. That is
 * the fencing that makes a second (stale) writer for the same entity harmless.
 *
 * Payloads are opaque JSON strings here: encoding and schema versions belong to `persistence/`.
 */

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
   * `JournalOverloadedError` when the write queue is full, or with the store's error.
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
  save(snapshot: Snapshot): Promise<void>;
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
