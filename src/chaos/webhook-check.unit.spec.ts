import { describe, expect, it } from 'vitest';
import { checkWebhooks, type ExpectedWebhookEvent, missingWebhooks, tallyWebhooks } from './webhook-check.js';
import type { ReceiverLogLine } from './webhook-receiver.js';

const executed: ExpectedWebhookEvent = {
  id: 'evt_a',
  type: 'order.executed',
  merchantId: 'm1',
  subjectId: 'ord_1',
  status: 'executed',
};
const refunded: ExpectedWebhookEvent = {
  id: 'evt_b',
  type: 'refund.succeeded',
  merchantId: 'm1',
  subjectId: 're_1',
  status: 'succeeded',
};

function processed(event: ExpectedWebhookEvent): ReceiverLogLine {
  return { kind: 'processed', ...event };
}

describe('checkWebhooks', () => {
  it('passes when every owed event was processed once, duplicates answered without processing', () => {
    const log = [
      processed(executed),
      { kind: 'duplicate', id: 'evt_a', merchantId: 'm1' } as const,
      processed(refunded),
    ];
    expect(checkWebhooks([executed, refunded], log)).toEqual([]);
    expect(tallyWebhooks([executed, refunded], log)).toEqual({
      expected: 2,
      processed: 2,
      duplicates: 1,
      rejected: 0,
    });
  });

  it('finds a lost event', () => {
    const violations = checkWebhooks([executed, refunded], [processed(executed)]);
    expect(violations.map((violation) => [violation.kind, violation.eventIds])).toEqual([
      ['webhook_missing', ['evt_b']],
    ]);
    expect(missingWebhooks([executed, refunded], [processed(executed)])).toEqual([refunded]);
  });

  it('finds an event processed twice', () => {
    const violations = checkWebhooks([executed], [processed(executed), processed(executed)]);
    expect(violations.map((violation) => violation.kind)).toEqual(['webhook_processed_twice']);
  });

  it('finds an event nobody owed, and one whose contents differ from the outcome', () => {
    const stranger = { ...executed, id: 'evt_x' };
    const wrongStatus = { ...refunded, status: 'failed' };
    const violations = checkWebhooks(
      [executed, refunded],
      [processed(executed), processed(stranger), processed(wrongStatus)],
    );
    expect(violations.map((violation) => [violation.kind, violation.eventIds])).toEqual([
      ['webhook_unexpected', ['evt_x']],
      ['webhook_unexpected', ['evt_b']],
    ]);
  });

  it('finds a delivery whose signature did not verify', () => {
    const violations = checkWebhooks(
      [executed],
      [{ kind: 'rejected', merchantId: 'm1', reason: 'no_matching_signature' }, processed(executed)],
    );
    expect(violations.map((violation) => violation.kind)).toEqual(['webhook_bad_signature']);
  });
});
