import { type OrderStatus, terminalStatuses } from '../payments/order.js';
import { assertNever } from '../runtime/assert-never.js';
import { refundViolationKinds } from './refund-check.js';
import { webhookViolationKinds } from './webhook-check.js';

/**
 * The chaos run's judge: a pure function from the evidence gathered after the run (what the
 * merchants' clients saw, what the gateway reports, what the bank's ledger holds, the journal's
 * sequence numbers) to the list of broken promises. It does no I/O, so hand-made evidence tests it
 * (checker.unit.spec.ts) and a seed's evidence can be judged again offline.
 *
 * "Charged" means a ledger record with status `approved`: a declined record moved no money and a
 * `cancelled` record is a tombstone the gateway wrote to settle a reference as not charged.
 */

/** What the load meant an order to meet at the gateway, from the card, amount and currency it sent. */
export type Expectation = 'approve' | 'decline' | 'reject';

/** One order as the merchant's client knows it: one idempotency key, one body. */
export interface SentOrder {
  /** The idempotency key as the merchant knows it (every retry of the order reuses it). */
  readonly key: string;
  readonly merchantId: string;
  /** The merchant's own order reference, sent in the body; one per key. */
  readonly reference: string;
  readonly amount: number;
  readonly currency: string;
  readonly expectation: Expectation;
  /** Distinct order ids in the 2xx answers to this order's requests. */
  readonly acceptedIds: readonly string[];
  /** Terminal statuses seen in answers and polls, per order id; a terminal status never changes. */
  readonly terminalSeen: ReadonlyArray<{ readonly id: string; readonly status: OrderStatus }>;
  /** 4xx answers to requests the client had every right to send (same key, same body). */
  readonly refusals: ReadonlyArray<{ readonly status: number; readonly code: string }>;
}

/** An order as the gateway's API lists it after the run. */
export interface GatewayOrder {
  readonly id: string;
  readonly merchantId: string;
  readonly status: OrderStatus;
  readonly amount: number;
  readonly currency: string;
  /** The merchant's reference from the body, if it sent one. */
  readonly reference: string | null;
  readonly reason: string | null;
  /** What the gateway reports as refunded (succeeded refunds), in minor units. */
  readonly amountRefunded: number;
}

/** A record of the bank's ledger; `reference` is the gateway's order id. */
export interface LedgerPayment {
  readonly reference: string;
  readonly merchantId: string;
  readonly status: 'approved' | 'declined' | 'cancelled';
  readonly amount: number;
  readonly currency?: string | undefined;
  readonly requestCount: number;
}

/** The sequence numbers of one persistence id, ascending, as read from the journal. */
export interface JournalSequence {
  readonly persistenceId: string;
  readonly seqNrs: readonly number[];
}

export interface RunEvidence {
  readonly orders: readonly SentOrder[];
  readonly gatewayOrders: readonly GatewayOrder[];
  readonly ledger: readonly LedgerPayment[];
  readonly journal: readonly JournalSequence[];
}

export const violationKinds = [
  /** A 2xx named an order id the gateway no longer knows: an accepted order was lost. */
  'accepted_order_missing',
  /** An order (accepted, or listed by the gateway) is still new or validated after settling. */
  'not_terminal',
  /** An order was seen with one terminal status and later with another. */
  'status_changed',
  /** The gateway's order differs from the body the client sent (amount, currency, reference). */
  'order_mismatch',
  /** The final status contradicts the card, amount or currency (e.g. a Luhn-invalid card executed). */
  'unexpected_outcome',
  /** The gateway refused (4xx) a retry with the same key and body. */
  'request_refused',
  /** An executed order with no approved payment at the bank. */
  'executed_not_charged',
  /** An executed order whose approved payment has another amount, currency or merchant. */
  'charge_mismatch',
  /** An approved payment for an order the gateway reports as rejected, declined or failed. */
  'charged_not_executed',
  /** An approved payment whose reference is no order the gateway knows. */
  'charged_unknown',
  /** Two or more orders charged for one merchant order (one idempotency key or one reference). */
  'double_charge',
  /** One idempotency key (or one merchant reference) led to more than one order id. */
  'key_many_orders',
  /** A persistence id's sequence numbers are not exactly 1..n. */
  'journal_gap',
  ...refundViolationKinds,
  ...webhookViolationKinds,
] as const;
export type ViolationKind = (typeof violationKinds)[number];

export interface Violation {
  readonly kind: ViolationKind;
  /** The orders concerned; for a refund or a webhook, the refund or event ids. */
  readonly orderIds: readonly string[];
  readonly detail: string;
}

