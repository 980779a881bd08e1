import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ClusterStore } from '../cluster/cluster-store.js';
import {
  type AppendRequest,
  ConcurrentWriteError,
  CorruptRowError,
  type Fence,
  FencingUnsupportedError,
  type Journal,
  JournalClosedError,
  type MessageKey,
  type SerializedEvent,
  type SnapshotStore,
  StaleEpochError,
} from '../store/journal.js';
import { accountEvents } from './fixtures/account.js';

/** What a backend hands the contract suite: a fresh, empty store and ways to disturb it. */
export interface JournalContractFixture {
  readonly journal: Journal;
  readonly snapshots: SnapshotStore;
  /** Alters a stored event's payload without updating its checksum. */
  corrupt(persistenceId: string, seqNr: number): Promise<void>;
  /** Alters a stored snapshot's payload without updating its checksum; its test is skipped without it. */
  corruptSnapshot?(persistenceId: string, seqNr: number): Promise<void>;
  /**
   * The shard leases on the same database, for a backend that checks fences (its writes are then
   * checked against these leases). Without it, the backend must refuse every fenced write with
   * `FencingUnsupportedError`.
   */
  readonly leases?: ClusterStore;
  /** Closes everything the fixture opened (tolerating what a test already closed) and removes files. */
  teardown(): Promise<void>;
}

const baseTimestamp = Date.UTC(2026, 0, 1);

function event(index: number, type = 'OrderCreated'): SerializedEvent {
  return { type, version: 1, payload: JSON.stringify({ index, note: 'contract' }) };
}

function events(count: number, firstIndex = 1): SerializedEvent[] {
  return Array.from({ length: count }, (_, offset) => event(firstIndex + offset));
}

function request(
  persistenceId: string,
  fromSeqNr: number,
  count = 1,
  timestamp = baseTimestamp,
): AppendRequest {
  return { persistenceId, fromSeqNr, events: events(count, fromSeqNr), timestamp };
}

/**
 * The behaviour every journal and snapshot store must show, whatever it is built on. A backend
 * joins with one line: `describeJournalContract('postgres', async () => ({ ... }))`.
 */
