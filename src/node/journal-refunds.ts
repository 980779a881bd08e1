import { paymentEvents } from '../payments/payment-events.js';
import { orderIdOfRefund, type Refund } from '../payments/refund.js';
import type { Journal } from '../store/journal.js';
import type { RefundQueries } from './refund-queries.js';

/**
 * One refund read from its Payment's events in the journal (`payment-<order id>`, found from the
 * refund id alone), folded as the read model folds them. A Payment holds a bounded number of
 * refunds (`refundsPerOrderMax`), each a handful of events, so one read of its stream is bounded;
 * `eventsReadMax` is the bound that read names.
 */
export class JournalRefunds implements Pick<RefundQueries, 'getRefund'> {
  constructor(
    private readonly journal: Pick<Journal, 'read'>,
    private readonly eventsReadMax = 10_000,
  ) {}

  async getRefund(merchantId: string, refundId: string): Promise<Refund | undefined> {
    const orderId = orderIdOfRefund(refundId);
    if (orderId === undefined) return undefined;
    const persistenceId = `payment-${orderId}`;
    const rows = await this.journal.read(persistenceId, 1, undefined, this.eventsReadMax);
    let refund: Refund | undefined;
    for (const row of rows) {
      const event = paymentEvents.deserialize(row, { persistenceId, seqNr: row.seqNr });
      if (event.refundId !== refundId) continue;
      switch (event.type) {
        case 'RefundRequested':
          refund = {
            id: event.refundId,
            orderId: event.orderId,
            merchantId: event.merchantId,
            idempotencyKey: event.idempotencyKey,
            requestHash: event.requestHash,
            status: 'pending',
            amount: event.amount,
            currency: event.currency,
            reason: event.reason,
            failureReason: undefined,
            createdAt: event.at,
            updatedAt: event.at,
          };
          break;
        case 'ExecuteRefundConfirmed':
          break;
        case 'RefundSucceeded':
          if (refund !== undefined) refund = { ...refund, status: 'succeeded', updatedAt: event.at };
          break;
        case 'RefundFailed':
          if (refund !== undefined) {
            refund = { ...refund, status: 'failed', failureReason: event.reason, updatedAt: event.at };
          }
          break;
      }
    }
    return refund?.merchantId === merchantId ? refund : undefined;
  }
}
