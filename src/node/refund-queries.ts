import type { Refund } from '../payments/refund.js';

/**
 * What the gateway reads of refunds from the read model (SQLite's or PostgreSQL's), which projects
 * them from the Payments' journals and so trails them by moments.
 */
export interface RefundQueries {
  getRefund(merchantId: string, refundId: string): Promise<Refund | undefined>;
  /** The order's refunds, oldest first (at most `refundsPerOrderMax` exist). */
  listRefunds(merchantId: string, orderId: string): Promise<Refund[]>;
  /**
   * Refunds still `pending`, in refund id order after `afterRefundId`, at most `limit`: the node
   * starts their Payments so that a delivery cut short by a crash resumes.
   */
  pendingRefunds(
    limit: number,
    afterRefundId?: string,
  ): Promise<{ readonly orderId: string; readonly merchantId: string; readonly refundId: string }[]>;
}
