/**
 * The micro stage of the ceiling benchmark: in this process, no HTTP, the CPU of the least work one
 * order needs, each done by the real library the gateway uses:
 *
 * - `JSON.stringify` and `JSON.parse` of the ~360-byte event the durable stages journal;
 * - SQLite inserts in transactions of 64 rows (WAL): the durable stages' event row
 *   (`synchronous=FULL`), a processed-message record shaped like the gateway's (small row, WITHOUT
 *   ROWID; FULL), and the same small row with `synchronous=NORMAL` (no fsync per commit: the
 *   read model's setting);
 * - a card: HMAC-SHA256 token of the 16-digit number plus an AES-256-GCM seal with a random 12-byte
 *   IV, as `src/payments/card-vault.ts` does it (IVs from a pool filled 256 at a time);
 * - sha256 of a short string (the order id's hash of merchant id and idempotency key).
 *
 * CPU is `process.cpuUsage()` (user + system, every thread of this process: garbage collection and
 * the kernel's share of an fsync count) over a run bounded by a time budget and an operation cap,
 * after a warm-up that is not counted.
 */
import { createCipheriv, createHash, createHmac, randomBytes, randomFillSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { approvedCard } from '../gateway/cards.js';
import { openJournal } from './journal.mjs';
import { round } from './server-stage.js';
import { orderEventOf, orderOf, orderRequestOf } from './shapes.mjs';

export interface OperationCost {
  readonly operations: number;
  readonly cpuMicrosPerOperation: number;
  readonly wallMicrosPerOperation: number;
}

export interface SqliteCost {
  readonly table: string;
  readonly synchronous: 'FULL' | 'NORMAL';
  readonly rowsPerTransaction: number;
  readonly rowBytes: number;
  readonly transactions: number;
  readonly rows: number;
  readonly cpuMicrosPerRow: number;
  readonly cpuMicrosPerTransaction: number;
  /** Wall time of one transaction (its inserts and its commit), µs. */
  readonly wallMicrosPerCommit: { readonly mean: number; readonly p50: number; readonly p99: number };
}

export interface MicroResult {
  readonly eventBytes: number;
  readonly json: {
    readonly stringify: OperationCost;
    readonly parse: OperationCost;
    readonly stringifyAndParse: OperationCost;
  };
  readonly sqlite: {
    readonly eventRowFull: SqliteCost;
    readonly smallRowFull: SqliteCost;
    readonly smallRowNormal: SqliteCost;
  };
  readonly cardTokenAndSeal: OperationCost;
  readonly orderIdSha256: OperationCost;
}

interface Budget {
  readonly timeMs: number;
  readonly operationsMax: number;
  readonly warmupOperations: number;
}

/** Distinct inputs cycled through (a power of two), so building them costs nothing in the loop. */
const poolSize = 1_024;
/** The clock is read once per this many operations, so reading it costs nothing measurable. */
const chunkOperations = 256;
const cpuBudget: Budget = { timeMs: 1_000, operationsMax: 2_000_000, warmupOperations: 20_000 };
const rowsPerTransaction = 64;
const sqliteBudget = { timeMs: 3_000, transactionsMax: 3_000, warmupTransactions: 20 } as const;
/** The vault's `ivBatch`: random IVs are drawn from the CSPRNG this many at a time. */
const ivBatch = 256;
const ivBytes = 12;
const tagBytes = 16;

function measure(operation: (index: number) => number, budget: Budget): OperationCost {
  // Every result is added up and checked, so no measured call's result goes unused.
  let sum = 0;
  for (let index = 0; index < budget.warmupOperations; index++) sum += operation(index);
  const cpuStart = process.cpuUsage();
  const wallStart = performance.now();
  let operations = 0;
  const chunksMax = Math.ceil(budget.operationsMax / chunkOperations);
  for (let chunk = 0; chunk < chunksMax; chunk++) {
    for (let index = 0; index < chunkOperations; index++) sum += operation(operations + index);
    operations += chunkOperations;
    if (performance.now() - wallStart >= budget.timeMs) break;
  }
  const wallMs = performance.now() - wallStart;
  const cpu = process.cpuUsage(cpuStart);
  if (!Number.isFinite(sum)) throw new Error('a measured operation did not return a number');
  return {
    operations,
    cpuMicrosPerOperation: round((cpu.user + cpu.system) / operations, 3),
    wallMicrosPerOperation: round((wallMs * 1_000) / operations, 3),
  };
}

function percentile(sorted: readonly number[], fraction: number): number {
  const value = sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))];
  return value === undefined ? 0 : round(value, 1);
}