export function describeJournalContract(name: string, setup: () => Promise<JournalContractFixture>): void {
  describe(`journal contract: ${name}`, () => {
    let fixture: JournalContractFixture;
    let journal: Journal;
    let snapshots: SnapshotStore;

    beforeEach(async () => {
      fixture = await setup();
      journal = fixture.journal;
      snapshots = fixture.snapshots;
    });

    afterEach(async () => {
      await fixture.teardown();
    });

    describe('append and read', () => {
      it('reads back what was appended, in order, with every field', async () => {
        const written: SerializedEvent[] = [
          { type: 'OrderCreated', version: 1, payload: '{"orderId":"o-1","amount":"1250"}' },
          { type: 'OrderValidated', version: 3, payload: '{"orderId":"o-1","rules":"v7"}' },
        ];
        await journal.append({
          persistenceId: 'merchant-1',
          fromSeqNr: 1,
          events: written,
          timestamp: 1_000,
        });
        await journal.append({
          persistenceId: 'merchant-1',
          fromSeqNr: 3,
          events: [{ type: 'OrderExecuted', version: 2, payload: '{"orderId":"o-1"}' }],
          timestamp: 2_000,
        });

        expect(await journal.read('merchant-1', 1)).toEqual([
          { persistenceId: 'merchant-1', seqNr: 1, timestamp: 1_000, ...written[0] },
          { persistenceId: 'merchant-1', seqNr: 2, timestamp: 1_000, ...written[1] },
          {
            persistenceId: 'merchant-1',
            seqNr: 3,
            timestamp: 2_000,
            type: 'OrderExecuted',
            version: 2,
            payload: '{"orderId":"o-1"}',
          },
        ]);
        expect(await journal.highestSeqNr('merchant-1')).toBe(3);
      });

      it('keeps sequence numbers contiguous over many appends', async () => {
        let next = 1;
        for (const count of [1, 3, 2, 5]) {
          await journal.append(request('merchant-1', next, count));
          next += count;
        }
        const read = await journal.read('merchant-1', 1);
        expect(read.map((row) => row.seqNr)).toEqual(Array.from({ length: 11 }, (_, index) => index + 1));
      });

      it('keeps persistence ids apart', async () => {
        await Promise.all([journal.append(request('a', 1, 2)), journal.append(request('b', 1, 3))]);
        expect((await journal.read('a', 1)).map((row) => row.persistenceId)).toEqual(['a', 'a']);
        expect(await journal.highestSeqNr('b')).toBe(3);
      });

      it('reads a range, bounded by toSeqNr and max', async () => {
        await journal.append(request('merchant-1', 1, 10));
        const seqNrs = async (from: number, to?: number, max?: number) =>
          (await journal.read('merchant-1', from, to, max)).map((row) => row.seqNr);
        expect(await seqNrs(3, 6)).toEqual([3, 4, 5, 6]);
        expect(await seqNrs(3, undefined, 2)).toEqual([3, 4]);
        expect(await seqNrs(8, 20, 100)).toEqual([8, 9, 10]);
        expect(await seqNrs(5, 4)).toEqual([]);
        expect(await seqNrs(11)).toEqual([]);
        expect(await seqNrs(1, undefined, 0)).toEqual([]);
      });

      it('reports 0 as the highest seqNr of an unknown id, and reads nothing for it', async () => {
        expect(await journal.highestSeqNr('nobody')).toBe(0);
        expect(await journal.read('nobody', 1)).toEqual([]);
      });

      it('refuses a malformed append as a programmer error and writes nothing', async () => {
        await expect(journal.append({ ...request('merchant-1', 1), events: [] })).rejects.toThrow(
          /no events/,
        );
        await expect(journal.append(request('merchant-1', 0))).rejects.toThrow(/fromSeqNr/);
        await expect(
          journal.append({ ...request('merchant-1', 1), events: [{ type: '', version: 1, payload: '{}' }] }),
        ).rejects.toThrow(/event type/);
        expect(await journal.highestSeqNr('merchant-1')).toBe(0);
      });
    });

    describe('fencing: one writer per persistence id', () => {
      it('refuses a stale writer whose fromSeqNr is already taken', async () => {
        await journal.append(request('merchant-1', 1, 2));
        const stale = journal.append(request('merchant-1', 1, 1));
        await expect(stale).rejects.toBeInstanceOf(ConcurrentWriteError);
        await expect(stale).rejects.toMatchObject({
          persistenceId: 'merchant-1',
          expectedSeqNr: 1,
          actualHighestSeqNr: 2,
        });
        expect(await journal.highestSeqNr('merchant-1')).toBe(2);
      });

      it('lets exactly one of two concurrent writers with the same fromSeqNr win, in one batch', async () => {
        // Both appends are made in the same turn of the event loop, so they share one group commit.
        const transactionsBefore = journal.stats().transactions;
        const first = journal.append({ ...request('merchant-1', 1, 2), events: [event(101), event(102)] });
        const second = journal.append({ ...request('merchant-1', 1, 2), events: [event(201), event(202)] });
        const outcomes = await Promise.allSettled([first, second]);

        expect(journal.stats().transactions - transactionsBefore).toBe(1);
        expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected']);
        const refused = outcomes[1];
        expect(refused?.status === 'rejected' && refused.reason).toBeInstanceOf(ConcurrentWriteError);
        const stored = await journal.read('merchant-1', 1);
        expect(stored.map((row) => JSON.parse(row.payload).index)).toEqual([101, 102]);
      });

      it('lets exactly one of two concurrent writers win when they land in different batches', async () => {
        const first = journal.append(request('merchant-1', 1, 1));
        await first;
        const second = journal.append(request('merchant-1', 1, 1));
        await expect(second).rejects.toBeInstanceOf(ConcurrentWriteError);
        expect(await journal.highestSeqNr('merchant-1')).toBe(1);
      });

      it('refuses a gap: fromSeqNr beyond highest + 1', async () => {
        await journal.append(request('merchant-1', 1, 2));
        await expect(journal.append(request('merchant-1', 5, 1))).rejects.toMatchObject({
          name: 'ConcurrentWriteError',
          expectedSeqNr: 5,
          actualHighestSeqNr: 2,
        });
        await expect(journal.append(request('fresh', 2, 1))).rejects.toBeInstanceOf(ConcurrentWriteError);
        expect(await journal.highestSeqNr('merchant-1')).toBe(2);
        expect(await journal.highestSeqNr('fresh')).toBe(0);
      });

      it('commits pipelined appends of one id in submission order within a batch', async () => {
        const appends = [
          request('merchant-1', 1, 2),
          request('merchant-1', 3, 1),
          request('merchant-1', 4, 3),
        ];
        await Promise.all(appends.map((each) => journal.append(each)));
        expect((await journal.read('merchant-1', 1)).map((row) => row.seqNr)).toEqual([1, 2, 3, 4, 5, 6]);
      });

      it('writes a refused append not at all, and its batch-mates entirely', async () => {
        await journal.append(request('merchant-1', 1, 1));
        const results = await Promise.allSettled([
          journal.append(request('merchant-2', 1, 3)),
          journal.append(request('merchant-1', 1, 4)),
          journal.append(request('merchant-3', 1, 2)),
        ]);
        expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
        expect(await journal.read('merchant-1', 1)).toHaveLength(1);
        expect(await journal.read('merchant-2', 1)).toHaveLength(3);
        expect(await journal.read('merchant-3', 1)).toHaveLength(2);
      });

      it('refuses a later pipelined append whose predecessor in the same batch was refused', async () => {
        await journal.append(request('merchant-1', 1, 1));
        // A stale writer pipelines two appends; the first is refused, so the second leaves a gap.
        const results = await Promise.allSettled([
          journal.append(request('merchant-1', 1, 2)),
          journal.append(request('merchant-1', 3, 1)),
        ]);
        expect(results.map((result) => result.status)).toEqual(['rejected', 'rejected']);
        expect(await journal.highestSeqNr('merchant-1')).toBe(1);
      });
    });

    describe('shard fences', () => {
      /** A lease for `owner`, which the test then expects to hold. */
      const acquire = async (leases: ClusterStore, shardId: string, owner: string): Promise<Fence> => {
        const grant = await leases.acquireLease(shardId, owner);
        if (grant === undefined) expect.fail(`${owner} could not take ${shardId}`);
        return { shardId: grant.shardId, epoch: grant.epoch, owner: grant.owner };
      };

      /** node-a owns the shard, then gives it up and node-b takes it over at a higher epoch. */
      const takeOver = async (
        leases: ClusterStore,
        shardId: string,
      ): Promise<{ old: Fence; current: Fence }> => {
        const old = await acquire(leases, shardId, 'node-a');
        expect(await leases.releaseLease(old)).toBe(true);
        const current = await acquire(leases, shardId, 'node-b');
        expect(current.epoch).toBeGreaterThan(old.epoch);
        return { old, current };
      };

      const snapshotOf = (persistenceId: string, seqNr: number) => ({
        persistenceId,
        seqNr,
        version: 1,
        payload: `{"at":${seqNr}}`,
        timestamp: baseTimestamp,
      });

      it('commits events, processed-message records and snapshots under the current epoch', async (context) => {
        const leases = fixture.leases;
        if (leases === undefined) return context.skip();
        const fence = await acquire(leases, 'orders/1', 'node-a');
        await journal.append({
          ...request('order-1', 1, 2),
          processed: { receiverId: 'order-1', messages: [{ id: 'm1', time: 5_000 }] },
          fence,
        });
        const renewed = await leases.renewLease(fence);
        expect(renewed?.epoch).toBe(fence.epoch);
        await journal.append({ ...request('order-1', 3, 1), fence });
        await snapshots.save(snapshotOf('order-1', 3), fence);
        expect(await journal.highestSeqNr('order-1')).toBe(3);
        expect(await journal.isProcessed('order-1', { id: 'm1', time: 5_000 })).toBe(true);
        expect((await snapshots.loadLatest('order-1'))?.seqNr).toBe(3);
      });

      it("refuses the old owner's events, records and snapshot after a takeover, leaving nothing of them", async (context) => {
        const leases = fixture.leases;
        if (leases === undefined) return context.skip();
        const old = await acquire(leases, 'orders/2', 'node-a');
        await journal.append({ ...request('order-2', 1, 1), fence: old });
        await snapshots.save(snapshotOf('order-2', 1), old);
        expect(await leases.releaseLease(old)).toBe(true);
        const current = await acquire(leases, 'orders/2', 'node-b');

        const stale = journal.append({
          ...request('order-2', 2, 2),
          processed: { receiverId: 'order-2', messages: [{ id: 'late', time: 5_000 }] },
          fence: old,
        });
        await expect(stale).rejects.toBeInstanceOf(StaleEpochError);
        await expect(snapshots.save(snapshotOf('order-2', 2), old)).rejects.toBeInstanceOf(StaleEpochError);
        expect(await journal.highestSeqNr('order-2')).toBe(1);
        expect(await journal.isProcessed('order-2', { id: 'late', time: 5_000 })).toBe(false);
        expect((await snapshots.loadLatest('order-2'))?.seqNr).toBe(1);
        expect((await journal.readAll(0, 100)).map((row) => row.seqNr)).toEqual([1]);

        // The new owner continues where the journal is.
        await journal.append({ ...request('order-2', 2, 1), fence: current });
        expect(await journal.highestSeqNr('order-2')).toBe(2);
      });

      it('refuses a fence once its owner released the lease, and a fence of an epoch the owner replaced', async (context) => {
        const leases = fixture.leases;
        if (leases === undefined) return context.skip();
        const first = await acquire(leases, 'orders/3', 'node-a');
        const second = await acquire(leases, 'orders/3', 'node-a');
        await expect(journal.append({ ...request('order-3', 1, 1), fence: first })).rejects.toBeInstanceOf(
          StaleEpochError,
        );
        await journal.append({ ...request('order-3', 1, 1), fence: second });
        expect(await leases.releaseLease(second)).toBe(true);
        await expect(journal.append({ ...request('order-3', 2, 1), fence: second })).rejects.toBeInstanceOf(
          StaleEpochError,
        );
        expect(await journal.highestSeqNr('order-3')).toBe(1);
      });

      it('commits the batch-mates of a stale append, fenced or not', async (context) => {
        const leases = fixture.leases;
        if (leases === undefined) return context.skip();
        const { old, current } = await takeOver(leases, 'orders/4');
        const other = await acquire(leases, 'orders/5', 'node-a');
        // One turn of the event loop: the appends share one batch.
        const results = await Promise.allSettled([
          journal.append({ ...request('order-4', 1, 2), fence: old }),
          journal.append({ ...request('order-5', 1, 1), fence: other }),
          journal.append({ ...request('order-4', 3, 1), fence: old }),
          journal.append(request('merchant-1', 1, 3)),
          journal.append({
            ...request('order-6', 1, 1),
            processed: { receiverId: 'order-6', messages: [{ id: 'kept', time: 5_000 }] },
            fence: current,
          }),
        ]);
        expect(results.map((result) => result.status)).toEqual([
          'rejected',
          'fulfilled',
          'rejected',
          'fulfilled',
          'fulfilled',
        ]);
        const reasons = results.map((result) => (result.status === 'rejected' ? result.reason : undefined));
        expect(reasons[0]).toBeInstanceOf(StaleEpochError);
        expect(reasons[2]).toBeInstanceOf(StaleEpochError);
        expect(await journal.highestSeqNr('order-4')).toBe(0);
        expect(await journal.highestSeqNr('order-5')).toBe(1);
        expect(await journal.highestSeqNr('merchant-1')).toBe(3);
        expect(await journal.highestSeqNr('order-6')).toBe(1);
        expect(await journal.isProcessed('order-6', { id: 'kept', time: 5_000 })).toBe(true);
        const offsets = (await journal.readAll(0, 100)).map((row) => row.offset);
        expect(offsets).toEqual([1, 2, 3, 4, 5]);
      });

      it('refuses every fenced write as unsupported where the backend cannot check fences', async (context) => {
        if (fixture.leases !== undefined) return context.skip();
        const fence: Fence = { shardId: 'orders/1', epoch: 1, owner: 'node-a' };
        await expect(journal.append({ ...request('order-1', 1, 1), fence })).rejects.toBeInstanceOf(
          FencingUnsupportedError,
        );
        await expect(snapshots.save(snapshotOf('order-1', 1), fence)).rejects.toBeInstanceOf(
          FencingUnsupportedError,
        );
        expect(await journal.highestSeqNr('order-1')).toBe(0);
        expect(await snapshots.loadLatest('order-1')).toBeUndefined();
      });
    });

    describe('global stream', () => {
      it('gives strictly increasing offsets across ids and pages with afterOffset', async () => {
        await journal.append(request('a', 1, 2));
        await journal.append(request('b', 1, 1));
        await journal.append(request('a', 3, 2));
        await journal.append(request('c', 1, 3));

        const all = await journal.readAll(0, 100);
        expect(all).toHaveLength(8);
        for (let index = 1; index < all.length; index++) {
          expect(all[index]?.offset).toBeGreaterThan(all[index - 1]?.offset ?? Number.POSITIVE_INFINITY);
        }
        expect(all.map((row) => `${row.persistenceId}${row.seqNr}`)).toEqual([
          'a1',
          'a2',
          'b1',
          'a3',
          'a4',
          'c1',
          'c2',
          'c3',
        ]);

        const paged: number[] = [];
        let after = 0;
        for (let pages = 0; pages < 10; pages++) {
          const page = await journal.readAll(after, 3);
          if (page.length === 0) break;
          expect(page.length).toBeLessThanOrEqual(3);
          paged.push(...page.map((row) => row.offset));
          after = page[page.length - 1]?.offset ?? after;
        }
        expect(paged).toEqual(all.map((row) => row.offset));
        expect(await journal.readAll(after, 3)).toEqual([]);
      });

      it('carries every field of an event on the global stream', async () => {
        await journal.append({
          persistenceId: 'merchant-1',
          fromSeqNr: 1,
          events: [{ type: 'OrderCreated', version: 2, payload: '{"a":1}' }],
          timestamp: 7_000,
        });
        const [only] = await journal.readAll(0, 10);
        expect(only).toMatchObject({
          persistenceId: 'merchant-1',
          seqNr: 1,
          type: 'OrderCreated',
          version: 2,
          payload: '{"a":1}',
          timestamp: 7_000,
        });
        expect(only?.offset).toBeGreaterThan(0);
      });
    });

    describe('corruption', () => {
      it('stops a read at a corrupt row with CorruptRowError naming the id and seqNr', async () => {
        await journal.append(request('merchant-1', 1, 3));
        await fixture.corrupt('merchant-1', 2);

        const read = journal.read('merchant-1', 1);
        await expect(read).rejects.toBeInstanceOf(CorruptRowError);
        await expect(read).rejects.toMatchObject({ persistenceId: 'merchant-1', seqNr: 2, what: 'event' });
        await expect(read).rejects.toThrow(/merchant-1.*\b2\b/);
        await expect(journal.readAll(0, 10)).rejects.toBeInstanceOf(CorruptRowError);
        // Rows before the corrupt one stay readable: the error is about that row only.
        expect(await journal.read('merchant-1', 1, 1)).toHaveLength(1);
      });
    });

    describe('schema versions', () => {
      it('reads an event written with an old schema version back through its upcaster', async () => {
        // Version 1 of Deposited stored {"value": <number>}; the code today writes version 2.
        await journal.append({
          persistenceId: 'account-old',
          fromSeqNr: 1,
          events: [
            { type: 'Deposited', version: 1, payload: '{"value":250}' },
            accountEvents.serialize({ type: 'Deposited', amount: 5n }),
          ],
          timestamp: 1,
        });
        const rows = await journal.read('account-old', 1);
        expect(rows.map((row) => row.version)).toEqual([1, 2]);
        const events = rows.map((row) => accountEvents.deserialize(row, row));
        expect(events).toEqual([
          { type: 'Deposited', amount: 250n },
          { type: 'Deposited', amount: 5n },
        ]);
      });
    });

    describe('snapshots', () => {
      it('saves, loads the latest, and deletes older ones', async () => {
        expect(await snapshots.loadLatest('merchant-1')).toBeUndefined();
        await snapshots.save({
          persistenceId: 'merchant-1',
          seqNr: 5,
          version: 1,
          payload: '{"s":5}',
          timestamp: 10,
        });
        await snapshots.save({
          persistenceId: 'merchant-1',
          seqNr: 12,
          version: 2,
          payload: '{"s":12}',
          timestamp: 20,
        });
        await snapshots.save({
          persistenceId: 'merchant-2',
          seqNr: 30,
          version: 1,
          payload: '{"s":30}',
          timestamp: 30,
        });

        expect(await snapshots.loadLatest('merchant-1')).toEqual({
          persistenceId: 'merchant-1',
          seqNr: 12,
          version: 2,
          payload: '{"s":12}',
          timestamp: 20,
        });

        await snapshots.deleteOlderThan('merchant-1', 12);
        expect((await snapshots.loadLatest('merchant-1'))?.seqNr).toBe(12);
        await snapshots.deleteOlderThan('merchant-1', 13);
        expect(await snapshots.loadLatest('merchant-1')).toBeUndefined();
        expect((await snapshots.loadLatest('merchant-2'))?.seqNr).toBe(30);
      });

      it('replaces a snapshot saved again at the same seqNr', async () => {
        await snapshots.save({
          persistenceId: 'merchant-1',
          seqNr: 5,
          version: 1,
          payload: '{"v":1}',
          timestamp: 1,
        });
        await snapshots.save({
          persistenceId: 'merchant-1',
          seqNr: 5,
          version: 1,
          payload: '{"v":2}',
          timestamp: 2,
        });
        expect((await snapshots.loadLatest('merchant-1'))?.payload).toBe('{"v":2}');
      });

      it('detects a corrupt snapshot', async (context) => {
        const corruptSnapshot = fixture.corruptSnapshot;
        if (corruptSnapshot === undefined) {
          context.skip();
          return;
        }
        await snapshots.save({
          persistenceId: 'merchant-1',
          seqNr: 5,
          version: 1,
          payload: '{"s":5}',
          timestamp: 1,
        });
        await corruptSnapshot('merchant-1', 5);
        const load = snapshots.loadLatest('merchant-1');
        await expect(load).rejects.toBeInstanceOf(CorruptRowError);
        await expect(load).rejects.toMatchObject({ persistenceId: 'merchant-1', seqNr: 5, what: 'snapshot' });
      });
    });

    describe('processed messages', () => {
      const key = (id: string, time = 0): MessageKey => ({ id, time });

      it('records processed messages in the same write as the events', async () => {
        await journal.append({
          ...request('executor-1', 1, 1),
          processed: { receiverId: 'executor-1', messages: [key('m1', 5_000), key('m2', 5_001)] },
        });
        expect(await journal.isProcessed('executor-1', key('m1', 5_000))).toBe(true);
        expect(await journal.isProcessed('executor-1', key('m2', 5_001))).toBe(true);
        expect(await journal.isProcessed('executor-1', key('m3', 5_000))).toBe(false);
        expect(await journal.isProcessed('executor-1', key('m3'))).toBe(false);
        expect(await journal.isProcessed('executor-2', key('m1', 5_000))).toBe(false);
      });

      it('finds a record written without a time (time 0) whatever the time of the lookup', async () => {
        await journal.append({
          ...request('executor-1', 1, 1),
          processed: { receiverId: 'executor-1', messages: [key('legacy')] },
        });
        expect(await journal.isProcessed('executor-1', key('legacy'))).toBe(true);
        expect(await journal.isProcessed('executor-1', key('legacy', 1_700_000_000_000))).toBe(true);
        expect(await journal.isProcessed('executor-2', key('legacy', 1_700_000_000_000))).toBe(false);
      });

      it('keeps the first record of a message recorded twice', async () => {
        await journal.append({
          ...request('executor-1', 1, 1, 1_000),
          processed: { receiverId: 'executor-1', messages: [key('twice', 9_000)] },
        });
        await journal.append({
          ...request('executor-1', 2, 1, 3_000),
          processed: { receiverId: 'executor-1', messages: [key('twice', 9_000)] },
        });
        // Processed at 1,000, not 3,000: a cutoff between them purges it.
        expect(await journal.purgeProcessed('executor-1', 2_000)).toBe(1);
        expect(await journal.isProcessed('executor-1', key('twice', 9_000))).toBe(false);
      });

      it('does not record processed messages of an append that was refused', async () => {
        await journal.append(request('executor-1', 1, 1));
        const refused = journal.append({
          ...request('executor-1', 1, 1),
          processed: { receiverId: 'executor-1', messages: [key('m9', 5_000)] },
        });
        await expect(refused).rejects.toBeInstanceOf(ConcurrentWriteError);
        expect(await journal.isProcessed('executor-1', key('m9', 5_000))).toBe(false);
      });

      it('refuses a message time that is not an integer >= 0', async () => {
        for (const time of [-1, 1.5, Number.NaN]) {
          await expect(
            journal.append({
              ...request('executor-1', 1, 1),
              processed: { receiverId: 'executor-1', messages: [key('bad', time)] },
            }),
          ).rejects.toThrow(/message time/);
        }
        expect(await journal.highestSeqNr('executor-1')).toBe(0);
      });

      it('purges only records older than the cutoff, of that receiver only, and counts them', async () => {
        const processedAt = (
          persistenceId: string,
          fromSeqNr: number,
          timestamp: number,
          messages: MessageKey[],
        ) =>
          journal.append({
            ...request(persistenceId, fromSeqNr, 1, timestamp),
            processed: { receiverId: persistenceId, messages },
          });
        // Message times in the other order than the processing times: purging goes by the latter.
        await processedAt('executor-1', 1, 1_000, [key('old-1', 90_000), key('old-2')]);
        await processedAt('executor-1', 2, 2_000, [key('new-1', 10_000)]);
        await processedAt('executor-2', 1, 1_000, [key('other-1', 90_000)]);

        expect(await journal.purgeProcessed('executor-1', 1_500)).toBe(2);
        expect(await journal.isProcessed('executor-1', key('old-1', 90_000))).toBe(false);
        expect(await journal.isProcessed('executor-1', key('old-2'))).toBe(false);
        expect(await journal.isProcessed('executor-1', key('new-1', 10_000))).toBe(true);
        expect(await journal.isProcessed('executor-2', key('other-1', 90_000))).toBe(true);
        expect(await journal.purgeProcessed('executor-1', 1_500)).toBe(0);
        // The events themselves are never purged with the records.
        expect(await journal.highestSeqNr('executor-1')).toBe(2);
      });
    });

    describe('stats and group commit', () => {
      it('counts appends, events, transactions and failed appends', async () => {
        await journal.append(request('a', 1, 3));
        await journal.append(request('a', 4, 2));
        await expect(journal.append(request('a', 1, 1))).rejects.toBeInstanceOf(ConcurrentWriteError);
        expect(journal.stats()).toEqual({ appends: 2, events: 5, transactions: 2, failedAppends: 1 });
      });

      it('commits many concurrent appends from many ids in far fewer transactions', async () => {
        const idCount = 1_000;
        const ids = Array.from({ length: idCount }, (_, index) => `merchant-${index}`);
        await Promise.all(ids.map((id) => journal.append(request(id, 1, 2))));
        await Promise.all(ids.map((id) => journal.append(request(id, 3, 1))));

        const stats = journal.stats();
        expect(stats.appends).toBe(2 * idCount);
        expect(stats.events).toBe(3 * idCount);
        expect(stats.transactions).toBeLessThan(stats.appends / 10);
        expect(await journal.highestSeqNr('merchant-999')).toBe(3);
        expect((await journal.readAll(0, 10 * idCount)).length).toBe(3 * idCount);
      });
    });

    describe('closing', () => {
      it('commits appends queued before close, then refuses appends and reads', async () => {
        const queued = journal.append(request('merchant-1', 1, 1));
        await journal.close();
        await expect(queued).resolves.toBeUndefined();
        await expect(journal.append(request('merchant-1', 2, 1))).rejects.toBeInstanceOf(JournalClosedError);
        await expect(journal.read('merchant-1', 1)).rejects.toBeInstanceOf(JournalClosedError);
        await journal.close();
      });
    });
  });
}
