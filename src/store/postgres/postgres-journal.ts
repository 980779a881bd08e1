import assert from 'node:assert/strict';
import type pg from 'pg';
import { rowChecksum } from '../checksum.js';
import { defaultGroupCommitSettings, type GroupCommitSettings, GroupCommitter } from '../group-commit.js';
import {
  type AppendRequest,
  ConcurrentWriteError,
  type Fence,
  type Journal,
  JournalClosedError,
  type JournalStats,
  type MessageKey,
  type OffsetEvent,
  type PersistedEvent,
  StaleEpochError,
} from '../journal.js';
import {
  assertAppendRequest,
  assertReadRange,
  verifiedEvent,
  verifiedEventOf,
  withOffset,
} from '../row-integrity.js';
import { integerArrayLiteral, textArrayLiteral } from './array-literal.js';
import { statementName } from './postgres-pool.js';

/**
 * A batch whose insert met a row another writer committed after this batch's check is checked and
 * written again, this many times at most; past it the batch fails (its entities restart and
 * recover). Each retry is caused by another node writing one of the batch's ids at that moment,
 * which fencing makes rare: one retry normally settles it.
 */
export const conflictRetriesMax = 3;

/**
 * Ids whose highest sequence number this journal remembers from its own commits (see
 * `knownHighest`); past it the least recently written are forgotten. About 100 bytes each.
 */
export const knownHighestIdsMax = 100_000;

/** PostgreSQL's SQLSTATE for a unique violation. */
const uniqueViolation = '23505';

/**
 * Told of every batch committed: how long from the hand-over to the commit, and its size (as the
 * SQLite journal's CommitObserver).
 */
export type CommitObserver = (seconds: number, appends: number) => void;

/**
 * The journal on PostgreSQL.
 *
 * **Group commit.** Appends queued while a batch is being written join the next batch (bounded by
 * `GroupCommitSettings.batchSizeMax`), so the appends of all entities waiting at that moment share
 * one transaction. A batch takes two round trips: one query reads the highest sequence number of
 * every id in the batch, and one statement writes all its events (and its processed-message
 * records) as multi-row inserts of arrays (`unnest`). That statement is its own transaction;
 * each waiter is released after it has committed.
 *
 * **Fencing.** Each append is checked against the highest sequence number of its id (carried
 * forward past earlier appends of the same id in the batch) and refused alone with
 * `ConcurrentWriteError` if it is not the next one. The `UNIQUE (persistence_id, seq_nr)`
 * constraint is the fence itself: if another node commits a row of one of the batch's ids between
 * the check and the write, the write fails whole and the batch is checked and written again, and
 * the append that lost is then refused by the check.
 *
 * **Shard fences.** An append that carries a `Fence` (a cluster node writing an entity of a shard
 * it leases) commits only if the shard's lease row holds that epoch and owner at the moment of the
 * write, checked by the batch's own statement (see `insertBatchText`): an old owner's append after
 * a takeover is refused alone with `StaleEpochError`, its batch-mates commit. No transaction spans
 * more than that one statement, so a paused node never holds a lease row's lock. A batch without
 * fences runs the same statement as without a cluster.
 *
 * The highest sequence number is read from the database, except for an id whose latest append
 * this journal committed itself and which continues right after it: an entity lives on one node,
 * so that is the usual case, and the batch then needs no read at all. If another writer has
 * appended to the id since, the row this append would write exists already (the journal is
 * contiguous and rows are never deleted), so the write fails on the unique constraint and the
 * retry reads every id of the batch from the database.
 *
 * **Global offsets a projection can trust: commit-ordered offsets.** An offset from a sequence is
 * assigned before commit, so a reader could see offset 12 while 11 is uncommitted, move past 11
 * and lose it for good. Here the write statement first updates the single row of `journal_offset`
 * (`last_offset += events in the batch`) and numbers the batch's events from it. The row lock this
 * takes is held until the transaction ends, and PostgreSQL releases a transaction's locks only
 * after its commit is visible to others. So the next writer — on this node or any other — gets
 * its offsets only after every lower offset is committed and visible (or rolled back together
 * with the counter), and a reader that sees offset n sees every committed offset below it: it can
 * page with `offset > last` and never skip or repeat an event. Chosen over transaction-id
 * watermarks (Emmett, Marten) because projections keep one number as their position, as with
 * SQLite, and over a gap-aware reader because it needs no waiting or time-outs on the read side.
 * The price is that appends of different nodes serialise on that row for the span of one
 * statement and its commit; each node writes one batch at a time anyway, and under load batches
 * grow instead of transactions multiplying.
 */
