import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryClusterStore } from '../../cluster/memory-cluster-store.js';
import { SimulatedClock, settle } from '../../runtime/clock.js';
import { describeJournalContract } from '../../testing/journal-contract.js';
import {
  type AppendRequest,
  ConcurrentWriteError,
  CorruptRowError,
  JournalOverloadedError,
  StoreUnavailableError,
} from '../journal.js';
import { InjectedWriteError, MemoryJournal } from './memory-journal.js';
import { MemorySnapshotStore } from './memory-snapshot-store.js';

describeJournalContract('memory without a fence check', async () => {
  const journal = new MemoryJournal();
  const snapshots = new MemorySnapshotStore();
  return {
    journal,
    snapshots,
    corrupt: async (persistenceId, seqNr) => journal.corrupt(persistenceId, seqNr),
    teardown: async () => {
      await journal.close();
      await snapshots.close();
    },
  };
});

describeJournalContract('memory', async () => {
  const leases = new MemoryClusterStore(new SimulatedClock(), { memberTimeoutMs: 5_000, leaseTtlMs: 4_000 });
  const journal = new MemoryJournal({ fenceCheck: leases });
  const snapshots = new MemorySnapshotStore(leases);
  return {
    journal,
    snapshots,
    leases,
    corrupt: async (persistenceId, seqNr) => journal.corrupt(persistenceId, seqNr),
    corruptSnapshot: async (persistenceId, seqNr) => snapshots.corrupt(persistenceId, seqNr),
    teardown: async () => {
      journal.releaseWrites();
      await journal.close();
      await snapshots.close();
    },
  };
});

function request(persistenceId: string, fromSeqNr: number, payload = '{}'): AppendRequest {
  return { persistenceId, fromSeqNr, events: [{ type: 'Happened', version: 1, payload }], timestamp: 1_000 };
}

/** Waits until `condition` holds, turning the event loop between checks; never sleeps on a timer. */
async function until(condition: () => boolean, roundsMax = 100): Promise<void> {
  for (let round = 0; round < roundsMax; round++) {
    if (condition()) return;
    await settle(1);
  }
  throw new Error('condition never held');
}

