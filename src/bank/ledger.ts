import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import BetterSqlite3, { type Database, type Statement, type Transaction } from 'better-sqlite3';
import type { Clock } from '../runtime/clock.js';
import {
  type AmountTotal,
  type DeclineReason,
  declineReasons,
  type RefundFailureReason,
  refundFailureReasons,
} from './bank-protocol.js';
import type { CardBrand, CardFingerprint } from './card.js';

/**
 * The bank's ledger: the ground truth of what was charged, in its own SQLite file.
 *
 * It keeps what a bank's authorization log would keep and nothing more: never the card number,
 * only the brand, BIN and last four. Writes run inside `transaction`, an IMMEDIATE transaction
 * committed with synchronous=FULL, so when it returns, its changes survive a crash or a power cut;
 * the server answers only after that. The server puts many requests into one transaction (see
 * LedgerCommitter), each in a savepoint of its own.
 */

export const bankLedgerFileName = 'bank-ledger.sqlite';

/** How long a write waits for another connection's transaction before failing with SQLITE_BUSY. */
export const ledgerBusyTimeoutMs = 5_000;

/** The value `PRAGMA synchronous` reports for FULL: every commit fsyncs the WAL. */
const synchronousFull = 2;

/**
 * How large the WAL may grow before a commit also checkpoints it into the database file. Every
 * payment dirties a leaf of the reference index at a random place; a page rewritten by many
 * commits is copied back only once per checkpoint, so a larger WAL means less writing. SQLite's
 * default (1,000 pages, 4 MiB here) checkpoints every few seconds at full load, each time inside
 * a commit the event loop waits for. Same size as the gateway journal's.
 */
export const ledgerWalAutocheckpointBytes = 64 * 1024 * 1024;

/** A payment the bank decided on: approved (charged) or declined. */
export interface DecidedPayment {
  readonly reference: string;
  readonly merchantId: string;
  /** Minor units; a safe integer > 0. */
  readonly amount: number;
  readonly currency: string;
  readonly status: 'approved' | 'declined';
  readonly authorizationCode?: string;
  readonly declineReason?: DeclineReason;
  readonly card: CardFingerprint;
  /** Milliseconds since the epoch, from the bank's Clock. */
  readonly createdAt: number;
  readonly updatedAt: number;
  /** Every POST the bank answered for this reference (payments and cancels), the first one included. */
  readonly requestCount: number;
}

/**
 * The tombstone of a reference cancelled before the bank saw any payment for it: it settles the
 * reference for good, so a payment arriving later is refused instead of charged. It has no amount,
 * currency or card because none was ever sent; `merchantId` is the canceller's, or empty.
 */
export interface CancelledPayment {
  readonly reference: string;
  readonly merchantId: string;
  readonly status: 'cancelled';
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly requestCount: number;
}

export type PaymentRecord = DecidedPayment | CancelledPayment;

/**
 * A refund of an approved payment: `succeeded` gave `amount` back, `failed` moved nothing. Its
 * `reference` is the refund's own id (its idempotency key); currency and merchant are the payment's.
 */
export interface RefundRecord {
  readonly reference: string;
  readonly paymentReference: string;
  readonly merchantId: string;
  /** Minor units; a safe integer > 0. */
  readonly amount: number;
  readonly currency: string;
  readonly status: 'succeeded' | 'failed';
  readonly failureReason?: RefundFailureReason;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** Every POST the bank answered for this refund reference, the first one included. */
  readonly requestCount: number;
}

interface Migration {
  readonly version: number;
  readonly sql: string;
}

