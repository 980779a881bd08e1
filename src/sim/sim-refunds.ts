import type { RefundRecord as LedgerRefundRecord } from '../bank/ledger.js';
import {
  checkRefunds,
  type GatewayRefund,
  type RefundedOrder,
  type SentRefund,
} from '../chaos/refund-check.js';
import { ApiError } from '../node/api-error.js';
import type { RefundOperations } from '../node/refund-operations.js';
import type { BankErrorKind, BankPort } from '../payments/executor-protocol.js';
import { paymentEvents } from '../payments/payment-events.js';
import type { PersistedEvent } from '../store/journal.js';
import type { Violation } from './invariants.js';
import type { RefundWorkload } from './workload.js';

/**
 * The simulator's merchants refunding orders, and the refunds' end-of-seed checks: the same judge
 * as the chaos run's (`checkRefunds`), over what the clients were answered, the Payments' journals
 * (what Remit recorded) and the simulated bank's ledger.
 */

/** One refund request of a client, retried until it has an answer that settles it. */
interface RefundRequestState {
  readonly workload: RefundWorkload;
  attempts: number;
  lastSentAt: number;
  retryAt: number;
  inFlight: number | undefined;
  answered: boolean;
  /** `order_not_refundable` answers so far: the order may not be executed yet, or never will be. */
  notRefundable: number;
  readonly acceptedIds: Set<string>;
  readonly refusals: Array<{ status: number; code: string }>;
}

/**
 * A refund of an order not executed is asked again this many times, a second apart, then given up:
 * by then an order still in flight would have finished (its deadline is shorter).
 */
const notRefundableAnswersMax = 60;

export interface RefundClientSettings {
  readonly attemptTimeoutMs: number;
  readonly attemptsMax: number;
  readonly retryAfterMs: number;
}

export interface RefundClientCounters {
  refundAttempts: number;
  refundsAccepted: number;
  refundsRefused: number;
}

export class SimRefundClient {
  private readonly requests: RefundRequestState[];
  private attemptCount = 0;
  readonly counters: RefundClientCounters = { refundAttempts: 0, refundsAccepted: 0, refundsRefused: 0 };

  constructor(
    workload: readonly RefundWorkload[],
    private readonly settings: RefundClientSettings,
    private readonly trace: (line: string) => void,
  ) {
    this.requests = workload.map((refund) => ({
      workload: refund,
      attempts: 0,
      lastSentAt: Number.NEGATIVE_INFINITY,
      retryAt: Number.NEGATIVE_INFINITY,
      inFlight: undefined,
      answered: false,
      notRefundable: 0,
      acceptedIds: new Set(),
      refusals: [],
    }));
  }

  get size(): number {
    return this.requests.length;
  }

  /**
   * Sends every refund due at `elapsed` (ms since the seed's start) through one of the ready
   * nodes' refund operations; `answerLost` says whether this answer never reaches the client.
   */
  tick(
    now: number,
    elapsed: number,
    nodes: ReadonlyArray<{ readonly id: number; readonly refunds: RefundOperations }>,
    isLive: (nodeId: number) => boolean,
    answerLost: () => boolean,
  ): void {
    for (const [index, request] of this.requests.entries()) {
      if (request.answered || request.workload.at > elapsed || now < request.retryAt) continue;
      const waiting =
        request.inFlight !== undefined && now - request.lastSentAt < this.settings.attemptTimeoutMs;
      if (waiting || request.attempts >= this.settings.attemptsMax) continue;
      request.lastSentAt = now;
      request.attempts++;
      this.counters.refundAttempts++;
      const attempt = ++this.attemptCount;
      request.inFlight = attempt;
      const what = `refund #${index} attempt ${request.attempts}`;
      const node = nodes[attempt % Math.max(1, nodes.length)];
      if (node === undefined) {
        this.trace(`${what}: no node`);
        continue;
      }
      const { workload } = request;
      this.trace(`${what} ${workload.orderId} ${workload.amount} -> n${node.id}`);
      const settle = (refundId: string | undefined, status: number, code: string): void => {
        if (!isLive(node.id)) return;
        if (request.inFlight === attempt) request.inFlight = undefined;
        if (answerLost()) {
          this.trace(`${what} <- ${status} ${refundId ?? code} LOST`);
          return;
        }
        this.trace(`${what} <- ${status} ${refundId ?? code}`);
        if (refundId !== undefined) {
          request.acceptedIds.add(refundId);
          request.answered = true;
          this.counters.refundsAccepted++;
        } else if (code === 'order_not_refundable' && ++request.notRefundable >= notRefundableAnswersMax) {
          // The order ended without being executed (declined, failed): the merchant gives up.
          request.answered = true;
        } else if (
          status >= 400 &&
          status < 500 &&
          code !== 'order_not_refundable' &&
          code !== 'order_not_found'
        ) {
          // Final. An order not executed yet (or not yet known to the node) is asked again later.
          request.refusals.push({ status, code });
          request.answered = true;
          this.counters.refundsRefused++;
        } else {
          request.retryAt = now + this.settings.retryAfterMs;
        }
      };
      node.refunds
        .requestRefund(
          workload.merchantId,
          workload.orderId,
          { amount: BigInt(workload.amount), currency: undefined, reason: undefined },
          workload.idempotencyKey,
        )
        .then(
          (answer) => settle(answer.refund.id, answer.replayed ? 200 : 201, 'ok'),
          (error: unknown) =>
            error instanceof ApiError
              ? settle(undefined, error.status, error.code)
              : settle(undefined, 500, error instanceof Error ? error.name : 'internal'),
        );
    }
  }

  /** Refund requests still without an answer that settles them, for the seed's quiescence. */
  pending(): string[] {
    return this.requests.flatMap((request, index) =>
      request.answered || request.attempts >= this.settings.attemptsMax
        ? []
        : [`refund request #${index} unanswered`],
    );
  }

