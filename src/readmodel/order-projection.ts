import assert from 'node:assert/strict';
import { type ExecutorEvent, executorEvents } from '../payments/executor-events.js';
import { type MerchantEvent, merchantEvents } from '../payments/merchant-events.js';
import { type PaymentEvent, paymentEvents } from '../payments/payment-events.js';
import { SerializationError } from '../persistence/serialization.js';
import { assertNever } from '../runtime/assert-never.js';
import type { Cancellable, Clock } from '../runtime/clock.js';
import { type Logger, silentLogger } from '../runtime/logger.js';
import { CorruptRowError, type OffsetEvent } from '../store/journal.js';
import type { JournalFeed } from './journal-reader.js';
import {
  InconsistentEventError,
  type JournalPosition,
  type OrderBatch,
  type OrderChange,
} from './order-read-model.js';

/**
 * What the projection needs of a read model: its stored offset and a way to apply a batch with
 * its last offset in one transaction. SQLite's `OrderReadModel` answers at once, PostgreSQL's
 * `PostgresOrderReadModel` with promises; the projection awaits either.
 */
export interface ProjectedReadModel {
  offset(): number | Promise<number>;
  applyBatch(batch: OrderBatch): void | Promise<void>;
}

/**
 * The order projection: follows the journal's global stream and applies Merchant, Executor and
 * Payment events to the order read model (Payment events are the order's refunds).
 *
 * Life of a batch: read at most `batchSize` events after the read model's stored offset, decode
 * each with the registry its persistence id names, turn it into table changes (a pure step), and
 * apply the changes together with the batch's last offset in one transaction. A crash therefore
 * never applies a batch twice nor loses one: the next run continues from the committed offset.
 *
 * Events of other entity types (other persistence-id prefixes) are passed over. An event of a known
 * type that cannot be decoded, or that contradicts the tables, stops the projection with an error
 * naming the event — skipping it would publish wrong orders silently. A stopped projection is
 * restarted by its owner (a new instance); it resumes at the committed offset.
 *
 * It runs until `stop()`: after catching up it waits for `notify()` (called after every durable
 * append, so the read side lags little) or, as a fallback, for `pollIntervalMs` on the Clock.
 * Memory stays bounded: one batch at a time, and at most `waitersMax` callers waiting.
 *
 * The simulator and tests run it in-process, on whatever `JournalFeed` they have. The gateway runs
 * it in a worker thread (`order-projection-worker.ts`), on a read-only connection to the journal's
 * file, so its CPU — about a fifth of the main thread under load — is spent off the event loop.
 */

export interface OrderProjectionSettings {
  /** Journal events read and applied per transaction. */
  readonly batchSize: number;
  /** How long it waits for a `notify()` before looking at the journal anyway. */
  readonly pollIntervalMs: number;
  /** Callers of `caughtUp`/`waitForOffset` waiting at once; more are refused. */
  readonly waitersMax: number;
}

export const defaultOrderProjectionSettings: OrderProjectionSettings = {
  batchSize: 1_000,
  pollIntervalMs: 1_000,
  waitersMax: 10_000,
};

export interface OrderProjectionOptions {
  /** The journal, or only a reader of its global stream (`SqliteJournalReader` in a worker). */
  readonly journal: JournalFeed;
  readonly readModel: ProjectedReadModel;
  readonly clock: Clock;
  readonly logger?: Logger;
  readonly settings?: Partial<OrderProjectionSettings>;
  /** Called after each batch has committed, with the read model's new offset. Must not throw. */
  readonly onApplied?: (offset: number) => void;
}

export interface OrderProjectionStats {
  /** Batches applied by this instance. */
  readonly batches: number;
  /** Journal events read by this instance (of every entity type). */
  readonly events: number;
}

/** The projection stopped on an event it must not skip, or on a store error. */
export class OrderProjectionError extends Error {
  override readonly name = 'OrderProjectionError';
  /** The event it stopped at, when the cause names one. */
  readonly position: Pick<JournalPosition, 'persistenceId' | 'seqNr'> | undefined;
  constructor(
    /** The read model's offset when it stopped, if known. */
    readonly afterOffset: number | undefined,
    cause: unknown,
  ) {
    const where = afterOffset === undefined ? '' : ` after offset ${afterOffset}`;
    super(`order projection stopped${where}: ${messageOf(cause)}`, { cause });
    this.position = positionOf(cause);
  }
}

/** A wait was cut short because the projection was stopped. */
export class OrderProjectionStoppedError extends Error {
  override readonly name = 'OrderProjectionStoppedError';
  constructor() {
    super('order projection stopped');
  }
}