export class PostgresJournal implements Journal {
  private readonly committer: GroupCommitter<AppendRequest>;
  private readonly counters = { appends: 0, events: 0, transactions: 0, failedAppends: 0 };
  private readonly statements: JournalStatements;
  /**
   * The highest sequence number of ids this journal last wrote, as committed; least recently
   * written first (a Map keeps insertion order). A hint, never the fence: see the class comment.
   */
  private readonly knownHighest = new Map<string, number>();
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    /** The schema's quoted name (`escapeIdentifier`). */
    quotedSchema: string,
    groupCommit: Partial<GroupCommitSettings> = {},
    private readonly onCommitted?: CommitObserver,
  ) {
    this.statements = journalStatements(quotedSchema);
    this.committer = new GroupCommitter<AppendRequest>((batch) => this.commitBatch(batch), {
      ...defaultGroupCommitSettings,
      ...groupCommit,
    });
  }

  append(request: AppendRequest): Promise<void> {
    try {
      assertAppendRequest(request);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.committer.submit(request).catch((error: unknown) => {
      this.counters.failedAppends++;
      throw error;
    });
  }

  async read(
    persistenceId: string,
    fromSeqNr: number,
    toSeqNr?: number,
    max?: number,
  ): Promise<PersistedEvent[]> {
    this.assertOpen();
    assertReadRange(fromSeqNr, toSeqNr, max);
    const result = await this.pool.query<unknown[]>({
      ...this.statements.selectRange,
      values: [persistenceId, fromSeqNr, toSeqNr ?? Number.MAX_SAFE_INTEGER, max ?? null],
      rowMode: 'array',
    });
    return result.rows.map((row) => {
      const event = verifiedEventOf(persistenceId, row);
      return event;
    });
  }

  async highestSeqNr(persistenceId: string): Promise<number> {
    this.assertOpen();
    const highest = await this.highestOf([persistenceId]);
    return highest.get(persistenceId) ?? 0;
  }

  async readAll(afterOffset: number, limit: number): Promise<OffsetEvent[]> {
    this.assertOpen();
    return readGlobalStream(this.pool, this.statements, afterOffset, limit);
  }

  /**
   * The global offset of the last event committed; 0 before the first. Every event up to it is
   * committed and readable (offsets become visible in the order they are handed out).
   */
  async lastOffset(): Promise<number> {
    this.assertOpen();
    const result = await this.pool.query<unknown[]>({
      ...this.statements.selectLastOffset,
      rowMode: 'array',
    });
    const stored = result.rows[0]?.[0];
    assert.ok(
      typeof stored === 'number' && Number.isSafeInteger(stored) && stored >= 0,
      `journal_offset row does not parse: ${String(stored)}`,
    );
    return stored;
  }

  async isProcessed(receiverId: string, message: MessageKey): Promise<boolean> {
    this.assertOpen();
    const result = await this.pool.query({
      ...this.statements.selectProcessed,
      values: [receiverId, message.time, message.id],
    });
    return result.rows.length > 0;
  }

  async purgeProcessed(receiverId: string, beforeTimestamp: number): Promise<number> {
    this.assertOpen();
    assert.ok(Number.isSafeInteger(beforeTimestamp), 'beforeTimestamp must be an integer');
    const result = await this.pool.query({
      ...this.statements.deleteProcessed,
      values: [receiverId, beforeTimestamp],
    });
    return result.rowCount ?? 0;
  }

  stats(): JournalStats {
    return { ...this.counters };
  }

  /** Commits what is queued and refuses anything later. The pool is its owner's to end. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.committer.close();
  }

  // ---- Write path ------------------------------------------------------------------------------

  private async commitBatch(batch: readonly AppendRequest[]): Promise<ReadonlyArray<Error | undefined>> {
    const startedAt = performance.now();
    for (let attempt = 0; ; attempt++) {
      try {
        const outcomes = await this.writeBatch(batch, attempt === 0);
        this.onCommitted?.((performance.now() - startedAt) / 1_000, batch.length);
        return outcomes;
      } catch (error) {
        // What this journal remembers of the batch's ids may be what another writer overtook.
        for (const request of batch) this.knownHighest.delete(request.persistenceId);
        if (!isUniqueViolation(error) || attempt >= conflictRetriesMax) throw error;
      }
    }
  }

  /**
   * Checks every append of the batch, then writes the ones that pass in one statement. With
   * `trustKnown`, ids whose first append here continues right after what this journal last
   * committed for them are not read from the database.
   *
   * A batch with fenced appends is written by a statement that first checks (and share-locks) their
   * lease rows, and writes nothing if any fence is stale. That case is rare (a takeover happened
   * since the writer's last renewal), so it is handled by reading which fences are stale, refusing
   * their appends with `StaleEpochError`, and writing the rest again: each round refuses at least
   * one append, so the rounds end.
   */
  private async writeBatch(
    batch: readonly AppendRequest[],
    trustKnown: boolean,
  ): Promise<ReadonlyArray<Error | undefined>> {
    const highestById = await this.highestOfBatch(batch, trustKnown);
    const refused = new Map<number, Error>();
    for (let round = 0; ; round++) {
      assert.ok(round <= batch.length, 'a fenced batch found no stale fence to refuse');
      const plan = planBatch(batch, new Map(highestById), refused);
      if (plan.rows.eventCount > 0) {
        const fenced = plan.fences.size > 0;
        const result = await this.pool.query(
          fenced
            ? {
                ...this.statements.insertFencedBatch,
                values: [...plan.rows.values(), ...fenceValues(plan.fences)],
              }
            : { ...this.statements.insertBatch, values: plan.rows.values() },
        );
        if (fenced && result.rowCount === 0) {
          for (const [index, error] of await this.staleFenceRefusals(batch, plan)) refused.set(index, error);
          continue;
        }
        assert.ok(
          result.rowCount === plan.rows.eventCount,
          `a batch of ${plan.rows.eventCount} events inserted ${String(result.rowCount)} rows`,
        );
        this.counters.transactions++;
        this.remember(batch, plan.outcomes);
      }
      this.counters.appends += plan.appends;
      this.counters.events += plan.rows.eventCount;
      return plan.outcomes;
    }
  }

  /** The highest sequence number of every id of the batch: from memory where trusted, else read. */
  private async highestOfBatch(
    batch: readonly AppendRequest[],
    trustKnown: boolean,
  ): Promise<Map<string, number>> {
    const highestById = new Map<string, number>();
    const unknown: string[] = [];
    for (const request of batch) {
      const id = request.persistenceId;
      if (highestById.has(id)) continue;
      const known = trustKnown ? this.knownHighest.get(id) : undefined;
      if (known !== undefined && request.fromSeqNr === known + 1) highestById.set(id, known);
      else {
        highestById.set(id, 0);
        unknown.push(id);
      }
    }
    if (unknown.length > 0)
      for (const [id, highest] of await this.highestOf(unknown)) highestById.set(id, highest);
    return highestById;
  }

  /**
   * The planned appends whose fence the lease table no longer holds, each with its refusal. Read
   * after the fenced write found a stale fence; an epoch only rises, so a fence seen stale stays so.
   */
  private async staleFenceRefusals(
    batch: readonly AppendRequest[],
    plan: BatchPlan,
  ): Promise<Map<number, Error>> {
    const result = await this.pool.query<unknown[]>({
      ...this.statements.selectLeases,
      values: [textArrayLiteral([...new Set([...plan.fences.values()].map((fence) => fence.shardId))])],
      rowMode: 'array',
    });
    const held = new Set(result.rows.map((row) => fenceKey(String(row[0]), Number(row[1]), String(row[2]))));
    const refusals = new Map<number, Error>();
    batch.forEach((request, index) => {
      const fence = request.fence;
      if (fence === undefined || plan.outcomes[index] !== undefined) return;
      if (!held.has(fenceKey(fence.shardId, fence.epoch, fence.owner))) {
        refusals.set(index, new StaleEpochError(request.persistenceId, fence));
      }
    });
    return refusals;
  }

  /** Remembers the highest sequence number of each id the committed batch wrote. */
  private remember(batch: readonly AppendRequest[], outcomes: ReadonlyArray<Error | undefined>): void {
    batch.forEach((request, index) => {
      if (outcomes[index] !== undefined) return;
      const id = request.persistenceId;
      // Deleted first, so the id moves to the most recently written end.
      this.knownHighest.delete(id);
      this.knownHighest.set(id, request.fromSeqNr + request.events.length - 1);
    });
    for (const id of this.knownHighest.keys()) {
      if (this.knownHighest.size <= knownHighestIdsMax) break;
      this.knownHighest.delete(id);
    }
  }

  /** The highest sequence number of each id (ids without events are absent), one index seek each. */
  private async highestOf(persistenceIds: readonly string[]): Promise<Map<string, number>> {
    const unique = [...new Set(persistenceIds)];
    const result = await this.pool.query<unknown[]>({
      ...this.statements.selectHighest,
      values: [textArrayLiteral(unique)],
      rowMode: 'array',
    });
    const highest = new Map<string, number>();
    for (const row of result.rows) {
      const [persistenceId, seqNr] = row;
      if (seqNr === null) continue;
      if (typeof persistenceId !== 'string' || typeof seqNr !== 'number' || !Number.isSafeInteger(seqNr)) {
        assert.fail(`journal holds a malformed seq_nr for ${String(persistenceId)}: ${String(seqNr)}`);
      }
      highest.set(persistenceId, seqNr);
    }
    return highest;
  }

  private assertOpen(): void {
    if (this.closed) throw new JournalClosedError();
  }
}

