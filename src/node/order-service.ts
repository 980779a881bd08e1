import type { CardSummary } from '../payments/card.js';
import type { CardInput, CardVault } from '../payments/card-vault.js';
import {
  type AwaitOrderReply,
  type GetOrderReply,
  type MerchantCommand,
  merchantAddress,
  type ProcessOrderReply,
} from '../payments/merchant-protocol.js';
import type { Currency } from '../payments/money.js';
import { isTerminal, type Order, type OrderStatus, orderIdFor } from '../payments/order.js';
import { type ActorRef, AskTimeoutError } from '../runtime/actor.js';
import { assertNever } from '../runtime/assert-never.js';
import type { Clock } from '../runtime/clock.js';
import type { EntityAsker } from '../runtime/entity-address.js';
import { ApiError } from './api-error.js';

/** An order as the API shows it (and as the read model stores it). */
export interface OrderView {
  readonly id: string;
  readonly merchantId: string;
  readonly status: OrderStatus;
  readonly amount: bigint;
  readonly currency: string;
  readonly card: { readonly brand: string; readonly last4: string };
  readonly bank: string | undefined;
  readonly reference: string | undefined;
  readonly description: string | undefined;
  readonly reason: string | undefined;
  readonly requestHash: string;
  /** The sum of the order's succeeded refunds (0 when none), as the read model projects them. */
  readonly amountRefunded: bigint;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface AuditEntry {
  readonly type: string;
  readonly at: number;
  /** The event as JSON, an object: the audit trail's schema says so to clients. */
  readonly data: Readonly<Record<string, unknown>>;
}

/**
 * What the API reads from the read model. Asynchronous, so a read model in another process (the
 * node on PostgreSQL) fits as well as SQLite's, which answers at once.
 */
export interface OrderQueries {
  getOrder(merchantId: string, orderId: string): Promise<OrderView | undefined>;
  listOrders(query: {
    merchantId: string;
    status?: OrderStatus;
    limit: number;
    startingAfter?: string;
  }): Promise<{
    data: OrderView[];
    hasMore: boolean;
  }>;
  /** Read from the journal (the read model lists where an order's events are). */
  orderEvents(merchantId: string, orderId: string): Promise<AuditEntry[] | undefined>;
}

export interface OrderRequest {
  readonly amount: number;
  readonly currency: Currency;
  readonly card: CardInput & { readonly cvc: string };
  readonly description?: string;
  readonly reference?: string;
}

export interface OrderServiceSettings {
  /** How long an HTTP request may wait for a terminal status when the client does not say. */
  readonly waitDefaultMs: number;
  readonly waitMaxMs: number;
  /** How long to wait for the Merchant to accept an order before telling the client to retry. */
  readonly acceptTimeoutMs: number;
  /** How long a replay of an order processed long ago may wait for the read model to show it. */
  readonly readModelWaitMs: number;
  /** How often the read model is read again while waiting for it to show an order. */
  readonly readModelPollIntervalMs: number;
}

export const defaultOrderServiceSettings: OrderServiceSettings = {
  waitDefaultMs: 5_000,
  waitMaxMs: 30_000,
  acceptTimeoutMs: 10_000,
  readModelWaitMs: 5_000,
  readModelPollIntervalMs: 50,
};

export interface CreatedOrder {
  readonly order: OrderView;
  readonly replayed: boolean;
}

/**
 * The OrderHandler of the seed, one call per HTTP request: it turns a request into a
 * `ProcessNewOrder` for the merchant's entity, waits (bounded) for a terminal status, and makes
 * retries safe — the same key with the same body gets the same order, the same key with another
 * body is refused, whether the first request is still in flight, finished, or from before a
 * restart.
 */
export class OrderService {
  constructor(
    private readonly entities: EntityAsker,
    private readonly vault: CardVault,
    private readonly queries: OrderQueries,
    private readonly clock: Clock,
    private readonly settings: OrderServiceSettings = defaultOrderServiceSettings,
  ) {}

