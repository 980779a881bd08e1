import { setMaxListeners } from 'node:events';
import { BankClient } from '../bank/bank-client.js';
import { checkRun, type GatewayOrder, type Violation } from '../chaos/checker.js';
import { readPostgresJournalSequences } from '../chaos/database.js';
import { type Merchant, OrderRecord, randomCardNumber } from '../chaos/load.js';
import { getOrder, listOrders, type OrderJson, postOrder, readLedger } from '../chaos/remit-api.js';
import { monotonicMs, sleep } from '../chaos/timing.js';
import { type OrderStatus, terminalStatuses } from '../payments/order.js';
import { SeededRandom } from '../runtime/random.js';

/**
 * A steady load of merchants' orders spread over every node of a cluster, for the node-fault
 * end-to-end tests. Each client sends one order at a time, for the merchants in turn, to the nodes
 * in turn; an answer that is no answer (a connection error, a timeout, a 5xx) is retried on the
 * next node with the same idempotency key and body, as a merchant behind a load balancer would.
 * Every answer that is neither a 2xx nor a 503 asking to come back (`Retry-After`) is a failure,
 * unless the test excuses it (a connection refused by the node it is stopping). Terminal answers
 * are recorded with the node that gave them and when, so a test can measure how long a merchant
 * went unserved.
 *
 * The judging is `chaos/checker.ts`'s `checkRun`, on the same evidence the chaos run gathers: what
 * the clients saw, the orders every merchant lists, the bank simulator's own ledger and the
 * journal's sequence numbers.
 */

export interface LoadTarget {
  readonly nodeId: string;
  readonly url: string;
}

export interface ClusterLoadSettings {
  readonly clients: number;
  /** `Prefer: wait=N`, seconds. */
  readonly waitSeconds: number;
  readonly requestTimeoutMs: number;
  /** Sends of one order (over the nodes in turn) before the client records it as unanswered. */
  readonly attemptsMax: number;
  readonly retryPauseMs: number;
  /** Polls of an order answered 202 before the client moves on (settling checks it anyway). */
  readonly pollAttemptsMax: number;
  readonly pollIntervalMs: number;
  /** A bound on every client's loop, however long the test runs the load. */
  readonly ordersPerClientMax: number;
}

export const defaultClusterLoadSettings: ClusterLoadSettings = {
  clients: 6,
  waitSeconds: 3,
  requestTimeoutMs: 8_000,
  attemptsMax: 30,
  retryPauseMs: 100,
  pollAttemptsMax: 100,
  pollIntervalMs: 100,
  ordersPerClientMax: 2_000,
};

/** Why a request got no usable answer. */
export type NoAnswer = 'timeout' | 'connection' | 'server_error';

/** A terminal status a client was given, by which node and when (monotonic ms). */
export interface TerminalAnswer {
  readonly key: string;
  readonly merchantId: string;
  readonly nodeId: string;
  readonly status: OrderStatus;
  /** When the order was first sent. */
  readonly firstSentAtMs: number;
  readonly answeredAtMs: number;
}

/** An answer the merchant should never have seen. */
export interface LoadFailure {
  readonly key: string;
  readonly nodeId: string;
  readonly what: string;
}

export interface LoadCounters {
  requests: number;
  /** Sends of an order after its first. */
  retries: number;
  /** 503 with Retry-After: the node asked the client to come back. */
  retryLater: number;
  /** No answer that the test excused (its node was being killed, paused or stopped). */
  excused: number;
}

export interface ClusterLoadOptions {
  readonly targets: readonly LoadTarget[];
  readonly merchants: readonly Merchant[];
  /** Distinguishes this load's idempotency keys and references from every other load's. */
  readonly label: string;
  readonly seed: number;
  readonly settings?: ClusterLoadSettings;
  /** Whether a request to this node that got no answer for this reason is no failure. */
  readonly excuse: (nodeId: string, reason: NoAnswer) => boolean;
}

/** Listeners on the stop signal: each client's pause holds one at most. */
const abortListenersMax = 256;