/** What one write of a batch holds: the rows to insert, each append's outcome, the fences to check. */
interface BatchPlan {
  readonly rows: BatchRows;
  readonly outcomes: Array<Error | undefined>;
  readonly appends: number;
  /** The distinct fences of the appends to write, by `fenceKey`. */
  readonly fences: Map<string, Fence>;
}

/**
 * Checks each append against the highest sequence number of its id (carried forward past earlier
 * appends of the same id in the batch; `highestById` is changed) and plans the ones that pass.
 * `refused` holds appends refused already (stale fences): they and their successors are not written.
 */
function planBatch(
  batch: readonly AppendRequest[],
  highestById: Map<string, number>,
  refused: ReadonlyMap<number, Error>,
): BatchPlan {
  const rows = new BatchRows();
  const outcomes: Array<Error | undefined> = new Array(batch.length);
  const fences = new Map<string, Fence>();
  let appends = 0;
  for (let index = 0; index < batch.length; index++) {
    const request = batch[index];
    assert.ok(request !== undefined);
    const refusal = refused.get(index);
    if (refusal !== undefined) {
      outcomes[index] = refusal;
      continue;
    }
    const highest = highestById.get(request.persistenceId) ?? 0;
    if (request.fromSeqNr !== highest + 1) {
      outcomes[index] = new ConcurrentWriteError(request.persistenceId, request.fromSeqNr, highest);
      continue;
    }
    // Asserted again right before writing: the request object may have changed since it was queued.
    assertAppendRequest(request);
    rows.add(request);
    const fence = request.fence;
    if (fence !== undefined) fences.set(fenceKey(fence.shardId, fence.epoch, fence.owner), fence);
    highestById.set(request.persistenceId, request.fromSeqNr + request.events.length - 1);
    outcomes[index] = undefined;
    appends++;
  }
  return { rows, outcomes, appends, fences };
}