/** Too many callers are waiting already (`waitersMax`). */
export class OrderProjectionBusyError extends Error {
  override readonly name = 'OrderProjectionBusyError';
  constructor(readonly waitersMax: number) {
    super(`too many callers wait for the order projection (waitersMax=${waitersMax})`);
  }
}

// ---- decoding and changes (pure) ------------------------------------------------------------

export type DecodedEvent =
  | { readonly source: 'merchant'; readonly merchantId: string; readonly event: MerchantEvent }
  | { readonly source: 'executor'; readonly bank: string; readonly event: ExecutorEvent }
  | { readonly source: 'payment'; readonly orderId: string; readonly event: PaymentEvent };

const merchantPrefix = 'merchant-';
const executorPrefix = 'executor-';
const paymentPrefix = 'payment-';

/**
 * Decodes a journal row of a Merchant, Executor or Payment entity (upcasting old versions), or
 * returns undefined for another entity type. Throws `SerializationError` for a row it should read
 * but cannot.
 */
export function decodeJournalRow(row: OffsetEvent): DecodedEvent | undefined {
  const location = { persistenceId: row.persistenceId, seqNr: row.seqNr };
  if (row.persistenceId.startsWith(merchantPrefix)) {
    const event = merchantEvents.deserialize(row, location);
    return { source: 'merchant', merchantId: row.persistenceId.slice(merchantPrefix.length), event };
  }
  if (row.persistenceId.startsWith(executorPrefix)) {
    const event = executorEvents.deserialize(row, location);
    return { source: 'executor', bank: row.persistenceId.slice(executorPrefix.length), event };
  }
  if (row.persistenceId.startsWith(paymentPrefix)) {
    const event = paymentEvents.deserialize(row, location);
    return { source: 'payment', orderId: row.persistenceId.slice(paymentPrefix.length), event };
  }
  return undefined;
}

/** What one event changes in the read model, in the order the changes apply. */
export function orderChangesOf(row: OffsetEvent, decoded: DecodedEvent): OrderChange[] {
  const position: JournalPosition = {
    offset: row.offset,
    persistenceId: row.persistenceId,
    seqNr: row.seqNr,
  };
  if (decoded.source === 'executor') {
    // Executor events are the bank side of an order: audit only. The order's status follows the
    // Merchant's events, which record the outcome once the Merchant has accepted it.
    return [audited(position, row, decoded.event.orderId)];
  }
  if (decoded.source === 'payment') return [refundChangeOf(position, row, decoded.orderId, decoded.event)];
  const { event } = decoded;
  if (event.type === 'MerchantConfigured') return [];
  const orderId = event.orderId;
  switch (event.type) {
    case 'OrderCreated':
      return [
        {
          kind: 'created',
          position,
          order: {
            id: orderId,
            merchantId: decoded.merchantId,
            amount: event.amount,
            currency: event.currency,
            card: { brand: event.card.brand, bin: event.card.bin, last4: event.card.last4 },
            reference: event.reference,
            description: event.description,
            idempotencyKey: event.idempotencyKey,
            requestHash: event.requestHash,
            createdAt: event.at,
          },
        },
      ];
    case 'OrderValidated':
      return [transition(position, orderId, 'new', 'validated', event.at, { bank: event.bank })];
    case 'OrderRejected':
      return [transition(position, orderId, 'new', 'rejected', event.at, { reason: event.reason })];
    case 'ExecuteOrderConfirmed':
      return [audited(position, row, orderId)];
    case 'OrderExecuted':
      return [
        transition(position, orderId, 'validated', 'executed', event.at, {
          authorizationCode: event.authorizationCode,
        }),
      ];
    case 'OrderDeclined':
      return [transition(position, orderId, 'validated', 'declined', event.at, { reason: event.reason })];
    case 'OrderFailed':
      return [transition(position, orderId, 'validated', 'failed', event.at, { reason: event.reason })];
    default:
      return assertNever(event);
  }
}

/** A Payment's event: its order is the one the persistence id names (`payment-<order id>`). */
function refundChangeOf(
  position: JournalPosition,
  row: OffsetEvent,
  orderId: string,
  event: PaymentEvent,
): OrderChange {
  switch (event.type) {
    case 'RefundRequested':
      if (event.orderId !== orderId) {
        throw new InconsistentEventError(
          `a refund of order ${event.orderId} is in ${row.persistenceId}`,
          position,
        );
      }
      return {
        kind: 'refundRequested',
        position,
        orderId,
        refund: {
          id: event.refundId,
          orderId: event.orderId,
          merchantId: event.merchantId,
          idempotencyKey: event.idempotencyKey,
          requestHash: event.requestHash,
          amount: event.amount,
          currency: event.currency,
          reason: event.reason,
          createdAt: event.at,
        },
      };
    case 'ExecuteRefundConfirmed':
      return audited(position, row, orderId);
    case 'RefundSucceeded':
      return settled(position, orderId, event.refundId, 'succeeded', undefined, event.at);
    case 'RefundFailed':
      return settled(position, orderId, event.refundId, 'failed', event.reason, event.at);
    default:
      return assertNever(event);
  }
}

