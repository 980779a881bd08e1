import { z } from 'zod';
import type { BankClient } from '../bank/bank-client.js';
import type { BankFaults, LedgerTotalsBody } from '../bank/bank-protocol.js';
import { orderStatuses } from '../payments/order.js';
import type { GatewayOrder, LedgerPayment } from './checker.js';
import type { LedgerRefund } from './refund-check.js';

/**
 * The calls the harness makes: over HTTP to the gateway as a merchant, and to the bank simulator
 * as an auditor through the bank's own client (`BankClient`, the one wire contract of the bank).
 * Answers are parsed with schemas: the harness judges the system, so it trusts none of their shapes.
 */

const orderJson = z.object({
  id: z.string().min(1),
  status: z.enum(orderStatuses as [(typeof orderStatuses)[number], ...(typeof orderStatuses)[number][]]),
  amount: z.number(),
  currency: z.string(),
  reference: z.string().nullable(),
  reason: z.string().nullable(),
  amountRefunded: z.number(),
});
export type OrderJson = z.infer<typeof orderJson>;

const orderPage = z.object({ data: z.array(orderJson), hasMore: z.boolean() });
const problemJson = z.object({ code: z.string() });

/** The ledger's counts; the sums by currency are not needed to judge a run. */
export type LedgerTotals = Omit<LedgerTotalsBody, 'approvedAmountByCurrency' | 'refundedAmountByCurrency'>;

export interface OrderBody {
  readonly amount: number;
  readonly currency: string;
  readonly card: {
    readonly number: string;
    readonly expMonth: number;
    readonly expYear: number;
    readonly cvc: string;
  };
  readonly reference: string;
}

/** What one POST /v1/orders came to, as a merchant's client must tell them apart. */
export type PostOutcome =
  | { readonly kind: 'accepted'; readonly order: OrderJson; readonly replayed: boolean }
  /** A 4xx: the gateway refused the request; retrying the same request cannot help. */
  | { readonly kind: 'refused'; readonly status: number; readonly code: string }
  /**
   * No usable answer: retry with the same key and body. `status` and `retryAfter` are the answer's,
   * when there was one, so a client can tell a 503 that asks to come back from an error.
   */
  | {
      readonly kind: 'retryable';
      readonly reason: 'timeout' | 'connection' | 'server_error';
      readonly status?: number;
      readonly retryAfter?: string | undefined;
      /** The problem's code, when the answer was a problem+json. */
      readonly code?: string | undefined;
    };

export interface PostRequest {
  readonly gatewayUrl: string;
  readonly apiKey: string;
  readonly idempotencyKey: string;
  readonly body: OrderBody;
  /** `Prefer: wait=N`: how long the gateway may hold the request for a final status. */
  readonly waitSeconds: number;
  readonly timeoutMs: number;
}

export async function postOrder(request: PostRequest): Promise<PostOutcome> {
  const answer = await postResource(
    `${request.gatewayUrl}/v1/orders`,
    request,
    orderJson,
    request.waitSeconds,
  );
  return answer.kind === 'accepted'
    ? { kind: 'accepted', order: answer.value, replayed: answer.replayed }
    : answer;
}

const refundJson = z.object({
  id: z.string().min(1),
  orderId: z.string().min(1),
  status: z.enum(['pending', 'succeeded', 'failed']),
  amount: z.number(),
  currency: z.string(),
  failureReason: z.string().nullable(),
});
export type RefundJson = z.infer<typeof refundJson>;
const refundList = z.object({ data: z.array(refundJson) });

export type RefundOutcome =
  | { readonly kind: 'accepted'; readonly refund: RefundJson; readonly replayed: boolean }
  | Exclude<PostOutcome, { readonly kind: 'accepted' }>;

export interface RefundRequest {
  readonly gatewayUrl: string;
  readonly apiKey: string;
  readonly idempotencyKey: string;
  readonly orderId: string;
  readonly body: { readonly amount: number; readonly reason?: string };
  readonly timeoutMs: number;
}

/** POST /v1/orders/:id/refunds, told apart as a merchant's client must (as `postOrder`). */
export async function postRefund(request: RefundRequest): Promise<RefundOutcome> {
  const url = `${request.gatewayUrl}/v1/orders/${encodeURIComponent(request.orderId)}/refunds`;
  const answer = await postResource(url, request, refundJson, undefined);
  return answer.kind === 'accepted'
    ? { kind: 'accepted', refund: answer.value, replayed: answer.replayed }
    : answer;
}

/** GET /v1/refunds/:id; undefined when there is no usable answer (a courtesy poll). */
export async function getRefund(
  gatewayUrl: string,
  apiKey: string,
  refundId: string,
  timeoutMs: number,
): Promise<RefundJson | undefined> {
  return getResource(
    `${gatewayUrl}/v1/refunds/${encodeURIComponent(refundId)}`,
    apiKey,
    refundJson,
    timeoutMs,
  );
}

/** GET /v1/orders/:id/refunds; throws when there is no usable answer (the harness needs them all). */
export async function listRefunds(
  gatewayUrl: string,
  apiKey: string,
  orderId: string,
  timeoutMs: number,
): Promise<RefundJson[]> {
  const url = `${gatewayUrl}/v1/orders/${encodeURIComponent(orderId)}/refunds`;
  const page = await getResource(url, apiKey, refundList, timeoutMs);
  if (page === undefined) throw new Error(`no usable answer listing the refunds of ${orderId}`);
  return page.data;
}

