import assert from 'node:assert/strict';
import { join } from 'node:path';
import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3';
import { z } from 'zod';
import type { RefundQueries } from '../node/refund-queries.js';
import type { CardBrand } from '../payments/card.js';
import { type Currency, isCurrency } from '../payments/money.js';
import { type OrderStatus, orderStatuses } from '../payments/order.js';
import { type Refund, type RefundStatus, refundStatuses } from '../payments/refund.js';
import { assertNever } from '../runtime/assert-never.js';

/**
 * The order read model: the journal projected into queryable SQLite tables — one row per order
 * (listing, filtering, paging), which also lists where each of the order's events sits in the
 * journal (its global offsets, in journal order): the audit trail is read from the journal by
 * those offsets (`audit-trail.ts`), not copied here. The events of the order's Payment (its
 * refunds) are listed there too; each refund has a row of its own in `refunds`, and the order's
 * `amount_refunded` is the sum of its succeeded refunds.
 *
 * It lives in its own database file, never in the journal's: it is derived data and can always be
 * rebuilt by deleting the file (or calling `reset()`) and projecting the journal again from offset
 * 0. That is why it runs with `synchronous=NORMAL`: a power loss may take back its last commits,
 * but the projection's offset is committed in the same transaction as the rows, so it just
 * projects those events again. For the same reason a file written with another schema version is
 * emptied and rebuilt rather than migrated.
 *
 * Only the projection writes (`applyBatch`, `reset`); queries are synchronous and return plain,
 * parsed objects. In the gateway the projection writes from a worker thread through its own
 * connection (`open`), and the API queries through a read-only one (`openForQueries`); WAL lets
 * the two run at once, and a query sees whole batches only. Everything read from the file is parsed before it is returned: the file is a
 * boundary, and a row that does not parse is a broken invariant.
 */

/** The file name inside the data directory. */
export const readModelFileName = 'readmodel.db';

export function readModelPath(dataDirectory: string): string {
  return join(dataDirectory, readModelFileName);
}

/** Bumped whenever the tables change; a file with another version is emptied and rebuilt. */
export const readModelSchemaVersion = 3;

/** The largest page `listOrders` returns. */
export const listLimitMax = 100;

/**
 * The most refunds `listRefunds` returns for one order: far above what a Payment accepts per order
 * (its `refundsPerOrderMax`), so it never cuts a real list short; it bounds the query all the same.
 */
export const refundsListedMax = 1_000;

/** The name the order projection's offset is stored under in `projection_offsets`. */
export const orderProjectionName = 'orders';

/** How long a statement waits for another connection's lock (a reader tool) before SQLITE_BUSY. */
export const readModelBusyTimeoutMs = 5_000;

// ---- what queries return --------------------------------------------------------------------

