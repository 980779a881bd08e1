import type { RefundQueries } from '../node/refund-queries.js';
import { evolvePayment, initialPaymentState } from '../payments/payment-decider.js';
import { paymentEvents } from '../payments/payment-events.js';
import type { Refund } from '../payments/refund.js';
import type { MemoryJournal } from '../store/memory/memory-journal.js';

const paymentPrefix = 'payment-';

/**
 * A stand-in for the read model's refunds in tests of the node without SQLite: every Payment's
 * refunds folded from the in-memory journal with the Payment's own `evolve` (the real read model
 * is tested in readmodel/).
 */
export class JournalRefundQueries implements RefundQueries {
  constructor(private readonly journal: MemoryJournal) {}

  async getRefund(merchantId: string, refundId: string): Promise<Refund | undefined> {
    const refund = this.refunds().find((each) => each.id === refundId);
    return refund?.merchantId === merchantId ? refund : undefined;
  }

  async listRefunds(merchantId: string, orderId: string): Promise<Refund[]> {
    return this.refunds().filter((each) => each.orderId === orderId && each.merchantId === merchantId);
  }

  async pendingRefunds(
    limit: number,
    afterRefundId?: string,
  ): Promise<{ orderId: string; merchantId: string; refundId: string }[]> {
    return this.refunds()
      .filter((each) => each.status === 'pending' && (afterRefundId === undefined || each.id > afterRefundId))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .slice(0, limit)
      .map((each) => ({ orderId: each.orderId, merchantId: each.merchantId, refundId: each.id }));
  }

  private refunds(): Refund[] {
    const refunds: Refund[] = [];
    for (const persistenceId of this.journal.persistenceIds()) {
      if (!persistenceId.startsWith(paymentPrefix)) continue;
      let state = initialPaymentState(persistenceId.slice(paymentPrefix.length));
      for (const row of this.journal.eventsOf(persistenceId)) {
        state = evolvePayment(state, paymentEvents.deserialize(row));
      }
      refunds.push(...state.refunds.values());
    }
    return refunds;
  }
}