function settled(
  position: JournalPosition,
  orderId: string,
  refundId: string,
  status: 'succeeded' | 'failed',
  failureReason: string | undefined,
  at: number,
): OrderChange {
  return { kind: 'refundSettled', position, orderId, refundId, status, failureReason, at };
}

function audited(position: JournalPosition, row: OffsetEvent, orderId: string): OrderChange {
  return { kind: 'audited', position, orderId, type: row.type };
}

function transition(
  position: JournalPosition,
  orderId: string,
  from: 'new' | 'validated',
  to: 'validated' | 'rejected' | 'executed' | 'declined' | 'failed',
  at: number,
  fields: { readonly bank?: string; readonly reason?: string; readonly authorizationCode?: string },
): OrderChange {
  return { kind: 'transitioned', position, orderId, from, to, at, ...fields };
}

// ---- the running projection -----------------------------------------------------------------

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

interface OffsetWaiter extends Waiter {
  readonly offset: number;
}

type State = 'new' | 'running' | 'stopped' | 'failed';

export class OrderProjection {
  private readonly journal: JournalFeed;
  private readonly onApplied: ((offset: number) => void) | undefined;
  private readonly readModel: ProjectedReadModel;
  private readonly clock: Clock;
  private readonly log: Logger;
  readonly settings: OrderProjectionSettings;

  private state: State = 'new';
  private failure: OrderProjectionError | undefined;
  private stopping = false;
  /** Set by `notify()`: the journal may have grown since the last read began. */
  private notified = false;
  /** Ends the current idle wait, if there is one. */
  private wake: (() => void) | undefined;
  /** Settles when the loop has ended, however it ended; never rejects. */
  private finished: Promise<void> = Promise.resolve();
  private caughtUpWaiters: Waiter[] = [];
  private offsetWaiters: OffsetWaiter[] = [];
  private counters = { batches: 0, events: 0 };
  /**
   * The last offset this instance applied or found in the read model: for logs (the read model may
   * be closed by then), and for `waitForOffset` on a read model that answers asynchronously.
   */
  private lastOffset = 0;

  constructor(options: OrderProjectionOptions) {
    this.journal = options.journal;
    this.onApplied = options.onApplied;
    this.readModel = options.readModel;
    this.clock = options.clock;
    this.log = (options.logger ?? silentLogger).child({ projection: 'orders' });
    this.settings = { ...defaultOrderProjectionSettings, ...options.settings };
    const { batchSize, pollIntervalMs, waitersMax } = this.settings;
    assert.ok(Number.isSafeInteger(batchSize) && batchSize >= 1, 'batchSize must be an integer >= 1');
    assert.ok(Number.isFinite(pollIntervalMs) && pollIntervalMs > 0, 'pollIntervalMs must be > 0');
    assert.ok(Number.isSafeInteger(waitersMax) && waitersMax >= 1, 'waitersMax must be an integer >= 1');
  }

  /**
   * Runs until `stop()`: resolves then, or rejects with an `OrderProjectionError` when an event
   * stops the projection. Once per instance.
   */
  start(): Promise<void> {
    assert.ok(this.state === 'new', `order projection cannot start: it is ${this.state}`);
    this.state = 'running';
    const outcome = this.run().then(
      () => this.stopped(),
      (error: unknown) => {
        throw this.failed(error);
      },
    );
    this.finished = outcome.then(
      () => undefined,
      () => undefined,
    );
    return outcome;
  }

  /** The journal has grown: look now instead of at the next poll. Never throws. */
  notify(): void {
    this.notified = true;
    this.wake?.();
  }

  /** Resolves once everything the journal held when this was called is applied. */
  caughtUp(): Promise<void> {
    return this.enqueue((waiter) => this.caughtUpWaiters.push(waiter));
  }

  /** Resolves once the event at global `offset` (and all before it) is applied. */
  waitForOffset(offset: number): Promise<void> {
    assert.ok(Number.isSafeInteger(offset) && offset >= 0, 'offset must be an integer >= 0');
    // A read model that answers at once is asked; otherwise the next batch (which `enqueue`
    // prompts) releases the waiter if the read model is there already.
    const current = this.readModel.offset();
    if ((typeof current === 'number' ? current : this.lastOffset) >= offset) return Promise.resolve();
    return this.enqueue((waiter) => this.offsetWaiters.push({ ...waiter, offset }));
  }