function fenceKey(shardId: string, epoch: number, owner: string): string {
  return JSON.stringify([shardId, epoch, owner]);
}

/** Parameters $13-$15 of `insertFencedBatch`: the distinct fences as three arrays. */
function fenceValues(fences: ReadonlyMap<string, Fence>): unknown[] {
  const all = [...fences.values()];
  return [
    textArrayLiteral(all.map((fence) => fence.shardId)),
    integerArrayLiteral(all.map((fence) => fence.epoch)),
    textArrayLiteral(all.map((fence) => fence.owner)),
  ];
}

/**
 * The values of `insertBatch` for appends already checked: for a test that holds such a write
 * open in a transaction of its own.
 */
export function insertBatchValues(requests: readonly AppendRequest[]): unknown[] {
  const rows = new BatchRows();
  for (const request of requests) rows.add(request);
  return rows.values();
}

/** The columns of one batch's insert, as arrays (one element per row) for `unnest`. */
class BatchRows {
  private readonly persistenceIds: string[] = [];
  private readonly seqNrs: number[] = [];
  private readonly types: string[] = [];
  private readonly versions: number[] = [];
  private readonly payloads: string[] = [];
  private readonly writtenAt: number[] = [];
  private readonly checksums: number[] = [];
  private readonly receiverIds: string[] = [];
  private readonly messageTimes: number[] = [];
  private readonly messageIds: string[] = [];
  private readonly processedAt: number[] = [];

