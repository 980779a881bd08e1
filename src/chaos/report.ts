import type { GatewayOrder, JournalSequence, LedgerPayment, Violation } from './checker.js';
import type { DisruptionCounts } from './faults.js';
import type { LoadCounts, OrderRecord, RefundRecord } from './load.js';
import type { GatewayRefund } from './refund-check.js';
import type { LedgerTotals } from './remit-api.js';
import type { WebhookTally } from './webhook-check.js';

/** The chaos run's JSON report: what was done to the system, what it did, and what is wrong. */
export interface ChaosReport {
  readonly ok: boolean;
  readonly seed: number;
  readonly durationS: number;
  readonly killIntervalS: number;
  readonly clients: number;
  readonly sabotage: readonly string[];
  /** `sqlite`, or the PostgreSQL run's schema and whether the harness ran (and killed) the server. */
  readonly store: 'sqlite' | { readonly postgres: DatabaseReport };
  /** The processes that served the merchants: the gateway alone, or a cluster's nodes. */
  readonly nodes: readonly NodeReport[];
  readonly orders: {
    readonly sent: number;
    /** Orders with at least one 2xx answer. */
    readonly accepted: number;
    /** Orders with no definite answer even after the resend while settling. */
    readonly unanswered: number;
    /** Orders with a 4xx answer (each is also a violation). */
    readonly refused: number;
    /** Accepted orders by the gateway's final status (`missing`: the gateway does not list it). */
    readonly byFinalStatus: Readonly<Record<string, number>>;
    /** Every order the gateway lists, by status, whoever's request made it. */
    readonly gatewayByStatus: Readonly<Record<string, number>>;
  };
  readonly requests: LoadCounts;
  readonly disruptions: DisruptionCounts & { readonly unexpectedExits: number };
  readonly bank: {
    readonly payments: number;
    readonly approved: number;
    readonly declined: number;
    readonly cancelled: number;
    readonly requests: number;
    /**
     * Requests beyond the first per reference — repeated payments and cancels after one — all
     * absorbed by the bank's deduplication; a figure, not a violation.
     */
    readonly duplicateRequests: number;
    /** Requests the errorRate fault refused with 503 (not processed). */
    readonly rejectedRequests: number;
    /** How many references got 1, 2, 3, … requests. */
    readonly requestsPerReference: Readonly<Record<string, number>>;
  };
  readonly refunds: {
    /** Refund requests the clients made (each its own key), and those refused (4xx). */
    readonly requested: number;
    readonly refused: number;
    /** The gateway's refunds by final status. */
    readonly byStatus: Readonly<Record<string, number>>;
    /** The bank's refund records, and requests beyond the first per refund reference. */
    readonly atBank: number;
    readonly duplicateRequestsAtBank: number;
  };
  /** The receiver's tally and its crashes; undefined when the run had no webhooks. */
  readonly webhooks: (WebhookTally & { readonly receiverRestarts: number }) | undefined;
  readonly settle: { readonly settled: boolean; readonly ms: number; readonly timeoutMs: number };
  readonly journal: { readonly persistenceIds: number; readonly events: number };
  readonly wallTimeMs: number;
  readonly dataDir: string;
  readonly dataKept: boolean;
  readonly violations: readonly Violation[];
}

/** One serving process: what it was, what it was sent, what the chaos did to it, what it logged. */
export interface NodeReport {
  readonly name: string;
  readonly url: string;
  /** A cluster node's roles (the banks whose Executors it may run); empty for the gateway. */
  readonly roles: readonly string[];
  /** Merchant requests (orders and retries) sent to it. */
  readonly requests: number;
  readonly unexpectedExits: number;
  /** Log lines of a cluster node: shards stopped because their leases were not renewed in time. */
  readonly selfFencing: number;
  /** Log lines of a cluster node: a renewal found the lease taken by another node. */
  readonly leasesLost: number;
}

export interface DatabaseReport {
  readonly schema: string;
  /** The harness ran the server itself and so could SIGKILL it (`disruptions.databaseKills`). */
  readonly serverOwned: boolean;
  readonly schemaKept: boolean;
}

