import assert from 'node:assert/strict';
import type { OrderQueries } from '../node/order-service.js';
import type { RefundQueries } from '../node/refund-queries.js';
import { orderJson, refundJson } from '../node/resource-json.js';
import { merchantEvents } from '../payments/merchant-events.js';
import { paymentEvents } from '../payments/payment-events.js';
import type { Cancellable, Clock } from '../runtime/clock.js';
import { type Logger, silentLogger } from '../runtime/logger.js';
import type { Journal, OffsetEvent } from '../store/journal.js';
import { serializeWebhookEvent, type WebhookEventType, webhookEvent } from './webhook-event.js';
import type { StoredWebhookEvent, WebhookStore } from './webhook-store.js';

/**
 * The webhook projection: derives webhook events from the journal's global stream and stores them,
 * with a pending delivery per subscribed endpoint, through `WebhookStore.appendEvents`.
 *
 * Life of a batch: read at most `batchSize` journal events after the store's offset; pick the
 * outcomes — a Merchant's `OrderExecuted`, `OrderDeclined`, `OrderFailed` (`order.*`) and a
 * Payment's `RefundSucceeded`, `RefundFailed` (`refund.*`), keeping those an enabled endpoint of
 * their merchant subscribes to; wait until the read model has applied
 * the journal up to the last of them (polling its offset every `readModelPollIntervalMs`, for at
 * most `readModelWaitMaxMs`, then the batch is tried again); render each order or refund from the
 * read model exactly as the API shows it (`orderJson`, `refundJson`); and store the events with the
 * batch's last offset in one transaction. A crash never loses an outcome nor derives one twice,
 * and an event derived again has the same id (`webhookEventIdFor`), which the store keeps once.
 *
 * It runs beside the order path and never in its way: one bounded batch at a time, yielding
 * between batches. An error (an undecodable event, an order the caught-up read model does not
 * have, a store error) is logged and the batch retried after a backoff, from the stored offset.
 */

export interface WebhookProjectionSettings {
  /** Journal events read per batch (and so per store transaction). */
  readonly batchSize: number;
  /** How long it waits for a `notify()` before looking at the journal anyway. */
  readonly pollIntervalMs: number;
  /** How often the read model's offset is read while waiting for it. */
  readonly readModelPollIntervalMs: number;
  /** How long a batch waits for the read model before it is tried again. */
  readonly readModelWaitMaxMs: number;
  /** The delay before a failed batch is tried again, doubling up to `retryDelayMaxMs`. */
  readonly retryDelayMs: number;
  readonly retryDelayMaxMs: number;
  /** Payments whose merchant is remembered (each costs one journal read to learn). */
  readonly paymentMerchantsCachedMax: number;
}

export const defaultWebhookProjectionSettings: WebhookProjectionSettings = {
  batchSize: 500,
  pollIntervalMs: 250,
  readModelPollIntervalMs: 20,
  readModelWaitMaxMs: 5_000,
  retryDelayMs: 500,
  retryDelayMaxMs: 30_000,
  paymentMerchantsCachedMax: 10_000,
};

export interface WebhookProjectionOptions {
  /** The global stream, and one Payment's first event (which names its merchant). */
  readonly journal: Pick<Journal, 'readAll' | 'read'>;
  readonly store: WebhookStore;
  readonly orders: Pick<OrderQueries, 'getOrder'>;
  readonly refunds: Pick<RefundQueries, 'getRefund'>;
  /** The journal offset the read model has applied (what its queries show). */
  readonly readModelOffset: () => Promise<number>;
  readonly clock: Clock;
  readonly logger?: Logger;
  readonly settings?: Partial<WebhookProjectionSettings>;
  /** Called after a batch stored events (e.g. the dispatcher's `poke`). Must not throw. */
  readonly onEvents?: () => void;
}

/** An outcome read from the journal, before it is rendered. */
export interface WebhookOutcome {
  readonly type: WebhookEventType;
  /** Known for an order; a refund's is read from its Payment's first event. */
  readonly merchantId: string | undefined;
  readonly subjectId: string;
  readonly persistenceId: string;
  readonly offset: number;
  readonly at: number;
}

const merchantPrefix = 'merchant-';
const paymentPrefix = 'payment-';

/**
 * The webhook outcome a journal row records, or undefined. Throws `SerializationError` for a
 * Merchant or Payment event it cannot decode. Pure.
 */
