import { describe, expect, it } from 'vitest';
import { merchantEvents } from '../payments/merchant-events.js';
import type { OffsetEvent } from '../store/journal.js';
import { AuditTrailError, readAuditTrail } from './audit-trail.js';

const at = Date.UTC(2026, 10, 25);

function journalOf(rows: readonly OffsetEvent[]) {
  return {
    readAll: (afterOffset: number, limit: number): Promise<OffsetEvent[]> =>
      Promise.resolve(rows.filter((row) => row.offset > afterOffset).slice(0, limit)),
  };
}

const rejected: OffsetEvent = {
  ...merchantEvents.serialize({
    type: 'OrderRejected',
    orderId: 'o1',
    reason: 'amount_over_limit',
    rulesVersion: 1,
    at,
  }),
  persistenceId: 'merchant-m1',
  seqNr: 2,
  timestamp: at + 5,
  offset: 7,
};

describe('readAuditTrail', () => {
  it('reads each listed offset from the journal, as the event in its current version', async () => {
    const trail = await readAuditTrail(journalOf([rejected]), [7]);
    expect(trail).toEqual([
      {
        offset: 7,
        persistenceId: 'merchant-m1',
        seqNr: 2,
        type: 'OrderRejected',
        at: at + 5,
        data: { type: 'OrderRejected', orderId: 'o1', reason: 'amount_over_limit', rulesVersion: 1, at },
      },
    ]);
  });

  it('refuses an offset the journal has no event at, rather than skipping it', async () => {
    // The next event after offset 5 is at 7: the journal has nothing at 6.
    const error = await readAuditTrail(journalOf([rejected]), [6]).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AuditTrailError);
    expect((error as AuditTrailError).offset).toBe(6);
  });

  it('refuses an offset that holds another entity type’s event', async () => {
    const other: OffsetEvent = { ...rejected, persistenceId: 'ledger-x', offset: 9 };
    await expect(readAuditTrail(journalOf([other]), [9])).rejects.toThrow(/ledger-x/);
  });
});