export function checkRun(evidence: RunEvidence): Violation[] {
  const gatewayById = new Map(evidence.gatewayOrders.map((order) => [order.id, order]));
  const ledgerByReference = new Map(evidence.ledger.map((payment) => [payment.reference, payment]));
  return [
    ...checkSentOrders(evidence.orders, gatewayById),
    ...checkGatewayOrders(evidence.orders, evidence.gatewayOrders, ledgerByReference),
    ...checkLedger(evidence.ledger, gatewayById),
    ...checkOneOrderPerKey(evidence.orders, evidence.gatewayOrders, ledgerByReference),
    ...checkJournal(evidence.journal),
  ];
}

function isTerminalStatus(status: OrderStatus): boolean {
  return terminalStatuses.has(status);
}

function isCharged(payment: LedgerPayment | undefined): boolean {
  return payment?.status === 'approved';
}

/** What clients saw, against what the gateway says now. */
function checkSentOrders(
  orders: readonly SentOrder[],
  gatewayById: ReadonlyMap<string, GatewayOrder>,
): Violation[] {
  const violations: Violation[] = [];
  for (const sent of orders) {
    if (sent.refusals.length > 0) {
      const answers = sent.refusals.map((refusal) => `${refusal.status} ${refusal.code}`).join(', ');
      violations.push({
        kind: 'request_refused',
        orderIds: [...sent.acceptedIds],
        detail: `key ${sent.key}: a retry with the same key and body was refused (${answers})`,
      });
    }
    for (const id of sent.acceptedIds) {
      const order = gatewayById.get(id);
      if (order === undefined) {
        violations.push({
          kind: 'accepted_order_missing',
          orderIds: [id],
          detail: `key ${sent.key} got a 2xx naming ${id}, which the gateway does not list`,
        });
        continue;
      }
      violations.push(...compareWithSent(sent, order));
    }
  }
  return violations;
}

function compareWithSent(sent: SentOrder, order: GatewayOrder): Violation[] {
  const violations: Violation[] = [];
  const differences = [
    order.merchantId === sent.merchantId ? '' : `merchant ${order.merchantId} ≠ ${sent.merchantId}`,
    order.amount === sent.amount ? '' : `amount ${order.amount} ≠ ${sent.amount}`,
    order.currency === sent.currency ? '' : `currency ${order.currency} ≠ ${sent.currency}`,
    order.reference === sent.reference ? '' : `reference ${order.reference} ≠ ${sent.reference}`,
  ].filter((difference) => difference !== '');
  if (differences.length > 0) {
    violations.push({
      kind: 'order_mismatch',
      orderIds: [order.id],
      detail: `key ${sent.key}: the gateway's order differs from the body sent: ${differences.join(', ')}`,
    });
  }
  const seen = new Set(
    sent.terminalSeen.filter((entry) => entry.id === order.id).map((entry) => entry.status),
  );
  const changed = [...seen].filter((status) => status !== order.status);
  if (changed.length > 0) {
    violations.push({
      kind: 'status_changed',
      orderIds: [order.id],
      detail: `seen as ${changed.join(', ')}, now ${order.status}: a terminal status changed`,
    });
  }
  if (isTerminalStatus(order.status) && !outcomeFits(sent, order)) {
    violations.push({
      kind: 'unexpected_outcome',
      orderIds: [order.id],
      detail: `a card meant to ${sent.expectation} ended ${order.status} (${order.reason ?? 'no reason'})`,
    });
  }
  return violations;
}

/**
 * Which final statuses are consistent with what the load sent. Faults legitimately turn an approved
 * card into `failed` (bank unreachable past the deadline) or `declined` with `do_not_honor` (the
 * simulator's declineRate); the fixed test cards may meet the velocity rule, as a real card would.
 */
function outcomeFits(sent: SentOrder, order: GatewayOrder): boolean {
  switch (sent.expectation) {
    case 'reject':
      return order.status === 'rejected';
    case 'decline':
      return (
        order.status === 'declined' ||
        order.status === 'failed' ||
        (order.status === 'rejected' && order.reason === 'velocity_exceeded')
      );
    case 'approve':
      return (
        order.status === 'executed' ||
        order.status === 'failed' ||
        (order.status === 'declined' && order.reason === 'do_not_honor')
      );
    default:
      return assertNever(sent.expectation);
  }
}

