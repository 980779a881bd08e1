import assert from 'node:assert/strict';
import { rowChecksum } from './checksum.js';
import {
  type AppendRequest,
  CorruptRowError,
  type Fence,
  type MessageKey,
  type OffsetEvent,
  type PersistedEvent,
  type Snapshot,
} from './journal.js';

/**
 * Checks shared by every store: assertions on what is about to be written (a malformed request is
 * a programmer error and throws), and checks on what was just read (a row that fails them is
 * corrupt and stops the reader with CorruptRowError, never skipped).
 */

/** One append is one entity's reaction to one command; thousands of events means a bug upstream. */
export const eventsPerAppendMax = 10_000;
/** Processed messages recorded with one append. */
export const processedIdsPerAppendMax = 10_000;

/** The type stored in the checksum of a snapshot row, so a snapshot never checks out as an event. */
export const snapshotChecksumType = '\u0000snapshot';

/** Asserts an append request is well formed before it is queued and again right before it is written. */
export function assertAppendRequest(request: AppendRequest): void {
  assertIdentifier(request.persistenceId, 'persistenceId');
  assertSeqNr(request.fromSeqNr, 'fromSeqNr');
  assertTimestamp(request.timestamp);
  const events = request.events;
  assert.ok(Array.isArray(events), 'events must be an array');
  // Messages are built only on failure: this runs twice per append on the hot path.
  if (events.length === 0) assert.fail(`append to ${request.persistenceId} has no events`);
  if (events.length > eventsPerAppendMax) {
    assert.fail(`append has ${events.length} events (max ${eventsPerAppendMax})`);
  }
  assertSeqNr(request.fromSeqNr + events.length - 1, 'last seqNr');
  for (const event of events) {
    assertIdentifier(event.type, 'event type');
    assertVersion(event.version);
    assert.ok(typeof event.payload === 'string', 'event payload must be a JSON string');
  }
  const processed = request.processed;
  if (processed !== undefined) {
    assertIdentifier(processed.receiverId, 'receiverId');
    if (processed.messages.length > processedIdsPerAppendMax) {
      assert.fail(
        `append records ${processed.messages.length} processed ids (max ${processedIdsPerAppendMax})`,
      );
    }
    for (const message of processed.messages) assertMessageKey(message);
  }
  if (request.fence !== undefined) assertFence(request.fence);
}

/** A fence names a shard and an owner, and an epoch of 1 or more (the first lease's epoch is 1). */
export function assertFence(fence: Fence): void {
  assertIdentifier(fence.shardId, 'fence shardId');
  assertIdentifier(fence.owner, 'fence owner');
  if (!Number.isSafeInteger(fence.epoch) || fence.epoch < 1) {
    assert.fail(`fence epoch must be an integer >= 1, got ${String(fence.epoch)}`);
  }
}

function assertMessageKey(message: MessageKey): void {
  assertIdentifier(message.id, 'messageId');
  if (!Number.isSafeInteger(message.time) || message.time < 0)
    assert.fail('message time must be an integer >= 0');
}

/** Shared by the stores: a read range is the caller's to get right. */
export function assertReadRange(
  fromSeqNr: number,
  toSeqNr: number | undefined,
  max: number | undefined,
): void {
  assert.ok(Number.isSafeInteger(fromSeqNr), 'fromSeqNr must be an integer');
  assert.ok(toSeqNr === undefined || Number.isSafeInteger(toSeqNr), 'toSeqNr must be an integer');
  assert.ok(max === undefined || (Number.isSafeInteger(max) && max >= 0), 'max must be an integer >= 0');
}

export function assertSnapshot(snapshot: Snapshot): void {
  assertIdentifier(snapshot.persistenceId, 'persistenceId');
  // A snapshot at seqNr 0 would be the initial state, which is never worth storing.
  assertSeqNr(snapshot.seqNr, 'snapshot seqNr');
  assertVersion(snapshot.version);
  assert.ok(typeof snapshot.payload === 'string', 'snapshot payload must be a JSON string');
  assertTimestamp(snapshot.timestamp);
}

export function assertIdentifier(value: unknown, what: string): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) assert.fail(`${what} must be a non-empty string`);
}

export function assertSeqNr(value: unknown, what: string): asserts value is number {
  if (!Number.isSafeInteger(value) || (value as number) < 1) assert.fail(`${what} must be an integer >= 1`);
}

function assertVersion(value: unknown): void {
  assert.ok(Number.isSafeInteger(value) && (value as number) >= 1, 'version must be an integer >= 1');
}