// Never edit a migration that has shipped: ledgers in the field already ran the old text.
const migrations: readonly Migration[] = [
  {
    version: 1,
    // STRICT tables refuse a value of the wrong type instead of storing it, and the CHECKs make an
    // approved payment without a code (or a declined one without a reason) impossible to write.
    sql: `
      CREATE TABLE payments (
        reference TEXT PRIMARY KEY,
        merchant_id TEXT NOT NULL,
        amount INTEGER NOT NULL CHECK (amount > 0),
        currency TEXT NOT NULL CHECK (length(currency) = 3),
        status TEXT NOT NULL CHECK (status IN ('approved', 'declined')),
        authorization_code TEXT CHECK ((status = 'approved') = (authorization_code IS NOT NULL)),
        decline_reason TEXT CHECK ((status = 'declined') = (decline_reason IS NOT NULL)),
        card_brand TEXT NOT NULL,
        card_bin TEXT NOT NULL CHECK (length(card_bin) = 6),
        card_last4 TEXT NOT NULL CHECK (length(card_last4) = 4),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        request_count INTEGER NOT NULL CHECK (request_count >= 1)
      ) STRICT;

      CREATE INDEX payments_by_merchant ON payments (merchant_id);

      -- Requests refused by the errorRate fault: not payments, but a harness wants to count them.
      CREATE TABLE rejected_requests (
        merchant_id TEXT PRIMARY KEY,
        count INTEGER NOT NULL CHECK (count >= 1)
      ) STRICT, WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    // Cancelled tombstones: status 'cancelled' with amount 0 and no currency or card. SQLite
    // cannot change a CHECK in place, so the table is rebuilt (the documented 12-step procedure,
    // reduced to what this table has: no foreign keys, triggers or views). rowid is copied so the
    // ledger keeps listing payments in the order the bank first saw them.
    sql: `
      CREATE TABLE payments_v2 (
        reference TEXT PRIMARY KEY,
        merchant_id TEXT NOT NULL,
        amount INTEGER NOT NULL
          CHECK (CASE WHEN status = 'cancelled' THEN amount = 0 ELSE amount > 0 END),
        currency TEXT CHECK (CASE WHEN status = 'cancelled' THEN currency IS NULL
                                  ELSE currency IS NOT NULL AND length(currency) = 3 END),
        status TEXT NOT NULL CHECK (status IN ('approved', 'declined', 'cancelled')),
        authorization_code TEXT CHECK ((status = 'approved') = (authorization_code IS NOT NULL)),
        decline_reason TEXT CHECK ((status = 'declined') = (decline_reason IS NOT NULL)),
        card_brand TEXT CHECK ((status = 'cancelled') = (card_brand IS NULL)),
        card_bin TEXT CHECK (CASE WHEN status = 'cancelled' THEN card_bin IS NULL
                                  ELSE card_bin IS NOT NULL AND length(card_bin) = 6 END),
        card_last4 TEXT CHECK (CASE WHEN status = 'cancelled' THEN card_last4 IS NULL
                                    ELSE card_last4 IS NOT NULL AND length(card_last4) = 4 END),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        request_count INTEGER NOT NULL CHECK (request_count >= 1)
      ) STRICT;

      INSERT INTO payments_v2 (rowid, reference, merchant_id, amount, currency, status,
          authorization_code, decline_reason, card_brand, card_bin, card_last4, created_at,
          updated_at, request_count)
        SELECT rowid, reference, merchant_id, amount, currency, status, authorization_code,
          decline_reason, card_brand, card_bin, card_last4, created_at, updated_at, request_count
        FROM payments;

      DROP TABLE payments;
      ALTER TABLE payments_v2 RENAME TO payments;
      CREATE INDEX payments_by_merchant ON payments (merchant_id);
    `,
  },
  {
    version: 3,
    // Refunds live apart from payments: their references are another namespace (refund ids), and
    // a payment row stays what the bank decided about the charge. A refund only ever references an
    // approved payment; the sum of its succeeded refunds is checked against the payment's amount
    // in the same transaction that inserts one (see refunds.ts), which a CHECK cannot express.
    sql: `
      CREATE TABLE refunds (
        reference TEXT PRIMARY KEY,
        payment_reference TEXT NOT NULL,
        merchant_id TEXT NOT NULL,
        amount INTEGER NOT NULL CHECK (amount > 0),
        currency TEXT NOT NULL CHECK (length(currency) = 3),
        status TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')),
        failure_reason TEXT CHECK ((status = 'failed') = (failure_reason IS NOT NULL)),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        request_count INTEGER NOT NULL CHECK (request_count >= 1)
      ) STRICT;

      CREATE INDEX refunds_by_payment ON refunds (payment_reference);
      CREATE INDEX refunds_by_merchant ON refunds (merchant_id);
    `,
  },
];

migrations.forEach((migration, index) => {
  assert.ok(
    migration.version === index + 1,
    `bank ledger migration ${index} has version ${migration.version}`,
  );
});

const latestSchemaVersion = migrations.length;

export interface BankLedgerOptions {
  /** The directory of the ledger file; created if missing. */
  readonly dataDir: string;
  /** Stamps applied migrations. */
  readonly clock: Clock;
}

export class BankLedger {
  private readonly selectOne: Statement<[string]>;
  private readonly selectAll: Statement<[]>;
  private readonly selectByMerchant: Statement<[string]>;
  private readonly insertOne: Statement<unknown[]>;
  private readonly countOne: Statement<[number, string]>;
  private readonly countRejected: Statement<[string]>;
  private readonly sumRejected: Statement<[]>;
  private readonly sumRejectedByMerchant: Statement<[string]>;
  private readonly selectRefund: Statement<[string]>;
  private readonly selectAllRefunds: Statement<[]>;
  private readonly selectRefundsByMerchant: Statement<[string]>;
  private readonly insertRefundRow: Statement<unknown[]>;
  private readonly countRefund: Statement<[number, string]>;
  private readonly sumRefunded: Statement<[string]>;
  /** One transaction function for every call: better-sqlite3 builds four wrappers per `transaction()`. */
  private readonly runInTransaction: Transaction<(work: () => void) => void>;
  private committed = 0;

  private constructor(
    private readonly database: Database,
    readonly path: string,
  ) {
    this.selectOne = database.prepare('SELECT * FROM payments WHERE reference = ?');
    // rowid order is the order the bank first saw the references.
    this.selectAll = database.prepare('SELECT * FROM payments ORDER BY rowid');
    this.selectByMerchant = database.prepare('SELECT * FROM payments WHERE merchant_id = ? ORDER BY rowid');
    this.insertOne = database.prepare(
      `INSERT INTO payments (reference, merchant_id, amount, currency, status, authorization_code,
         decline_reason, card_brand, card_bin, card_last4, created_at, updated_at, request_count)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.countOne = database.prepare(
      'UPDATE payments SET request_count = request_count + 1, updated_at = ? WHERE reference = ? RETURNING *',
    );
    this.countRejected = database.prepare(
      `INSERT INTO rejected_requests (merchant_id, count) VALUES (?, 1)
       ON CONFLICT (merchant_id) DO UPDATE SET count = count + 1`,
    );
    this.sumRejected = database.prepare('SELECT coalesce(sum(count), 0) FROM rejected_requests').pluck();
    this.sumRejectedByMerchant = database
      .prepare('SELECT coalesce(sum(count), 0) FROM rejected_requests WHERE merchant_id = ?')
      .pluck();
    this.selectRefund = database.prepare('SELECT * FROM refunds WHERE reference = ?');
    this.selectAllRefunds = database.prepare('SELECT * FROM refunds ORDER BY rowid');
    this.selectRefundsByMerchant = database.prepare(
      'SELECT * FROM refunds WHERE merchant_id = ? ORDER BY rowid',
    );
    this.insertRefundRow = database.prepare(
      `INSERT INTO refunds (reference, payment_reference, merchant_id, amount, currency, status,
         failure_reason, created_at, updated_at, request_count)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.countRefund = database.prepare(
      'UPDATE refunds SET request_count = request_count + 1, updated_at = ? WHERE reference = ? RETURNING *',
    );
    this.sumRefunded = database
      .prepare(
        `SELECT coalesce(sum(amount), 0) FROM refunds
         WHERE payment_reference = ? AND status = 'succeeded'`,
      )
      .pluck();
    this.runInTransaction = database.transaction((work: () => void) => work());
  }

  /** Opens (creating and migrating if needed) the ledger in `dataDir`. */
  static open(options: BankLedgerOptions): BankLedger {
    fs.mkdirSync(options.dataDir, { recursive: true });
    const file = path.join(options.dataDir, bankLedgerFileName);
    const database = new BetterSqlite3(file);
    try {
      database.pragma(`busy_timeout = ${ledgerBusyTimeoutMs}`);
      // WAL: a commit is one sequential append plus one fsync, and readers never block the writer.
      const journalMode: unknown = database.pragma('journal_mode = WAL', { simple: true });
      assert.ok(
        journalMode === 'wal',
        `bank ledger ${file} refused WAL mode (it is in ${String(journalMode)})`,
      );
      // FULL: a commit is durable when it returns. The bank answers right after it, so NORMAL
      // could lose a charge the gateway was told about.
      database.pragma('synchronous = FULL');
      const synchronous: unknown = database.pragma('synchronous', { simple: true });
      assert.ok(synchronous === synchronousFull, `bank ledger ${file} refused synchronous=FULL`);
      // Each payment's savepoint journals its pages in memory, not in a temp file per transaction.
      database.pragma('temp_store = MEMORY');
      const pageSize: unknown = database.pragma('page_size', { simple: true });
      assert.ok(
        typeof pageSize === 'number' && pageSize > 0,
        `bank ledger ${file} reports page size ${String(pageSize)}`,
      );
      database.pragma(`wal_autocheckpoint = ${Math.ceil(ledgerWalAutocheckpointBytes / pageSize)}`);
      migrate(database, file, options.clock.now());
      return new BankLedger(database, file);
    } catch (error) {
      database.close();
      throw error;
    }
  }

  /**
   * Runs `work` in one IMMEDIATE transaction: its reads and writes see no other writer, and all of
   * its writes are durable together when it returns. A throw rolls everything back. Called inside
   * another transaction, it is a savepoint of that one: a throw rolls back only `work`'s writes,
   * and they become durable when the outer transaction commits.
   */
  transaction<T>(work: () => T): T {
    const topLevel = !this.database.inTransaction;
    let result: { readonly value: T } | undefined;
    this.runInTransaction.immediate(() => {
      result = { value: work() };
    });
    assert.ok(result !== undefined, 'a committed transaction ran its work');
    if (topLevel) this.committed++;
    return result.value;
  }

  /**
   * Whether a transaction is open. SQLite rolls a whole transaction back by itself after some
   * errors (SQLITE_FULL, SQLITE_IOERR, ...); a batch checks this before each of its writes.
   */
  get inTransaction(): boolean {
    return this.database.inTransaction;
  }

  /** Top-level transactions committed since the ledger was opened: one fsync each. */
  get transactionsCommitted(): number {
    return this.committed;
  }

  find(reference: string): PaymentRecord | undefined {
    const row: unknown = this.selectOne.get(reference);
    return row === undefined ? undefined : recordFromRow(row);
  }

  /** Counts one more request for a known reference; undefined if the bank never saw it. */
  countRequest(reference: string, now: number): PaymentRecord | undefined {
    const row: unknown = this.countOne.get(now, reference);
    return row === undefined ? undefined : recordFromRow(row);
  }

  insert(record: PaymentRecord): void {
    assertRecord(record);
    const decided = record.status === 'cancelled' ? undefined : record;
    this.insertOne.run(
      record.reference,
      record.merchantId,
      decided?.amount ?? 0,
      decided?.currency ?? null,
      record.status,
      decided?.authorizationCode ?? null,
      decided?.declineReason ?? null,
      decided?.card.brand ?? null,
      decided?.card.bin ?? null,
      decided?.card.last4 ?? null,
      record.createdAt,
      record.updatedAt,
      record.requestCount,
    );
  }

  countRejectedRequest(merchantId: string): void {
    this.countRejected.run(merchantId);
  }

  rejectedRequests(merchantId?: string): number {
    const count: unknown =
      merchantId === undefined ? this.sumRejected.get() : this.sumRejectedByMerchant.get(merchantId);
    assert.ok(
      typeof count === 'number' && Number.isSafeInteger(count) && count >= 0,
      'malformed rejected count',
    );
    return count;
  }

  /** Every payment in the order the bank first saw it, optionally of one merchant. */
  list(merchantId?: string): PaymentRecord[] {
    const rows: unknown[] =
      merchantId === undefined ? this.selectAll.all() : this.selectByMerchant.all(merchantId);
    return rows.map(recordFromRow);
  }

  findRefund(reference: string): RefundRecord | undefined {
    const row: unknown = this.selectRefund.get(reference);
    return row === undefined ? undefined : refundFromRow(row);
  }

  /** Counts one more request for a known refund reference; undefined if the bank never saw it. */
  countRefundRequest(reference: string, now: number): RefundRecord | undefined {
    const row: unknown = this.countRefund.get(now, reference);
    return row === undefined ? undefined : refundFromRow(row);
  }

  insertRefund(record: RefundRecord): void {
    assertRefund(record);
    this.insertRefundRow.run(
      record.reference,
      record.paymentReference,
      record.merchantId,
      record.amount,
      record.currency,
      record.status,
      record.failureReason ?? null,
      record.createdAt,
      record.updatedAt,
      record.requestCount,
    );
  }

  /** The sum of a payment's succeeded refunds, in minor units (0 if it has none). */
  refundedAmount(paymentReference: string): number {
    const sum: unknown = this.sumRefunded.get(paymentReference);
    assert.ok(
      typeof sum === 'number' && Number.isSafeInteger(sum) && sum >= 0,
      `malformed refunded sum of payment ${paymentReference}`,
    );
    return sum;
  }

  /** Every refund in the order the bank first saw it, optionally of one merchant. */
  listRefunds(merchantId?: string): RefundRecord[] {
    const rows: unknown[] =
      merchantId === undefined ? this.selectAllRefunds.all() : this.selectRefundsByMerchant.all(merchantId);
    return rows.map(refundFromRow);
  }

  close(): void {
    if (this.database.open) this.database.close();
  }
}

function migrate(database: Database, file: string, appliedAt: number): void {
  const run = database.transaction(() => {
    database.exec(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT',
    );
    const current: unknown = database.prepare('SELECT max(version) FROM schema_migrations').pluck().get();
    const fromVersion = current === null || current === undefined ? 0 : current;
    assert.ok(
      typeof fromVersion === 'number' && Number.isSafeInteger(fromVersion) && fromVersion >= 0,
      `schema_migrations of ${file} holds a malformed version: ${String(current)}`,
    );
    assert.ok(
      fromVersion <= latestSchemaVersion,
      `bank ledger ${file} has schema version ${fromVersion}, newer than this build knows (${latestSchemaVersion})`,
    );
    const record = database.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)');
    for (const migration of migrations.slice(fromVersion)) {
      database.exec(migration.sql);
      record.run(migration.version, appliedAt);
    }
  });
  // IMMEDIATE: two processes opening the same new file must not both try to create the tables.
  run.immediate();
}

const cardBrands: readonly string[] = [
  'visa',
  'mastercard',
  'amex',
  'discover',
  'jcb',
  'diners',
  'unionpay',
  'unknown',
] satisfies readonly CardBrand[];

function isCardBrand(value: unknown): value is CardBrand {
  return typeof value === 'string' && cardBrands.includes(value);
}

function isDeclineReason(value: unknown): value is DeclineReason {
  return typeof value === 'string' && (declineReasons as readonly string[]).includes(value);
}

/** Checks a record right before it is written, so a bug cannot put a wrong row in the ground truth. */
function assertRecord(record: PaymentRecord): void {
  assert.ok(record.reference.length > 0, 'a payment needs a reference');
  assert.ok(
    Number.isSafeInteger(record.requestCount) && record.requestCount >= 1,
    'requestCount must be >= 1',
  );
  if (record.status !== 'cancelled') assertDecided(record);
}

function assertDecided(record: DecidedPayment): void {
  assert.ok(
    Number.isSafeInteger(record.amount) && record.amount > 0,
    'amount must be a positive safe integer',
  );
  assert.ok(/^[A-Z]{3}$/.test(record.currency), 'currency must be three capital letters');
  assert.ok(
    /^[0-9]{6}$/.test(record.card.bin) && /^[0-9]{4}$/.test(record.card.last4),
    'malformed card fingerprint',
  );
  assert.ok(
    record.status === 'approved'
      ? record.authorizationCode !== undefined && record.declineReason === undefined
      : record.declineReason !== undefined && record.authorizationCode === undefined,
    `payment ${record.reference}: status ${record.status} does not match its code and reason`,
  );
}

function isRow(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function text(row: Record<string, unknown>, column: string): string {
  const value = row[column];
  assert.ok(typeof value === 'string', `bank ledger column ${column} is not text`);
  return value;
}

function integer(row: Record<string, unknown>, column: string): number {
  const value = row[column];
  assert.ok(
    typeof value === 'number' && Number.isSafeInteger(value),
    `bank ledger column ${column} is not an integer`,
  );
  return value;
}

/** Checks a row right after it is read: a malformed row is a broken invariant, not a payment. */
function recordFromRow(row: unknown): PaymentRecord {
  assert.ok(isRow(row), 'bank ledger row is not an object');
  const status = text(row, 'status');
  const common = {
    reference: text(row, 'reference'),
    merchantId: text(row, 'merchant_id'),
    createdAt: integer(row, 'created_at'),
    updatedAt: integer(row, 'updated_at'),
    requestCount: integer(row, 'request_count'),
  };
  let record: PaymentRecord;
  if (status === 'cancelled') {
    assert.ok(
      integer(row, 'amount') === 0 && row.currency === null && row.card_brand === null,
      `bank ledger holds a cancelled record ${common.reference} with payment details`,
    );
    record = { ...common, status };
  } else {
    assert.ok(status === 'approved' || status === 'declined', `bank ledger holds unknown status ${status}`);
    const brand = row.card_brand;
    assert.ok(isCardBrand(brand), 'bank ledger holds an unknown card brand');
    const payment = {
      ...common,
      amount: integer(row, 'amount'),
      currency: text(row, 'currency'),
      card: { brand, bin: text(row, 'card_bin'), last4: text(row, 'card_last4') },
    };
    record =
      status === 'approved'
        ? { ...payment, status, authorizationCode: text(row, 'authorization_code') }
        : { ...payment, status, declineReason: declineReasonOf(row.decline_reason) };
  }
  assertRecord(record);
  return record;
}

function isRefundFailureReason(value: unknown): value is RefundFailureReason {
  return typeof value === 'string' && (refundFailureReasons as readonly string[]).includes(value);
}

/** Checks a refund right before it is written and right after it is read. */
function assertRefund(record: RefundRecord): void {
  assert.ok(
    record.reference.length > 0 && record.paymentReference.length > 0,
    'a refund needs a reference and a payment reference',
  );
  assert.ok(
    Number.isSafeInteger(record.amount) && record.amount > 0,
    'refund amount must be a positive safe integer',
  );
  assert.ok(/^[A-Z]{3}$/.test(record.currency), 'refund currency must be three capital letters');
  assert.ok(
    Number.isSafeInteger(record.requestCount) && record.requestCount >= 1,
    'requestCount must be >= 1',
  );
  assert.ok(
    (record.status === 'failed') === (record.failureReason !== undefined),
    `refund ${record.reference}: status ${record.status} does not match its failure reason`,
  );
}

function refundFromRow(row: unknown): RefundRecord {
  assert.ok(isRow(row), 'bank ledger refund row is not an object');
  const status = text(row, 'status');
  assert.ok(
    status === 'succeeded' || status === 'failed',
    `bank ledger holds unknown refund status ${status}`,
  );
  const reason = row.failure_reason;
  assert.ok(
    reason === null || isRefundFailureReason(reason),
    'bank ledger holds an unknown refund failure reason',
  );
  const record: RefundRecord = {
    reference: text(row, 'reference'),
    paymentReference: text(row, 'payment_reference'),
    merchantId: text(row, 'merchant_id'),
    amount: integer(row, 'amount'),
    currency: text(row, 'currency'),
    status,
    ...(reason === null ? {} : { failureReason: reason }),
    createdAt: integer(row, 'created_at'),
    updatedAt: integer(row, 'updated_at'),
    requestCount: integer(row, 'request_count'),
  };
  assertRefund(record);
  return record;
}

function declineReasonOf(value: unknown): DeclineReason {
  assert.ok(isDeclineReason(value), 'bank ledger holds an unknown decline reason');
  return value;
}

export interface LedgerTotals {
  readonly payments: number;
  readonly approved: number;
  readonly declined: number;
  readonly cancelled: number;
  readonly requests: number;
  readonly duplicateRequests: number;
  readonly rejectedRequests: number;
  readonly approvedAmountByCurrency: Readonly<Record<string, AmountTotal>>;
  readonly refunds: number;
  readonly refundsSucceeded: number;
  readonly refundsFailed: number;
  readonly refundRequests: number;
  readonly duplicateRefundRequests: number;
  readonly refundedAmountByCurrency: Readonly<Record<string, AmountTotal>>;
}

/**
 * Sums a list of records. Amounts add up as bigint: a total may exceed what a double holds. Only
 * approved payments were charged and only succeeded refunds gave money back; the others count as
 * requests only.
 */
export function ledgerTotals(
  records: readonly PaymentRecord[],
  refunds: readonly RefundRecord[],
  rejectedRequests: number,
): LedgerTotals {
  let approved = 0;
  let cancelled = 0;
  let requests = 0;
  const charged = new Map<string, bigint>();
  for (const record of records) {
    requests += record.requestCount;
    if (record.status === 'cancelled') cancelled++;
    if (record.status !== 'approved') continue;
    approved++;
    charged.set(record.currency, (charged.get(record.currency) ?? 0n) + BigInt(record.amount));
  }
  let refundsSucceeded = 0;
  let refundRequests = 0;
  const refunded = new Map<string, bigint>();
  for (const refund of refunds) {
    refundRequests += refund.requestCount;
    if (refund.status !== 'succeeded') continue;
    refundsSucceeded++;
    refunded.set(refund.currency, (refunded.get(refund.currency) ?? 0n) + BigInt(refund.amount));
  }
  return {
    payments: records.length,
    approved,
    declined: records.length - approved - cancelled,
    cancelled,
    requests,
    duplicateRequests: requests - records.length,
    rejectedRequests,
    approvedAmountByCurrency: amountTotals(charged),
    refunds: refunds.length,
    refundsSucceeded,
    refundsFailed: refunds.length - refundsSucceeded,
    refundRequests,
    duplicateRefundRequests: refundRequests - refunds.length,
    refundedAmountByCurrency: amountTotals(refunded),
  };
}

/** Sums by currency, sorted; a sum too large for a double travels as a string of digits. */
function amountTotals(sums: ReadonlyMap<string, bigint>): Record<string, AmountTotal> {
  const totals: Record<string, AmountTotal> = {};
  for (const [currency, sum] of [...sums].sort(([left], [right]) => left.localeCompare(right))) {
    totals[currency] = sum <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(sum) : sum.toString();
  }
  return totals;
}