/**
 * Inserts `rowsPerTransaction` rows per transaction through `commit` (one transaction per call),
 * until the time budget or the transaction cap.
 */
function measureSqlite(
  table: string,
  synchronous: SqliteCost['synchronous'],
  rowBytes: number,
  commit: (first: number) => void,
): SqliteCost {
  for (let index = 0; index < sqliteBudget.warmupTransactions; index++) commit(index * rowsPerTransaction);
  const first = sqliteBudget.warmupTransactions * rowsPerTransaction;
  const commitMicros: number[] = [];
  const cpuStart = process.cpuUsage();
  const wallStart = performance.now();
  for (let index = 0; index < sqliteBudget.transactionsMax; index++) {
    const before = performance.now();
    commit(first + index * rowsPerTransaction);
    const after = performance.now();
    commitMicros.push((after - before) * 1_000);
    if (after - wallStart >= sqliteBudget.timeMs) break;
  }
  const cpu = process.cpuUsage(cpuStart);
  const transactions = commitMicros.length;
  const rows = transactions * rowsPerTransaction;
  const cpuMicros = cpu.user + cpu.system;
  const sorted = [...commitMicros].sort((a, b) => a - b);
  const mean = sorted.reduce((sum, value) => sum + value, 0) / transactions;
  return {
    table,
    synchronous,
    rowsPerTransaction,
    rowBytes,
    transactions,
    rows,
    cpuMicrosPerRow: round(cpuMicros / rows, 2),
    cpuMicrosPerTransaction: round(cpuMicros / transactions, 1),
    wallMicrosPerCommit: {
      mean: round(mean, 1),
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
    },
  };
}

/** The gateway's processed-message table (src/store/sqlite/migrations.ts, version 2). */
function smallRowSqlite(file: string, synchronous: SqliteCost['synchronous'], orderIds: readonly string[]) {
  const database = new Database(file);
  database.pragma('journal_mode = WAL');
  database.pragma(`synchronous = ${synchronous}`);
  database.pragma('temp_store = MEMORY');
  database.exec(
    'CREATE TABLE processed_messages (receiver_id TEXT NOT NULL, message_time INTEGER NOT NULL, ' +
      'message_id TEXT NOT NULL, processed_at INTEGER NOT NULL, ' +
      'PRIMARY KEY (receiver_id, message_time, message_id)) STRICT, WITHOUT ROWID',
  );
  const insert = database.prepare(
    'INSERT INTO processed_messages (receiver_id, message_time, message_id, processed_at) VALUES (?, ?, ?, ?)',
  );
  const receiver = 'executor-bank-simulator';
  const baseTime = Date.now();
  const insertRows = database.transaction((first: number) => {
    for (let row = first; row < first + rowsPerTransaction; row++) {
      // Rows in time order, as the messages arrive; ids cycle, so the key's time keeps them unique.
      insert.run(receiver, baseTime + row, orderIds[row % poolSize] ?? '', baseTime + row);
    }
  });
  const rowBytes = receiver.length + (orderIds[0]?.length ?? 0) + 16;
  try {
    return measureSqlite('processed_messages (WITHOUT ROWID)', synchronous, rowBytes, (first) =>
      insertRows.immediate(first),
    );
  } finally {
    database.close();
  }
}

function eventRowSqlite(file: string, payloads: readonly string[]): SqliteCost {
  const journal = openJournal(file);
  const persistenceId = 'merchant-merchant-a';
  const rows: string[] = new Array<string>(2 * rowsPerTransaction).fill('');
  try {
    return measureSqlite(
      'journal (seq INTEGER PRIMARY KEY, persistence_id, payload)',
      'FULL',
      persistenceId.length + (payloads[0]?.length ?? 0),
      (first) => {
        for (let row = 0; row < rowsPerTransaction; row++) {
          rows[2 * row] = persistenceId;
          rows[2 * row + 1] = payloads[(first + row) % poolSize] ?? '';
        }
        journal.commit(rows);
      },
    );
  } finally {
    journal.close();
  }
}