/** An order as the API shows it. Field names and `undefined` for absent values follow `Order`. */
export interface OrderRow {
  readonly id: string;
  readonly merchantId: string;
  readonly status: OrderStatus;
  readonly amount: bigint;
  readonly currency: Currency;
  readonly card: { readonly brand: CardBrand; readonly last4: string };
  readonly bank: string | undefined;
  readonly reference: string | undefined;
  readonly description: string | undefined;
  /** A stable code for `rejected`, `declined` and `failed`. */
  readonly reason: string | undefined;
  readonly authorizationCode: string | undefined;
  readonly idempotencyKey: string;
  readonly requestHash: string;
  /** The sum of the order's succeeded refunds; 0 when none. */
  readonly amountRefunded: bigint;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface ListOrdersQuery {
  readonly merchantId: string;
  readonly status?: OrderStatus | undefined;
  /** 1 to `listLimitMax`. */
  readonly limit: number;
  /** An order id from a previous page: the page continues strictly after it, newest first. */
  readonly startingAfter?: string | undefined;
}

export interface OrderPage {
  readonly data: OrderRow[];
  readonly hasMore: boolean;
}

/** The cursor is not an order of this merchant: a client error, answered as such by the API. */
export class InvalidCursorError extends Error {
  override readonly name = 'InvalidCursorError';
  readonly code = 'invalid_cursor';
  constructor(
    readonly merchantId: string,
    readonly cursor: string,
  ) {
    super(`starting_after ${JSON.stringify(cursor)} is not an order of this merchant`);
  }
}

// ---- what the projection writes -------------------------------------------------------------

/** Where an event sits in the journal; every change names the event it comes from. */
export interface JournalPosition {
  readonly offset: number;
  readonly persistenceId: string;
  readonly seqNr: number;
}

export interface NewOrderRecord {
  readonly id: string;
  readonly merchantId: string;
  readonly amount: bigint;
  readonly currency: Currency;
  readonly card: { readonly brand: CardBrand; readonly bin: string; readonly last4: string };
  readonly reference: string | undefined;
  readonly description: string | undefined;
  readonly idempotencyKey: string;
  readonly requestHash: string;
  readonly createdAt: number;
}

/** A refund as its `RefundRequested` records it: `pending` from then on, until it is settled. */
export interface NewRefundRecord {
  readonly id: string;
  readonly orderId: string;
  readonly merchantId: string;
  readonly idempotencyKey: string;
  readonly requestHash: string;
  readonly amount: bigint;
  readonly currency: Currency;
  readonly reason: string | undefined;
  readonly createdAt: number;
}

/**
 * A change to the tables, derived from one event: each one also appends its event's offset to the
 * order's list of events (the audit trail). An event yields at most one.
 */
export type OrderChange =
  | { readonly kind: 'created'; readonly position: JournalPosition; readonly order: NewOrderRecord }
  | {
      readonly kind: 'transitioned';
      readonly position: JournalPosition;
      readonly orderId: string;
      /** The status the order must have; anything else means the journal and the table disagree. */
      readonly from: OrderStatus;
      readonly to: OrderStatus;
      readonly at: number;
      readonly bank?: string;
      readonly reason?: string;
      readonly authorizationCode?: string;
    }
  | {
      /** An event of the order that changes nothing but its audit trail. */
      readonly kind: 'audited';
      readonly position: JournalPosition;
      readonly orderId: string;
      readonly type: string;
    }
  | {
      /** A refund of the order was requested: a new `pending` refund. */
      readonly kind: 'refundRequested';
      readonly position: JournalPosition;
      readonly orderId: string;
      readonly refund: NewRefundRecord;
    }
  | {
      /**
       * A `pending` refund was settled; a succeeded one adds its amount to the order's
       * `amount_refunded` (and moves its `updated_at`).
       */
      readonly kind: 'refundSettled';
      readonly position: JournalPosition;
      readonly orderId: string;
      readonly refundId: string;
      readonly status: Exclude<RefundStatus, 'pending'>;
      readonly failureReason: string | undefined;
      readonly at: number;
    };

/** The changes that write a `refunds` row (besides the order's audit trail). */
export type RefundChange = Extract<OrderChange, { kind: 'refundRequested' | 'refundSettled' }>;

export function isRefundChange(change: OrderChange): change is RefundChange {
  return change.kind === 'refundRequested' || change.kind === 'refundSettled';
}

export interface OrderBatch {
  /** The offset the read model must be at; anything else means another writer or a lost batch. */
  readonly afterOffset: number;
  /** The offset of the batch's last event, stored with its changes. */
  readonly toOffset: number;
  readonly changes: readonly OrderChange[];
}

/**
 * An event the read model cannot apply in its current state (an order created twice, a result for
 * an unknown order, a transition from the wrong status): the journal and the tables disagree, and
 * going on would publish wrong orders. The projection stops with it.
 */
export class InconsistentEventError extends Error {
  override readonly name = 'InconsistentEventError';
  constructor(
    message: string,
    readonly position: JournalPosition,
  ) {
    super(
      `${message} (offset ${position.offset}, persistence id ${position.persistenceId}, seqNr ${position.seqNr})`,
    );
  }
}

// ---- rows as stored -------------------------------------------------------------------------

/** The columns a query of orders returns (shared by the PostgreSQL read model). */
export const orderColumns =
  'order_id, merchant_id, status, amount, currency, card_brand, card_last4, bank, reference, description, ' +
  'reason, authorization_code, idempotency_key, request_hash, amount_refunded, created_at, updated_at';

const optionalText = z
  .string()
  .nullable()
  .transform((value) => value ?? undefined);
const timestamp = z.number().int().nonnegative();
const statusSchema = z.enum(orderStatuses as [OrderStatus, ...OrderStatus[]]);
const currencySchema = z.custom<Currency>((value) => typeof value === 'string' && isCurrency(value));
const brandSchema = z.enum(['visa', 'mastercard', 'amex', 'discover', 'jcb', 'unknown']);
const decimalAmount = z
  .string()
  .regex(/^-?\d+$/)
  .transform(BigInt);

export const orderRowSchema = z
  .object({
    order_id: z.string().min(1),
    merchant_id: z.string().min(1),
    status: statusSchema,
    amount: decimalAmount,
    currency: currencySchema,
    card_brand: brandSchema,
    card_last4: z.string().regex(/^\d{4}$/),
    bank: optionalText,
    reference: optionalText,
    description: optionalText,
    reason: optionalText,
    authorization_code: optionalText,
    idempotency_key: z.string().min(1),
    request_hash: z.string().min(1),
    amount_refunded: decimalAmount,
    created_at: timestamp,
    updated_at: timestamp,
  })
  .strict()
  .transform(
    (row): OrderRow => ({
      id: row.order_id,
      merchantId: row.merchant_id,
      status: row.status,
      amount: row.amount,
      currency: row.currency,
      card: { brand: row.card_brand, last4: row.card_last4 },
      bank: row.bank,
      reference: row.reference,
      description: row.description,
      reason: row.reason,
      authorizationCode: row.authorization_code,
      idempotencyKey: row.idempotency_key,
      requestHash: row.request_hash,
      amountRefunded: row.amount_refunded,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    }),
  );

/** The columns a query of refunds returns (shared by the PostgreSQL read model). */
export const refundColumns =
  'id, order_id, merchant_id, idempotency_key, request_hash, status, amount, currency, reason, ' +
  'failure_reason, created_at, updated_at';

export const refundRowSchema = z
  .object({
    id: z.string().min(1),
    order_id: z.string().min(1),
    merchant_id: z.string().min(1),
    idempotency_key: z.string().min(1),
    request_hash: z.string().min(1),
    status: z.enum(refundStatuses as [RefundStatus, ...RefundStatus[]]),
    amount: decimalAmount,
    currency: currencySchema,
    reason: optionalText,
    failure_reason: optionalText,
    created_at: timestamp,
    updated_at: timestamp,
  })
  .strict()
  .transform(
    (row): Refund => ({
      id: row.id,
      orderId: row.order_id,
      merchantId: row.merchant_id,
      idempotencyKey: row.idempotency_key,
      requestHash: row.request_hash,
      status: row.status,
      amount: row.amount,
      currency: row.currency,
      reason: row.reason,
      failureReason: row.failure_reason,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    }),
  );

export type PendingRefund = Awaited<ReturnType<RefundQueries['pendingRefunds']>>[number];

export const pendingRefundRowSchema = z
  .object({ order_id: z.string().min(1), merchant_id: z.string().min(1), id: z.string().min(1) })
  .strict()
  .transform(
    (row): PendingRefund => ({ orderId: row.order_id, merchantId: row.merchant_id, refundId: row.id }),
  );

/** The amount of a refund just settled, as the settling statement returns it. */
export const settledRefundRowSchema = z.object({ amount: decimalAmount }).strict();

/** Comma-separated global offsets, ascending. */
export const eventOffsetsRowSchema = z
  .object({ merchant_id: z.string().min(1), event_offsets: z.string().regex(/^\d+(,\d+)*$/) })
  .strict()
  .transform((row) => ({ merchantId: row.merchant_id, offsets: row.event_offsets.split(',').map(Number) }));

export const cursorSchema = z.object({ created_at: timestamp, order_id: z.string().min(1) }).strict();

/** Parses a row read from the file; a row that does not parse means the file is broken. */
export function parseRow<T>(schema: z.ZodType<T>, row: unknown, what: string): T {
  const result = schema.safeParse(row);
  if (!result.success) assert.fail(`read model ${what} row does not parse: ${result.error.message}`);
  return result.data;
}

// ---- schema ---------------------------------------------------------------------------------

// STRICT tables refuse a value of the wrong type instead of storing it. Amounts are decimal text:
// SQLite integers are 64-bit, bigints are not, and money must never pass through a float.
const schemaSql = `
  CREATE TABLE orders (
    order_id TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    status TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    card_brand TEXT NOT NULL,
    card_last4 TEXT NOT NULL,
    card_bin TEXT NOT NULL,
    bank TEXT,
    reference TEXT,
    description TEXT,
    reason TEXT,
    authorization_code TEXT,
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    -- The sum of the order's succeeded refunds, decimal text like amount.
    amount_refunded TEXT NOT NULL DEFAULT '0',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    -- The global offsets of the order's events, comma-separated, in journal order: its audit trail
    -- is read from the journal. Appending to a row of a recent order dirties a page recent orders
    -- share, where a row per event in a table keyed by order id dirtied a random page each.
    event_offsets TEXT NOT NULL
  ) STRICT;

  -- Listing a merchant's orders newest first, and paging by (created_at, order_id).
  CREATE INDEX orders_by_merchant ON orders (merchant_id, created_at DESC, order_id DESC);
  CREATE INDEX orders_by_merchant_status ON orders (merchant_id, status, created_at DESC, order_id DESC);

  -- One row per refund, from its Payment's events; its order lists those events' offsets.
  CREATE TABLE refunds (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    merchant_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    reason TEXT,
    failure_reason TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  ) STRICT;

  -- An order's refunds, oldest first; the pending ones in id order (the node's sweep).
  CREATE INDEX refunds_by_order ON refunds (order_id, created_at, id);
  CREATE INDEX refunds_pending ON refunds (id) WHERE status = 'pending';

  CREATE TABLE projection_offsets (
    name TEXT PRIMARY KEY,
    "offset" INTEGER NOT NULL CHECK ("offset" >= 0)
  ) STRICT;
`;

const dropSql = `
  DROP TABLE IF EXISTS orders;
  DROP TABLE IF EXISTS order_events;
  DROP TABLE IF EXISTS refunds;
  DROP TABLE IF EXISTS projection_offsets;
`;

function openFile(path: string): Database {
  const database = new BetterSqlite3(path);
  try {
    database.pragma(`busy_timeout = ${readModelBusyTimeoutMs}`);
    const journalMode: unknown = database.pragma('journal_mode = WAL', { simple: true });
    assert.ok(journalMode === 'wal', `read model ${path} refused WAL mode (it is in ${String(journalMode)})`);
    // NORMAL, not FULL: see the class comment — a lost commit is projected again.
    database.pragma('synchronous = NORMAL');
    // The folded writes' savepoint journals its pages in memory, not in a temp file per batch.
    database.pragma('temp_store = MEMORY');
    database
      .transaction(() => {
        const version: unknown = database.pragma('user_version', { simple: true });
        assert.ok(typeof version === 'number', `read model ${path} reports user_version ${String(version)}`);
        if (version === readModelSchemaVersion) return;
        // Another version (or a new file): derived data is rebuilt, never migrated.
        database.exec(dropSql);
        database.exec(schemaSql);
        database.pragma(`user_version = ${readModelSchemaVersion}`);
      })
      .immediate();
    return database;
  } catch (error) {
    database.close();
    throw error;
  }
}

// ---- the read model -------------------------------------------------------------------------

type Params = unknown[];

export class OrderReadModel implements RefundQueries {
  private readonly selectOrder: Statement<[string], unknown>;
  private readonly selectCursor: Statement<[string, string], unknown>;
  private readonly listAll: Statement<[string, number], unknown>;
  private readonly listAllAfter: Statement<[string, number, string, number], unknown>;
  private readonly listByStatus: Statement<[string, string, number], unknown>;
  private readonly listByStatusAfter: Statement<[string, string, number, string, number], unknown>;
  private readonly selectEventOffsets: Statement<[string], unknown>;
  private readonly selectOffset: Statement<[string], unknown>;
  private readonly insertOrder: Statement<Params>;
  private readonly insertFolded: Statement<Params>;
  private readonly updateStatus: Statement<Params>;
  private readonly appendEvent: Statement<[string, string]>;
  private readonly upsertOffset: Statement<[string, number]>;
  private readonly selectRefund: Statement<[string], unknown>;
  private readonly listOrderRefunds: Statement<[string, string, number], unknown>;
  private readonly listPending: Statement<[string, number], unknown>;
  private readonly insertRefund: Statement<Params>;
  private readonly settleRefund: Statement<Params, unknown>;
  private readonly selectRefunded: Statement<[string], unknown>;
  private readonly updateRefunded: Statement<[string, number, string]>;
  private readonly writeBatch: { immediate(batch: OrderBatch): void };
  /** A savepoint inside the batch's transaction: folded writes undone whole if any is refused. */
  private readonly writeFolded: (folded: readonly FoldedOrder[], refunds: readonly RefundChange[]) => void;