export class ClusterLoad {
  readonly records: OrderRecord[] = [];
  readonly terminalAnswers: TerminalAnswer[] = [];
  readonly failures: LoadFailure[] = [];
  readonly counters: LoadCounters = { requests: 0, retries: 0, retryLater: 0, excused: 0 };
  private readonly stopping = new AbortController();
  private readonly settings: ClusterLoadSettings;
  private running: Promise<void> | undefined;

  constructor(private readonly options: ClusterLoadOptions) {
    this.settings = options.settings ?? defaultClusterLoadSettings;
    setMaxListeners(abortListenersMax, this.stopping.signal);
  }

  start(): void {
    const root = new SeededRandom(this.options.seed);
    this.running = Promise.all(
      Array.from({ length: this.settings.clients }, (_, client) => this.runClient(client, root.fork())),
    ).then(() => undefined);
  }

  /** Stops sending new orders and resolves once every order in flight has its answer (or gave up). */
  async finish(): Promise<void> {
    this.stopping.abort();
    await this.running;
  }

  terminalAnswersOf(merchantId: string): TerminalAnswer[] {
    return this.terminalAnswers.filter((answer) => answer.merchantId === merchantId);
  }

  private async runClient(client: number, random: SeededRandom): Promise<void> {
    const { merchants, targets, label } = this.options;
    for (let index = 0; index < this.settings.ordersPerClientMax && !this.stopping.signal.aborted; index++) {
      const merchant = merchants[(client + index) % merchants.length];
      if (merchant === undefined) throw new Error('no merchants');
      const record = new OrderRecord(
        `${label}-c${client}-o${index}`,
        merchant,
        {
          amount: 100 + random.int(99_900),
          currency: random.chance(0.5) ? 'EUR' : 'USD',
          card: { number: randomCardNumber(random), expMonth: 12, expYear: 2030, cvc: '123' },
          reference: `${label}-c${client}-${index}`,
        },
        'approve',
      );
      this.records.push(record);
      await this.place(record, (client * 7 + index) % targets.length);
    }
  }

  /** Sends the order over the nodes in turn until one answers, then polls until it is terminal. */
  private async place(record: OrderRecord, firstTarget: number): Promise<void> {
    const { targets } = this.options;
    const firstSentAtMs = monotonicMs();
    let answeredBy: LoadTarget | undefined;
    let order: OrderJson | undefined;
    for (let attempt = 0; attempt < this.settings.attemptsMax && answeredBy === undefined; attempt++) {
      const target = targets[(firstTarget + attempt) % targets.length];
      if (target === undefined) throw new Error('no targets');
      if (attempt > 0) {
        this.counters.retries++;
        // Not the stop signal: an order in flight is carried to its answer even after the load stops.
        await sleep(this.settings.retryPauseMs);
      }
      this.counters.requests++;
      const outcome = await postOrder({
        gatewayUrl: target.url,
        apiKey: record.merchant.apiKey,
        idempotencyKey: record.key,
        body: record.body,
        waitSeconds: this.settings.waitSeconds,
        timeoutMs: this.settings.requestTimeoutMs,
      });
      switch (outcome.kind) {
        case 'accepted':
          record.acceptedIds.add(outcome.order.id);
          answeredBy = target;
          order = outcome.order;
          break;
        case 'refused':
          record.refusals.push({ status: outcome.status, code: outcome.code });
          this.failures.push({
            key: record.key,
            nodeId: target.nodeId,
            what: `${outcome.status} ${outcome.code}`,
          });
          return;
        case 'retryable':
          if (outcome.status === 503 && outcome.retryAfter !== undefined) this.counters.retryLater++;
          else if (this.options.excuse(target.nodeId, outcome.reason)) this.counters.excused++;
          else
            this.failures.push({
              key: record.key,
              nodeId: target.nodeId,
              what:
                outcome.status === undefined
                  ? outcome.reason
                  : `${outcome.status} ${outcome.code ?? outcome.reason}`,
            });
          break;
      }
    }
    if (answeredBy === undefined || order === undefined) {
      this.failures.push({
        key: record.key,
        nodeId: '-',
        what: `no answer after ${this.settings.attemptsMax} sends`,
      });
      return;
    }
    this.note(record, order, answeredBy, firstSentAtMs);
    for (let poll = 0; poll < this.settings.pollAttemptsMax && !terminalStatuses.has(order.status); poll++) {
      await sleep(this.settings.pollIntervalMs);
      const target = targets[(targets.indexOf(answeredBy) + poll) % targets.length] ?? answeredBy;
      const polled = await getOrder(
        target.url,
        record.merchant.apiKey,
        order.id,
        this.settings.requestTimeoutMs,
      );
      if (polled === undefined) continue;
      order = polled;
      this.note(record, order, target, firstSentAtMs);
    }
  }

