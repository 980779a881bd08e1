import assert from 'node:assert/strict';
import type { Cancellable, Clock } from '../../runtime/clock.js';
import { systemClock } from '../../runtime/clock.js';
import { rowChecksum } from '../checksum.js';
import { defaultGroupCommitSettings, type GroupCommitSettings, GroupCommitter } from '../group-commit.js';
import {
  type AppendRequest,
  ConcurrentWriteError,
  type FenceCheck,
  FencingUnsupportedError,
  type Journal,
  JournalClosedError,
  type JournalStats,
  type MessageKey,
  type OffsetEvent,
  type PersistedEvent,
  StaleEpochError,
  StoreUnavailableError,
} from '../journal.js';
import {
  assertAppendRequest,
  assertIdentifier,
  assertReadRange,
  assertSeqNr,
  verifiedEvent,
  withOffset,
} from '../row-integrity.js';

export interface MemoryJournalOptions {
  /** Batch and queue limits; defaults to the durable stores' defaults so write semantics match. */
  readonly groupCommit?: Partial<GroupCommitSettings>;
  /** Drives `setWriteDelayMs` when no clock is passed there. */
  readonly clock?: Clock;
  /**
   * Checks the fences of fenced appends, inside the write (the cluster's memory store, shared by
   * the simulated nodes). Without one, a fenced append is refused with `FencingUnsupportedError`.
   */
  readonly fenceCheck?: FenceCheck;
}

/** The error an injected write failure rejects with, unless the test supplies its own. */
export class InjectedWriteError extends Error {
  override readonly name = 'InjectedWriteError';
  constructor(readonly persistenceId: string) {
    super(`injected write failure for ${persistenceId}`);
  }
}

interface FailureRule {
  readonly matches: (request: AppendRequest) => boolean;
  readonly error: Error | undefined;
  remaining: number;
}

/**
 * A stored event row: a JSON array, so nothing a caller holds can alias what the journal keeps.
 * `[offset, persistenceId, seqNr, type, version, payload, timestamp, checksum]`.
 */
type StoredRow = string;

/**
 * The journal in memory, for unit tests and the deterministic simulator. Appends go through the
 * same GroupCommitter as the durable stores, so batching, ordering, fencing and overload behave
 * the same; what it adds are hooks for tests to hold, fail, slow, inspect and corrupt writes.
 */
export class MemoryJournal implements Journal {
  private readonly committer: GroupCommitter<AppendRequest>;
  private readonly clock: Clock;
  private readonly fenceCheck: FenceCheck | undefined;
  /** Index `offset - 1`. */
  private readonly rows: StoredRow[] = [];
  /** Per persistence id, index `seqNr - 1` holds the row's offset. */
  private readonly offsetsById = new Map<string, number[]>();
  /** receiverId → messageId → processedAt. */
  private readonly processed = new Map<string, Map<string, number>>();
  private readonly counters = { appends: 0, events: 0, transactions: 0, failedAppends: 0 };
  private failureRules: FailureRule[] = [];
  private held: { readonly released: Promise<void>; readonly release: () => void } | undefined;
  private writeDelay: { readonly ms: number; readonly clock: Clock } | undefined;
  private pending = 0;
  private closed = false;
  private readonly commitListeners: Array<(request: AppendRequest) => void> = [];
  /**
   * While true the journal behaves as a database that cannot be reached: every read is refused and
   * every append that reaches a commit fails, with `StoreUnavailableError`. The simulator's switch.
   */
  unavailable = false;

  constructor(options: MemoryJournalOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.fenceCheck = options.fenceCheck;
    this.committer = new GroupCommitter<AppendRequest>((batch) => this.commitBatch(batch), {
      ...defaultGroupCommitSettings,
      ...options.groupCommit,
    });
  }

