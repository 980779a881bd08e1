import { describe, expect, it } from 'vitest';
import { CallBatches, type CallResult } from './call-batches.js';

/**
 * CallBatches gathers the calls of one turn into one batch, keeps to its bounds, and settles every
 * call with its own result. The sender here is a probe that records each batch and answers when
 * told, so every case is exact.
 */

interface SentBatch {
  readonly items: readonly number[];
  answer(results: ReadonlyArray<CallResult<string>>): void;
  fail(error: Error): void;
}

function probe(): {
  sent: SentBatch[];
  send: (items: readonly number[]) => Promise<ReadonlyArray<CallResult<string>>>;
} {
  const sent: SentBatch[] = [];
  return {
    sent,
    send: (items) =>
      new Promise((resolve, reject) => {
        sent.push({ items, answer: resolve, fail: reject });
      }),
  };
}

const echo = (items: readonly number[]): CallResult<string>[] =>
  items.map((item) => ({ ok: true, value: `answer-${item}` }));

/** One turn of the event loop: the batches scheduled on setImmediate have gone out after it. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('CallBatches', () => {
  it('sends the calls of one turn in one batch, and each call gets its own result', async () => {
    const { sent, send } = probe();
    const batches = new CallBatches(send, { itemsMax: 10, batchesInFlightMax: 2 });

    const calls = [1, 2, 3].map((item) => batches.call(item));
    await nextTurn();
    expect(sent.map((batch) => batch.items)).toEqual([[1, 2, 3]]);
    sent[0]?.answer([
      { ok: true, value: 'one' },
      { ok: false, error: new Error('two failed') },
      { ok: true, value: 'three' },
    ]);

    expect(await calls[0]).toBe('one');
    await expect(calls[1]).rejects.toThrow('two failed');
    expect(await calls[2]).toBe('three');
  });

  it('splits a turn into batches of itemsMax, up to batchesInFlightMax out at once', async () => {
    const { sent, send } = probe();
    const batches = new CallBatches(send, { itemsMax: 2, batchesInFlightMax: 2 });

    const calls = [1, 2, 3, 4, 5, 6, 7].map((item) => batches.call(item));
    await nextTurn();
    expect(sent.map((batch) => batch.items)).toEqual([
      [1, 2],
      [3, 4],
    ]);

    // One batch back: the calls that waited go out, still two at a time.
    sent[0]?.answer(echo([1, 2]));
    await calls[0];
    await nextTurn();
    expect(sent.map((batch) => batch.items)).toEqual([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    sent[1]?.answer(echo([3, 4]));
    sent[2]?.answer(echo([5, 6]));
    await Promise.all(calls.slice(0, 6));
    await nextTurn();
    expect(sent.map((batch) => batch.items)).toEqual([[1, 2], [3, 4], [5, 6], [7]]);
    sent[3]?.answer(echo([7]));

    expect(await Promise.all(calls)).toEqual([1, 2, 3, 4, 5, 6, 7].map((item) => `answer-${item}`));
  });

  it('calls made while every batch is out wait for one to come back, then go together', async () => {
    const { sent, send } = probe();
    const batches = new CallBatches(send, { itemsMax: 10, batchesInFlightMax: 1 });
    const first = batches.call(1);
    await nextTurn();
    const later = [2, 3].map((item) => batches.call(item));
    await nextTurn();
    expect(sent).toHaveLength(1);

    sent[0]?.answer(echo([1]));
    await first;
    await nextTurn();

    expect(sent.map((batch) => batch.items)).toEqual([[1], [2, 3]]);
    sent[1]?.answer(echo([2, 3]));
    expect(await Promise.all(later)).toEqual(['answer-2', 'answer-3']);
  });

  it('a sender that throws after all fails every call of its batch, and the next batch still goes', async () => {
    const { sent, send } = probe();
    const batches = new CallBatches(send, { itemsMax: 10, batchesInFlightMax: 1 });
    const calls = [1, 2].map((item) => batches.call(item));
    await nextTurn();
    const queued = batches.call(3);

    sent[0]?.fail(new Error('sender broke'));

    await expect(calls[0]).rejects.toThrow('sender broke');
    await expect(calls[1]).rejects.toThrow('sender broke');
    await nextTurn();
    expect(sent[1]?.items).toEqual([3]);
    sent[1]?.answer(echo([3]));
    expect(await queued).toBe('answer-3');
  });

  it('a result missing for a call fails that call instead of leaving it waiting', async () => {
    const { sent, send } = probe();
    const batches = new CallBatches(send, { itemsMax: 10, batchesInFlightMax: 1 });
    const calls = [1, 2].map((item) => batches.call(item));
    await nextTurn();

    sent[0]?.answer([{ ok: true, value: 'one' }]);

    expect(await calls[0]).toBe('one');
    await expect(calls[1]).rejects.toThrow(/no result/);
  });

  it('refuses bounds that are not positive integers', () => {
    const { send } = probe();
    expect(() => new CallBatches(send, { itemsMax: 0, batchesInFlightMax: 1 })).toThrow(/itemsMax/);
    expect(() => new CallBatches(send, { itemsMax: 1, batchesInFlightMax: 1.5 })).toThrow(
      /batchesInFlightMax/,
    );
  });
});
