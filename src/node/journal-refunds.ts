import { evolvePayment, initialPaymentState } from '../payments/payment-decider.js';
import { paymentEvents } from '../payments/payment-events.js';
import { orderIdOfRefund, type Refund } from '../payments/refund.js';
import type { Journal } from '../store/journal.js';
import type { RefundQueries } from './refund-queries.js';

/**
 * One refund read from its Payment's events in the journal (`payment-<order id>`, found from the
 * refund id alone), folded with the Payment's `evolvePayment`. A Payment holds a bounded number of
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
    // Folded with the Payment's own transition: the refund is exactly what its Payment holds.
    let state = initialPaymentState(orderId);
    for (const row of rows) {
      state = evolvePayment(state, paymentEvents.deserialize(row, { persistenceId, seqNr: row.seqNr }));
    }
    const refund = state.refunds.get(refundId);
    return refund?.merchantId === merchantId ? refund : undefined;
  }
}
