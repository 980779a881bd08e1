import type { OrderStatus } from '../payments/order.js';
import { terminalStatuses } from '../payments/order.js';
import { assertNever } from '../runtime/assert-never.js';
import type { Random } from '../runtime/random.js';
import { SeededRandom } from '../runtime/random.js';
import type { Expectation, SentOrder } from './checker.js';
import type { SentRefund } from './refund-check.js';
import {
  getOrder,
  getRefund,
  type OrderBody,
  type OrderJson,
  type PostOutcome,
  postOrder,
  postRefund,
  type RefundJson,
  type RefundOutcome,
} from './remit-api.js';
import { sleep } from './timing.js';

/**
 * The load: concurrent clients that behave like merchants' systems. Each order has its own
 * idempotency key and its own reference; on a timeout, a connection error or a 5xx the client sends
 * the same key and body again (a bounded number of times, with backoff); some orders are sent twice
 * on purpose, at once or after the answer; after a 202 the client polls for the outcome a while.
 * With several nodes every request goes to a node drawn at random, and a retry goes to the next
 * node after the one that failed it, as a load balancer in front of a cluster would do.
 *
 * Each client draws its orders from its own seeded stream, so a seed gives every client the same
 * sequence of orders; how many of them it gets through depends on the real processes' timing.
 */

export interface Merchant {
  readonly id: string;
  readonly apiKey: string;
}

export interface LoadSettings {
  readonly clients: number;
  /** Attempts per order (first send included) before the client gives up until the run is over. */
  readonly orderAttemptsMax: number;
  readonly retryBackoffMinMs: number;
  readonly retryBackoffMaxMs: number;
  /** One HTTP request, answer included. */
  readonly requestTimeoutMs: number;
  /** `Prefer: wait=N`, seconds. */
  readonly waitSeconds: number;
  /** Polls of an order answered 202 before the client moves on (the settle phase checks it anyway). */
  readonly pollAttemptsMax: number;
  readonly pollIntervalMs: number;
  /** A pause between one order and the next, 0..this, so clients do not march in step. */
  readonly thinkTimeMaxMs: number;
  /** A bound on every client's loop, whatever the duration. */
  readonly ordersPerClientMax: number;
  /** Chance an order's first send is two identical requests at once. */
  readonly concurrentDuplicateRate: number;
  /** Chance an order is sent once more after its answer (a merchant's late retry). */
  readonly lateDuplicateRate: number;
  /** Chance an executed order is then refunded (in full, in two parts, or after one too large). */
  readonly refundRate: number;
}

export const defaultLoadSettings: LoadSettings = {
  clients: 16,
  orderAttemptsMax: 8,
  retryBackoffMinMs: 100,
  retryBackoffMaxMs: 2_000,
  requestTimeoutMs: 4_000,
  waitSeconds: 1,
  pollAttemptsMax: 10,
  pollIntervalMs: 300,
  thinkTimeMaxMs: 50,
  ordersPerClientMax: 100_000,
  concurrentDuplicateRate: 0.05,
  lateDuplicateRate: 0.08,
  refundRate: 0.25,
};

/** Counters of what the clients did, for the report. */
export interface LoadCounts {
  ordersSent: number;
  requests: number;
  retries: number;
  timeouts: number;
  connectionErrors: number;
  serverErrors: number;
  refusals: number;
  replays: number;
  polls: number;
  duplicatesOnPurpose: number;
  /** Orders without any definite answer when the load stopped, sent again while settling. */
  resentAfterRun: number;
  /** Refund requests made (each with its own key), and how many of them were refused. */
  refundsSent: number;
  refundRefusals: number;
  /** Requests sent to each node, by its URL's position in `nodeUrls`. */
  requestsByNode: number[];
}

export function emptyLoadCounts(nodes: number): LoadCounts {
  return {
    ordersSent: 0,
    requests: 0,
    retries: 0,
    timeouts: 0,
    connectionErrors: 0,
    serverErrors: 0,
    refusals: 0,
    replays: 0,
    polls: 0,
    duplicatesOnPurpose: 0,
    resentAfterRun: 0,
    refundsSent: 0,
    refundRefusals: 0,
    requestsByNode: Array.from({ length: nodes }, () => 0),
  };
}