export function webhookOutcomeOf(row: OffsetEvent): WebhookOutcome | undefined {
  const location = { persistenceId: row.persistenceId, seqNr: row.seqNr };
  const common = { persistenceId: row.persistenceId, offset: row.offset };
  if (row.persistenceId.startsWith(merchantPrefix)) {
    const merchantId = row.persistenceId.slice(merchantPrefix.length);
    const event = merchantEvents.deserialize(row, location);
    switch (event.type) {
      case 'OrderExecuted':
        return { ...common, type: 'order.executed', merchantId, subjectId: event.orderId, at: event.at };
      case 'OrderDeclined':
        return { ...common, type: 'order.declined', merchantId, subjectId: event.orderId, at: event.at };
      case 'OrderFailed':
        return { ...common, type: 'order.failed', merchantId, subjectId: event.orderId, at: event.at };
      default:
        return undefined;
    }
  }
  if (row.persistenceId.startsWith(paymentPrefix)) {
    const event = paymentEvents.deserialize(row, location);
    switch (event.type) {
      case 'RefundSucceeded':
        return {
          ...common,
          type: 'refund.succeeded',
          merchantId: undefined,
          subjectId: event.refundId,
          at: event.at,
        };
      case 'RefundFailed':
        return {
          ...common,
          type: 'refund.failed',
          merchantId: undefined,
          subjectId: event.refundId,
          at: event.at,
        };
      default:
        return undefined;
    }
  }
  return undefined;
}

export interface WebhookProjectionStatus {
  readonly offset: number;
  readonly batches: number;
  readonly events: number;
  /** Batches put off because the read model had not reached their outcomes in time. */
  readonly readModelWaits: number;
  /** Failed batches since the last one that succeeded. */
  readonly consecutiveFailures: number;
  readonly lastError: string | undefined;
}

export class WebhookProjection {
  private readonly journal: Pick<Journal, 'readAll' | 'read'>;
  private readonly store: WebhookStore;
  private readonly orders: Pick<OrderQueries, 'getOrder'>;
  private readonly refunds: Pick<RefundQueries, 'getRefund'>;
  private readonly readModelOffset: () => Promise<number>;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly onEvents: (() => void) | undefined;
  readonly settings: WebhookProjectionSettings;

  private readonly paymentMerchants = new Map<string, string>();
  private running: Promise<void> | undefined;
  private stopping = false;
  private notified = false;
  private wake: (() => void) | undefined;
  private lastOffset = 0;
  private counters = { batches: 0, events: 0, readModelWaits: 0, consecutiveFailures: 0 };
  private lastError: string | undefined;

  constructor(options: WebhookProjectionOptions) {
    this.journal = options.journal;
    this.store = options.store;
    this.orders = options.orders;
    this.refunds = options.refunds;
    this.readModelOffset = options.readModelOffset;
    this.clock = options.clock;
    this.log = (options.logger ?? silentLogger).child({ projection: 'webhooks' });
    this.onEvents = options.onEvents;
    this.settings = { ...defaultWebhookProjectionSettings, ...options.settings };
    for (const [name, value] of Object.entries(this.settings)) {
      assert.ok(Number.isSafeInteger(value) && value >= 1, `${name} must be an integer >= 1, got ${value}`);
    }
  }

  /** Runs until `stop()`. Once per instance. */
  start(): void {
    assert.ok(this.running === undefined, 'the webhook projection starts once');
    this.running = this.run();
  }

  /** The journal has grown: look now instead of at the next poll. Never throws. */
  notify(): void {
    this.notified = true;
    this.wake?.();
  }

  /** Ends the loop after the batch in progress (which commits whole or not at all). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.running;
  }

  status(): WebhookProjectionStatus {
    return { offset: this.lastOffset, ...this.counters, lastError: this.lastError };
  }

  private async run(): Promise<void> {
    this.log.info({}, 'webhook projection started');
    while (!this.stopping) {
      this.notified = false;
      let read: number | 'behind';
      try {
        read = await this.step();
        this.counters.consecutiveFailures = 0;
        this.lastError = undefined;
      } catch (error) {
        this.counters.consecutiveFailures++;
        this.lastError = error instanceof Error ? error.message : String(error);
        this.log.error(
          { offset: this.lastOffset, failures: this.counters.consecutiveFailures, error: this.lastError },
          'webhook projection batch failed; trying again',
        );
        const delay = Math.min(
          this.settings.retryDelayMaxMs,
          this.settings.retryDelayMs * 2 ** Math.min(this.counters.consecutiveFailures - 1, 20),
        );
        await this.sleep(delay, false);
        continue;
      }
      if (read === 'behind') {
        this.counters.readModelWaits++;
        this.log.warn({ offset: this.lastOffset }, 'read model behind the webhook projection; trying again');
        continue;
      }
      if (read === this.settings.batchSize) {
        // Maybe more behind it: go on, but let requests and timers run between batches.
        await new Promise<void>((resolve) => setImmediate(resolve));
        continue;
      }
      await this.sleep(this.settings.pollIntervalMs, true);
    }
    this.log.info({ offset: this.lastOffset }, 'webhook projection stopped');
  }

  /** One batch; how many journal events it read, or `behind` when the read model did not catch up. */
  private async step(): Promise<number | 'behind'> {
    const afterOffset = await this.store.offset();
    this.lastOffset = afterOffset;
    const rows = await this.journal.readAll(afterOffset, this.settings.batchSize);
    if (rows.length === 0) return 0;
    const outcomes: WebhookOutcome[] = [];
    let toOffset = afterOffset;
    for (const row of rows) {
      assert.ok(row.offset > toOffset, `journal offsets must grow: ${row.offset} after ${toOffset}`);
      toOffset = row.offset;
      const outcome = webhookOutcomeOf(row);
      if (outcome !== undefined) outcomes.push(outcome);
    }
    const wanted = await this.subscribed(outcomes);
    const last = wanted.at(-1);
    if (last !== undefined && !(await this.readModelReached(last.offset))) return 'behind';
    const events: StoredWebhookEvent[] = [];
    for (const { outcome, merchantId } of wanted) events.push(await this.render(outcome, merchantId));
    if (this.stopping) return rows.length;
    await this.store.appendEvents(events, toOffset, this.clock.now());
    this.lastOffset = toOffset;
    this.counters.batches++;
    this.counters.events += events.length;
    if (events.length > 0) this.onEvents?.();
    return rows.length;
  }

