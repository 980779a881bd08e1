/**
 * The checker against hand-made evidence: a clean run passes, and each kind of broken promise is
 * found with the order ids involved. The evidence is built from one clean run of four orders that
 * each test then spoils in one way, so every case differs from the clean one by exactly its bug.
 */
import { describe, expect, it } from 'vitest';
import {
  checkRun,
  type GatewayOrder,
  type LedgerPayment,
  type RunEvidence,
  type SentOrder,
  type ViolationKind,
} from './checker.js';

function sent(key: string, id: string, overrides: Partial<SentOrder> = {}): SentOrder {
  return {
    key,
    merchantId: 'merchant-a',
    reference: `ref-${key}`,
    amount: 1250,
    currency: 'EUR',
    expectation: 'approve',
    acceptedIds: [id],
    terminalSeen: [],
    refusals: [],
    ...overrides,
  };
}

function gateway(id: string, key: string, overrides: Partial<GatewayOrder> = {}): GatewayOrder {
  return {
    id,
    merchantId: 'merchant-a',
    status: 'executed',
    amount: 1250,
    currency: 'EUR',
    reference: `ref-${key}`,
    reason: null,
    amountRefunded: 0,
    ...overrides,
  };
}

function charge(reference: string, overrides: Partial<LedgerPayment> = {}): LedgerPayment {
  return {
    reference,
    merchantId: 'merchant-a',
    status: 'approved',
    amount: 1250,
    currency: 'EUR',
    requestCount: 1,
    ...overrides,
  };
}

/** An executed, a declined, a rejected and a failed order, with the ledger a correct system leaves. */
function cleanRun(): RunEvidence {
  return {
    orders: [
      sent('k1', 'ord_1', { terminalSeen: [{ id: 'ord_1', status: 'executed' }] }),
      sent('k2', 'ord_2', { expectation: 'decline' }),
      sent('k3', 'ord_3', { expectation: 'reject', currency: 'GBP' }),
      sent('k4', 'ord_4'),
    ],
    gatewayOrders: [
      gateway('ord_1', 'k1'),
      gateway('ord_2', 'k2', { status: 'declined', reason: 'card_declined' }),
      gateway('ord_3', 'k3', { status: 'rejected', currency: 'GBP', reason: 'currency_not_supported' }),
      gateway('ord_4', 'k4', { status: 'failed', reason: 'deadline_exceeded' }),
    ],
    ledger: [
      charge('ord_1', { requestCount: 3 }),
      charge('ord_2', { status: 'declined' }),
      charge('ord_4', { status: 'cancelled', amount: 0, currency: undefined }),
    ],
    journal: [
      { persistenceId: 'merchant-merchant-a', seqNrs: [1, 2, 3, 4, 5] },
      { persistenceId: 'executor-bank-a', seqNrs: [1, 2] },
    ],
  };
}

function kinds(evidence: RunEvidence): ViolationKind[] {
  return checkRun(evidence).map((violation) => violation.kind);
}

