import { describe, expect, it } from 'vitest';
import { ledgerTotals, type PaymentRecord, type RefundRecord } from './ledger.js';

const now = Date.UTC(2026, 5, 15);

describe('ledgerTotals', () => {
  const record = (
    reference: string,
    amount: number,
    overrides: Partial<PaymentRecord> = {},
  ): PaymentRecord => ({
    reference,
    merchantId: 'merchant-1',
    amount,
    currency: 'EUR',
    status: 'approved',
    authorizationCode: 'ABC123',
    card: { brand: 'visa', bin: '424242', last4: '4242' },
    createdAt: now,
    updatedAt: now,
    requestCount: 1,
    ...overrides,
  });

  it('counts requests and duplicates and sums approved amounts per currency', () => {
    const totals = ledgerTotals(
      [
        record('a', 100, { requestCount: 3 }),
        record('b', 50, { currency: 'USD' }),
        record('c', 70, { status: 'declined', authorizationCode: undefined, declineReason: 'card_declined' }),
      ],
      [],
      2,
    );
    expect(totals).toEqual({
      payments: 3,
      approved: 2,
      declined: 1,
      cancelled: 0,
      requests: 5,
      duplicateRequests: 2,
      rejectedRequests: 2,
      approvedAmountByCurrency: { EUR: 100, USD: 50 },
      refunds: 0,
      refundsSucceeded: 0,
      refundsFailed: 0,
      refundRequests: 0,
      duplicateRefundRequests: 0,
      refundedAmountByCurrency: {},
    });
  });

  it('counts cancelled records apart and never as charged', () => {
    const totals = ledgerTotals(
      [
        record('a', 100),
        {
          reference: 'b',
          merchantId: '',
          status: 'cancelled',
          createdAt: now,
          updatedAt: now,
          requestCount: 3,
        },
      ],
      [],
      0,
    );
    expect(totals).toEqual({
      payments: 2,
      approved: 1,
      declined: 0,
      cancelled: 1,
      requests: 4,
      duplicateRequests: 2,
      rejectedRequests: 0,
      approvedAmountByCurrency: { EUR: 100 },
      refunds: 0,
      refundsSucceeded: 0,
      refundsFailed: 0,
      refundRequests: 0,
      duplicateRefundRequests: 0,
      refundedAmountByCurrency: {},
    });
  });

  it('counts refunds apart from payments and sums only the succeeded ones per currency', () => {
    const refund = (
      reference: string,
      amount: number,
      overrides: Partial<RefundRecord> = {},
    ): RefundRecord => ({
      reference,
      paymentReference: 'a',
      merchantId: 'merchant-1',
      amount,
      currency: 'EUR',
      status: 'succeeded',
      createdAt: now,
      updatedAt: now,
      requestCount: 1,
      ...overrides,
    });
    const totals = ledgerTotals(
      [record('a', 100), record('b', 50, { currency: 'USD' })],
      [
        refund('r1', 30, { requestCount: 2 }),
        refund('r2', 20, { status: 'failed', failureReason: 'refund_declined' }),
        refund('r3', 50, { paymentReference: 'b', currency: 'USD' }),
      ],
      0,
    );
    expect(totals).toMatchObject({
      payments: 2,
      requests: 2,
      duplicateRequests: 0,
      approvedAmountByCurrency: { EUR: 100, USD: 50 },
      refunds: 3,
      refundsSucceeded: 2,
      refundsFailed: 1,
      refundRequests: 4,
      duplicateRefundRequests: 1,
      refundedAmountByCurrency: { EUR: 30, USD: 50 },
    });
  });

  it('reports a sum beyond MAX_SAFE_INTEGER exactly, as a string of digits', () => {
    const totals = ledgerTotals(
      [record('a', Number.MAX_SAFE_INTEGER), record('b', Number.MAX_SAFE_INTEGER)],
      [],
      0,
    );
    expect(totals.approvedAmountByCurrency).toEqual({
      EUR: (2n * BigInt(Number.MAX_SAFE_INTEGER)).toString(),
    });
  });
});