  private constructor(
    private readonly database: Database,
    readonly path: string,
    /** Opened by `openForQueries`: its connection is read-only, and so are its methods. */
    readonly queriesOnly = false,
  ) {
    const newestFirst = 'ORDER BY created_at DESC, order_id DESC LIMIT ?';
    const after = '(created_at, order_id) < (?, ?)';
    this.selectOrder = database.prepare(`SELECT ${orderColumns} FROM orders WHERE order_id = ?`);
    this.selectCursor = database.prepare(
      'SELECT created_at, order_id FROM orders WHERE order_id = ? AND merchant_id = ?',
    );
    this.listAll = database.prepare(
      `SELECT ${orderColumns} FROM orders WHERE merchant_id = ? ${newestFirst}`,
    );
    this.listAllAfter = database.prepare(
      `SELECT ${orderColumns} FROM orders WHERE merchant_id = ? AND ${after} ${newestFirst}`,
    );
    this.listByStatus = database.prepare(
      `SELECT ${orderColumns} FROM orders WHERE merchant_id = ? AND status = ? ${newestFirst}`,
    );
    this.listByStatusAfter = database.prepare(
      `SELECT ${orderColumns} FROM orders WHERE merchant_id = ? AND status = ? AND ${after} ${newestFirst}`,
    );
    this.selectEventOffsets = database.prepare(
      'SELECT merchant_id, event_offsets FROM orders WHERE order_id = ?',
    );
    this.selectOffset = database.prepare('SELECT "offset" FROM projection_offsets WHERE name = ?').pluck();
    // ON CONFLICT DO NOTHING, then a check of `changes`: a second creation is reported, not thrown
    // as a bare constraint error without the event's position.
    this.insertOrder = database.prepare(
      'INSERT INTO orders (order_id, merchant_id, status, amount, currency, card_brand, card_last4, card_bin, ' +
        'bank, reference, description, reason, authorization_code, idempotency_key, request_hash, created_at, ' +
        "updated_at, event_offsets) VALUES (?, ?, 'new', ?, ?, ?, ?, ?, NULL, ?, ?, NULL, NULL, ?, ?, ?, ?, ?) " +
        'ON CONFLICT (order_id) DO NOTHING',
    );
    this.insertFolded = database.prepare(
      'INSERT INTO orders (order_id, merchant_id, status, amount, currency, card_brand, card_last4, card_bin, ' +
        'bank, reference, description, reason, authorization_code, idempotency_key, request_hash, created_at, ' +
        'updated_at, event_offsets) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ' +
        'ON CONFLICT (order_id) DO NOTHING',
    );
    this.updateStatus = database.prepare(
      'UPDATE orders SET status = ?, updated_at = ?, bank = COALESCE(?, bank), reason = COALESCE(?, reason), ' +
        "authorization_code = COALESCE(?, authorization_code), event_offsets = event_offsets || ',' || ? " +
        'WHERE order_id = ? AND status = ?',
    );
    this.appendEvent = database.prepare(
      "UPDATE orders SET event_offsets = event_offsets || ',' || ? WHERE order_id = ?",
    );
    this.upsertOffset = database.prepare(
      'INSERT INTO projection_offsets (name, "offset") VALUES (?, ?) ' +
        'ON CONFLICT (name) DO UPDATE SET "offset" = excluded."offset"',
    );
    this.selectRefund = database.prepare(`SELECT ${refundColumns} FROM refunds WHERE id = ?`);
    this.listOrderRefunds = database.prepare(
      `SELECT ${refundColumns} FROM refunds WHERE order_id = ? AND merchant_id = ? ` +
        'ORDER BY created_at, id LIMIT ?',
    );
    this.listPending = database.prepare(
      "SELECT order_id, merchant_id, id FROM refunds WHERE status = 'pending' AND id > ? ORDER BY id LIMIT ?",
    );
    this.insertRefund = database.prepare(
      `INSERT INTO refunds (${refundColumns}) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, NULL, ?, ?) ` +
        'ON CONFLICT (id) DO NOTHING',
    );
    // RETURNING the amount: a succeeded refund adds it to its order.
    this.settleRefund = database.prepare(
      'UPDATE refunds SET status = ?, failure_reason = ?, updated_at = ? ' +
        "WHERE id = ? AND order_id = ? AND status = 'pending' RETURNING amount",
    );
    this.selectRefunded = database.prepare('SELECT amount_refunded FROM orders WHERE order_id = ?').pluck();
    this.updateRefunded = database.prepare(
      'UPDATE orders SET amount_refunded = ?, updated_at = max(updated_at, ?) WHERE order_id = ?',
    );
    this.writeBatch = database.transaction((batch: OrderBatch) => this.applyInTransaction(batch));
    this.writeFolded = database.transaction(
      (folded: readonly FoldedOrder[], refunds: readonly RefundChange[]) => {
        for (const order of folded) this.writeFoldedOrder(order);
        for (const change of refunds) {
          if (!this.writeRefund(change)) throw new FoldRefused();
        }
      },
    );
  }