  /** Ends the loop after the batch in progress (which commits whole). Never throws. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.finished;
    if (this.state === 'new') this.stopped();
  }

  stats(): OrderProjectionStats {
    return { ...this.counters };
  }

  private enqueue(add: (waiter: Waiter) => void): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.state === 'stopped') return Promise.reject(new OrderProjectionStoppedError());
    const { waitersMax } = this.settings;
    if (this.caughtUpWaiters.length + this.offsetWaiters.length >= waitersMax) {
      return Promise.reject(new OrderProjectionBusyError(waitersMax));
    }
    const waiting = new Promise<void>((resolve, reject) => add({ resolve, reject }));
    this.notify();
    return waiting;
  }

  private async run(): Promise<void> {
    this.lastOffset = await this.readModel.offset();
    this.log.info({ offset: this.lastOffset }, 'order projection started');
    while (!this.stopping) {
      this.notified = false;
      // Waiters registered before this read began are caught up once a read reaches the end.
      const waiting = this.caughtUpWaiters;
      this.caughtUpWaiters = [];
      let read: number;
      try {
        read = await this.step();
      } catch (error) {
        this.caughtUpWaiters = waiting.concat(this.caughtUpWaiters);
        throw error;
      }
      if (read === this.settings.batchSize) {
        // Maybe more behind it: go on, but let other work (requests, timers) run between batches.
        this.caughtUpWaiters = waiting.concat(this.caughtUpWaiters);
        await new Promise<void>((resolve) => setImmediate(resolve));
        continue;
      }
      for (const waiter of waiting) waiter.resolve();
      await this.idle();
    }
  }

  /** Reads and applies one batch; returns how many journal events it read. */
  private async step(): Promise<number> {
    const afterOffset = await this.readModel.offset();
    this.lastOffset = afterOffset;
    this.releaseOffsetWaiters(afterOffset);
    try {
      const rows = await this.journal.readAll(afterOffset, this.settings.batchSize);
      if (rows.length === 0) return 0;
      const changes: OrderChange[] = [];
      let toOffset = afterOffset;
      for (const row of rows) {
        assert.ok(row.offset > toOffset, `journal offsets must grow: ${row.offset} after ${toOffset}`);
        toOffset = row.offset;
        const decoded = decodeJournalRow(row);
        if (decoded !== undefined) changes.push(...orderChangesOf(row, decoded));
      }
      await this.readModel.applyBatch({ afterOffset, toOffset, changes });
      this.counters.batches++;
      this.counters.events += rows.length;
      this.lastOffset = toOffset;
      this.log.debug({ afterOffset, toOffset, events: rows.length }, 'order projection applied a batch');
      this.releaseOffsetWaiters(toOffset);
      this.onApplied?.(toOffset);
      return rows.length;
    } catch (error) {
      throw new OrderProjectionError(afterOffset, error);
    }
  }

  private idle(): Promise<void> {
    if (this.notified || this.stopping) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let timer: Cancellable | undefined;
      this.wake = () => {
        timer?.cancel();
        this.wake = undefined;
        resolve();
      };
      timer = this.clock.schedule(this.settings.pollIntervalMs, () => this.wake?.());
    });
  }

  private releaseOffsetWaiters(offset: number): void {
    if (this.offsetWaiters.length === 0) return;
    const still: OffsetWaiter[] = [];
    for (const waiter of this.offsetWaiters) {
      if (waiter.offset <= offset) waiter.resolve();
      else still.push(waiter);
    }
    this.offsetWaiters = still;
  }

  private stopped(): void {
    this.state = 'stopped';
    this.rejectWaiters(new OrderProjectionStoppedError());
    this.log.info({ offset: this.lastOffset }, 'order projection stopped');
  }

  private failed(error: unknown): OrderProjectionError {
    const failure =
      error instanceof OrderProjectionError ? error : new OrderProjectionError(undefined, error);
    this.state = 'failed';
    this.failure = failure;
    this.rejectWaiters(failure);
    this.log.error({ error: failure.message, position: failure.position }, 'order projection failed');
    return failure;
  }

  private rejectWaiters(error: Error): void {
    const waiters = [...this.caughtUpWaiters, ...this.offsetWaiters];
    this.caughtUpWaiters = [];
    this.offsetWaiters = [];
    for (const waiter of waiters) waiter.reject(error);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function positionOf(error: unknown): OrderProjectionError['position'] {
  if (error instanceof SerializationError) return error.location;
  if (error instanceof InconsistentEventError || error instanceof CorruptRowError) {
    const source = error instanceof InconsistentEventError ? error.position : error;
    return { persistenceId: source.persistenceId, seqNr: source.seqNr };
  }
  return undefined;
}