  sent(): SentRefund[] {
    return this.requests.map(({ workload, acceptedIds, refusals }) => ({
      key: workload.idempotencyKey,
      merchantId: workload.merchantId,
      orderId: workload.orderId,
      amount: workload.amount,
      acceptedIds: [...acceptedIds],
      refusals: [...refusals],
      terminalSeen: [],
    }));
  }
}

/** The refunds Remit recorded, folded from the Payments' journals (`payment-<order id>`). */
export function refundsFromJournal(
  journal: ReadonlyArray<{
    readonly persistenceId: string;
    readonly rows: readonly PersistedEvent[];
  }>,
): GatewayRefund[] {
  const refunds = new Map<string, GatewayRefund>();
  for (const { persistenceId, rows } of journal) {
    for (const row of rows) {
      const event = paymentEvents.deserialize(row, { persistenceId, seqNr: row.seqNr });
      const known = refunds.get(event.refundId);
      if (event.type === 'RefundRequested') {
        refunds.set(event.refundId, {
          id: event.refundId,
          orderId: event.orderId,
          merchantId: event.merchantId,
          status: 'pending',
          amount: Number(event.amount),
          currency: event.currency,
        });
      } else if (known !== undefined && event.type === 'RefundSucceeded') {
        refunds.set(event.refundId, { ...known, status: 'succeeded' });
      } else if (known !== undefined && event.type === 'RefundFailed') {
        refunds.set(event.refundId, { ...known, status: 'failed' });
      }
    }
  }
  return [...refunds.values()];
}

/** What Remit reports as refunded per order: from its read model when given, else from the journal. */
export function refundedOrders(
  refunds: readonly GatewayRefund[],
  readModelAmountRefunded: ((orderId: string) => number | undefined) | undefined,
): RefundedOrder[] {
  const byOrder = new Map<string, RefundedOrder>();
  for (const refund of refunds) {
    const known = byOrder.get(refund.orderId);
    const succeeded = refund.status === 'succeeded' ? refund.amount : 0;
    byOrder.set(refund.orderId, {
      id: refund.orderId,
      merchantId: refund.merchantId,
      amountRefunded: (known?.amountRefunded ?? 0) + succeeded,
    });
  }
  if (readModelAmountRefunded === undefined) return [...byOrder.values()];
  return [...byOrder.values()].map((order) => ({
    ...order,
    amountRefunded: readModelAmountRefunded(order.id) ?? -1,
  }));
}

export interface SimRefundEvidence {
  readonly sent: readonly SentRefund[];
  readonly remit: readonly GatewayRefund[];
  readonly orders: readonly RefundedOrder[];
  readonly bank: readonly LedgerRefundRecord[];
  readonly payments: ReadonlyArray<{
    readonly reference: string;
    readonly status: string;
    readonly amount: number;
  }>;
}

/** The refund invariants as the simulator names them: `refunds.<violation kind>`. */
export function checkSimRefunds(evidence: SimRefundEvidence): Violation[] {
  return checkRefunds({
    sent: evidence.sent,
    gatewayRefunds: evidence.remit,
    orders: evidence.orders,
    ledgerRefunds: evidence.bank.map((refund) => ({
      reference: refund.reference,
      paymentReference: refund.paymentReference,
      merchantId: refund.merchantId,
      amount: refund.amount,
      currency: refund.currency,
      status: refund.status,
      requestCount: refund.requestCount,
    })),
    ledgerPayments: evidence.payments,
  }).map((violation) => ({
    invariant: `refunds.${violation.kind}`,
    detail: `${violation.ids.join(', ')}: ${violation.detail}`,
  }));
}

/**
 * Watches every refund call the gateway's Executors make, on every node, for a resend the rules
 * forbid: a refund sent again while the outcome of an earlier send is unknown (it timed out, or its
 * node died with it in flight) and no inquiry has since answered `not_found`, or sent again after
 * an answer settled it. Such a resend is what can give money back twice at a bank that does not
 * deduplicate; the simulated bank does, so only this watch sees it. A send the bank refused before
 * processing (`retryable`, e.g. a 503) leaves the reference clear.
 */
export class RefundSendWatch {
  /** Per reference: `unknown` after a send whose outcome is not known; `settled` once answered. */
  private readonly state = new Map<string, 'clear' | 'unknown' | 'settled'>();
  readonly violations: Violation[] = [];

  constructor(
    private readonly classify: (error: unknown) => BankErrorKind,
    private readonly now: () => number,
  ) {}

  /** The port with its refund calls watched. */
  watch(port: BankPort): BankPort {
    return {
      ...port,
      refund: (request) => {
        const before = this.state.get(request.reference) ?? 'clear';
        if (before !== 'clear') {
          this.violations.push({
            invariant: 'refunds.sent-once',
            detail: `refund ${request.reference} sent again while its outcome was ${before === 'unknown' ? 'unknown and not inquired' : 'known'}`,
            at: this.now(),
          });
        }
        this.state.set(request.reference, 'unknown');
        return port.refund(request).then(
          (answer) => {
            this.state.set(request.reference, 'settled');
            return answer;
          },
          (error: unknown) => {
            const kind = this.classify(error);
            if (kind === 'refused') this.state.set(request.reference, 'settled');
            else if (kind === 'retryable' && this.state.get(request.reference) === 'unknown') {
              this.state.set(request.reference, 'clear');
            }
            throw error;
          },
        );
      },
      inquireRefund: (reference) =>
        port.inquireRefund(reference).then((answer) => {
          this.state.set(reference, answer.kind === 'not_found' ? 'clear' : 'settled');
          return answer;
        }),
    };
  }
}
