import assert from 'node:assert/strict';
import type pg from 'pg';
import type { RefundQueries } from '../node/refund-queries.js';
import type { Refund } from '../payments/refund.js';
import { type Fence, StaleEpochError } from '../store/journal.js';
import {
  integerArrayLiteral,
  nullableIntegerArrayLiteral,
  nullableTextArrayLiteral,
  textArrayLiteral,
} from '../store/postgres/array-literal.js';
import { statementName, withClient } from '../store/postgres/postgres-pool.js';
import {
  cursorSchema,
  eventOffsetsRowSchema,
  type FoldedOrder,
  foldByOrder,
  InconsistentEventError,
  InvalidCursorError,
  isRefundChange,
  type JournalPosition,
  type ListOrdersQuery,
  listLimitMax,
  type NewOrderRecord,
  type OrderBatch,
  type OrderChange,
  type OrderPage,
  type OrderRow,
  orderColumns,
  orderProjectionName,
  orderRowSchema,
  type PendingRefund,
  parseRow,
  pendingRefundRowSchema,
  type RefundChange,
  readModelSchemaVersion,
  refundColumns,
  refundRowSchema,
  refundsListedMax,
} from './order-read-model.js';

/**
 * The order read model in PostgreSQL, in the stores' schema: the same tables, rows, checks and
 * answers as the SQLite read model (`order-read-model.ts`, whose row schemas and folding it
 * shares), with asynchronous methods.
 *
 * It is derived data: tables of another read-model version are dropped and created again (under
 * an advisory lock, so nodes starting at once do it once), and the projection then rebuilds them
 * from offset 0. A batch is one transaction that first locks the projection's offset row, so two
 * projections writing the same schema cannot interleave: the second finds the offset moved and
 * stops. The transaction waits on nothing but the database.
 *
 * In a cluster one node runs the projection, under the lease of the read model's shard, and its
 * batches are fenced (`fencedBy`): each first share-locks the lease row if it still holds the
 * writer's epoch and owner, as a fenced journal append does, so a node that lost the lease writes
 * nothing, and a takeover waits for a batch in flight to commit before the new holder starts.
 */
export class PostgresOrderReadModel implements RefundQueries {
  private readonly sql: ReturnType<typeof statements>;

  private constructor(
    private readonly pool: pg.Pool,
    quotedSchema: string,
  ) {
    this.sql = statements(quotedSchema);
  }

  /** Creates (or, at another version, recreates) the read model's tables, then opens it. */
  static async open(pool: pg.Pool, quotedSchema: string): Promise<PostgresOrderReadModel> {
    await withClient(pool, async (client) => {
      await client.query('BEGIN');
      try {
        await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [
          `remit read model in ${quotedSchema}`,
        ]);
        await client.query(
          `CREATE TABLE IF NOT EXISTS ${quotedSchema}.read_model_version (singleton boolean PRIMARY KEY ` +
            'DEFAULT true CHECK (singleton), version integer NOT NULL)',
        );
        const stored = await client.query<{ version: unknown }>(
          `SELECT version FROM ${quotedSchema}.read_model_version`,
        );
        if (stored.rows[0]?.version !== readModelSchemaVersion) {
          await client.query(schemaSql(quotedSchema));
          await client.query(
            `INSERT INTO ${quotedSchema}.read_model_version (singleton, version) VALUES (true, $1) ` +
              'ON CONFLICT (singleton) DO UPDATE SET version = excluded.version',
            [readModelSchemaVersion],
          );
        }
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    });
    return new PostgresOrderReadModel(pool, quotedSchema);
  }

  // ---- queries ------------------------------------------------------------------------------

  /** The merchant's order, or undefined — also when the order belongs to another merchant. */
  async getOrder(merchantId: string, orderId: string): Promise<OrderRow | undefined> {
    const order = await this.getOrderById(orderId);
    return order?.merchantId === merchantId ? order : undefined;
  }

  /** Any merchant's order. For internal use only: it does not isolate merchants. */
  async getOrderById(orderId: string): Promise<OrderRow | undefined> {
    const result = await this.pool.query({ ...this.sql.selectOrder, values: [orderId] });
    const row: unknown = result.rows[0];
    return row === undefined ? undefined : parseRow(orderRowSchema, row, 'orders');
  }