  get eventCount(): number {
    return this.seqNrs.length;
  }

  add(request: AppendRequest): void {
    let seqNr = request.fromSeqNr;
    for (const event of request.events) {
      this.persistenceIds.push(request.persistenceId);
      this.seqNrs.push(seqNr);
      this.types.push(event.type);
      this.versions.push(event.version);
      this.payloads.push(event.payload);
      this.writtenAt.push(request.timestamp);
      this.checksums.push(
        rowChecksum(request.persistenceId, seqNr, event.type, event.version, event.payload),
      );
      seqNr++;
    }
    const processed = request.processed;
    if (processed === undefined) return;
    for (const message of processed.messages) {
      this.receiverIds.push(processed.receiverId);
      this.messageTimes.push(message.time);
      this.messageIds.push(message.id);
      this.processedAt.push(request.timestamp);
    }
  }

  values(): unknown[] {
    return [
      this.eventCount,
      textArrayLiteral(this.persistenceIds),
      integerArrayLiteral(this.seqNrs),
      textArrayLiteral(this.types),
      integerArrayLiteral(this.versions),
      textArrayLiteral(this.payloads),
      integerArrayLiteral(this.writtenAt),
      integerArrayLiteral(this.checksums),
      textArrayLiteral(this.receiverIds),
      integerArrayLiteral(this.messageTimes),
      textArrayLiteral(this.messageIds),
      integerArrayLiteral(this.processedAt),
    ];
  }
}

function isUniqueViolation(error: unknown): boolean {
  return error instanceof Error && 'code' in error && error.code === uniqueViolation;
}

/** A named (prepared once per connection) statement. */
interface Statement {
  readonly name: string;
  readonly text: string;
}

export interface JournalStatements {
  readonly selectRange: Statement;
  readonly selectHighest: Statement;
  readonly selectAfter: Statement;
  readonly selectProcessed: Statement;
  readonly deleteProcessed: Statement;
  readonly insertBatch: Statement;
  readonly insertFencedBatch: Statement;
  readonly selectLeases: Statement;
  readonly selectLastOffset: Statement;
}

/**
 * The journal's SQL for one schema. Statement names carry the schema, since a connection keeps a
 * prepared statement by name and a pool may serve several schemas (tests do).
 */
export function journalStatements(quotedSchema: string): JournalStatements {
  const named = (name: string, text: string): Statement => ({
    name: statementName(name, quotedSchema),
    text,
  });
  const journal = `${quotedSchema}.journal`;
  const processed = `${quotedSchema}.processed_messages`;
  return {
    selectRange: named(
      'select-range',
      'SELECT persistence_id, seq_nr, event_type, event_version, payload, written_at, checksum ' +
        `FROM ${journal} WHERE persistence_id = $1 AND seq_nr >= $2 AND seq_nr <= $3 ORDER BY seq_nr LIMIT $4`,
    ),
    // One backward index seek per id on UNIQUE (persistence_id, seq_nr); ids without events come
    // back with NULL.
    selectHighest: named(
      'select-highest',
      `SELECT id, (SELECT seq_nr FROM ${journal} WHERE persistence_id = id ORDER BY seq_nr DESC LIMIT 1) ` +
        'FROM unnest($1::text[]) AS id',
    ),
    selectAfter: named(
      'select-after',
      'SELECT global_offset, persistence_id, seq_nr, event_type, event_version, payload, written_at, checksum ' +
        `FROM ${journal} WHERE global_offset > $1 ORDER BY global_offset LIMIT $2`,
    ),
    // A record written without a time (0) is found whatever the lookup's time (see MessageKey).
    selectProcessed: named(
      'select-processed',
      `SELECT 1 FROM ${processed} WHERE receiver_id = $1 AND message_time IN ($2, 0) AND message_id = $3 LIMIT 1`,
    ),
    deleteProcessed: named(
      'delete-processed',
      `DELETE FROM ${processed} WHERE receiver_id = $1 AND processed_at < $2`,
    ),
    // One statement, so one transaction with one commit: the offset counter first (its row lock
    // orders the offsets by commit, see PostgresJournal), the processed-message records (ON
    // CONFLICT DO NOTHING keeps a message's first record), and the events numbered from the
    // counter in the order of the arrays.
    insertBatch: named('insert-batch', insertBatchText(quotedSchema, false)),
    insertFencedBatch: named('insert-fenced-batch', insertBatchText(quotedSchema, true)),
    selectLeases: named(
      'select-leases',
      `SELECT shard_id, epoch, owner FROM ${quotedSchema}.shard_leases WHERE shard_id = ANY($1::text[])`,
    ),
    selectLastOffset: named('select-last-offset', `SELECT last_offset FROM ${quotedSchema}.journal_offset`),
  };
}