/** One order and everything its client learned about it. */
export class OrderRecord {
  readonly acceptedIds = new Set<string>();
  readonly terminalSeen = new Map<string, Set<OrderStatus>>();
  readonly refusals: Array<{ status: number; code: string }> = [];

  constructor(
    readonly key: string,
    readonly merchant: Merchant,
    readonly body: OrderBody,
    readonly expectation: Expectation,
  ) {}

  /** A 2xx or a 4xx came back: the client knows where the order stands. */
  get answered(): boolean {
    return this.acceptedIds.size > 0 || this.refusals.length > 0;
  }

  noteOrder(order: OrderJson): void {
    if (!terminalStatuses.has(order.status)) return;
    const seen = this.terminalSeen.get(order.id) ?? new Set<OrderStatus>();
    seen.add(order.status);
    this.terminalSeen.set(order.id, seen);
  }

  toSentOrder(): SentOrder {
    return {
      key: this.key,
      merchantId: this.merchant.id,
      reference: this.body.reference,
      amount: this.body.amount,
      currency: this.body.currency,
      expectation: this.expectation,
      acceptedIds: [...this.acceptedIds],
      terminalSeen: [...this.terminalSeen].flatMap(([id, statuses]) =>
        [...statuses].map((status) => ({ id, status })),
      ),
      refusals: [...this.refusals],
    };
  }
}

/** One refund request (one idempotency key, one amount) and what its client learned of it. */
export class RefundRecord {
  readonly acceptedIds = new Set<string>();
  readonly terminalSeen = new Map<string, Set<string>>();
  readonly refusals: Array<{ status: number; code: string }> = [];

  constructor(
    readonly key: string,
    readonly merchant: Merchant,
    readonly orderId: string,
    readonly amount: number,
  ) {}

  get answered(): boolean {
    return this.acceptedIds.size > 0 || this.refusals.length > 0;
  }

  noteRefund(refund: RefundJson): void {
    if (refund.status === 'pending') return;
    this.terminalSeen.set(
      refund.id,
      (this.terminalSeen.get(refund.id) ?? new Set<string>()).add(refund.status),
    );
  }

  toSentRefund(): SentRefund {
    return {
      key: this.key,
      merchantId: this.merchant.id,
      orderId: this.orderId,
      amount: this.amount,
      acceptedIds: [...this.acceptedIds],
      refusals: [...this.refusals],
      terminalSeen: [...this.terminalSeen].flatMap(([id, statuses]) =>
        [...statuses].map((status) => ({ id, status })),
      ),
    };
  }
}

/** The cards of the mix. Declines come from the bank's test cards, rejections from the gateway's rules. */
const declinedCards = ['4000000000000002', '4000000000009995'] as const;

export interface PlannedOrder {
  readonly merchantIndex: number;
  readonly body: Omit<OrderBody, 'reference'>;
  readonly expectation: Expectation;
  readonly concurrentDuplicate: boolean;
  readonly lateDuplicate: boolean;
}

/**
 * The next order of a client: about 70% approved (a fresh random card each time, so the velocity
 * rule never meets them), 15% declined by the bank's test cards, 15% rejected by the rules (a
 * Luhn-invalid card, an amount over the limit, an unsupported currency), across the merchants.
 */
export function planOrder(random: Random, merchants: number, settings: LoadSettings): PlannedOrder {
  const merchantIndex = random.int(merchants);
  const currency = random.chance(0.5) ? 'EUR' : 'USD';
  const amount = 100 + random.int(99_900);
  const card = (number: string) => ({
    number,
    expMonth: 1 + random.int(12),
    expYear: 2030 + random.int(5),
    cvc: '123',
  });
  const draw = random.next();
  let body: PlannedOrder['body'];
  let expectation: Expectation;
  if (draw < 0.7) {
    body = { amount, currency, card: card(randomCardNumber(random)) };
    expectation = 'approve';
  } else if (draw < 0.85) {
    body = {
      amount,
      currency,
      card: card(declinedCards[random.int(declinedCards.length)] ?? declinedCards[0]),
    };
    expectation = 'decline';
  } else {
    const rule = random.int(3);
    const valid = randomCardNumber(random);
    if (rule === 0) body = { amount, currency, card: card(breakLuhn(valid)) };
    else if (rule === 1) body = { amount: 1_000_001 + random.int(1_000_000), currency, card: card(valid) };
    else body = { amount, currency: 'GBP', card: card(valid) };
    expectation = 'reject';
  }
  return {
    merchantIndex,
    body,
    expectation,
    concurrentDuplicate: random.chance(settings.concurrentDuplicateRate),
    lateDuplicate: random.chance(settings.lateDuplicateRate),
  };
}