  /**
   * A page of the merchant's orders, newest first (ties by order id, descending). Rejects with
   * `InvalidCursorError` when `startingAfter` is not one of the merchant's orders.
   */
  async listOrders(query: ListOrdersQuery): Promise<OrderPage> {
    const { merchantId, status, limit, startingAfter } = query;
    assert.ok(
      Number.isSafeInteger(limit) && limit >= 1 && limit <= listLimitMax,
      `limit must be 1 to ${listLimitMax}, got ${limit}`,
    );
    // One row more than asked tells whether another page follows.
    const fetch = limit + 1;
    const cursor = startingAfter === undefined ? undefined : await this.cursorOf(merchantId, startingAfter);
    const result = await this.pool.query({
      ...this.sql.list,
      values: [merchantId, status ?? null, cursor?.created_at ?? null, cursor?.order_id ?? null, fetch],
    });
    const rows: unknown[] = result.rows;
    const data = rows.slice(0, limit).map((row) => parseRow(orderRowSchema, row, 'orders'));
    return { data, hasMore: rows.length > limit };
  }

  /** The global journal offsets of the order's events, ascending, or undefined when not the merchant's. */
  async orderEventOffsets(merchantId: string, orderId: string): Promise<number[] | undefined> {
    const result = await this.pool.query({ ...this.sql.selectEventOffsets, values: [orderId] });
    const row: unknown = result.rows[0];
    if (row === undefined) return undefined;
    const parsed = parseRow(eventOffsetsRowSchema, row, 'orders event_offsets');
    return parsed.merchantId === merchantId ? parsed.offsets : undefined;
  }

  /** The merchant's refund, or undefined — also when it is another merchant's. */
  async getRefund(merchantId: string, refundId: string): Promise<Refund | undefined> {
    const result = await this.pool.query({ ...this.sql.selectRefund, values: [refundId] });
    const row: unknown = result.rows[0];
    const refund = row === undefined ? undefined : parseRow(refundRowSchema, row, 'refunds');
    return refund?.merchantId === merchantId ? refund : undefined;
  }

  /** The merchant's order's refunds, oldest first (ties by refund id); none for another's order. */
  async listRefunds(merchantId: string, orderId: string): Promise<Refund[]> {
    const result = await this.pool.query({
      ...this.sql.listRefunds,
      values: [orderId, merchantId, refundsListedMax],
    });
    const rows: unknown[] = result.rows;
    return rows.map((row) => parseRow(refundRowSchema, row, 'refunds'));
  }

  /** Refunds still `pending`, in refund id order after `afterRefundId`, at most `limit`. */
  async pendingRefunds(limit: number, afterRefundId?: string): Promise<PendingRefund[]> {
    assert.ok(Number.isSafeInteger(limit) && limit >= 1, `limit must be an integer >= 1, got ${limit}`);
    const result = await this.pool.query({ ...this.sql.listPending, values: [afterRefundId ?? '', limit] });
    const rows: unknown[] = result.rows;
    return rows.map((row) => parseRow(pendingRefundRowSchema, row, 'refunds pending'));
  }

  /** The global offset of the last event projected; 0 before the first. */
  async offset(): Promise<number> {
    const result = await this.pool.query<unknown[]>({
      ...this.sql.selectOffset,
      values: [orderProjectionName],
      rowMode: 'array',
    });
    return parseOffset(result.rows[0]?.[0]);
  }

  // ---- writes (the projection's) ------------------------------------------------------------

  /**
   * The read model as a projection under `fence` writes it: every batch is refused with
   * `StaleEpochError` (nothing written) unless the lease still holds that epoch and owner.
   */
  fencedBy(fence: Fence): { offset(): Promise<number>; applyBatch(batch: OrderBatch): Promise<void> } {
    return { offset: () => this.offset(), applyBatch: (batch) => this.applyBatch(batch, fence) };
  }