  async create(
    merchantId: string,
    idempotencyKey: string,
    request: OrderRequest,
    waitMs: number,
  ): Promise<CreatedOrder> {
    const deadline = this.clock.now() + waitMs;
    const orderId = orderIdFor(merchantId, idempotencyKey);
    const requestHash = this.vault.fingerprint(orderRequestText(request));
    const known = await this.queries.getOrder(merchantId, orderId);
    if (known !== undefined) return this.replay(known, requestHash, deadline);

    // On PostgreSQL the card is stored on another connection than the journal's: the order's event
    // is appended only once its card is durable. SQLite's writer orders both itself (no promise).
    const tokenized = this.vault.tokenizeAndStore(request.card);
    const card = tokenized instanceof Promise ? await storedCard(tokenized) : tokenized;
    const awaitResult = waitMs > 0;
    const submit = (replyTo: ActorRef<ProcessOrderReply>): MerchantCommand => ({
      type: 'ProcessNewOrder',
      order: {
        orderId,
        idempotencyKey,
        requestHash,
        amount: BigInt(request.amount),
        currency: request.currency,
        card,
        description: request.description,
        reference: request.reference,
        receivedAt: this.clock.now(),
      },
      awaitResult,
      replyTo,
    });
    let reply: ProcessOrderReply;
    if (!awaitResult) {
      reply = await this.accept<ProcessOrderReply>(merchantId, submit);
    } else {
      try {
        // One round trip: a validated order is answered when it finishes, within the wait.
        reply = await this.ask<ProcessOrderReply>(
          merchantId,
          Math.max(1, deadline - this.clock.now()),
          submit,
        );
      } catch (error) {
        if (!(error instanceof AskTimeoutError)) throw error;
        return this.stillInFlight(merchantId, orderId, requestHash);
      }
    }
    switch (reply.type) {
      case 'OrderFinished':
        return { order: viewOf(reply.order), replayed: false };
      case 'OrderAccepted':
        return { order: await this.awaitTerminal(viewOf(reply.order), deadline), replayed: false };
      case 'OrderExists':
        if (!reply.sameRequest) throw keyReused();
        return { order: await this.awaitTerminal(viewOf(reply.order), deadline), replayed: true };
      case 'OrderProcessedEarlier':
        return this.replay(await this.fromReadModel(merchantId, orderId), requestHash, deadline);
      case 'MerchantBusy':
        throw new ApiError(
          503,
          'merchant_busy',
          'Too many orders are in flight for this merchant; retry shortly.',
          undefined,
          {
            'retry-after': '1',
          },
        );
      case 'MerchantNotConfigured':
        // Configured at boot (in a cluster, by whichever node boots first): a retry soon succeeds.
        throw new ApiError(
          503,
          'merchant_unavailable',
          'This merchant cannot accept orders yet; retry shortly.',
          undefined,
          { 'retry-after': '1' },
        );
      default:
        return assertNever(reply);
    }
  }

  /** An order by id for its merchant: the read model, or the merchant itself for one just created. */
  async get(merchantId: string, orderId: string): Promise<OrderView | undefined> {
    const row = await this.queries.getOrder(merchantId, orderId);
    if (row !== undefined) return row;
    if (!orderId.startsWith('ord_')) return undefined;
    const reply = await this.accept<GetOrderReply>(merchantId, (replyTo) => ({
      type: 'GetOrder',
      orderId,
      replyTo,
    }));
    return reply.order === undefined ? undefined : viewOf(reply.order);
  }

  /**
   * The order, awaited (at most `waitMs`) if it is seen in flight. The Merchant answers for one it
   * still runs (still in flight after the wait: returned as it is). One the Merchant no longer holds
   * has finished, and the read model, which may trail it (on a cluster, by a failover of its
   * projection), is read again until the wait ends; if it still shows the order in flight, the
   * answer is 503 `order_not_yet_visible`, safe to retry — never a status the order no longer has.
   */
  async getSettled(merchantId: string, orderId: string, waitMs: number): Promise<OrderView | undefined> {
    const order = await this.get(merchantId, orderId);
    if (order === undefined || isTerminal(order.status)) return order;
    const deadline = this.clock.now() + waitMs;
    let reply: AwaitOrderReply;
    try {
      reply = await this.ask<AwaitOrderReply>(merchantId, waitMs, (replyTo) => ({
        type: 'AwaitOrder',
        orderId,
        replyTo,
      }));
    } catch (error) {
      if (error instanceof AskTimeoutError) return order;
      throw error;
    }
    if (reply.type === 'OrderFinished') return viewOf(reply.order);
    const row = await this.terminalFromReadModel(order, deadline);
    if (isTerminal(row.status)) return row;
    throw new ApiError(
      503,
      'order_not_yet_visible',
      'The order has finished but is not readable yet; retry shortly.',
      undefined,
      { 'retry-after': '1' },
    );
  }

  /**
   * No answer within the request's wait: the order is in flight (answered with its status now; the
   * client polls), or it was never accepted — then the client may retry with the same key.
   */
  private async stillInFlight(
    merchantId: string,
    orderId: string,
    requestHash: string,
  ): Promise<CreatedOrder> {
    const current = await this.get(merchantId, orderId).catch(() => undefined);
    if (current === undefined) throw gatewayBusy();
    if (current.requestHash !== requestHash) throw keyReused();
    return { order: current, replayed: false };
  }

  /** The same key again: the same order if the body is the same, else the key-reuse error. */
  protected async replay(known: OrderView, requestHash: string, deadline: number): Promise<CreatedOrder> {
    if (known.requestHash !== requestHash) throw keyReused();
    return { order: await this.awaitTerminal(known, deadline), replayed: true };
  }

  protected async awaitTerminal(order: OrderView, deadline: number): Promise<OrderView> {
    if (isTerminal(order.status)) return order;
    const remainingMs = deadline - this.clock.now();
    if (remainingMs <= 0) return order;
    try {
      const reply = await this.ask<AwaitOrderReply>(order.merchantId, remainingMs, (replyTo) => ({
        type: 'AwaitOrder',
        orderId: order.id,
        replyTo,
      }));
      if (reply.type === 'OrderFinished') return viewOf(reply.order);
      return await this.terminalFromReadModel(order, deadline);
    } catch (error) {
      if (!(error instanceof AskTimeoutError)) throw error;
      // Still in flight: answer with what is known now; the client polls.
      return (await this.get(order.merchantId, order.id).catch(() => undefined)) ?? order;
    }
  }

