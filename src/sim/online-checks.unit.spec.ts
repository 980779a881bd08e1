import { describe, expect, it } from 'vitest';
import { entityAddress } from '../runtime/entity-address.js';
import { MemoryJournal } from '../store/memory/memory-journal.js';
import { OnlineChecks } from './online-checks.js';
import { DurableLog } from './sim-journal.js';

const merchant = entityAddress('merchant', 'merchant-a');
const result = (kind: 'executed' | 'declined' | 'failed') => ({
  type: 'ProcessExecutionResult',
  orderId: 'ord_1',
  outcome: kind === 'executed' ? { kind, authorizationCode: '123456' } : { kind, reason: 'x' },
  at: 1,
  executor: entityAddress('executor', 'bank-a'),
});

function checks(bankStatus: string | undefined): OnlineChecks {
  const log = new DurableLog(new MemoryJournal());
  return new OnlineChecks(
    log,
    () => 0,
    true,
    (reference) => (reference === 'ord_1' ? bankStatus : undefined),
  );
}

describe('OnlineChecks: a result reported to the Merchant', () => {
  it('is justified by the bank record of the same outcome, before the Executor recorded it', () => {
    for (const [kind, status] of [
      ['executed', 'approved'],
      ['declined', 'declined'],
      ['declined', 'cancelled'],
      ['failed', 'cancelled'],
    ] as const) {
      const online = checks(status);
      online.onMessage(merchant, result(kind));
      expect(online.violations).toEqual([]);
    }
  });

  it('is a violation with no durable record of it anywhere, or a record of another outcome', () => {
    for (const [kind, status] of [
      ['executed', undefined],
      ['executed', 'declined'],
      ['failed', 'approved'],
    ] as const) {
      const online = checks(status);
      online.onMessage(merchant, result(kind));
      expect(online.violations.map((violation) => violation.invariant)).toEqual([
        'durability.acted-before-durable',
      ]);
    }
  });
});