  append(request: AppendRequest): Promise<void> {
    try {
      assertAppendRequest(request);
    } catch (error) {
      return Promise.reject(error);
    }
    this.pending++;
    return this.committer.submit(request).then(
      () => {
        this.pending--;
      },
      (error: unknown) => {
        this.pending--;
        this.counters.failedAppends++;
        throw error;
      },
    );
  }

  async read(
    persistenceId: string,
    fromSeqNr: number,
    toSeqNr?: number,
    max?: number,
  ): Promise<PersistedEvent[]> {
    this.assertOpen();
    this.assertAvailable();
    assertReadRange(fromSeqNr, toSeqNr, max);
    const offsets = this.offsetsById.get(persistenceId) ?? [];
    const first = Math.max(fromSeqNr, 1);
    const last = Math.min(toSeqNr ?? offsets.length, offsets.length, first - 1 + (max ?? offsets.length));
    const events: PersistedEvent[] = [];
    for (let seqNr = first; seqNr <= last; seqNr++) {
      const event = this.rowAt(offsets[seqNr - 1]);
      // A row read back must be the one asked for: the index and the rows must never disagree.
      assert.ok(
        event.persistenceId === persistenceId && event.seqNr === seqNr,
        'memory journal index is broken',
      );
      events.push(stripOffset(event));
    }
    return events;
  }

  async highestSeqNr(persistenceId: string): Promise<number> {
    this.assertOpen();
    this.assertAvailable();
    return this.highest(persistenceId);
  }

  async readAll(afterOffset: number, limit: number): Promise<OffsetEvent[]> {
    this.assertOpen();
    this.assertAvailable();
    assert.ok(Number.isSafeInteger(afterOffset) && afterOffset >= 0, 'afterOffset must be an integer >= 0');
    assert.ok(Number.isSafeInteger(limit) && limit >= 0, 'limit must be an integer >= 0');
    const events: OffsetEvent[] = [];
    const end = Math.min(this.rows.length, afterOffset + limit);
    for (let offset = afterOffset + 1; offset <= end; offset++) events.push(this.rowAt(offset));
    return events;
  }

  // Keyed by id alone: a message's time only places its record in a store with pages to spare.
  async isProcessed(receiverId: string, message: MessageKey): Promise<boolean> {
    this.assertOpen();
    this.assertAvailable();
    return this.processed.get(receiverId)?.has(message.id) ?? false;
  }

  async purgeProcessed(receiverId: string, beforeTimestamp: number): Promise<number> {
    this.assertOpen();
    this.assertAvailable();
    const records = this.processed.get(receiverId);
    if (records === undefined) return 0;
    let purged = 0;
    for (const [messageId, processedAt] of records) {
      if (processedAt < beforeTimestamp) {
        records.delete(messageId);
        purged++;
      }
    }
    if (records.size === 0) this.processed.delete(receiverId);
    return purged;
  }

  stats(): JournalStats {
    return { ...this.counters };
  }

  /** Drains queued appends (a held journal must be released first), then refuses everything. */
  async close(): Promise<void> {
    this.closed = true;
    await this.committer.close();
  }

  // ---- Test hooks ------------------------------------------------------------------------------

  /**
   * Stops committing: the batch being written and every later one wait, their appends stay
   * pending and their promises unresolved, until `releaseWrites`. Proves nothing is acted on
   * before it is durable.
   */
  holdWrites(): void {
    if (this.held !== undefined) return;
    let release = (): void => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.held = { released, release };
  }

  releaseWrites(): void {
    const held = this.held;
    this.held = undefined;
    held?.release();
  }

  /** Appends submitted and not yet committed or failed; lets a test wait for a write to be in flight. */
  pendingAppends(): number {
    return this.pending;
  }

  /** The next `count` appends to reach a commit fail with `error`; the rest of their batch commits. */
  failNextAppends(count: number, error?: Error): void {
    assert.ok(Number.isSafeInteger(count) && count >= 0, 'count must be an integer >= 0');
    this.failureRules.push({ matches: () => true, error, remaining: count });
  }