  private note(record: OrderRecord, order: OrderJson, target: LoadTarget, firstSentAtMs: number): void {
    record.noteOrder(order);
    if (!terminalStatuses.has(order.status)) return;
    this.terminalAnswers.push({
      key: record.key,
      merchantId: record.merchant.id,
      nodeId: target.nodeId,
      status: order.status,
      firstSentAtMs,
      answeredAtMs: monotonicMs(),
    });
  }
}

/** Every order of every merchant, as one node lists them. */
export async function listClusterOrders(
  through: LoadTarget,
  merchants: readonly Merchant[],
): Promise<GatewayOrder[]> {
  const pages = await Promise.all(
    merchants.map((merchant) => listOrders(through.url, merchant, { pagesMax: 1_000, timeoutMs: 10_000 })),
  );
  return pages.flat();
}

/**
 * Waits (a bounded number of looks) until every order a client was given and every order the
 * cluster lists is terminal; returns whether they all were.
 */
export async function settleOrders(
  through: LoadTarget,
  merchants: readonly Merchant[],
  records: readonly OrderRecord[],
  looksMax: number,
  lookIntervalMs: number,
): Promise<boolean> {
  const accepted = records.flatMap((record) => [...record.acceptedIds]);
  for (let look = 0; look < looksMax; look++) {
    const orders = await listClusterOrders(through, merchants).catch(() => undefined);
    if (orders !== undefined) {
      const statusById = new Map(orders.map((order) => [order.id, order.status]));
      const pending =
        orders.some((order) => !terminalStatuses.has(order.status)) ||
        accepted.some((id) => {
          const status = statusById.get(id);
          return status === undefined || !terminalStatuses.has(status);
        });
      if (!pending) return true;
    }
    await sleep(lookIntervalMs);
  }
  return false;
}

export interface Judgement {
  readonly violations: Violation[];
  readonly gatewayOrders: GatewayOrder[];
  /** Approved payments in the bank's ledger. */
  readonly charged: number;
}

/**
 * Gathers the evidence — the bank's ledger first, so an order executed after it was read can only
 * show as not terminal, then the orders as one node lists them, then the journal — and judges it
 * with the chaos run's checker.
 */
export async function judgeCluster(inputs: {
  readonly through: LoadTarget;
  readonly merchants: readonly Merchant[];
  readonly records: readonly OrderRecord[];
  readonly bankUrl: string;
  readonly databaseUrl: string;
  readonly schema: string;
}): Promise<Judgement> {
  const auditor = new BankClient({ baseUrl: inputs.bankUrl, requestTimeoutMs: 10_000, connections: 1 });
  try {
    const ledger = await readLedger(auditor);
    const gatewayOrders = await listClusterOrders(inputs.through, inputs.merchants);
    const journal = await readPostgresJournalSequences(inputs.databaseUrl, inputs.schema);
    const violations = checkRun({
      orders: inputs.records.map((record) => record.toSentOrder()),
      gatewayOrders,
      ledger: ledger.payments,
      journal,
    });
    return {
      violations,
      gatewayOrders,
      charged: ledger.payments.filter((payment) => payment.status === 'approved').length,
    };
  } finally {
    await auditor.close();
  }
}