function events(): { readonly objects: readonly object[]; readonly texts: readonly string[] } {
  const now = Date.now();
  const objects = Array.from({ length: poolSize }, (_, index) => {
    const request = orderRequestOf({
      amount: 1_000 + index,
      currency: 'EUR',
      card: { number: approvedCard(index), expMonth: 12, expYear: 2030 },
    });
    if (request === undefined) throw new Error('the micro stage built an invalid order request');
    const order = orderOf(index, 'merchant-a', request, new Date(now + index).toISOString());
    return orderEventOf(order, `ceiling-${index.toString().padStart(8, '0')}-4f1c2e9a-7b3d-4c55-9e21`);
  });
  return { objects, texts: objects.map((event) => JSON.stringify(event)) };
}

function cardSealer(): (number: string) => number {
  const macKey = randomBytes(32);
  const encryptionKey = randomBytes(32);
  const ivPool = Buffer.alloc(ivBytes * ivBatch);
  let ivAt = ivPool.length;
  return (cardNumber) => {
    const token = `tok_${createHmac('sha256', macKey).update('card\u0000').update(cardNumber).digest('base64url').slice(0, 32)}`;
    if (ivAt + ivBytes > ivPool.length) {
      randomFillSync(ivPool);
      ivAt = 0;
    }
    const iv = ivPool.subarray(ivAt, ivAt + ivBytes);
    ivAt += ivBytes;
    const cipher = createCipheriv('aes-256-gcm', encryptionKey, iv);
    cipher.setAAD(Buffer.from(token));
    const ciphertext = Buffer.concat([cipher.update(cardNumber, 'utf8'), cipher.final()]);
    const sealed = Buffer.allocUnsafeSlow(ivBytes + tagBytes + ciphertext.length);
    iv.copy(sealed, 0);
    cipher.getAuthTag().copy(sealed, ivBytes);
    ciphertext.copy(sealed, ivBytes + tagBytes);
    return sealed.length + token.length;
  };
}

export function runMicro(): MicroResult {
  const { objects, texts } = events();
  const at = (index: number): number => index & (poolSize - 1);
  const json = {
    stringify: measure((index) => JSON.stringify(objects[at(index)]).length, cpuBudget),
    parse: measure((index) => (JSON.parse(texts[at(index)] ?? '{}') as { amount: number }).amount, cpuBudget),
    stringifyAndParse: measure(
      (index) => (JSON.parse(JSON.stringify(objects[at(index)])) as { amount: number }).amount,
      cpuBudget,
    ),
  };
  const cards = Array.from({ length: poolSize }, (_, index) => approvedCard(index));
  const seal = cardSealer();
  const cardTokenAndSeal = measure((index) => seal(cards[at(index)] ?? ''), cpuBudget);
  const keys = Array.from({ length: poolSize }, (_, index) => `ceiling-4f1c2e9a-${index}`);
  const orderIdSha256 = measure(
    (index) =>
      createHash('sha256')
        .update('merchant-a')
        .update('\u0000')
        .update(keys[at(index)] ?? '')
        .digest().length,
    cpuBudget,
  );
  const orderIds = objects.map((event) => String(Reflect.get(event, 'orderId')));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'remit-ceiling-micro-'));
  try {
    const sqlite = {
      eventRowFull: eventRowSqlite(path.join(dir, 'journal.db'), texts),
      smallRowFull: smallRowSqlite(path.join(dir, 'processed-full.db'), 'FULL', orderIds),
      smallRowNormal: smallRowSqlite(path.join(dir, 'processed-normal.db'), 'NORMAL', orderIds),
    };
    return {
      eventBytes: Math.round(texts.reduce((sum, text) => sum + text.length, 0) / texts.length),
      json,
      sqlite,
      cardTokenAndSeal,
      orderIdSha256,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