  /** Opens (creating, or rebuilding on a schema change) the read model file at `path`. */
  static open(path: string): OrderReadModel {
    return new OrderReadModel(openFile(path), path);
  }

  /**
   * Opens the file at `path` for queries only, over a read-only connection: the side that serves
   * the API while the projection writes from another thread (or process) through its own `open`.
   * The schema is created or rebuilt first, as `open` would, so the file can be queried at once.
   */
  static openForQueries(path: string): OrderReadModel {
    openFile(path).close();
    const database = new BetterSqlite3(path, { readonly: true, fileMustExist: true });
    try {
      database.pragma(`busy_timeout = ${readModelBusyTimeoutMs}`);
      const version: unknown = database.pragma('user_version', { simple: true });
      assert.ok(
        version === readModelSchemaVersion,
        `read model ${path} has schema version ${String(version)}, not ${readModelSchemaVersion}`,
      );
      return new OrderReadModel(database, path, true);
    } catch (error) {
      database.close();
      throw error;
    }
  }

  // ---- queries ------------------------------------------------------------------------------

  /** The merchant's order, or undefined — also when the order belongs to another merchant. */
  getOrder(merchantId: string, orderId: string): OrderRow | undefined {
    const order = this.getOrderById(orderId);
    return order?.merchantId === merchantId ? order : undefined;
  }