  /**
   * The outcomes some enabled endpoint of their merchant subscribes to, with their merchant. An
   * event no endpoint would receive is not stored: nothing could ever deliver it (an endpoint
   * registered later receives the events derived after it), and rendering it would cost the
   * read model a query per order for nothing.
   */
  private async subscribed(
    outcomes: readonly WebhookOutcome[],
  ): Promise<
    Array<{ readonly outcome: WebhookOutcome; readonly merchantId: string; readonly offset: number }>
  > {
    const subscriptions = new Map<string, Set<WebhookEventType>>();
    const wanted: Array<{ outcome: WebhookOutcome; merchantId: string; offset: number }> = [];
    for (const outcome of outcomes) {
      const merchantId = outcome.merchantId ?? (await this.merchantOfPayment(outcome.persistenceId));
      let types = subscriptions.get(merchantId);
      if (types === undefined) {
        const endpoints = await this.store.listEndpoints(merchantId);
        types = new Set(endpoints.filter((e) => e.status === 'enabled').flatMap((e) => e.eventTypes));
        subscriptions.set(merchantId, types);
      }
      if (types.has(outcome.type)) wanted.push({ outcome, merchantId, offset: outcome.offset });
    }
    return wanted;
  }

  private async render(outcome: WebhookOutcome, merchantId: string): Promise<StoredWebhookEvent> {
    const data = outcome.type.startsWith('order.')
      ? await this.orderData(merchantId, outcome)
      : await this.refundData(merchantId, outcome);
    const event = webhookEvent({
      merchantId,
      type: outcome.type,
      subjectId: outcome.subjectId,
      createdAtMs: outcome.at,
      data,
    });
    return {
      id: event.id,
      merchantId,
      type: outcome.type,
      subjectId: outcome.subjectId,
      body: serializeWebhookEvent(event),
      createdAt: outcome.at,
    };
  }

  private async orderData(merchantId: string, outcome: WebhookOutcome) {
    const order = await this.orders.getOrder(merchantId, outcome.subjectId);
    if (order === undefined)
      throw new Error(`${where(outcome)}: the read model has no order ${outcome.subjectId}`);
    return orderJson(order);
  }

  private async refundData(merchantId: string, outcome: WebhookOutcome) {
    const refund = await this.refunds.getRefund(merchantId, outcome.subjectId);
    if (refund === undefined)
      throw new Error(`${where(outcome)}: the read model has no refund ${outcome.subjectId}`);
    return refundJson(refund);
  }

  /** A Payment's merchant: its first event (`RefundRequested`) names it. */
  private async merchantOfPayment(persistenceId: string): Promise<string> {
    const known = this.paymentMerchants.get(persistenceId);
    if (known !== undefined) return known;
    const [first] = await this.journal.read(persistenceId, 1, 1, 1);
    if (first === undefined) throw new Error(`${persistenceId} has no first event`);
    const event = paymentEvents.deserialize(first, { persistenceId, seqNr: first.seqNr });
    if (event.type !== 'RefundRequested') {
      throw new Error(`${persistenceId} starts with ${event.type}, not RefundRequested`);
    }
    if (this.paymentMerchants.size >= this.settings.paymentMerchantsCachedMax) this.paymentMerchants.clear();
    this.paymentMerchants.set(persistenceId, event.merchantId);
    return event.merchantId;
  }

  /** Whether the read model reaches `offset` within `readModelWaitMaxMs`. */
  private async readModelReached(offset: number): Promise<boolean> {
    const deadline = this.clock.now() + this.settings.readModelWaitMaxMs;
    for (;;) {
      if ((await this.readModelOffset()) >= offset) return true;
      if (this.stopping || this.clock.now() >= deadline) return false;
      await this.sleep(this.settings.readModelPollIntervalMs, false);
    }
  }

  /** Waits `delayMs` on the Clock, or less when stopped (or, if `wakeOnNotify`, when notified). */
  private sleep(delayMs: number, wakeOnNotify: boolean): Promise<void> {
    if (this.stopping || (wakeOnNotify && this.notified)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let timer: Cancellable | undefined;
      const done = () => {
        timer?.cancel();
        this.wake = undefined;
        resolve();
      };
      this.wake = wakeOnNotify ? done : () => this.stopping && done();
      timer = this.clock.schedule(delayMs, done);
    });
  }
}

function where(outcome: WebhookOutcome): string {
  return `${outcome.type} at journal offset ${outcome.offset} (${outcome.persistenceId})`;
}
