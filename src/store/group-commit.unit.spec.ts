import { describe, expect, it } from 'vitest';
import { type CommitBatch, GroupCommitter } from './group-commit.js';
import { JournalOverloadedError } from './journal.js';

/** A commitBatch that holds every batch until the test settles it, in the order handed over. */
function heldCommits() {
  const handed: Array<{ batch: readonly string[]; settle: (outcomes?: Array<Error | undefined>) => void }> =
    [];
  const commit: CommitBatch<string> = (batch) =>
    new Promise((resolve) => {
      handed.push({ batch, settle: (outcomes) => resolve(outcomes ?? batch.map(() => undefined)) });
    });
  return { handed, commit };
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function settings(batchesInFlightMax: number) {
  return { batchSizeMax: 100, pendingAppendsMax: 1_000, batchesInFlightMax };
}

describe('GroupCommitter', () => {
  it('with one batch in flight, gathers what comes meanwhile into the next', async () => {
    const { handed, commit } = heldCommits();
    const committer = new GroupCommitter(commit, settings(1));
    const first = [committer.submit('a'), committer.submit('b')];
    await nextTurn();
    const later = [committer.submit('c')];
    await nextTurn();
    later.push(committer.submit('d'));
    await nextTurn();
    expect(handed.map((h) => h.batch)).toEqual([['a', 'b']]);

    handed[0]?.settle();
    await Promise.all(first);
    await nextTurn();
    expect(handed.map((h) => h.batch)).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ]);
    handed[1]?.settle();
    await Promise.all(later);
  });

  it('hands each turn its own batch, in order, up to batchesInFlightMax, and releases each after its commit', async () => {
    const { handed, commit } = heldCommits();
    const committer = new GroupCommitter(commit, settings(2));
    const released: string[] = [];
    const submit = (request: string) => committer.submit(request).then(() => released.push(request));
    const all = [submit('a'), submit('b')];
    await nextTurn();
    all.push(submit('c'));
    await nextTurn();
    all.push(submit('d'));
    await nextTurn();
    all.push(submit('e'));
    await nextTurn();
    // Two in flight; what came after waits for room, gathered into one batch.
    expect(handed.map((h) => h.batch)).toEqual([['a', 'b'], ['c']]);

    handed[1]?.settle();
    await nextTurn();
    await nextTurn();
    // The second commit alone does not release the first batch's waiters.
    expect(released).toEqual(['c']);
    expect(handed.map((h) => h.batch)).toEqual([['a', 'b'], ['c'], ['d', 'e']]);

    handed[0]?.settle();
    handed[2]?.settle();
    await Promise.all(all);
    expect(released).toEqual(['c', 'a', 'b', 'd', 'e']);
  });

  it('counts every batch in flight against pendingAppendsMax', async () => {
    const { handed, commit } = heldCommits();
    const committer = new GroupCommitter(commit, {
      batchSizeMax: 100,
      pendingAppendsMax: 3,
      batchesInFlightMax: 4,
    });
    const accepted = [committer.submit('a'), committer.submit('b')];
    await nextTurn();
    accepted.push(committer.submit('c'));
    await nextTurn();
    await expect(committer.submit('d')).rejects.toBeInstanceOf(JournalOverloadedError);
    for (const held of handed) held.settle();
    await Promise.all(accepted);
  });

  it('fails a batch alone, and close waits for every batch in flight', async () => {
    const { handed, commit } = heldCommits();
    const committer = new GroupCommitter(commit, settings(2));
    const first = committer.submit('a');
    await nextTurn();
    const second = committer.submit('b');
    await nextTurn();
    let closed = false;
    const closing = committer.close().then(() => {
      closed = true;
    });
    handed[0]?.settle([new Error('disk full')]);
    await expect(first).rejects.toThrow('disk full');
    await nextTurn();
    expect(closed).toBe(false);
    handed[1]?.settle();
    await second;
    await closing;
    expect(closed).toBe(true);
  });
});