  /** Any merchant's order. For internal use only: it does not isolate merchants. */
  getOrderById(orderId: string): OrderRow | undefined {
    const row = this.selectOrder.get(orderId);
    return row === undefined ? undefined : parseRow(orderRowSchema, row, 'orders');
  }

  /**
   * A page of the merchant's orders, newest first (ties by order id, descending). Throws
   * `InvalidCursorError` when `startingAfter` is not one of the merchant's orders.
   */
  listOrders(query: ListOrdersQuery): OrderPage {
    const { merchantId, status, limit, startingAfter } = query;
    assert.ok(
      Number.isSafeInteger(limit) && limit >= 1 && limit <= listLimitMax,
      `limit must be 1 to ${listLimitMax}, got ${limit}`,
    );
    // One row more than asked tells whether another page follows.
    const fetch = limit + 1;
    let rows: unknown[];
    if (startingAfter === undefined) {
      rows =
        status === undefined
          ? this.listAll.all(merchantId, fetch)
          : this.listByStatus.all(merchantId, status, fetch);
    } else {
      const cursor = this.cursorOf(merchantId, startingAfter);
      rows =
        status === undefined
          ? this.listAllAfter.all(merchantId, cursor.created_at, cursor.order_id, fetch)
          : this.listByStatusAfter.all(merchantId, status, cursor.created_at, cursor.order_id, fetch);
    }
    const data = rows.slice(0, limit).map((row) => parseRow(orderRowSchema, row, 'orders'));
    return { data, hasMore: rows.length > limit };
  }

