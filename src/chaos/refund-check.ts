/**
 * The refunds' judge, for the chaos run and the simulator alike: what the merchants' clients were
 * told, what the gateway reports, and what the bank's ledger holds, against the promises of a
 * refund — the bank gave back exactly what Remit reports as refunded, never more than was charged,
 * each refund reference at most once, and every refund a client was told of exists and is finished.
 * Pure: hand-made evidence tests it.
 */

export interface SentRefund {
  readonly key: string;
  readonly merchantId: string;
  readonly orderId: string;
  readonly amount: number;
  /** Distinct refund ids in the 2xx answers to this request's sends. */
  readonly acceptedIds: readonly string[];
  /** 4xx answers; `refund_exceeds_payment` is the only one a client refunding an executed order can earn. */
  readonly refusals: ReadonlyArray<{ readonly status: number; readonly code: string }>;
  /** Terminal statuses seen in answers and polls. */
  readonly terminalSeen: ReadonlyArray<{ readonly id: string; readonly status: string }>;
}

export interface GatewayRefund {
  readonly id: string;
  readonly orderId: string;
  readonly merchantId: string;
  readonly status: 'pending' | 'succeeded' | 'failed';
  readonly amount: number;
  readonly currency: string;
}

/** What the gateway reports of one order it was asked to refund. */
export interface RefundedOrder {
  readonly id: string;
  readonly merchantId: string;
  readonly amountRefunded: number;
}

export interface LedgerRefund {
  readonly reference: string;
  readonly paymentReference: string;
  readonly merchantId: string;
  readonly amount: number;
  readonly currency: string;
  readonly status: 'succeeded' | 'failed';
  /**
   * Times the bank received this reference. More than one is not a violation: a send whose outcome
   * was unknown is inquired, and after a `not_found` sent again, while the first can still arrive
   * late; the bank's deduplication absorbs it. (The simulator, which sees every call the gateway
   * makes, checks that no refund is ever sent again without that inquiry: `refunds.sent-once`.)
   */
  readonly requestCount: number;
}

export interface ChargedPayment {
  readonly reference: string;
  readonly status: string;
  readonly amount: number;
}

export interface RefundEvidence {
  readonly sent: readonly SentRefund[];
  readonly gatewayRefunds: readonly GatewayRefund[];
  readonly orders: readonly RefundedOrder[];
  readonly ledgerRefunds: readonly LedgerRefund[];
  readonly ledgerPayments: readonly ChargedPayment[];
}

export const refundViolationKinds = [
  /** A 2xx named a refund id the gateway does not know: an accepted refund was lost. */
  'refund_accepted_missing',
  /** A refund still pending after settling. */
  'refund_not_terminal',
  /** A refund seen with one terminal status, then another (or the gateway's final one differs). */
  'refund_status_changed',
  /** A refusal other than `refund_exceeds_payment` of a refund of an executed order. */
  'refund_refused',
  /** The gateway's refund and the bank's record of its reference disagree (status or amount or payment). */
  'refund_mismatch',
  /** A refund at the bank whose reference is no refund the gateway knows. */
  'refund_unknown',
  /** An order whose refunds at the bank add up to another amount than the gateway's `amountRefunded`. */
  'refunded_mismatch',
  /** Refunds at the bank above the payment's charged amount, or of a payment not charged. */
  'over_refund',
  /** Two refund records at the bank with one reference: one refund given back twice. */
  'refund_reference_repeated',
] as const;
export type RefundViolationKind = (typeof refundViolationKinds)[number];

export interface RefundViolation {
  readonly kind: RefundViolationKind;
  readonly ids: readonly string[];
  readonly detail: string;
}

const allowedRefusals: ReadonlySet<string> = new Set(['refund_exceeds_payment']);