type PostAnswer<T> =
  | { readonly kind: 'accepted'; readonly value: T; readonly replayed: boolean }
  | Exclude<PostOutcome, { readonly kind: 'accepted' }>;

async function postResource<T>(
  url: string,
  request: {
    readonly apiKey: string;
    readonly idempotencyKey: string;
    readonly body: unknown;
    readonly timeoutMs: number;
  },
  schema: z.ZodType<T>,
  waitSeconds: number | undefined,
): Promise<PostAnswer<T>> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${request.apiKey}`,
        'content-type': 'application/json',
        'idempotency-key': request.idempotencyKey,
        ...(waitSeconds === undefined ? {} : { prefer: `wait=${waitSeconds}` }),
      },
      body: JSON.stringify(request.body),
      signal: AbortSignal.timeout(request.timeoutMs),
    });
  } catch (error) {
    return { kind: 'retryable', reason: isTimeout(error) ? 'timeout' : 'connection' };
  }
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    // The connection broke mid-answer (e.g. the gateway was killed while writing it).
    return { kind: 'retryable', reason: isTimeout(error) ? 'timeout' : 'connection' };
  }
  // 429 is the one 4xx a merchant retries as well: it says "later", not "no".
  if (response.status >= 500 || response.status === 429) {
    return {
      kind: 'retryable',
      reason: 'server_error',
      status: response.status,
      retryAfter: response.headers.get('retry-after') ?? undefined,
      code: problemJson.safeParse(safeJson(text)).data?.code,
    };
  }
  if (response.status >= 200 && response.status < 300) {
    return {
      kind: 'accepted',
      value: schema.parse(JSON.parse(text)),
      replayed: response.headers.get('idempotent-replayed') === 'true',
    };
  }
  const problem = problemJson.safeParse(safeJson(text));
  return { kind: 'refused', status: response.status, code: problem.success ? problem.data.code : 'unknown' };
}

async function getResource<T>(
  url: string,
  apiKey: string,
  schema: z.ZodType<T>,
  timeoutMs: number,
): Promise<T | undefined> {
  try {
    const response = await fetch(url, {
      headers: { authorization: `Bearer ${apiKey}` },
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    if (response.status !== 200) return undefined;
    return schema.parse(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/** GET /v1/orders/:id; undefined when there is no usable answer (the poll is only a courtesy). */
export async function getOrder(
  gatewayUrl: string,
  apiKey: string,
  orderId: string,
  timeoutMs: number,
): Promise<OrderJson | undefined> {
  return getResource(`${gatewayUrl}/v1/orders/${encodeURIComponent(orderId)}`, apiKey, orderJson, timeoutMs);
}

/** Every order of one merchant, newest first, page by page; throws if it cannot read them all. */
export async function listOrders(
  gatewayUrl: string,
  merchant: { readonly id: string; readonly apiKey: string },
  limits: { readonly pagesMax: number; readonly timeoutMs: number },
): Promise<GatewayOrder[]> {
  const orders: GatewayOrder[] = [];
  let startingAfter: string | undefined;
  for (let page = 0; page < limits.pagesMax; page++) {
    const query = `limit=100${startingAfter === undefined ? '' : `&startingAfter=${encodeURIComponent(startingAfter)}`}`;
    const response = await fetch(`${gatewayUrl}/v1/orders?${query}`, {
      headers: { authorization: `Bearer ${merchant.apiKey}` },
      signal: AbortSignal.timeout(limits.timeoutMs),
    });
    const text = await response.text();
    if (response.status !== 200)
      throw new Error(`listing ${merchant.id}'s orders answered ${response.status}: ${text}`);
    const { data, hasMore } = orderPage.parse(JSON.parse(text));
    for (const order of data) orders.push({ ...order, merchantId: merchant.id });
    const last = data.at(-1);
    if (!hasMore || last === undefined) return orders;
    startingAfter = last.id;
  }
  throw new Error(`${merchant.id} has more than ${limits.pagesMax} pages of orders`);
}

export interface Ledger {
  readonly payments: LedgerPayment[];
  readonly refunds: LedgerRefund[];
  readonly totals: LedgerTotals;
}

/** The bank's whole ledger, through the bank's client (which parses it). */
export async function readLedger(bank: BankClient): Promise<Ledger> {
  const report = await bank.ledger();
  const {
    approvedAmountByCurrency: _charged,
    refundedAmountByCurrency: _refunded,
    ...totals
  } = report.totals;
  return {
    payments: report.payments.map((payment) => ({
      reference: payment.reference,
      merchantId: payment.merchantId,
      status: payment.status,
      // One payment's amount travelled as a JSON integer: it is a safe integer.
      amount: Number(payment.amount),
      currency: payment.currency,
      requestCount: payment.requestCount,
    })),
    refunds: report.refunds.map((refund) => ({
      reference: refund.reference,
      paymentReference: refund.paymentReference,
      merchantId: refund.merchantId,
      status: refund.status,
      amount: Number(refund.amount),
      currency: refund.currency,
      requestCount: refund.requestCount,
    })),
    totals,
  };
}

/** PUT /v1/faults; false when the bank did not take them (down, paused, slow). */
export async function setBankFaults(bank: BankClient, faults: BankFaults): Promise<boolean> {
  try {
    await bank.setFaults(faults);
    return true;
  } catch {
    return false;
  }
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