describe('checkRun', () => {
  it('finds nothing wrong in a clean run, repeated bank requests included', () => {
    expect(checkRun(cleanRun())).toEqual([]);
  });

  it('finds an accepted order that is not terminal', () => {
    const run = cleanRun();
    const violations = checkRun({
      ...run,
      gatewayOrders: run.gatewayOrders.map((order) =>
        order.id === 'ord_4' ? { ...order, status: 'validated', reason: null } : order,
      ),
    });
    expect(violations).toEqual([expect.objectContaining({ kind: 'not_terminal', orderIds: ['ord_4'] })]);
  });

  it('finds an order the gateway lists as in flight even though no client got a 2xx for it', () => {
    const run = cleanRun();
    const violations = checkRun({
      ...run,
      gatewayOrders: [...run.gatewayOrders, gateway('ord_9', 'k9', { status: 'new' })],
    });
    expect(violations).toEqual([expect.objectContaining({ kind: 'not_terminal', orderIds: ['ord_9'] })]);
  });

  it('finds an accepted order the gateway has lost', () => {
    const run = cleanRun();
    const violations = checkRun({
      ...run,
      gatewayOrders: run.gatewayOrders.filter((order) => order.id !== 'ord_2'),
      ledger: run.ledger.filter((payment) => payment.reference !== 'ord_2'),
    });
    expect(violations).toEqual([
      expect.objectContaining({ kind: 'accepted_order_missing', orderIds: ['ord_2'] }),
    ]);
  });

  it('finds an executed order the bank never charged', () => {
    const run = cleanRun();
    expect(kinds({ ...run, ledger: run.ledger.filter((payment) => payment.reference !== 'ord_1') })).toEqual([
      'executed_not_charged',
    ]);
    expect(
      kinds({
        ...run,
        ledger: run.ledger.map((payment) =>
          payment.reference === 'ord_1' ? { ...payment, status: 'declined' } : payment,
        ),
      }),
    ).toEqual(['executed_not_charged']);
  });

  it('finds an executed order charged with another amount, currency or merchant', () => {
    const run = cleanRun();
    for (const change of [{ amount: 1251 }, { currency: 'USD' }, { merchantId: 'merchant-b' }]) {
      const violations = checkRun({
        ...run,
        ledger: run.ledger.map((payment) =>
          payment.reference === 'ord_1' ? { ...payment, ...change } : payment,
        ),
      });
      expect(violations).toEqual([expect.objectContaining({ kind: 'charge_mismatch', orderIds: ['ord_1'] })]);
    }
  });

  it.each([
    ['declined', 'ord_2'],
    ['rejected', 'ord_3'],
    ['failed', 'ord_4'],
  ])('finds a charge for an order the gateway reports %s', (_status, id) => {
    const run = cleanRun();
    const ledger = [...run.ledger.filter((payment) => payment.reference !== id), charge(id)];
    expect(checkRun({ ...run, ledger })).toEqual([
      expect.objectContaining({ kind: 'charged_not_executed', orderIds: [id] }),
    ]);
  });

  it('finds a charge for a reference the gateway has no order for', () => {
    const run = cleanRun();
    expect(checkRun({ ...run, ledger: [...run.ledger, charge('ord_stray')] })).toEqual([
      expect.objectContaining({ kind: 'charged_unknown', orderIds: ['ord_stray'] }),
    ]);
  });

  it('finds a double charge: one idempotency key, two orders, both charged', () => {
    const run = cleanRun();
    const violations = checkRun({
      ...run,
      orders: run.orders.map((order) =>
        order.key === 'k1' ? { ...order, acceptedIds: ['ord_1', 'ord_1b'] } : order,
      ),
      gatewayOrders: [...run.gatewayOrders, gateway('ord_1b', 'k1')],
      ledger: [...run.ledger, charge('ord_1b')],
    });
    expect(violations).toEqual([
      expect.objectContaining({ kind: 'key_many_orders', orderIds: ['ord_1', 'ord_1b'] }),
      expect.objectContaining({ kind: 'double_charge', orderIds: ['ord_1', 'ord_1b'] }),
    ]);
  });

  it('finds a double charge through the merchant reference when the client never saw the second order', () => {
    const run = cleanRun();
    const violations = checkRun({
      ...run,
      gatewayOrders: [...run.gatewayOrders, gateway('ord_1b', 'k1')],
      ledger: [...run.ledger, charge('ord_1b')],
    });
    expect(violations.map((violation) => violation.kind)).toEqual(['key_many_orders', 'double_charge']);
    expect(violations[1]?.orderIds).toEqual(['ord_1', 'ord_1b']);
  });

  it('finds a key mapped to two orders even when only one was charged', () => {
    const run = cleanRun();
    const violations = checkRun({
      ...run,
      orders: run.orders.map((order) =>
        order.key === 'k2' ? { ...order, acceptedIds: ['ord_2', 'ord_2b'] } : order,
      ),
      gatewayOrders: [
        ...run.gatewayOrders,
        gateway('ord_2b', 'k2', { status: 'declined', reason: 'card_declined' }),
      ],
    });
    expect(violations).toEqual([
      expect.objectContaining({ kind: 'key_many_orders', orderIds: ['ord_2', 'ord_2b'] }),
    ]);
  });

  it('finds a gap, a duplicate and a wrong start in journal sequence numbers', () => {
    const run = cleanRun();
    const violations = checkRun({
      ...run,
      journal: [
        { persistenceId: 'merchant-merchant-a', seqNrs: [1, 2, 4, 5] },
        { persistenceId: 'merchant-merchant-b', seqNrs: [1, 2, 2, 3] },
        { persistenceId: 'executor-bank-a', seqNrs: [2, 3] },
      ],
    });
    expect(violations.map((violation) => [violation.kind, violation.detail])).toEqual([
      ['journal_gap', 'merchant-merchant-a: expected seq_nr 3, found 4 (of 4 events)'],
      ['journal_gap', 'merchant-merchant-b: expected seq_nr 3, found 2 (of 4 events)'],
      ['journal_gap', 'executor-bank-a: expected seq_nr 1, found 2 (of 2 events)'],
    ]);
  });

  it('finds a terminal status that changed after a client saw it', () => {
    const run = cleanRun();
    const violations = checkRun({
      ...run,
      orders: run.orders.map((order) =>
        order.key === 'k2' ? { ...order, terminalSeen: [{ id: 'ord_2', status: 'failed' }] } : order,
      ),
    });
    expect(violations).toEqual([expect.objectContaining({ kind: 'status_changed', orderIds: ['ord_2'] })]);
  });

  it('finds an order recorded differently from the body sent', () => {
    const run = cleanRun();
    const violations = checkRun({
      ...run,
      orders: run.orders.map((order) => (order.key === 'k1' ? { ...order, amount: 999 } : order)),
    });
    expect(violations).toEqual([expect.objectContaining({ kind: 'order_mismatch', orderIds: ['ord_1'] })]);
  });

  it('finds an outcome the card cannot have: a rule-breaking order executed, a test card approved', () => {
    const run = cleanRun();
    const violations = checkRun({
      ...run,
      orders: run.orders.map((order) => (order.key === 'k1' ? { ...order, expectation: 'reject' } : order)),
    });
    expect(violations).toEqual([
      expect.objectContaining({ kind: 'unexpected_outcome', orderIds: ['ord_1'] }),
    ]);
    const declinedExecuted = checkRun({
      ...run,
      orders: run.orders.map((order) => (order.key === 'k1' ? { ...order, expectation: 'decline' } : order)),
    });
    expect(declinedExecuted.map((violation) => violation.kind)).toEqual(['unexpected_outcome']);
  });

  it('accepts the outcomes faults explain: do_not_honor declines, failures, velocity rejections', () => {
    const run = cleanRun();
    const evidence: RunEvidence = {
      ...run,
      orders: [
        ...run.orders,
        sent('k5', 'ord_5'),
        sent('k6', 'ord_6', { expectation: 'decline' }),
        sent('k7', 'ord_7', { expectation: 'decline' }),
      ],
      gatewayOrders: [
        ...run.gatewayOrders,
        gateway('ord_5', 'k5', { status: 'declined', reason: 'do_not_honor' }),
        gateway('ord_6', 'k6', { status: 'rejected', reason: 'velocity_exceeded' }),
        gateway('ord_7', 'k7', { status: 'failed', reason: 'bank_unavailable' }),
      ],
    };
    expect(checkRun(evidence)).toEqual([]);
    const approvedRejected = checkRun({
      ...evidence,
      gatewayOrders: evidence.gatewayOrders.map((order) =>
        order.id === 'ord_5' ? { ...order, status: 'rejected', reason: 'velocity_exceeded' } : order,
      ),
    });
    expect(approvedRejected.map((violation) => violation.kind)).toEqual(['unexpected_outcome']);
  });

  it('finds a retry refused with 4xx', () => {
    const run = cleanRun();
    const violations = checkRun({
      ...run,
      orders: run.orders.map((order) =>
        order.key === 'k1'
          ? { ...order, refusals: [{ status: 422, code: 'idempotency_key_reused' }] }
          : order,
      ),
    });
    expect(violations).toEqual([
      expect.objectContaining({
        kind: 'request_refused',
        detail: expect.stringContaining('idempotency_key_reused'),
      }),
    ]);
  });
});