  /** Every append matching `predicate` fails with `error` until the returned handle is cancelled. */
  failAppendsWhere(predicate: (request: AppendRequest) => boolean, error?: Error): Cancellable {
    const rule: FailureRule = { matches: predicate, error, remaining: Number.POSITIVE_INFINITY };
    this.failureRules.push(rule);
    return {
      cancel: () => {
        this.failureRules = this.failureRules.filter((other) => other !== rule);
      },
    };
  }

  /**
   * Calls `listener` with every append in the very step that commits it (before its writer hears
   * of it, and before any other code runs): what was true of the world at the commit still is.
   */
  onCommitted(listener: (request: AppendRequest) => void): void {
    this.commitListeners.push(listener);
  }

  clearFailures(): void {
    this.failureRules = [];
  }

  /** Each batch waits `ms` (on `clock`, by default the journal's) before it commits; 0 turns it off. */
  setWriteDelayMs(ms: number, clock: Clock = this.clock): void {
    assert.ok(Number.isFinite(ms) && ms >= 0, 'write delay must be >= 0 ms');
    this.writeDelay = ms === 0 ? undefined : { ms, clock };
  }

  /** The stored rows of one id, verified and in order. */
  eventsOf(persistenceId: string): PersistedEvent[] {
    const offsets = this.offsetsById.get(persistenceId) ?? [];
    return offsets.map((offset) => stripOffset(this.rowAt(offset)));
  }

  persistenceIds(): string[] {
    return [...this.offsetsById.keys()];
  }

  /** Alters a stored payload without updating its checksum, as a torn or bit-flipped write would. */
  corrupt(persistenceId: string, seqNr: number): void {
    const offset = this.offsetsById.get(persistenceId)?.[seqNr - 1];
    assert.ok(offset !== undefined, `no event ${persistenceId}#${seqNr} to corrupt`);
    const columns: unknown = JSON.parse(this.rows[offset - 1] ?? 'null');
    assert.ok(Array.isArray(columns) && typeof columns[5] === 'string', 'stored row is not a row');
    columns[5] = `${columns[5]} `;
    this.rows[offset - 1] = JSON.stringify(columns);
  }

  /**
   * Stores an event row as is (any type and version, e.g. one written by older code), with a
   * correct checksum, bypassing group commit and injected failures. It must still be the id's next
   * sequence number. Returns its offset.
   */
  writeRaw(row: PersistedEvent): number {
    assertIdentifier(row.persistenceId, 'persistenceId');
    assertSeqNr(row.seqNr, 'seqNr');
    const highest = this.highest(row.persistenceId);
    assert.ok(
      row.seqNr === highest + 1,
      `writeRaw ${row.persistenceId}#${row.seqNr} after highest ${highest}`,
    );
    return this.store(row.persistenceId, row.seqNr, row, row.timestamp);
  }

  // ---- Internals -------------------------------------------------------------------------------

  private async commitBatch(batch: readonly AppendRequest[]): Promise<Array<Error | undefined>> {
    while (this.held !== undefined) await this.held.released;
    const delay = this.writeDelay;
    if (delay !== undefined) {
      await new Promise<void>((resolve) => delay.clock.schedule(delay.ms, resolve));
    }
    const outcomes: Array<Error | undefined> = [];
    let written = 0;
    for (const request of batch) {
      const outcome = this.commitOne(request);
      if (outcome === undefined) written++;
      outcomes.push(outcome);
    }
    if (written > 0) this.counters.transactions++;
    return outcomes;
  }