function assertTimestamp(value: unknown): void {
  assert.ok(Number.isSafeInteger(value) && (value as number) >= 0, 'timestamp must be an integer >= 0');
}

/**
 * Checks the columns of a stored row — every column's type and the checksum — and returns them
 * typed. The columns are `unknown` on purpose: they come from disk (or from a test that disturbed
 * them). Any mismatch is a `CorruptRowError` naming the row as well as it can be read.
 */
function verifiedRow(
  what: 'event' | 'snapshot',
  persistenceId: unknown,
  seqNr: unknown,
  type: unknown,
  version: unknown,
  payload: unknown,
  timestamp: unknown,
  checksum: unknown,
): PersistedEvent {
  if (
    typeof persistenceId !== 'string' ||
    typeof seqNr !== 'number' ||
    !Number.isSafeInteger(seqNr) ||
    typeof type !== 'string' ||
    typeof version !== 'number' ||
    typeof payload !== 'string' ||
    typeof timestamp !== 'number' ||
    typeof checksum !== 'number' ||
    checksum !== rowChecksum(persistenceId, seqNr, type, version, payload)
  ) {
    const knownId = typeof persistenceId === 'string' ? persistenceId : String(persistenceId);
    throw new CorruptRowError(knownId, typeof seqNr === 'number' ? seqNr : -1, what);
  }
  return { persistenceId, seqNr, type, version, payload, timestamp };
}

/** Builds an event from the columns of a stored row, checked. */
export function verifiedEvent(
  persistenceId: unknown,
  seqNr: unknown,
  type: unknown,
  version: unknown,
  payload: unknown,
  timestamp: unknown,
  checksum: unknown,
): PersistedEvent {
  return verifiedRow('event', persistenceId, seqNr, type, version, payload, timestamp, checksum);
}

/**
 * The event in the columns of a row read for `persistenceId` (persistence id, seqNr, type,
 * version, payload, timestamp, checksum), checked; a row of another id means the query is broken.
 */
export function verifiedEventOf(persistenceId: string, row: readonly unknown[]): PersistedEvent {
  const event = verifiedEvent(row[0], row[1], row[2], row[3], row[4], row[5], row[6]);
  if (event.persistenceId !== persistenceId) {
    assert.fail(`read of ${persistenceId} returned ${event.persistenceId}`);
  }
  return event;
}

/** Adds a global offset read from a row, checking it like any other column. */
export function withOffset(event: PersistedEvent, offset: unknown): OffsetEvent {
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 1) {
    throw new CorruptRowError(event.persistenceId, event.seqNr, 'event');
  }
  return { ...event, offset };
}

/** Like `verifiedEvent`, for a snapshot row (its checksum covers a fixed type marker). */
export function verifiedSnapshot(
  persistenceId: unknown,
  seqNr: unknown,
  version: unknown,
  payload: unknown,
  timestamp: unknown,
  checksum: unknown,
): Snapshot {
  const row = verifiedRow(
    'snapshot',
    persistenceId,
    seqNr,
    snapshotChecksumType,
    version,
    payload,
    timestamp,
    checksum,
  );
  return {
    persistenceId: row.persistenceId,
    seqNr: row.seqNr,
    version: row.version,
    payload: row.payload,
    timestamp: row.timestamp,
  };
}

/**
 * The snapshot in the columns of the latest row read for `persistenceId` (persistence id, seqNr,
 * version, payload, timestamp, checksum), checked like `verifiedEventOf`.
 */
export function verifiedSnapshotOf(persistenceId: string, row: readonly unknown[]): Snapshot {
  const snapshot = verifiedSnapshot(row[0], row[1], row[2], row[3], row[4], row[5]);
  assert.ok(
    snapshot.persistenceId === persistenceId,
    `loadLatest(${persistenceId}) read ${snapshot.persistenceId}`,
  );
  return snapshot;
}

/** The arguments of a snapshot store's `deleteOlderThan`, checked before they reach a query. */
export function assertSnapshotDeletion(persistenceId: string, beforeSeqNr: number): void {
  assertIdentifier(persistenceId, 'persistenceId');
  assert.ok(Number.isSafeInteger(beforeSeqNr), 'beforeSeqNr must be an integer');
}

export function snapshotChecksum(snapshot: Snapshot): number {
  return rowChecksum(
    snapshot.persistenceId,
    snapshot.seqNr,
    snapshotChecksumType,
    snapshot.version,
    snapshot.payload,
  );
}