  /**
   * Applies one batch's changes and stores its last offset in one transaction. Rejects (and writes
   * nothing) when the read model is not at `afterOffset`, a change contradicts the tables, or
   * (with a fence) the fence no longer holds.
   */
  async applyBatch(batch: OrderBatch, fence?: Fence): Promise<void> {
    assert.ok(
      Number.isSafeInteger(batch.toOffset) && batch.toOffset > batch.afterOffset,
      `a batch must move the offset forward (from ${batch.afterOffset} to ${batch.toOffset})`,
    );
    await withClient(this.pool, async (client) => {
      await client.query('BEGIN');
      try {
        if (fence !== undefined) await this.checkFence(client, fence);
        await this.applyInTransaction(client, batch);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    });
  }

  /** Empties the tables, so the projection starts again from offset 0. Stop the projection first. */
  async reset(): Promise<void> {
    await withClient(this.pool, async (client) => {
      await client.query('BEGIN');
      try {
        await client.query(this.sql.deleteOrders);
        await client.query(this.sql.deleteRefunds);
        await client.query(this.sql.resetOffset, [orderProjectionName]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    });
  }

  private async cursorOf(merchantId: string, orderId: string) {
    const result = await this.pool.query({ ...this.sql.selectCursor, values: [orderId, merchantId] });
    const row: unknown = result.rows[0];
    if (row === undefined) throw new InvalidCursorError(merchantId, orderId);
    return parseRow(cursorSchema, row, 'orders cursor');
  }

  /**
   * Share-locks the lease row while it holds `fence`, so a takeover's update of it waits for this
   * transaction; throws `StaleEpochError` when it does not hold.
   */
  private async checkFence(client: pg.PoolClient, fence: Fence): Promise<void> {
    const held = await client.query({
      ...this.sql.lockLease,
      values: [fence.shardId, fence.epoch, fence.owner],
    });
    if (held.rowCount !== 1) throw new StaleEpochError('the order read model', fence);
  }

  private async applyInTransaction(client: pg.PoolClient, batch: OrderBatch): Promise<void> {
    // The row lock orders this batch after any other projection's on the same schema.
    const locked = await client.query<unknown[]>({
      text: this.sql.lockOffset.text,
      values: [orderProjectionName],
      rowMode: 'array',
    });
    const current = parseOffset(locked.rows[0]?.[0]);
    assert.ok(
      current === batch.afterOffset,
      `read model is at offset ${current}, but the batch continues from ${batch.afterOffset}: ` +
        'another projection writes to the same schema, or a batch was lost',
    );
    const folded = foldByOrder(batch.changes);
    if (
      folded === undefined ||
      !(await this.triedFolded(client, folded, batch.changes.filter(isRefundChange)))
    ) {
      // Something does not add up: the folded writes were undone, and the changes are applied one
      // by one, which stops at the very change that is wrong and names it.
      for (const change of batch.changes) await this.applyChange(client, change);
    }
    await client.query({ ...this.sql.upsertOffset, values: [orderProjectionName, batch.toOffset] });
  }

  /**
   * Writes the folded changes in two statements — one multi-row insert of the orders the batch
   * creates, one multi-row update of the others — then the refunds' rows one by one in journal
   * order (they are few), or undoes them all and answers false if a table refuses any (an order
   * already there, or not in the status its first transition requires; a refund requested twice,
   * or settled while not pending).
   */
  private async triedFolded(
    client: pg.PoolClient,
    folded: readonly FoldedOrder[],
    refunds: readonly RefundChange[],
  ): Promise<boolean> {
    const created: Array<FoldedOrder & { readonly created: NewOrderRecord }> = [];
    const updated: FoldedOrder[] = [];
    for (const order of folded) {
      if (order.created === undefined) updated.push(order);
      else created.push({ ...order, created: order.created });
    }
    await client.query('SAVEPOINT folded');
    const fits =
      (created.length === 0 ||
        (await client.query({ ...this.sql.insertOrders, values: insertValues(created) })).rowCount ===
          created.length) &&
      (updated.length === 0 ||
        (await client.query({ ...this.sql.updateOrders, values: updateValues(updated) })).rowCount ===
          updated.length) &&
      (await this.wroteRefunds(client, refunds));
    await client.query(fits ? 'RELEASE SAVEPOINT folded' : 'ROLLBACK TO SAVEPOINT folded');
    return fits;
  }

  private async applyChange(client: pg.PoolClient, change: OrderChange): Promise<void> {
    switch (change.kind) {
      case 'created':
        return this.create(client, change.order, change.position);
      case 'transitioned':
        return this.transition(client, change);
      case 'audited':
        return this.audit(client, change);
      case 'refundRequested':
      case 'refundSettled':
        return this.refund(client, change);
      default:
        assertNever(change);
    }
  }

  private async wroteRefunds(client: pg.PoolClient, refunds: readonly RefundChange[]): Promise<boolean> {
    for (const change of refunds) {
      if (!(await this.writeRefund(client, change))) return false;
    }
    return true;
  }

  /**
   * A refund's row: inserted `pending`, or settled from `pending` (a succeeded one adding its
   * amount to the order). False when the table refuses it: a refund requested twice, or settled
   * while not pending or not there.
   */
  private async writeRefund(client: pg.PoolClient, change: RefundChange): Promise<boolean> {
    if (change.kind === 'refundRequested') {
      const { refund } = change;
      const inserted = await client.query({
        ...this.sql.insertRefund,
        values: [
          refund.id,
          refund.orderId,
          refund.merchantId,
          refund.idempotencyKey,
          refund.requestHash,
          refund.amount.toString(),
          refund.currency,
          refund.reason ?? null,
          refund.createdAt,
        ],
      });
      return inserted.rowCount === 1;
    }
    const settled = await client.query<{ amount: unknown }>({
      ...this.sql.settleRefund,
      values: [change.status, change.failureReason ?? null, change.at, change.refundId, change.orderId],
    });
    const amount = settled.rows[0]?.amount;
    if (amount === undefined) return false;
    if (change.status === 'succeeded') {
      const added = await client.query({
        ...this.sql.addRefunded,
        values: [change.orderId, String(amount), change.at],
      });
      if (added.rowCount !== 1) return false;
    }
    return true;
  }

  private async refund(client: pg.PoolClient, change: RefundChange): Promise<void> {
    const listed = await client.query({
      ...this.sql.appendEvent,
      values: [String(change.position.offset), change.orderId],
    });
    if (listed.rowCount === 0) {
      throw new InconsistentEventError(`a refund event for unknown order ${change.orderId}`, change.position);
    }
    if (await this.writeRefund(client, change)) return;
    const refundId = change.kind === 'refundRequested' ? change.refund.id : change.refundId;
    const found = await client.query({ ...this.sql.selectRefund, values: [refundId] });
    const row: unknown = found.rows[0];
    const status = row === undefined ? undefined : parseRow(refundRowSchema, row, 'refunds').status;
    throw new InconsistentEventError(
      change.kind === 'refundRequested'
        ? `refund ${refundId} is requested a second time`
        : `refund ${refundId} of order ${change.orderId} cannot become ${change.status}: it is ${status ?? 'unknown'}, not pending`,
      change.position,
    );
  }

  private async create(
    client: pg.PoolClient,
    order: NewOrderRecord,
    position: JournalPosition,
  ): Promise<void> {
    const inserted = await client.query({
      ...this.sql.insertOrder,
      values: [
        order.id,
        order.merchantId,
        'new',
        order.amount.toString(),
        order.currency,
        order.card.brand,
        order.card.last4,
        order.card.bin,
        null,
        order.reference ?? null,
        order.description ?? null,
        null,
        null,
        order.idempotencyKey,
        order.requestHash,
        order.createdAt,
        order.createdAt,
        String(position.offset),
      ],
    });
    if (inserted.rowCount === 0) {
      throw new InconsistentEventError(`order ${order.id} is created a second time`, position);
    }
  }

  private async transition(
    client: pg.PoolClient,
    change: Extract<OrderChange, { kind: 'transitioned' }>,
  ): Promise<void> {
    const updated = await client.query({
      ...this.sql.updateStatus,
      values: [
        change.to,
        change.at,
        change.bank ?? null,
        change.reason ?? null,
        change.authorizationCode ?? null,
        String(change.position.offset),
        change.orderId,
        change.from,
      ],
    });
    if (updated.rowCount === 1) return;
    const found = await client.query({ ...this.sql.selectOrder, values: [change.orderId] });
    const row: unknown = found.rows[0];
    const status = row === undefined ? undefined : parseRow(orderRowSchema, row, 'orders').status;
    throw new InconsistentEventError(
      `order ${change.orderId} cannot become ${change.to}: it is ${status ?? 'unknown'}, not ${change.from}`,
      change.position,
    );
  }

  private async audit(
    client: pg.PoolClient,
    change: Extract<OrderChange, { kind: 'audited' }>,
  ): Promise<void> {
    const updated = await client.query({
      ...this.sql.appendEvent,
      values: [String(change.position.offset), change.orderId],
    });
    if (updated.rowCount === 0) {
      throw new InconsistentEventError(`${change.type} for unknown order ${change.orderId}`, change.position);
    }
  }
}

/** The columns of `insertOrders`, one array literal each, in its order. */
function insertValues(orders: ReadonlyArray<FoldedOrder & { readonly created: NewOrderRecord }>): string[] {
  const column = <T>(pick: (order: FoldedOrder & { readonly created: NewOrderRecord }) => T) =>
    orders.map(pick);
  return [
    textArrayLiteral(column((order) => order.created.id)),
    textArrayLiteral(column((order) => order.created.merchantId)),
    textArrayLiteral(column((order) => order.status ?? 'new')),
    textArrayLiteral(column((order) => order.created.amount.toString())),
    textArrayLiteral(column((order) => order.created.currency)),
    textArrayLiteral(column((order) => order.created.card.brand)),
    textArrayLiteral(column((order) => order.created.card.last4)),
    textArrayLiteral(column((order) => order.created.card.bin)),
    nullableTextArrayLiteral(column((order) => order.bank)),
    nullableTextArrayLiteral(column((order) => order.created.reference)),
    nullableTextArrayLiteral(column((order) => order.created.description)),
    nullableTextArrayLiteral(column((order) => order.reason)),
    nullableTextArrayLiteral(column((order) => order.authorizationCode)),
    textArrayLiteral(column((order) => order.created.idempotencyKey)),
    textArrayLiteral(column((order) => order.created.requestHash)),
    integerArrayLiteral(column((order) => order.created.createdAt)),
    integerArrayLiteral(column((order) => order.updatedAt ?? order.created.createdAt)),
    textArrayLiteral(column((order) => order.offsets.join(','))),
  ];
}

/** The columns of `updateOrders`, one array literal each, in its order. */
function updateValues(orders: readonly FoldedOrder[]): string[] {
  return [
    textArrayLiteral(orders.map((order) => order.orderId)),
    nullableTextArrayLiteral(orders.map((order) => order.firstFrom)),
    nullableTextArrayLiteral(orders.map((order) => order.status)),
    nullableIntegerArrayLiteral(orders.map((order) => order.updatedAt)),
    nullableTextArrayLiteral(orders.map((order) => order.bank)),
    nullableTextArrayLiteral(orders.map((order) => order.reason)),
    nullableTextArrayLiteral(orders.map((order) => order.authorizationCode)),
    textArrayLiteral(orders.map((order) => order.offsets.join(','))),
  ];
}

function parseOffset(stored: unknown): number {
  if (stored === undefined) return 0;
  if (typeof stored !== 'number' || !Number.isSafeInteger(stored) || stored < 0) {
    assert.fail(`read model projection_offsets row does not parse: ${String(stored)}`);
  }
  return stored;
}

/**
 * The tables, as in SQLite: amounts are decimal text (money never passes through a float), order
 * ids compare bytewise (COLLATE "C") so pages come in the same order on both stores, and the
 * projection's offset row exists from the start so a batch can always lock it.
 */
function schemaSql(schema: string): string {
  return `
    DROP TABLE IF EXISTS ${schema}.orders;
    DROP TABLE IF EXISTS ${schema}.refunds;
    DROP TABLE IF EXISTS ${schema}.projection_offsets;

    CREATE TABLE ${schema}.orders (
      order_id text COLLATE "C" PRIMARY KEY,
      merchant_id text COLLATE "C" NOT NULL,
      status text NOT NULL,
      amount text NOT NULL CHECK (amount ~ '^-?[0-9]+$'),
      currency text NOT NULL,
      card_brand text NOT NULL,
      card_last4 text NOT NULL,
      card_bin text NOT NULL,
      bank text,
      reference text,
      description text,
      reason text,
      authorization_code text,
      idempotency_key text NOT NULL,
      request_hash text NOT NULL,
      amount_refunded text NOT NULL DEFAULT '0' CHECK (amount_refunded ~ '^[0-9]+$'),
      created_at bigint NOT NULL,
      updated_at bigint NOT NULL,
      event_offsets text NOT NULL
    );
    CREATE INDEX orders_by_merchant ON ${schema}.orders (merchant_id, created_at DESC, order_id DESC);
    CREATE INDEX orders_by_merchant_status
      ON ${schema}.orders (merchant_id, status, created_at DESC, order_id DESC);

    CREATE TABLE ${schema}.refunds (
      id text COLLATE "C" PRIMARY KEY,
      order_id text COLLATE "C" NOT NULL,
      merchant_id text COLLATE "C" NOT NULL,
      idempotency_key text NOT NULL,
      request_hash text NOT NULL,
      status text NOT NULL,
      amount text NOT NULL CHECK (amount ~ '^[0-9]+$'),
      currency text NOT NULL,
      reason text,
      failure_reason text,
      created_at bigint NOT NULL,
      updated_at bigint NOT NULL
    );
    CREATE INDEX refunds_by_order ON ${schema}.refunds (order_id, created_at, id);
    CREATE INDEX refunds_pending ON ${schema}.refunds (id) WHERE status = 'pending';

    CREATE TABLE ${schema}.projection_offsets (
      name text PRIMARY KEY,
      "offset" bigint NOT NULL CHECK ("offset" >= 0)
    );
    INSERT INTO ${schema}.projection_offsets (name, "offset") VALUES ('${orderProjectionName}', 0);
  `;
}

function statements(schema: string) {
  const named = (name: string, text: string) => ({ name: statementName(`readmodel-${name}`, schema), text });
  const orders = `${schema}.orders`;
  const offsets = `${schema}.projection_offsets`;
  const refunds = `${schema}.refunds`;
  const insertColumns =
    'order_id, merchant_id, status, amount, currency, card_brand, card_last4, card_bin, bank, reference, ' +
    'description, reason, authorization_code, idempotency_key, request_hash, created_at, updated_at, event_offsets';
  return {
    selectOrder: named('select-order', `SELECT ${orderColumns} FROM ${orders} WHERE order_id = $1`),
    selectCursor: named(
      'select-cursor',
      `SELECT created_at, order_id FROM ${orders} WHERE order_id = $1 AND merchant_id = $2`,
    ),
    // One statement for the four listings: an absent status or cursor is NULL and drops its test.
    list: named(
      'list',
      `SELECT ${orderColumns} FROM ${orders} WHERE merchant_id = $1 ` +
        'AND ($2::text IS NULL OR status = $2) ' +
        'AND ($3::bigint IS NULL OR (created_at, order_id) < ($3, $4::text COLLATE "C")) ' +
        'ORDER BY created_at DESC, order_id DESC LIMIT $5',
    ),
    selectEventOffsets: named(
      'select-event-offsets',
      `SELECT merchant_id, event_offsets FROM ${orders} WHERE order_id = $1`,
    ),
    selectOffset: named('select-offset', `SELECT "offset" FROM ${offsets} WHERE name = $1`),
    lockOffset: named('lock-offset', `SELECT "offset" FROM ${offsets} WHERE name = $1 FOR UPDATE`),
    lockLease: named(
      'lock-lease',
      `SELECT 1 FROM ${schema}.shard_leases WHERE shard_id = $1 AND epoch = $2 AND owner = $3 FOR SHARE`,
    ),
    // ON CONFLICT DO NOTHING, then a check of the row count: a second creation is reported with
    // its event's position, not thrown as a bare constraint error.
    insertOrder: named(
      'insert-order',
      `INSERT INTO ${orders} (${insertColumns}) VALUES ` +
        '($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) ' +
        'ON CONFLICT (order_id) DO NOTHING',
    ),
    // The folded writes of a batch: every order it creates in one statement, every other order it
    // changes in another. An order without a transition in the batch (first_from NULL) only gets
    // its events' offsets; the others must be in the status their first transition requires.
    insertOrders: named(
      'insert-orders',
      `INSERT INTO ${orders} (${insertColumns}) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], ` +
        '$4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], ' +
        '$12::text[], $13::text[], $14::text[], $15::text[], $16::bigint[], $17::bigint[], $18::text[]) ' +
        'ON CONFLICT (order_id) DO NOTHING',
    ),
    updateOrders: named(
      'update-orders',
      `UPDATE ${orders} AS o SET status = coalesce(v.status, o.status), ` +
        'updated_at = coalesce(v.updated_at, o.updated_at), bank = coalesce(v.bank, o.bank), ' +
        'reason = coalesce(v.reason, o.reason), ' +
        'authorization_code = coalesce(v.authorization_code, o.authorization_code), ' +
        "event_offsets = o.event_offsets || ',' || v.event_offsets " +
        'FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], ' +
        '$8::text[]) AS v(order_id, first_from, status, updated_at, bank, reason, authorization_code, event_offsets) ' +
        'WHERE o.order_id = v.order_id AND (v.first_from IS NULL OR o.status = v.first_from)',
    ),
    updateStatus: named(
      'update-status',
      `UPDATE ${orders} SET status = $1, updated_at = $2, bank = COALESCE($3, bank), ` +
        'reason = COALESCE($4, reason), authorization_code = COALESCE($5, authorization_code), ' +
        "event_offsets = event_offsets || ',' || $6 WHERE order_id = $7 AND status = $8",
    ),
    appendEvent: named(
      'append-event',
      `UPDATE ${orders} SET event_offsets = event_offsets || ',' || $1 WHERE order_id = $2`,
    ),
    selectRefund: named('select-refund', `SELECT ${refundColumns} FROM ${refunds} WHERE id = $1`),
    listRefunds: named(
      'list-refunds',
      `SELECT ${refundColumns} FROM ${refunds} WHERE order_id = $1 AND merchant_id = $2 ` +
        'ORDER BY created_at, id LIMIT $3',
    ),
    listPending: named(
      'list-pending-refunds',
      `SELECT order_id, merchant_id, id FROM ${refunds} WHERE status = 'pending' AND id > $1 ` +
        'ORDER BY id LIMIT $2',
    ),
    insertRefund: named(
      'insert-refund',
      `INSERT INTO ${refunds} (${refundColumns}) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, NULL, ` +
        '$9, $9) ON CONFLICT (id) DO NOTHING',
    ),
    // RETURNING the amount: a succeeded refund adds it to its order.
    settleRefund: named(
      'settle-refund',
      `UPDATE ${refunds} SET status = $1, failure_reason = $2, updated_at = $3 ` +
        "WHERE id = $4 AND order_id = $5 AND status = 'pending' RETURNING amount",
    ),
    // numeric, not bigint: exact whatever the sum.
    addRefunded: named(
      'add-refunded',
      `UPDATE ${orders} SET amount_refunded = (amount_refunded::numeric + $2::numeric)::text, ` +
        'updated_at = greatest(updated_at, $3) WHERE order_id = $1',
    ),
    upsertOffset: named('upsert-offset', `UPDATE ${offsets} SET "offset" = $2 WHERE name = $1`),
    deleteOrders: `DELETE FROM ${orders}`,
    deleteRefunds: `DELETE FROM ${refunds}`,
    resetOffset: `UPDATE ${offsets} SET "offset" = 0 WHERE name = $1`,
  };
}

function assertNever(value: never): never {
  throw new Error(`unexpected: ${JSON.stringify(value)}`);
}