  /**
   * The global journal offsets of the order's events, ascending, or undefined when it is not an
   * order of this merchant. `readAuditTrail` reads the events themselves.
   */
  orderEventOffsets(merchantId: string, orderId: string): number[] | undefined {
    const row = this.selectEventOffsets.get(orderId);
    if (row === undefined) return undefined;
    const parsed = parseRow(eventOffsetsRowSchema, row, 'orders event_offsets');
    return parsed.merchantId === merchantId ? parsed.offsets : undefined;
  }

  /** The merchant's refund, or undefined — also when it is another merchant's. */
  async getRefund(merchantId: string, refundId: string): Promise<Refund | undefined> {
    const row = this.selectRefund.get(refundId);
    const refund = row === undefined ? undefined : parseRow(refundRowSchema, row, 'refunds');
    return refund?.merchantId === merchantId ? refund : undefined;
  }

  /** The merchant's order's refunds, oldest first (ties by refund id); none for another's order. */
  async listRefunds(merchantId: string, orderId: string): Promise<Refund[]> {
    return this.listOrderRefunds
      .all(orderId, merchantId, refundsListedMax)
      .map((row) => parseRow(refundRowSchema, row, 'refunds'));
  }

  /** Refunds still `pending`, in refund id order after `afterRefundId`, at most `limit`. */
  async pendingRefunds(limit: number, afterRefundId?: string): Promise<PendingRefund[]> {
    assert.ok(Number.isSafeInteger(limit) && limit >= 1, `limit must be an integer >= 1, got ${limit}`);
    return this.listPending
      .all(afterRefundId ?? '', limit)
      .map((row) => parseRow(pendingRefundRowSchema, row, 'refunds pending'));
  }

  /** The global offset of the last event projected; 0 before the first. */
  offset(): number {
    const stored = this.selectOffset.get(orderProjectionName);
    if (stored === undefined) return 0;
    // Checked by hand, not by a schema: the projection reads it twice per batch.
    if (typeof stored !== 'number' || !Number.isSafeInteger(stored) || stored < 0) {
      assert.fail(`read model projection_offsets row does not parse: ${String(stored)}`);
    }
    return stored;
  }

  // ---- writes (the projection's) ------------------------------------------------------------

  /**
   * Applies one batch's changes and stores its last offset in a single transaction, so a crash
   * leaves either all of it or none of it. Throws (and writes nothing) when the read model is not
   * at `afterOffset` or a change contradicts the tables.
   */
  applyBatch(batch: OrderBatch): void {
    this.assertWritable();
    assert.ok(
      Number.isSafeInteger(batch.toOffset) && batch.toOffset > batch.afterOffset,
      `a batch must move the offset forward (from ${batch.afterOffset} to ${batch.toOffset})`,
    );
    this.writeBatch.immediate(batch);
  }

  /** Empties every table, so the projection starts again from offset 0. Stop the projection first. */
  reset(): void {
    this.assertWritable();
    this.database
      .transaction(() => {
        this.database.exec('DELETE FROM orders; DELETE FROM refunds; DELETE FROM projection_offsets;');
      })
      .immediate();
  }

  close(): void {
    if (this.database.open) this.database.close();
  }

  private assertWritable(): void {
    assert.ok(!this.queriesOnly, `read model ${this.path} was opened for queries only`);
  }