/** Every order the gateway lists, whoever sent it: terminal, and if executed, charged as recorded. */
function checkGatewayOrders(
  orders: readonly SentOrder[],
  gatewayOrders: readonly GatewayOrder[],
  ledgerByReference: ReadonlyMap<string, LedgerPayment>,
): Violation[] {
  const accepted = new Set(orders.flatMap((sent) => sent.acceptedIds));
  const violations: Violation[] = [];
  for (const order of gatewayOrders) {
    if (!isTerminalStatus(order.status)) {
      violations.push({
        kind: 'not_terminal',
        orderIds: [order.id],
        detail: `still ${order.status} after settling (${accepted.has(order.id) ? 'accepted with a 2xx' : 'never answered with a 2xx'})`,
      });
      continue;
    }
    if (order.status !== 'executed') continue;
    const payment = ledgerByReference.get(order.id);
    if (payment === undefined || !isCharged(payment)) {
      violations.push({
        kind: 'executed_not_charged',
        orderIds: [order.id],
        detail: `executed, but the bank has ${payment === undefined ? 'no record' : `a ${payment.status} record`} for it`,
      });
      continue;
    }
    const differences = [
      payment.amount === order.amount ? '' : `amount ${payment.amount} ≠ ${order.amount}`,
      payment.currency === order.currency ? '' : `currency ${payment.currency} ≠ ${order.currency}`,
      payment.merchantId === order.merchantId ? '' : `merchant ${payment.merchantId} ≠ ${order.merchantId}`,
    ].filter((difference) => difference !== '');
    if (differences.length > 0) {
      violations.push({
        kind: 'charge_mismatch',
        orderIds: [order.id],
        detail: `the bank charged something else than the order says: ${differences.join(', ')}`,
      });
    }
  }
  return violations;
}

/**
 * Every charge belongs to an executed order. A charge for an order that is still in flight is left
 * to `not_terminal`, which already reports that order: the gateway may not have recorded the answer.
 */
function checkLedger(
  ledger: readonly LedgerPayment[],
  gatewayById: ReadonlyMap<string, GatewayOrder>,
): Violation[] {
  const violations: Violation[] = [];
  for (const payment of ledger) {
    if (!isCharged(payment)) continue;
    const order = gatewayById.get(payment.reference);
    if (order === undefined) {
      violations.push({
        kind: 'charged_unknown',
        orderIds: [payment.reference],
        detail: `the bank charged ${payment.amount} ${payment.currency ?? ''} to ${payment.merchantId} for a reference the gateway has no order for`,
      });
    } else if (isTerminalStatus(order.status) && order.status !== 'executed') {
      violations.push({
        kind: 'charged_not_executed',
        orderIds: [order.id],
        detail: `the bank charged ${payment.amount} ${payment.currency ?? ''} for an order the gateway reports ${order.status}`,
      });
    }
  }
  return violations;
}

/**
 * One merchant order, one gateway order, at most one charge. The bank deduplicates by reference,
 * so a double charge can only show as two order ids for one merchant order, both approved. Orders
 * are grouped by the client's idempotency key and, independently, by the merchant reference in the
 * gateway's records (which also catches orders whose 2xx never reached the client).
 */
function checkOneOrderPerKey(
  orders: readonly SentOrder[],
  gatewayOrders: readonly GatewayOrder[],
  ledgerByReference: ReadonlyMap<string, LedgerPayment>,
): Violation[] {
  const groups = new Map<string, { label: string; ids: Set<string> }>();
  const add = (group: string, label: string, id: string): void => {
    const entry = groups.get(group) ?? { label, ids: new Set<string>() };
    entry.ids.add(id);
    groups.set(group, entry);
  };
  for (const sent of orders) {
    for (const id of sent.acceptedIds)
      add(`key\u0000${sent.merchantId}\u0000${sent.key}`, `key ${sent.key}`, id);
  }
  for (const order of gatewayOrders) {
    if (order.reference === null) continue;
    add(`ref\u0000${order.merchantId}\u0000${order.reference}`, `reference ${order.reference}`, order.id);
  }
  const violations: Violation[] = [];
  // A key and its reference usually name the same set of ids: report each set once.
  const reported = new Set<string>();
  for (const { label, ids } of groups.values()) {
    if (ids.size < 2) continue;
    const orderIds = [...ids].sort();
    const signature = orderIds.join(',');
    if (reported.has(signature)) continue;
    reported.add(signature);
    violations.push({
      kind: 'key_many_orders',
      orderIds,
      detail: `${label} led to ${orderIds.length} orders`,
    });
    const charged = orderIds.filter((id) => isCharged(ledgerByReference.get(id)));
    if (charged.length > 1) {
      violations.push({
        kind: 'double_charge',
        orderIds: charged,
        detail: `${label}: the bank charged ${charged.length} orders for one merchant order`,
      });
    }
  }
  return violations;
}

function checkJournal(journal: readonly JournalSequence[]): Violation[] {
  const violations: Violation[] = [];
  for (const { persistenceId, seqNrs } of journal) {
    const index = seqNrs.findIndex((seqNr, position) => seqNr !== position + 1);
    if (index === -1) continue;
    violations.push({
      kind: 'journal_gap',
      orderIds: [],
      detail: `${persistenceId}: expected seq_nr ${index + 1}, found ${seqNrs[index]} (of ${seqNrs.length} events)`,
    });
  }
  return violations;
}