  /**
   * The Merchant holds only orders in flight, and this process remembers only its latest finished
   * ones: an order it no longer knows has finished, and the read model, which trails the journal by
   * moments, will show it so. Waits for that until the request's deadline, then answers what it has.
   */
  private async terminalFromReadModel(order: OrderView, deadline: number): Promise<OrderView> {
    for (;;) {
      const row = await this.queries.getOrder(order.merchantId, order.id);
      if (row !== undefined && isTerminal(row.status)) return row;
      const remainingMs = deadline - this.clock.now();
      if (remainingMs <= 0) return row ?? order;
      await this.pause(Math.min(remainingMs, this.settings.readModelPollIntervalMs));
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => this.clock.schedule(ms, resolve));
  }

  /** The read model lags the journal by moments; an order the Merchant already forgot will appear. */
  private async fromReadModel(merchantId: string, orderId: string): Promise<OrderView> {
    const until = this.clock.now() + this.settings.readModelWaitMs;
    for (;;) {
      const row = await this.queries.getOrder(merchantId, orderId);
      if (row !== undefined) return row;
      if (this.clock.now() >= until) {
        throw new ApiError(
          503,
          'order_not_yet_visible',
          'The order exists but is not readable yet; retry shortly.',
        );
      }
      await this.pause(this.settings.readModelPollIntervalMs);
    }
  }

  private ask<R>(
    merchantId: string,
    timeoutMs: number,
    make: (replyTo: ActorRef<R>) => MerchantCommand,
  ): Promise<R> {
    return this.entities.ask<MerchantCommand, R>(merchantAddress(merchantId), make, timeoutMs);
  }

  /** An ask the client is waiting on: no answer in time is a 503 the client can safely retry. */
  private async accept<R>(merchantId: string, make: (replyTo: ActorRef<R>) => MerchantCommand): Promise<R> {
    try {
      return await this.ask(merchantId, this.settings.acceptTimeoutMs, make);
    } catch (error) {
      if (!(error instanceof AskTimeoutError)) throw error;
      throw gatewayBusy();
    }
  }
}

export function viewOf(order: Order): OrderView {
  return {
    id: order.id,
    merchantId: order.merchantId,
    status: order.status,
    amount: order.amount,
    currency: order.currency,
    card: { brand: order.card.brand, last4: order.card.last4 },
    bank: order.bank,
    reference: order.reference,
    description: order.description,
    reason: order.reason,
    requestHash: order.requestHash,
    // The Merchant knows nothing of refunds: an order it holds is in flight or just finished, and
    // only an executed order has refunds, which the read model shows once it has them.
    amountRefunded: 0n,
    createdAt: order.createdAt,
    updatedAt: order.updatedAt,
  };
}

/** A card the vault could not store: the order is not submitted, and the client may retry. */
async function storedCard(tokenized: Promise<CardSummary>): Promise<CardSummary> {
  try {
    return await tokenized;
  } catch {
    throw new ApiError(
      503,
      'store_unavailable',
      'The gateway could not store the card; retry with the same Idempotency-Key.',
      undefined,
      { 'retry-after': '1' },
    );
  }
}

function gatewayBusy(): ApiError {
  return new ApiError(
    503,
    'gateway_busy',
    'The gateway could not answer in time; retry with the same Idempotency-Key.',
    undefined,
    { 'retry-after': '1' },
  );
}

function keyReused(): ApiError {
  return new ApiError(
    422,
    'idempotency_key_reused',
    'This Idempotency-Key was already used with a different request body.',
    'Idempotency-Key',
  );
}

/**
 * `canonicalJson(request)` written out for the one shape the API accepts (its schema allows no
 * other field), without building and sorting entry arrays: fingerprinting every order this way
 * allocated ~3 KB and took ~1.5 % of the main thread. It must stay equal to `canonicalJson` for
 * every request (fingerprints in old journals are compared with it); a property test checks so.
 */
export function orderRequestText(request: OrderRequest): string {
  const { card } = request;
  let text =
    `{"amount":${JSON.stringify(request.amount)},"card":{"cvc":${JSON.stringify(card.cvc)},` +
    `"expMonth":${JSON.stringify(card.expMonth)},"expYear":${JSON.stringify(card.expYear)},` +
    `"number":${JSON.stringify(card.number)}},"currency":${JSON.stringify(request.currency)}`;
  if (request.description !== undefined) text += `,"description":${JSON.stringify(request.description)}`;
  if (request.reference !== undefined) text += `,"reference":${JSON.stringify(request.reference)}`;
  return `${text}}`;
}

/** JSON with object keys sorted, so the same request always fingerprints the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, field]) => field !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, field]) => `${JSON.stringify(key)}:${canonicalJson(field)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