describe('MemoryJournal test hooks', () => {
  let journal: MemoryJournal;

  beforeEach(() => {
    journal = new MemoryJournal();
  });

  afterEach(async () => {
    journal.releaseWrites();
    await journal.close();
  });

  it('holds writes: an append stays pending until released, then resolves', async () => {
    journal.holdWrites();
    let durable = false;
    const append = journal.append(request('a', 1)).then(() => {
      durable = true;
    });
    await settle(5);
    expect(durable).toBe(false);
    expect(journal.pendingAppends()).toBe(1);
    expect(journal.eventsOf('a')).toEqual([]);

    journal.releaseWrites();
    await append;
    expect(durable).toBe(true);
    expect(journal.pendingAppends()).toBe(0);
    expect(journal.eventsOf('a')).toHaveLength(1);
  });

  it('refuses appends beyond pendingAppendsMax with JournalOverloadedError', async () => {
    const small = new MemoryJournal({ groupCommit: { pendingAppendsMax: 2 } });
    small.holdWrites();
    const accepted = [small.append(request('a', 1)), small.append(request('b', 1))];
    await expect(small.append(request('c', 1))).rejects.toBeInstanceOf(JournalOverloadedError);
    small.releaseWrites();
    await Promise.all(accepted);
    expect(small.stats()).toMatchObject({ appends: 2, failedAppends: 1 });
    await small.close();
  });

  it('fails the next appends while their batch-mates commit', async () => {
    journal.failNextAppends(1);
    const results = await Promise.allSettled([
      journal.append(request('a', 1)),
      journal.append(request('b', 1)),
    ]);
    expect(results[0]?.status === 'rejected' && results[0].reason).toBeInstanceOf(InjectedWriteError);
    expect(results[1]?.status).toBe('fulfilled');
    expect(journal.persistenceIds()).toEqual(['b']);
    // The rule is used up: the retry commits.
    await journal.append(request('a', 1));
    expect(journal.stats()).toMatchObject({ appends: 2, failedAppends: 1 });
  });

  it('fails appends matching a predicate, with the given error, until cancelled', async () => {
    const diskFull = new Error('disk full');
    const rule = journal.failAppendsWhere((each) => each.persistenceId.startsWith('executor'), diskFull);
    await expect(journal.append(request('executor-1', 1))).rejects.toBe(diskFull);
    await expect(journal.append(request('executor-1', 1))).rejects.toBe(diskFull);
    await journal.append(request('merchant-1', 1));
    rule.cancel();
    await journal.append(request('executor-1', 1));
    expect(journal.persistenceIds().sort()).toEqual(['executor-1', 'merchant-1']);
  });

  it('refuses reads and appends while unavailable, and tells commit listeners of each commit', async () => {
    const committed: string[] = [];
    journal.onCommitted((each) => committed.push(`${each.persistenceId}#${each.fromSeqNr}`));
    journal.unavailable = true;
    await expect(journal.append(request('a', 1))).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(journal.read('a', 1)).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(journal.isProcessed('a', { id: 'm1', time: 0 })).rejects.toBeInstanceOf(
      StoreUnavailableError,
    );
    journal.unavailable = false;
    await journal.append(request('a', 1));
    expect(committed).toEqual(['a#1']);
    expect(journal.eventsOf('a')).toHaveLength(1);
  });

  it('does not record processed messages of a failed append', async () => {
    journal.failNextAppends(1);
    const append = journal.append({
      ...request('r', 1),
      processed: { receiverId: 'r', messages: [{ id: 'm1', time: 0 }] },
    });
    await expect(append).rejects.toBeInstanceOf(InjectedWriteError);
    expect(await journal.isProcessed('r', { id: 'm1', time: 0 })).toBe(false);
  });

  it('delays each batch on the given clock', async () => {
    const clock = new SimulatedClock();
    journal.setWriteDelayMs(50, clock);
    let durable = false;
    const append = journal.append(request('a', 1)).then(() => {
      durable = true;
    });
    await until(() => clock.pendingCount() === 1);
    await clock.advanceAsync(49);
    expect(durable).toBe(false);
    await clock.advanceAsync(1);
    await append;
    expect(durable).toBe(true);
  });

  it('stores serialized rows: a caller mutating its request or a read result changes nothing', async () => {
    const events = [{ type: 'Happened', version: 1, payload: '{"amount":1}' }];
    await journal.append({ persistenceId: 'a', fromSeqNr: 1, events, timestamp: 5 });
    (events[0] as { payload: string }).payload = '{"amount":999}';
    const [read] = await journal.read('a', 1);
    if (read !== undefined) (read as { payload: string }).payload = 'mutated';
    expect(journal.eventsOf('a')[0]?.payload).toBe('{"amount":1}');
  });

  it('writes raw rows of any version with a valid checksum, at the next seqNr only', async () => {
    await journal.append(request('a', 1));
    journal.writeRaw({
      persistenceId: 'a',
      seqNr: 2,
      type: 'OldShape',
      version: 1,
      payload: '{"v":0}',
      timestamp: 3,
    });
    expect((await journal.read('a', 2))[0]).toEqual({
      persistenceId: 'a',
      seqNr: 2,
      type: 'OldShape',
      version: 1,
      payload: '{"v":0}',
      timestamp: 3,
    });
    expect(() =>
      journal.writeRaw({
        persistenceId: 'a',
        seqNr: 5,
        type: 'OldShape',
        version: 1,
        payload: '{}',
        timestamp: 3,
      }),
    ).toThrow(/after highest 2/);
    await expect(journal.append(request('a', 2))).rejects.toBeInstanceOf(ConcurrentWriteError);
  });

  it('corrupts a row so that both reads and inspection fail on it', async () => {
    await journal.append(request('a', 1));
    journal.corrupt('a', 1);
    expect(() => journal.eventsOf('a')).toThrow(CorruptRowError);
  });
});

describe('MemorySnapshotStore', () => {
  it('keeps only the snapshots not deleted, ascending', async () => {
    const snapshots = new MemorySnapshotStore();
    for (const seqNr of [3, 9, 6]) {
      await snapshots.save({ persistenceId: 'a', seqNr, version: 1, payload: '{}', timestamp: seqNr });
    }
    await snapshots.deleteOlderThan('a', 6);
    expect(snapshots.seqNrsOf('a')).toEqual([6, 9]);
    await snapshots.close();
  });
});