export interface ReportInputs {
  readonly settings: {
    readonly seed: number;
    readonly durationMs: number;
    readonly killIntervalMs: number;
    readonly clients: number;
    readonly sabotage: readonly string[];
  };
  readonly database: DatabaseReport | undefined;
  readonly nodes: readonly NodeReport[];
  readonly records: readonly OrderRecord[];
  readonly loadCounts: LoadCounts;
  readonly disruptions: DisruptionCounts;
  readonly unexpectedExits: number;
  readonly gatewayOrders: readonly GatewayOrder[];
  readonly ledger: readonly LedgerPayment[];
  readonly ledgerTotals: LedgerTotals;
  readonly refunds: readonly RefundRecord[];
  readonly gatewayRefunds: readonly GatewayRefund[];
  readonly webhooks: ChaosReport['webhooks'];
  readonly journal: readonly JournalSequence[];
  readonly settle: ChaosReport['settle'];
  readonly wallTimeMs: number;
  readonly dataDir: string;
  readonly dataKept: boolean;
  readonly violations: readonly Violation[];
}

export function buildReport(inputs: ReportInputs): ChaosReport {
  const statusById = new Map(inputs.gatewayOrders.map((order) => [order.id, order.status]));
  const byFinalStatus: Record<string, number> = {};
  for (const record of inputs.records) {
    for (const id of record.acceptedIds) increment(byFinalStatus, statusById.get(id) ?? 'missing');
  }
  const gatewayByStatus: Record<string, number> = {};
  for (const order of inputs.gatewayOrders) increment(gatewayByStatus, order.status);
  const requestsPerReference: Record<string, number> = {};
  for (const payment of inputs.ledger) increment(requestsPerReference, String(payment.requestCount));
  const totals = inputs.ledgerTotals;
  return {
    ok: inputs.violations.length === 0,
    seed: inputs.settings.seed,
    durationS: inputs.settings.durationMs / 1000,
    killIntervalS: inputs.settings.killIntervalMs / 1000,
    clients: inputs.settings.clients,
    sabotage: inputs.settings.sabotage,
    store: inputs.database === undefined ? 'sqlite' : { postgres: inputs.database },
    nodes: inputs.nodes,
    orders: {
      sent: inputs.records.length,
      accepted: inputs.records.filter((record) => record.acceptedIds.size > 0).length,
      unanswered: inputs.records.filter((record) => !record.answered).length,
      refused: inputs.records.filter((record) => record.refusals.length > 0).length,
      byFinalStatus,
      gatewayByStatus,
    },
    requests: inputs.loadCounts,
    disruptions: { ...inputs.disruptions, unexpectedExits: inputs.unexpectedExits },
    bank: {
      payments: totals.payments,
      approved: totals.approved,
      declined: totals.declined,
      cancelled: totals.cancelled,
      requests: totals.requests,
      duplicateRequests: totals.duplicateRequests,
      rejectedRequests: totals.rejectedRequests,
      requestsPerReference,
    },
    refunds: {
      requested: inputs.refunds.length,
      refused: inputs.refunds.filter((refund) => refund.refusals.length > 0).length,
      byStatus: countBy(inputs.gatewayRefunds.map((refund) => refund.status)),
      atBank: totals.refunds,
      duplicateRequestsAtBank: totals.duplicateRefundRequests,
    },
    webhooks: inputs.webhooks,
    settle: inputs.settle,
    journal: {
      persistenceIds: inputs.journal.length,
      events: inputs.journal.reduce((sum, sequence) => sum + sequence.seqNrs.length, 0),
    },
    wallTimeMs: Math.round(inputs.wallTimeMs),
    dataDir: inputs.dataDir,
    dataKept: inputs.dataKept,
    violations: inputs.violations,
  };
}

/** 0: every check passed; 1: at least one violation. (2, the run itself failed, is main's.) */
export function exitCodeFor(report: ChaosReport): number {
  return report.violations.length === 0 ? 0 : 1;
}

function countBy(keys: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const key of keys) increment(counts, key);
  return counts;
}

function increment(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}