/** A Luhn-valid 16-digit Visa or Mastercard number that is none of the bank's test cards. */
export function randomCardNumber(random: Random): string {
  let digits = random.chance(0.5) ? '4' : String(51 + random.int(5));
  while (digits.length < 15) digits += String(random.int(10));
  const number = digits + luhnCheckDigit(digits);
  return declinedCards.some((card) => card === number) ? randomCardNumber(random) : number;
}

function luhnCheckDigit(payload: string): string {
  let sum = 0;
  // The check digit will be rightmost, so the payload's last digit is the first one doubled.
  for (let index = 0; index < payload.length; index++) {
    let digit = Number(payload[payload.length - 1 - index]);
    if (index % 2 === 0) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return String((10 - (sum % 10)) % 10);
}

function breakLuhn(number: string): string {
  const last = Number(number.at(-1));
  return number.slice(0, -1) + String((last + 1) % 10);
}

/**
 * A deliberate bug in the client, for the harness's own test: the late duplicate of an order is
 * sent under a new idempotency key, while the client still files the answer under the order's own
 * key. What the checker then sees — one merchant order, two gateway orders, both charged — is
 * exactly what a gateway that lost its idempotency record after a crash would produce.
 */
export interface ForgetKeySabotage {
  /** Orders that get it, at most (approved-card orders of client 0, from its first order on). */
  readonly ordersMax: number;
}

export interface LoadContext {
  /** Where merchants send their requests: the gateway, or every node of a cluster. */
  readonly nodeUrls: readonly string[];
  readonly merchants: readonly Merchant[];
  readonly settings: LoadSettings;
  readonly counts: LoadCounts;
  readonly seed: number;
  /** Stops new orders, retries and polls; requests already sent finish within their timeout. */
  readonly stop: AbortSignal;
  readonly forgetKey?: ForgetKeySabotage | undefined;
  /** Every refund request the clients made, in the order they made them. */
  readonly refunds: RefundRecord[];
}

/** Runs every client until `stop` aborts; resolves with every order they sent. */
export async function runLoad(context: LoadContext): Promise<OrderRecord[]> {
  const records: OrderRecord[] = [];
  const root = new SeededRandom(context.seed);
  // Each client gets two streams: what it orders (reproducible) and how long it backs off (timing).
  const streams = Array.from({ length: context.settings.clients }, () => ({
    orders: root.fork(),
    jitter: root.fork(),
  }));
  let forgetKeyLeft = context.forgetKey?.ordersMax ?? 0;
  await Promise.all(
    streams.map(async (stream, client) => {
      for (let index = 0; index < context.settings.ordersPerClientMax && !context.stop.aborted; index++) {
        const plan = planOrder(stream.orders, context.merchants.length, context.settings);
        const merchant = context.merchants[plan.merchantIndex];
        if (merchant === undefined) throw new Error(`no merchant ${plan.merchantIndex}`);
        const key = `chaos-${context.seed}-c${client}-o${index}`;
        const record = new OrderRecord(
          key,
          merchant,
          { ...plan.body, reference: `order-c${client}-${index}` },
          plan.expectation,
        );
        records.push(record);
        context.counts.ordersSent++;
        const sabotaged = client === 0 && plan.expectation === 'approve' && forgetKeyLeft > 0;
        if (sabotaged) forgetKeyLeft--;
        await placeOrder(record, context, stream.jitter, plan.concurrentDuplicate, context.stop);
        if ((plan.lateDuplicate || sabotaged) && !context.stop.aborted) {
          context.counts.duplicatesOnPurpose++;
          await send(record, sabotaged ? `${key}-forgotten` : key, context, pickNode(stream.jitter, context));
        }
        const executedId = executedOrderId(record);
        if (
          executedId !== undefined &&
          stream.jitter.chance(context.settings.refundRate) &&
          !context.stop.aborted
        ) {
          await refundOrder(record, executedId, context, stream.jitter, context.stop);
        }
        await sleep(stream.jitter.int(context.settings.thinkTimeMaxMs + 1), context.stop);
      }
    }),
  );
  return records;
}

/**
 * Sends every order that has no definite answer yet (its retries ran out during the chaos, or the
 * load stopped) again with the same key and body, `clients` at a time, as merchants reconcile
 * once the gateway is reachable again.
 */
export async function resendUnanswered(
  records: readonly OrderRecord[],
  context: LoadContext,
  jitter: Random,
): Promise<void> {
  const pending = records.filter((record) => !record.answered);
  const pendingRefunds = context.refunds.filter((refund) => !refund.answered);
  context.counts.resentAfterRun += pending.length + pendingRefunds.length;
  let next = 0;
  let nextRefund = 0;
  await Promise.all(
    Array.from({ length: context.settings.clients }, async () => {
      for (let record = pending[next++]; record !== undefined; record = pending[next++]) {
        await placeOrder(record, context, jitter, false, context.stop);
      }
      for (
        let refund = pendingRefunds[nextRefund++];
        refund !== undefined;
        refund = pendingRefunds[nextRefund++]
      ) {
        await placeRefund(refund, context, jitter, context.stop);
      }
    }),
  );
}

/** Sends until the order is answered (2xx or 4xx) or the attempts run out, then polls a 202. */
async function placeOrder(
  record: OrderRecord,
  context: LoadContext,
  jitter: Random,
  concurrentDuplicate: boolean,
  stop: AbortSignal,
): Promise<void> {
  await withRetries(context, jitter, stop, async (node, attempt) => {
    if (attempt === 0 && concurrentDuplicate) {
      context.counts.duplicatesOnPurpose++;
      // Two nodes at once when there are several: the key's one order must come out of both.
      const twin = (node + 1) % context.nodeUrls.length;
      await Promise.all([send(record, record.key, context, node), send(record, record.key, context, twin)]);
    } else {
      await send(record, record.key, context, node);
    }
    return record.answered;
  });
  await pollUntilTerminal(record, context, jitter, stop);
}

/**
 * Calls `attempt` until it says the request was answered or `orderAttemptsMax` attempts are spent,
 * backing off (equal jitter, doubling) and moving to the next node between attempts.
 */
async function withRetries(
  context: LoadContext,
  jitter: Random,
  stop: AbortSignal,
  attempt: (node: number, attempt: number) => Promise<boolean>,
): Promise<void> {
  const { settings, counts } = context;
  // The single gateway takes no draw, so a single-node run's timing streams stay as they are.
  let node = pickNode(jitter, context);
  for (let index = 0; index < settings.orderAttemptsMax && !stop.aborted; index++) {
    if (index > 0) {
      counts.retries++;
      node = (node + 1) % context.nodeUrls.length;
      const ceilingMs = Math.min(settings.retryBackoffMaxMs, settings.retryBackoffMinMs * 2 ** (index - 1));
      await sleep(ceilingMs / 2 + jitter.int(Math.ceil(ceilingMs / 2)), stop);
      if (stop.aborted) return;
    }
    if (await attempt(node, index)) return;
  }
}

/** The id of the order's execution, once the client has seen it executed. */
function executedOrderId(record: OrderRecord): string | undefined {
  for (const [id, statuses] of record.terminalSeen) if (statuses.has('executed')) return id;
  return undefined;
}

/**
 * A merchant refunding an executed order, one request after the other: in full (a third of the
 * time), in two parts that add up to the amount, or first one unit more than the amount (refused,
 * `refund_exceeds_payment`) and then in full. Each request has its own key.
 */
async function refundOrder(
  order: OrderRecord,
  orderId: string,
  context: LoadContext,
  jitter: Random,
  stop: AbortSignal,
): Promise<void> {
  const amount = order.body.amount;
  const part = 1 + jitter.int(amount - 1);
  const shape = jitter.int(3);
  const amounts = shape === 0 ? [amount] : shape === 1 ? [part, amount - part] : [amount + 1, amount];
  for (const [index, value] of amounts.entries()) {
    if (stop.aborted) return;
    const refund = new RefundRecord(`${order.key}-refund-${index}`, order.merchant, orderId, value);
    context.refunds.push(refund);
    context.counts.refundsSent++;
    await placeRefund(refund, context, jitter, stop);
  }
}

/** Sends until the refund request is answered or the attempts run out, then polls it to its end. */
async function placeRefund(refund: RefundRecord, context: LoadContext, jitter: Random, stop: AbortSignal) {
  await withRetries(context, jitter, stop, async (node) => {
    await sendRefund(refund, context, node);
    return refund.answered;
  });
  const { settings, counts } = context;
  for (const id of refund.acceptedIds) {
    for (let poll = 0; poll < settings.pollAttemptsMax && !stop.aborted; poll++) {
      if (refund.terminalSeen.has(id)) break;
      await sleep(settings.pollIntervalMs, stop);
      counts.polls++;
      const url = nodeUrl(context, pickNode(jitter, context));
      const seen = await getRefund(url, refund.merchant.apiKey, id, settings.requestTimeoutMs);
      if (seen !== undefined) refund.noteRefund(seen);
    }
  }
}

async function sendRefund(refund: RefundRecord, context: LoadContext, node: number): Promise<RefundOutcome> {
  const outcome = await postRefund({
    gatewayUrl: nodeUrl(context, countRequest(context, node)),
    apiKey: refund.merchant.apiKey,
    idempotencyKey: refund.key,
    orderId: refund.orderId,
    body: { amount: refund.amount },
    timeoutMs: context.settings.requestTimeoutMs,
  });
  if (outcome.kind === 'accepted') {
    refund.acceptedIds.add(outcome.refund.id);
    refund.noteRefund(outcome.refund);
    if (outcome.replayed) context.counts.replays++;
  } else {
    if (outcome.kind === 'refused') {
      refund.refusals.push({ status: outcome.status, code: outcome.code });
      context.counts.refundRefusals++;
    }
    countFailure(context, outcome);
  }
  return outcome;
}

/** Counts one request to `node`; returns the node's index. */
function countRequest(context: LoadContext, node: number): number {
  context.counts.requests++;
  const index = node % context.nodeUrls.length;
  context.counts.requestsByNode[index] = (context.counts.requestsByNode[index] ?? 0) + 1;
  return index;
}

/** Counts a refusal or a retryable outcome of any request. */
function countFailure(
  context: LoadContext,
  outcome: Exclude<PostOutcome, { readonly kind: 'accepted' }>,
): void {
  const { counts } = context;
  switch (outcome.kind) {
    case 'refused':
      counts.refusals++;
      break;
    case 'retryable':
      if (outcome.reason === 'timeout') counts.timeouts++;
      else if (outcome.reason === 'connection') counts.connectionErrors++;
      else counts.serverErrors++;
      break;
    default:
      assertNever(outcome, 'outcome');
  }
}

function pickNode(random: Random, context: LoadContext): number {
  return context.nodeUrls.length > 1 ? random.int(context.nodeUrls.length) : 0;
}

function nodeUrl(context: LoadContext, node: number): string {
  const url = context.nodeUrls[node % context.nodeUrls.length];
  if (url === undefined) throw new Error('the load has no node to send to');
  return url;
}

async function send(
  record: OrderRecord,
  idempotencyKey: string,
  context: LoadContext,
  node: number,
): Promise<PostOutcome> {
  const outcome = await postOrder({
    gatewayUrl: nodeUrl(context, countRequest(context, node)),
    apiKey: record.merchant.apiKey,
    idempotencyKey,
    body: record.body,
    waitSeconds: context.settings.waitSeconds,
    timeoutMs: context.settings.requestTimeoutMs,
  });
  if (outcome.kind === 'accepted') {
    record.acceptedIds.add(outcome.order.id);
    record.noteOrder(outcome.order);
    if (outcome.replayed) context.counts.replays++;
  } else {
    if (outcome.kind === 'refused') record.refusals.push({ status: outcome.status, code: outcome.code });
    countFailure(context, outcome);
  }
  return outcome;
}

async function pollUntilTerminal(
  record: OrderRecord,
  context: LoadContext,
  jitter: Random,
  stop: AbortSignal,
): Promise<void> {
  const { settings, counts } = context;
  for (const id of record.acceptedIds) {
    for (let poll = 0; poll < settings.pollAttemptsMax && !stop.aborted; poll++) {
      if (record.terminalSeen.has(id)) break;
      await sleep(settings.pollIntervalMs, stop);
      counts.polls++;
      const url = nodeUrl(context, pickNode(jitter, context));
      const order = await getOrder(url, record.merchant.apiKey, id, settings.requestTimeoutMs);
      if (order !== undefined) record.noteOrder(order);
    }
  }
}
