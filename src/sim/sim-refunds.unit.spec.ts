import { describe, expect, it } from 'vitest';
import type { BankErrorKind, BankPort, RefundAnswer, RefundRequest } from '../payments/executor-protocol.js';
import { RefundSendWatch } from './sim-refunds.js';

class Unknown extends Error {}
class Unavailable extends Error {}

const classify = (error: unknown): BankErrorKind =>
  error instanceof Unknown ? 'unknown_outcome' : error instanceof Unavailable ? 'retryable' : 'refused';

const request: RefundRequest = {
  reference: 're_1',
  paymentReference: 'ord_1',
  merchantId: 'm1',
  amount: 100n,
  currency: 'EUR',
};

/** A bank port whose refund and inquiry answers are scripted, one per call. */
function scripted(refunds: Array<RefundAnswer | Error>, inquiries: Array<'found' | 'not_found'>): BankPort {
  const unused = () => Promise.reject(new Error('not used'));
  return {
    authorize: unused,
    inquire: unused,
    cancel: unused,
    refund: async () => {
      const next = refunds.shift();
      if (next === undefined || next instanceof Error) throw next ?? new Error('no script');
      return next;
    },
    inquireRefund: async (reference) =>
      inquiries.shift() === 'not_found' ? { kind: 'not_found', reference } : { kind: 'succeeded', reference },
  };
}

async function settle(promise: Promise<unknown>): Promise<void> {
  await promise.catch(() => {});
}

describe('RefundSendWatch', () => {
  it('lets a refund be sent again after a refusal before processing, or after an inquiry found nothing', async () => {
    const watch = new RefundSendWatch(classify, () => 0);
    const port = watch.watch(
      scripted([new Unavailable(), new Unknown(), { kind: 'succeeded', reference: 're_1' }], ['not_found']),
    );
    await settle(port.refund(request));
    await settle(port.refund(request));
    await port.inquireRefund('re_1');
    await port.refund(request);
    expect(watch.violations).toEqual([]);
  });

  it('finds a refund sent again while its outcome is unknown, and one sent again after it was answered', async () => {
    const blind = new RefundSendWatch(classify, () => 0);
    const port = blind.watch(scripted([new Unknown(), { kind: 'succeeded', reference: 're_1' }], []));
    await settle(port.refund(request));
    await port.refund(request);
    expect(blind.violations.map((violation) => violation.invariant)).toEqual(['refunds.sent-once']);

    const again = new RefundSendWatch(classify, () => 0);
    const answered = again.watch(
      scripted(
        [
          { kind: 'succeeded', reference: 're_1' },
          { kind: 'succeeded', reference: 're_1' },
        ],
        [],
      ),
    );
    await answered.refund(request);
    await answered.refund(request);
    expect(again.violations).toHaveLength(1);
  });

  it('finds a resend after an inquiry that found the refund', async () => {
    const watch = new RefundSendWatch(classify, () => 0);
    const port = watch.watch(scripted([new Unknown(), { kind: 'succeeded', reference: 're_1' }], ['found']));
    await settle(port.refund(request));
    await port.inquireRefund('re_1');
    await port.refund(request);
    expect(watch.violations).toHaveLength(1);
  });
});
