import { describe, expect, it } from 'vitest';
import { checkRefunds, type RefundEvidence } from './refund-check.js';

/** One order of 1000 charged, refunded 400 then 600, both succeeded everywhere. */
function clean(): RefundEvidence {
  return {
    sent: [
      {
        key: 'k1',
        merchantId: 'm1',
        orderId: 'ord_1',
        amount: 400,
        acceptedIds: ['re_1'],
        refusals: [],
        terminalSeen: [{ id: 're_1', status: 'succeeded' }],
      },
      {
        key: 'k2',
        merchantId: 'm1',
        orderId: 'ord_1',
        amount: 600,
        acceptedIds: ['re_2'],
        refusals: [],
        terminalSeen: [],
      },
      {
        key: 'k3',
        merchantId: 'm1',
        orderId: 'ord_1',
        amount: 1,
        acceptedIds: [],
        refusals: [{ status: 422, code: 'refund_exceeds_payment' }],
        terminalSeen: [],
      },
    ],
    gatewayRefunds: [
      { id: 're_1', orderId: 'ord_1', merchantId: 'm1', status: 'succeeded', amount: 400, currency: 'EUR' },
      { id: 're_2', orderId: 'ord_1', merchantId: 'm1', status: 'succeeded', amount: 600, currency: 'EUR' },
    ],
    orders: [{ id: 'ord_1', merchantId: 'm1', amountRefunded: 1000 }],
    ledgerRefunds: [
      {
        reference: 're_1',
        paymentReference: 'ord_1',
        merchantId: 'm1',
        amount: 400,
        currency: 'EUR',
        status: 'succeeded',
        requestCount: 1,
      },
      {
        reference: 're_2',
        paymentReference: 'ord_1',
        merchantId: 'm1',
        amount: 600,
        currency: 'EUR',
        status: 'succeeded',
        requestCount: 1,
      },
    ],
    ledgerPayments: [{ reference: 'ord_1', status: 'approved', amount: 1000 }],
  };
}

function kinds(evidence: RefundEvidence): string[] {
  return checkRefunds(evidence).map((violation) => violation.kind);
}

describe('checkRefunds', () => {
  it('passes a run where the bank gave back exactly what the gateway reports', () => {
    expect(checkRefunds(clean())).toEqual([]);
  });

  it('finds an accepted refund the gateway lost, and one left pending', () => {
    const evidence = clean();
    expect(kinds({ ...evidence, gatewayRefunds: evidence.gatewayRefunds.slice(0, 1) })).toContain(
      'refund_accepted_missing',
    );
    const pending = evidence.gatewayRefunds.map((refund) => ({ ...refund, status: 'pending' as const }));
    expect(kinds({ ...evidence, gatewayRefunds: pending })).toContain('refund_not_terminal');
  });

  it('finds a reference twice in the ledger and a refund the gateway never made; passes repeats the bank absorbed', () => {
    const evidence = clean();
    const [first, second] = evidence.ledgerRefunds;
    if (first === undefined || second === undefined) throw new Error('fixture');
    expect(kinds({ ...evidence, ledgerRefunds: [{ ...first, requestCount: 2 }, second] })).toEqual([]);
    expect(kinds({ ...evidence, ledgerRefunds: [first, second, { ...second, amount: 0 }] })).toContain(
      'refund_reference_repeated',
    );
    const stray = { ...first, reference: 're_x', amount: 0 };
    expect(kinds({ ...evidence, ledgerRefunds: [...evidence.ledgerRefunds, stray] })).toEqual([
      'refund_unknown',
    ]);
  });

  it('finds a gateway and a bank that disagree on a refund or on an order total', () => {
    const evidence = clean();
    const [first, second] = evidence.ledgerRefunds;
    if (first === undefined || second === undefined) throw new Error('fixture');
    expect(kinds({ ...evidence, ledgerRefunds: [{ ...first, status: 'failed' }, second] })).toEqual([
      'refund_mismatch',
      'refunded_mismatch',
    ]);
    expect(kinds({ ...evidence, orders: [{ id: 'ord_1', merchantId: 'm1', amountRefunded: 400 }] })).toEqual([
      'refunded_mismatch',
    ]);
    expect(kinds({ ...evidence, orders: [] })).toEqual(['refunded_mismatch']);
  });

  it('finds refunds above the charge, and refunds of a payment never charged', () => {
    const evidence = clean();
    expect(
      kinds({ ...evidence, ledgerPayments: [{ reference: 'ord_1', status: 'approved', amount: 900 }] }),
    ).toEqual(['over_refund']);
    expect(kinds({ ...evidence, ledgerPayments: [] })).toEqual(['over_refund']);
  });

  it('finds a refusal an executed order should not earn, and a status that changed', () => {
    const evidence = clean();
    const [first, ...rest] = evidence.sent;
    if (first === undefined) throw new Error('fixture');
    const refused = { ...first, refusals: [{ status: 422, code: 'idempotency_key_reused' }] };
    expect(kinds({ ...evidence, sent: [refused, ...rest] })).toEqual(['refund_refused']);
    const flipped = { ...first, terminalSeen: [...first.terminalSeen, { id: 're_1', status: 'failed' }] };
    expect(kinds({ ...evidence, sent: [flipped, ...rest] })).toEqual(['refund_status_changed']);
  });
});