/**
 * The batch's write. Fenced, it first share-locks the lease rows that still hold the batch's
 * fences ($13-$15, distinct): a takeover's update of one of them waits until this statement has
 * committed, and one that committed first has changed the row this statement then re-reads, so a
 * fence is checked against the lease as it is at the write. Unless every fence holds, the counter
 * is not advanced, and then nothing is inserted (both inserts depend on the counter's row).
 */
function insertBatchText(quotedSchema: string, fenced: boolean): string {
  const journal = `${quotedSchema}.journal`;
  const processed = `${quotedSchema}.processed_messages`;
  const fence = fenced
    ? `fence AS (
         SELECT count(*) AS held FROM (
           SELECT 1 FROM ${quotedSchema}.shard_leases AS lease
           JOIN unnest($13::text[], $14::bigint[], $15::text[]) AS wanted(shard_id, epoch, owner)
             ON lease.shard_id = wanted.shard_id AND lease.epoch = wanted.epoch AND lease.owner = wanted.owner
           ORDER BY lease.shard_id
           FOR SHARE OF lease
         ) AS held_leases
       ), `
    : '';
  const whenFenceHolds = fenced ? 'WHERE (SELECT held FROM fence) = cardinality($13::text[])' : '';
  const whenCounted = fenced ? 'WHERE EXISTS (SELECT 1 FROM counter)' : '';
  return `WITH ${fence}counter AS (
         UPDATE ${quotedSchema}.journal_offset SET last_offset = last_offset + $1::bigint
         ${whenFenceHolds}
         RETURNING last_offset - $1::bigint AS before_batch
       ), processed AS (
         INSERT INTO ${processed} (receiver_id, message_time, message_id, processed_at)
         SELECT * FROM unnest($9::text[], $10::bigint[], $11::text[], $12::bigint[])
         ${whenCounted}
         ON CONFLICT DO NOTHING
       )
       INSERT INTO ${journal}
         (global_offset, persistence_id, seq_nr, event_type, event_version, payload, written_at, checksum)
       SELECT counter.before_batch + event.position, event.persistence_id, event.seq_nr, event.event_type,
              event.event_version, event.payload, event.written_at, event.checksum
       FROM counter,
            unnest($2::text[], $3::bigint[], $4::text[], $5::integer[], $6::text[], $7::bigint[], $8::bigint[])
              WITH ORDINALITY
              AS event(persistence_id, seq_nr, event_type, event_version, payload, written_at, checksum, position)`;
}

/** Events of all ids with `offset > afterOffset`, in offset order, each row checked. */
export async function readGlobalStream(
  pool: pg.Pool,
  statements: JournalStatements,
  afterOffset: number,
  limit: number,
): Promise<OffsetEvent[]> {
  assert.ok(Number.isSafeInteger(afterOffset) && afterOffset >= 0, 'afterOffset must be an integer >= 0');
  assert.ok(Number.isSafeInteger(limit) && limit >= 0, 'limit must be an integer >= 0');
  const result = await pool.query<unknown[]>({
    ...statements.selectAfter,
    values: [afterOffset, limit],
    rowMode: 'array',
  });
  return result.rows.map((row) =>
    withOffset(verifiedEvent(row[1], row[2], row[3], row[4], row[5], row[6], row[7]), row[0]),
  );
}