export function checkRefunds(evidence: RefundEvidence): RefundViolation[] {
  const violations: RefundViolation[] = [];
  const gatewayById = new Map(evidence.gatewayRefunds.map((refund) => [refund.id, refund]));
  const bankByReference = new Map(evidence.ledgerRefunds.map((refund) => [refund.reference, refund]));
  const charged = new Map(evidence.ledgerPayments.map((payment) => [payment.reference, payment]));

  for (const sent of evidence.sent) {
    for (const id of sent.acceptedIds) {
      if (!gatewayById.has(id)) {
        violations.push({
          kind: 'refund_accepted_missing',
          ids: [id],
          detail: `key ${sent.key} was answered with it`,
        });
      }
    }
    for (const refusal of sent.refusals) {
      if (!allowedRefusals.has(refusal.code)) {
        violations.push({
          kind: 'refund_refused',
          ids: [sent.orderId],
          detail: `key ${sent.key}: ${refusal.status} ${refusal.code}`,
        });
      }
    }
    const seen = new Map<string, Set<string>>();
    for (const { id, status } of sent.terminalSeen) seen.set(id, (seen.get(id) ?? new Set()).add(status));
    for (const [id, statuses] of seen) {
      const final = gatewayById.get(id)?.status;
      if (statuses.size > 1 || (final !== undefined && !statuses.has(final))) {
        violations.push({
          kind: 'refund_status_changed',
          ids: [id],
          detail: `seen ${[...statuses].join(', ')}; the gateway reports ${final ?? 'nothing'}`,
        });
      }
    }
  }

  for (const refund of evidence.gatewayRefunds) {
    const bank = bankByReference.get(refund.id);
    if (refund.status === 'pending') {
      violations.push({ kind: 'refund_not_terminal', ids: [refund.id], detail: `order ${refund.orderId}` });
    } else if (refund.status === 'succeeded') {
      if (
        bank === undefined ||
        bank.status !== 'succeeded' ||
        bank.amount !== refund.amount ||
        bank.currency !== refund.currency ||
        bank.paymentReference !== refund.orderId
      ) {
        violations.push({
          kind: 'refund_mismatch',
          ids: [refund.id],
          detail: `succeeded at the gateway (${refund.amount} ${refund.currency} of ${refund.orderId}); the bank has ${describe(bank)}`,
        });
      }
    } else if (bank?.status === 'succeeded') {
      violations.push({
        kind: 'refund_mismatch',
        ids: [refund.id],
        detail: `failed at the gateway; the bank has ${describe(bank)}`,
      });
    }
  }

  const refundedAtBank = new Map<string, number>();
  const references = new Set<string>();
  for (const refund of evidence.ledgerRefunds) {
    if (!gatewayById.has(refund.reference)) {
      violations.push({ kind: 'refund_unknown', ids: [refund.reference], detail: describe(refund) });
    }
    if (references.has(refund.reference)) {
      violations.push({
        kind: 'refund_reference_repeated',
        ids: [refund.reference],
        detail: describe(refund),
      });
    }
    references.add(refund.reference);
    if (refund.status === 'succeeded') {
      refundedAtBank.set(
        refund.paymentReference,
        (refundedAtBank.get(refund.paymentReference) ?? 0) + refund.amount,
      );
    }
  }
  for (const [orderId, refunded] of refundedAtBank) {
    const payment = charged.get(orderId);
    if (payment === undefined || payment.status !== 'approved' || refunded > payment.amount) {
      violations.push({
        kind: 'over_refund',
        ids: [orderId],
        detail: `refunded ${refunded} of ${payment === undefined ? 'no payment' : `${payment.status} ${payment.amount}`}`,
      });
    }
  }
  const reported = new Set(evidence.orders.map((order) => order.id));
  for (const [orderId, refunded] of refundedAtBank) {
    if (!reported.has(orderId)) {
      violations.push({
        kind: 'refunded_mismatch',
        ids: [orderId],
        detail: `the bank refunded ${refunded} of an order the gateway does not report`,
      });
    }
  }
  for (const order of evidence.orders) {
    const refunded = refundedAtBank.get(order.id) ?? 0;
    if (refunded !== order.amountRefunded) {
      violations.push({
        kind: 'refunded_mismatch',
        ids: [order.id],
        detail: `the bank refunded ${refunded}, the gateway reports ${order.amountRefunded}`,
      });
    }
  }
  return violations;
}

function describe(refund: LedgerRefund | undefined): string {
  return refund === undefined
    ? 'no record'
    : `${refund.status} ${refund.amount} ${refund.currency} of ${refund.paymentReference}`;
}