  private cursorOf(merchantId: string, orderId: string): z.infer<typeof cursorSchema> {
    const row = this.selectCursor.get(orderId, merchantId);
    if (row === undefined) throw new InvalidCursorError(merchantId, orderId);
    return parseRow(cursorSchema, row, 'orders cursor');
  }

  private applyInTransaction(batch: OrderBatch): void {
    const current = this.offset();
    assert.ok(
      current === batch.afterOffset,
      `read model is at offset ${current}, but the batch continues from ${batch.afterOffset}: ` +
        'another projection writes to the same file, or a batch was lost',
    );
    const folded = foldByOrder(batch.changes);
    if (folded === undefined || !this.triedFolded(folded, batch.changes.filter(isRefundChange))) {
      // Something does not add up (an order created twice, a transition from the wrong status, an
      // event of an unknown order): the folded writes were undone, and the changes are applied one
      // by one, which stops at the very change that is wrong and names it.
      for (const change of batch.changes) this.applyChange(change);
    }
    this.upsertOffset.run(orderProjectionName, batch.toOffset);
  }

  /**
   * Writes the folded changes, then the refunds' rows in journal order, or undoes them all and
   * answers false if a table refuses one.
   */
  private triedFolded(folded: readonly FoldedOrder[], refunds: readonly RefundChange[]): boolean {
    try {
      this.writeFolded(folded, refunds);
      return true;
    } catch (error) {
      if (error instanceof FoldRefused) return false;
      throw error;
    }
  }

  /** One statement for all of one order's changes in a batch; FoldRefused if the table disagrees. */
  private writeFoldedOrder(order: FoldedOrder): void {
    const offsets = order.offsets.join(',');
    const created = order.created;
    if (created !== undefined) {
      const inserted = this.insertFolded.run(
        created.id,
        created.merchantId,
        order.status ?? 'new',
        created.amount.toString(),
        created.currency,
        created.card.brand,
        created.card.last4,
        created.card.bin,
        order.bank ?? null,
        created.reference ?? null,
        created.description ?? null,
        order.reason ?? null,
        order.authorizationCode ?? null,
        created.idempotencyKey,
        created.requestHash,
        created.createdAt,
        order.updatedAt ?? created.createdAt,
        offsets,
      );
      if (inserted.changes !== 1) throw new FoldRefused();
      return;
    }
    const updated =
      order.firstFrom === undefined
        ? this.appendEvent.run(offsets, order.orderId)
        : this.updateStatus.run(
            order.status,
            order.updatedAt,
            order.bank ?? null,
            order.reason ?? null,
            order.authorizationCode ?? null,
            offsets,
            order.orderId,
            order.firstFrom,
          );
    if (updated.changes !== 1) throw new FoldRefused();
  }

  private applyChange(change: OrderChange): void {
    switch (change.kind) {
      case 'created':
        this.create(change.order, change.position);
        break;
      case 'transitioned':
        this.transition(change);
        break;
      case 'audited':
        this.audit(change);
        break;
      case 'refundRequested':
      case 'refundSettled':
        this.refund(change);
        break;
      default:
        assertNever(change);
    }
  }

  /**
   * A refund's row: inserted `pending`, or settled from `pending` (a succeeded one adding its
   * amount to the order). False when the table refuses it: a refund requested twice, or settled
   * while not pending or not there.
   */
  private writeRefund(change: RefundChange): boolean {
    if (change.kind === 'refundRequested') {
      const { refund } = change;
      const inserted = this.insertRefund.run(
        refund.id,
        refund.orderId,
        refund.merchantId,
        refund.idempotencyKey,
        refund.requestHash,
        refund.amount.toString(),
        refund.currency,
        refund.reason ?? null,
        refund.createdAt,
        refund.createdAt,
      );
      return inserted.changes === 1;
    }
    const settled = this.settleRefund.get(
      change.status,
      change.failureReason ?? null,
      change.at,
      change.refundId,
      change.orderId,
    );
    if (settled === undefined) return false;
    if (change.status === 'succeeded') {
      const { amount } = parseRow(settledRefundRowSchema, settled, 'refunds settled');
      const stored = this.selectRefunded.get(change.orderId);
      if (stored === undefined) return false;
      const refunded = parseRow(decimalAmount, stored, 'orders amount_refunded');
      this.updateRefunded.run((refunded + amount).toString(), change.at, change.orderId);
    }
    return true;
  }

