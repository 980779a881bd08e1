import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AppendRequest } from '../journal.js';
import { flattenBatch, unflattenBatch } from './writer-protocol.js';

const identifier = fc.string({ minLength: 1, maxLength: 12 });
const appendRequest: fc.Arbitrary<AppendRequest> = fc.record(
  {
    persistenceId: identifier,
    fromSeqNr: fc.integer({ min: 1, max: 1_000_000 }),
    timestamp: fc.integer({ min: 0, max: 2 ** 45 }),
    events: fc.array(
      fc.record({ type: identifier, version: fc.integer({ min: 1, max: 9 }), payload: fc.json() }),
      { minLength: 1, maxLength: 4 },
    ),
    processed: fc.record({
      receiverId: identifier,
      messages: fc.array(fc.record({ id: identifier, time: fc.integer({ min: 0, max: 2 ** 45 }) }), {
        maxLength: 3,
      }),
    }),
  },
  { requiredKeys: ['persistenceId', 'fromSeqNr', 'timestamp', 'events'] },
);

describe('the flat batch sent to the writer thread', () => {
  it('round-trips any batch of appends', () => {
    fc.assert(
      fc.property(fc.array(appendRequest, { maxLength: 20 }), (batch) => {
        expect(unflattenBatch(flattenBatch(batch))).toEqual(batch);
      }),
    );
  });

  it('refuses a truncated or mistyped batch instead of writing garbage', () => {
    const flat = flattenBatch([
      { persistenceId: 'a', fromSeqNr: 1, timestamp: 5, events: [{ type: 'T', version: 1, payload: '{}' }] },
    ]);
    expect(() => unflattenBatch(flat.slice(0, -2))).toThrow(/flat batch/);
    expect(() => unflattenBatch([1, ...flat.slice(1)])).toThrow(/expected a string/);
  });
});