  /** Writes one request entirely or not at all; returns the error that refused it. */
  private commitOne(request: AppendRequest): Error | undefined {
    if (this.unavailable) return new StoreUnavailableError('the memory journal');
    const injected = this.injectedFailure(request);
    if (injected !== undefined) return injected;
    // The fence first: a writer that lost its shard learns that, not a symptom of it.
    const fenceRefusal = this.fenceRefusal(request);
    if (fenceRefusal !== undefined) return fenceRefusal;
    const highest = this.highest(request.persistenceId);
    if (request.fromSeqNr !== highest + 1) {
      return new ConcurrentWriteError(request.persistenceId, request.fromSeqNr, highest);
    }
    // Asserted again right before writing: the request object may have changed since it was queued.
    assertAppendRequest(request);
    let seqNr = request.fromSeqNr;
    for (const event of request.events) {
      this.store(request.persistenceId, seqNr, event, request.timestamp);
      seqNr++;
    }
    const processed = request.processed;
    if (processed !== undefined) {
      let records = this.processed.get(processed.receiverId);
      if (records === undefined) {
        records = new Map();
        this.processed.set(processed.receiverId, records);
      }
      // Like INSERT OR IGNORE: a message recorded earlier keeps its first processing time.
      for (const message of processed.messages) {
        if (!records.has(message.id)) records.set(message.id, request.timestamp);
      }
    }
    this.counters.appends++;
    this.counters.events += request.events.length;
    for (const listener of this.commitListeners) listener(request);
    return undefined;
  }

  /** Checked in the same synchronous step as the write, so no takeover can come in between. */
  private fenceRefusal(request: AppendRequest): Error | undefined {
    const fence = request.fence;
    if (fence === undefined) return undefined;
    if (this.fenceCheck === undefined)
      return new FencingUnsupportedError('a memory journal without a fence check');
    return this.fenceCheck.isCurrent(fence) ? undefined : new StaleEpochError(request.persistenceId, fence);
  }

  private injectedFailure(request: AppendRequest): Error | undefined {
    for (const rule of this.failureRules) {
      if (rule.remaining > 0 && rule.matches(request)) {
        rule.remaining--;
        if (rule.remaining === 0) this.failureRules = this.failureRules.filter((other) => other !== rule);
        return rule.error ?? new InjectedWriteError(request.persistenceId);
      }
    }
    return undefined;
  }

  private store(
    persistenceId: string,
    seqNr: number,
    event: { readonly type: string; readonly version: number; readonly payload: string },
    timestamp: number,
  ): number {
    const offset = this.rows.length + 1;
    const checksum = rowChecksum(persistenceId, seqNr, event.type, event.version, event.payload);
    this.rows.push(
      JSON.stringify([
        offset,
        persistenceId,
        seqNr,
        event.type,
        event.version,
        event.payload,
        timestamp,
        checksum,
      ]),
    );
    let offsets = this.offsetsById.get(persistenceId);
    if (offsets === undefined) {
      offsets = [];
      this.offsetsById.set(persistenceId, offsets);
    }
    offsets.push(offset);
    return offset;
  }

  private highest(persistenceId: string): number {
    return this.offsetsById.get(persistenceId)?.length ?? 0;
  }

  /** Parses and verifies a stored row; a row that fails is corrupt and throws CorruptRowError. */
  private rowAt(offset: number | undefined): OffsetEvent {
    assert.ok(offset !== undefined, 'memory journal index is broken');
    const columns: unknown = JSON.parse(this.rows[offset - 1] ?? 'null');
    if (!Array.isArray(columns) || columns.length !== 8) assert.fail(`stored row ${offset} is not a row`);
    const [storedOffset, persistenceId, seqNr, type, version, payload, timestamp, checksum] = columns;
    const event = verifiedEvent(persistenceId, seqNr, type, version, payload, timestamp, checksum);
    if (storedOffset !== offset) assert.fail(`stored row ${offset} has offset ${String(storedOffset)}`);
    return withOffset(event, storedOffset);
  }

  private assertOpen(): void {
    if (this.closed) throw new JournalClosedError();
  }

  private assertAvailable(): void {
    if (this.unavailable) throw new StoreUnavailableError('the memory journal');
  }
}

function stripOffset(event: OffsetEvent): PersistedEvent {
  const { offset: _offset, ...persisted } = event;
  return persisted;
}