  private refund(change: RefundChange): void {
    const listed = this.appendEvent.run(String(change.position.offset), change.orderId);
    if (listed.changes === 0) {
      throw new InconsistentEventError(`a refund event for unknown order ${change.orderId}`, change.position);
    }
    if (this.writeRefund(change)) return;
    const refundId = change.kind === 'refundRequested' ? change.refund.id : change.refundId;
    const current = this.selectRefund.get(refundId);
    const status = current === undefined ? undefined : parseRow(refundRowSchema, current, 'refunds').status;
    throw new InconsistentEventError(
      change.kind === 'refundRequested'
        ? `refund ${refundId} is requested a second time`
        : `refund ${refundId} of order ${change.orderId} cannot become ${change.status}: it is ${status ?? 'unknown'}, not pending`,
      change.position,
    );
  }

  private create(order: NewOrderRecord, position: JournalPosition): void {
    const inserted = this.insertOrder.run(
      order.id,
      order.merchantId,
      order.amount.toString(),
      order.currency,
      order.card.brand,
      order.card.last4,
      order.card.bin,
      order.reference ?? null,
      order.description ?? null,
      order.idempotencyKey,
      order.requestHash,
      order.createdAt,
      order.createdAt,
      String(position.offset),
    );
    if (inserted.changes === 0) {
      throw new InconsistentEventError(`order ${order.id} is created a second time`, position);
    }
  }

  private transition(change: Extract<OrderChange, { kind: 'transitioned' }>): void {
    const updated = this.updateStatus.run(
      change.to,
      change.at,
      change.bank ?? null,
      change.reason ?? null,
      change.authorizationCode ?? null,
      String(change.position.offset),
      change.orderId,
      change.from,
    );
    if (updated.changes === 1) return;
    const status = this.getOrderById(change.orderId)?.status;
    throw new InconsistentEventError(
      `order ${change.orderId} cannot become ${change.to}: it is ${status ?? 'unknown'}, not ${change.from}`,
      change.position,
    );
  }

  private audit(change: Extract<OrderChange, { kind: 'audited' }>): void {
    const updated = this.appendEvent.run(String(change.position.offset), change.orderId);
    if (updated.changes === 0) {
      throw new InconsistentEventError(`${change.type} for unknown order ${change.orderId}`, change.position);
    }
  }
}

/**
 * All changes of one order within a batch, folded into what one statement writes: per order one
 * INSERT (created in the batch) or one UPDATE, instead of one statement per event. An order's
 * events mostly arrive within a few batches of each other; every statement was a descent of the
 * order-id index and a rewrite of the row (and of a status index entry).
 */
export interface FoldedOrder {
  readonly orderId: string;
  /** Set when the batch creates the order. */
  readonly created: NewOrderRecord | undefined;
  /** For an order that existed before the batch: the status its first transition requires. */
  firstFrom: OrderStatus | undefined;
  /** The status after the batch's transitions; undefined when none (and it existed before). */
  status: OrderStatus | undefined;
  updatedAt: number | undefined;
  bank: string | undefined;
  reason: string | undefined;
  authorizationCode: string | undefined;
  readonly offsets: string[];
}

/** The changes of a batch folded by order, or undefined when they contradict each other. */
export function foldByOrder(changes: readonly OrderChange[]): FoldedOrder[] | undefined {
  const byOrder = new Map<string, FoldedOrder>();
  for (const change of changes) {
    const orderId = change.kind === 'created' ? change.order.id : change.orderId;
    let folded = byOrder.get(orderId);
    if (change.kind === 'created') {
      // Created after another change of it in this batch, or twice: the one-by-one path names it.
      if (folded !== undefined) return undefined;
      const created = change.order;
      folded = {
        orderId,
        created,
        firstFrom: undefined,
        status: 'new',
        updatedAt: created.createdAt,
        bank: undefined,
        reason: undefined,
        authorizationCode: undefined,
        offsets: [String(change.position.offset)],
      };
      byOrder.set(orderId, folded);
      continue;
    }
    if (folded === undefined) {
      folded = {
        orderId,
        created: undefined,
        firstFrom: undefined,
        status: undefined,
        updatedAt: undefined,
        bank: undefined,
        reason: undefined,
        authorizationCode: undefined,
        offsets: [],
      };
      byOrder.set(orderId, folded);
    }
    folded.offsets.push(String(change.position.offset));
    // A refund's own row is written apart (`writeRefund`); here it is an entry of the audit trail.
    if (change.kind !== 'transitioned') continue;
    if (folded.status === undefined) folded.firstFrom = change.from;
    else if (folded.status !== change.from) return undefined;
    folded.status = change.to;
    folded.updatedAt = change.at;
    folded.bank = change.bank ?? folded.bank;
    folded.reason = change.reason ?? folded.reason;
    folded.authorizationCode = change.authorizationCode ?? folded.authorizationCode;
  }
  return [...byOrder.values()];
}

/** The folded writes of a batch do not fit the table; they are undone and applied one by one. */
class FoldRefused extends Error {
  override readonly name = 'FoldRefused';
}
