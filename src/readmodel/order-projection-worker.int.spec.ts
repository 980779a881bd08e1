/**
 * The order projection off the main thread: a real SQLite journal, a real worker thread reading it
 * over its own read-only connection and writing `readmodel.db`, and this thread querying the read
 * model over a read-only connection. Every case runs twice: in a thread of its own (started through
 * `startTsWorker`, the journal written on this thread), and as the gateway runs it, a guest of the
 * journal's writer thread. Hand-written Merchant events keep each case small.
 *
 * What is checked: progress reaches the main thread (waiters resolve on the worker's reports), the
 * worker learns of commits from the shared count while busy and from one nudge when asleep, never
 * from its fallback poll, a worker that dies is restarted and loses or repeats nothing, a
 * projection that keeps failing is declared failed loudly and heals once the cause is gone,
 * `stop()` drains, and `rebuild()` gives identical tables.
 *
 * Waits are conditions: the worker's own reports (`caughtUp`, `waitForOffset`) or, for a restart
 * that happens on a backoff timer, `vi.waitFor` on the status. The poll interval is an hour, so
 * nothing in these tests is found by polling.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CardSummary } from '../payments/card.js';
import { type MerchantEvent, merchantEvents } from '../payments/merchant-events.js';
import { type PaymentEvent, paymentEvents } from '../payments/payment-events.js';
import { systemClock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import { openSqliteStore, type SqliteStore } from '../store/sqlite/open-database.js';
import { ThreadWriter } from '../store/sqlite/sqlite-writer.js';
import { visaCardSummary } from '../testing/fixtures/card-summary.js';
import { dumpReadModel, listedEventOffsets } from '../testing/read-model-dump.js';
import { orderAuditTrail } from './audit-trail.js';
import { OrderProjectionError, OrderProjectionStoppedError } from './order-projection.js';
import {
  hostedThread,
  OrderProjectionWorker,
  type OrderProjectionWorkerSettings,
} from './order-projection-worker.js';
import { OrderReadModel, readModelPath } from './order-read-model.js';

const start = Date.UTC(2026, 10, 24);
const card: CardSummary = visaCardSummary('tok_3f9a1c');

function created(orderId: string): MerchantEvent {
  return {
    type: 'OrderCreated',
    orderId,
    idempotencyKey: `key-${orderId}`,
    requestHash: `hash-${orderId}`,
    amount: 1_000n,
    currency: 'EUR',
    card,
    description: undefined,
    reference: undefined,
    at: start,
  };
}

function validated(orderId: string): MerchantEvent {
  return {
    type: 'OrderValidated',
    orderId,
    bank: 'bank-a',
    rulesVersion: 1,
    deadlineAt: start + 60_000,
    at: start,
  };
}

interface LogRecord {
  readonly level: 'info' | 'warn' | 'error';
  readonly message: string;
}

/**
 * Records each line's level and message, and in `keys` the keys the line would be written with
 * (its logger's bindings, then its fields), as pino writes them: a key given twice appears twice.
 */
function recordingLogger(records: LogRecord[], keys: string[][] = [], bindings: object = {}): Logger {
  const record =
    (level: LogRecord['level']) =>
    (fields: object, message: string): void => {
      records.push({ level, message });
      keys.push([...Object.keys(bindings), ...Object.keys(fields)]);
    };
  return {
    debug: () => undefined,
    info: record('info'),
    warn: record('warn'),
    error: record('error'),
    child: (more) => recordingLogger(records, keys, { ...bindings, ...more }),
  };
}

interface Harness {
  readonly directory: string;
  readonly store: SqliteStore;
  readonly readModel: OrderReadModel;
  readonly projection: OrderProjectionWorker;
  readonly logs: LogRecord[];
  /** The keys of each line in `logs`, in the same order. */
  readonly logKeys: string[][];
}

const harnesses: Harness[] = [];

afterEach(async () => {
  for (const h of harnesses.splice(0)) {
    await h.projection.stop();
    h.readModel.close();
    await h.store.close();
    rmSync(h.directory, { recursive: true, force: true });
  }
});

/** Where the projection runs: a thread of its own, or (as in the gateway) the journal's writer thread. */
type Placement = 'own thread' | 'writer thread';

function harness(placement: Placement, settings: Partial<OrderProjectionWorkerSettings> = {}): Harness {
  const directory = mkdtempSync(join(tmpdir(), 'remit-projection-worker-'));
  const store = openSqliteStore({
    path: join(directory, 'journal.db'),
    writer: placement === 'writer thread' ? 'thread' : 'inline',
  });
  const readModel = OrderReadModel.openForQueries(readModelPath(directory));
  const logs: LogRecord[] = [];
  const logKeys: string[][] = [];
  const projection = new OrderProjectionWorker({
    journalPath: store.path,
    readModelPath: readModel.path,
    clock: systemClock,
    random: new SeededRandom(11),
    logger: recordingLogger(logs, logKeys),
    ...(store.writer instanceof ThreadWriter ? { startThread: hostedThread(store.writer) } : {}),
    settings: {
      ...settings,
      projection: { pollIntervalMs: 3_600_000, ...settings.projection },
      restart: { minBackoffMs: 10, maxBackoffMs: 50, randomFactor: 0, ...settings.restart },
    },
  });
  const h: Harness = { directory, store, readModel, projection, logs, logKeys };
  harnesses.push(h);
  return h;
}

/** Appends one order per id (created + validated) to one merchant; returns the journal's last offset. */
async function appendOrders(h: Harness, merchantId: string, orderIds: readonly string[]): Promise<number> {
  const persistenceId = `merchant-${merchantId}`;
  for (const orderId of orderIds) {
    const fromSeqNr = (await h.store.journal.highestSeqNr(persistenceId)) + 1;
    const events = [created(orderId), validated(orderId)].map((event) => merchantEvents.serialize(event));
    await h.store.journal.append({ persistenceId, fromSeqNr, events, timestamp: start });
  }
  return lastOffset(h);
}

function lastOffset(h: Harness): number {
  const database = new BetterSqlite3(h.store.path, { readonly: true });
  try {
    const offset: unknown = database.prepare('SELECT MAX(global_offset) FROM journal').pluck().get();
    return typeof offset === 'number' ? offset : 0;
  } finally {
    database.close();
  }
}

/** Changes the stored checksum of the row at `offset` by `delta` (so -delta repairs it). */
function disturbChecksum(h: Harness, offset: number, delta: number): void {
  const database = new BetterSqlite3(h.store.path);
  try {
    database.prepare('UPDATE journal SET checksum = checksum + ? WHERE global_offset = ?').run(delta, offset);
  } finally {
    database.close();
  }
}

const ids = (prefix: string, count: number): string[] =>
  Array.from({ length: count }, (_, index) => `${prefix}${String(index).padStart(4, '0')}`);

describe.each<Placement>(['own thread', 'writer thread'])(
  'order projection worker in its %s',
  (placement) => {
    it('projects in its thread; a busy worker sees commits through shared memory, with no message', async () => {
      // Never falls asleep here: it must learn of the commits from the shared count alone.
      const h = harness(placement, { wake: { busyPollIntervalMs: 5, quietAfterMs: 3_600_000 } });
      h.projection.start();
      await h.projection.caughtUp();
      expect(h.projection.status()).toMatchObject({ state: 'running', offset: 0, restarts: 0 });

      const offset = await appendOrders(h, 'm1', ['o1', 'o2']);
      h.projection.notify();
      await h.projection.waitForOffset(offset);
      expect(h.projection.status()).toMatchObject({ nudges: 0, workerAsleep: false });
      expect(h.readModel.offset()).toBe(4);
      expect(h.readModel.getOrder('m1', 'o2')?.status).toBe('validated');
      const trail = await orderAuditTrail(h.readModel, h.store.journal, 'm1', 'o1');
      expect(trail?.map((entry) => entry.type)).toEqual(['OrderCreated', 'OrderValidated']);
      expect(h.projection.stats().events).toBe(4);
      // This thread's connection cannot write, whatever it is asked.
      expect(() => h.readModel.applyBatch({ afterOffset: 4, toOffset: 5, changes: [] })).toThrow(
        /opened for queries only/,
      );
      expect(() => h.readModel.reset()).toThrow(/opened for queries only/);
    });

    it("projects an order's refunds in its thread; this thread reads them over its read-only connection", async () => {
      const h = harness(placement);
      h.projection.start();
      await appendOrders(h, 'm1', ['o1']);
      const executed: MerchantEvent = {
        type: 'OrderExecuted',
        orderId: 'o1',
        authorizationCode: '1',
        at: start,
      };
      await h.store.journal.append({
        persistenceId: 'merchant-m1',
        fromSeqNr: 3,
        events: [merchantEvents.serialize(executed)],
        timestamp: start,
      });
      const requested: PaymentEvent = {
        type: 'RefundRequested',
        refundId: 're_1',
        orderId: 'o1',
        merchantId: 'm1',
        idempotencyKey: 'key-re_1',
        requestHash: 'hash-re_1',
        amount: 400n,
        currency: 'EUR',
        reason: undefined,
        paymentAmount: 1_000n,
        bank: 'bank-a',
        at: start + 1,
      };
      const succeeded: PaymentEvent = { type: 'RefundSucceeded', refundId: 're_1', at: start + 2 };
      await h.store.journal.append({
        persistenceId: 'payment-o1',
        fromSeqNr: 1,
        events: [requested, succeeded].map((event) => paymentEvents.serialize(event)),
        timestamp: start,
      });
      h.projection.notify();
      await h.projection.waitForOffset(lastOffset(h));

      expect(h.readModel.getOrder('m1', 'o1')).toMatchObject({ status: 'executed', amountRefunded: 400n });
      expect(await h.readModel.listRefunds('m1', 'o1')).toEqual([
        expect.objectContaining({ id: 're_1', status: 'succeeded', amount: 400n, updatedAt: start + 2 }),
      ]);
      const trail = await orderAuditTrail(h.readModel, h.store.journal, 'm1', 'o1');
      expect(trail?.map((entry) => entry.type)).toEqual([
        'OrderCreated',
        'OrderValidated',
        'OrderExecuted',
        'RefundRequested',
        'RefundSucceeded',
      ]);
    });

    it("logs the thread's lines on this thread with every key once", async () => {
      const h = harness(placement);
      h.projection.start();
      await h.projection.caughtUp();
      await h.projection.stop();

      expect(h.logs).toContainEqual({ level: 'info', message: 'order projection started' });
      expect(h.logKeys.length).toBe(h.logs.length);
      for (const keys of h.logKeys) expect(keys).toEqual([...new Set(keys)]);
    });

    it('a worker asleep after a quiet spell is woken by one nudge at the next commit', async () => {
      const h = harness(placement, { wake: { busyPollIntervalMs: 5, quietAfterMs: 0 } });
      h.projection.start();
      await h.projection.caughtUp();
      await vi.waitFor(() => expect(h.projection.status().workerAsleep).toBe(true), {
        timeout: 10_000,
        interval: 5,
      });

      const offset = await appendOrders(h, 'm1', ['o1']);
      h.projection.notify();
      h.projection.notify();
      expect(h.projection.status().nudges).toBe(1);
      await h.projection.waitForOffset(offset);
      expect(h.readModel.getOrder('m1', 'o1')?.status).toBe('validated');
    });

    it('restarts a worker that died; waiters from before the crash are answered; nothing applied twice', async () => {
      const h = harness(placement);
      h.projection.start();
      const first = await appendOrders(h, 'm1', ids('a', 20));
      await h.projection.waitForOffset(first);
      const later = h.projection.waitForOffset(first + 2);

      await h.projection.terminateWorker();
      expect(h.projection.status()).toMatchObject({ state: 'restarting', consecutiveFailures: 1 });
      expect(h.logs).toContainEqual({
        level: 'error',
        message: 'order projection worker ended unasked; restarting it',
      });
      const second = await appendOrders(h, 'm1', ['b1']);
      h.projection.notify();

      await later;
      await h.projection.caughtUp();
      expect(second).toBe(first + 2);
      expect(h.projection.status()).toMatchObject({ state: 'running', restarts: 1, consecutiveFailures: 0 });
      expect(h.readModel.offset()).toBe(second);
      const tables = dumpReadModel(h.readModel.path);
      expect(tables.orders).toHaveLength(21);
      const listed = listedEventOffsets(tables);
      expect(listed).toHaveLength(42);
      expect(new Set(listed).size).toBe(42);
    });

    it('a projection that keeps failing is declared failed, rejects waiters, and heals once the cause is gone', async () => {
      const h = harness(placement, { restartsMax: 2 });
      h.projection.start();
      await h.projection.waitForOffset(await appendOrders(h, 'm1', ['o1']));
      await appendOrders(h, 'm1', ['o2']);
      disturbChecksum(h, 3, 1);

      const waiting = h.projection.caughtUp();
      const failure = await waiting.then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(OrderProjectionError);
      expect(String(failure)).toMatch(/after offset 2: .*merchant-m1/);
      expect(h.projection.status()).toMatchObject({ state: 'failed', offset: 2 });
      expect(h.projection.status().consecutiveFailures).toBeGreaterThan(2);
      expect(h.logs).toContainEqual({
        level: 'error',
        message: 'order projection failed: the read model is not being updated',
      });
      // Nobody waits on a failed projection: callers learn of it at once.
      await expect(h.projection.caughtUp()).rejects.toBe(failure);
      expect(h.readModel.getOrderById('o2')).toBeUndefined();

      // The row is readable again (a transient fault): the next restart gets through.
      disturbChecksum(h, 3, -1);
      await vi.waitFor(() => expect(h.projection.status().state).toBe('running'), {
        timeout: 20_000,
        interval: 20,
      });
      await h.projection.caughtUp();
      expect(h.readModel.getOrder('m1', 'o2')?.status).toBe('validated');
      expect(h.logs).toContainEqual({ level: 'info', message: 'order projection worker recovered' });
    });

    it('stop() drains what the journal holds, then rejects callers with OrderProjectionStoppedError', async () => {
      const h = harness(placement, { projection: { batchSize: 10 } });
      h.projection.start();
      await h.projection.caughtUp();
      // Not notified, and polling is an hour away: only the drain can project these.
      const offset = await appendOrders(h, 'm1', ids('o', 150));
      await h.projection.stop();
      expect(h.readModel.offset()).toBe(offset);
      expect(h.projection.status().offset).toBe(offset);
      expect(dumpReadModel(h.readModel.path).orders).toHaveLength(150);
      expect(h.projection.status().state).toBe('stopped');
      await expect(h.projection.caughtUp()).rejects.toBeInstanceOf(OrderProjectionStoppedError);
    });

    it('rebuild() empties the read model and projects it again from offset 0, identically', async () => {
      const h = harness(placement, { projection: { batchSize: 7 } });
      h.projection.start();
      await h.projection.waitForOffset(await appendOrders(h, 'm2', ids('r', 30)));
      const before = dumpReadModel(h.readModel.path);

      await h.projection.rebuild();
      expect(dumpReadModel(h.readModel.path)).toEqual(before);
      expect(h.projection.stats().events).toBe(120);
      expect(h.projection.status()).toMatchObject({ state: 'running', offset: 60, restarts: 0 });
    });
  },
);

describe('order projection worker as a guest of the writer thread', () => {
  it('is restarted when the writer thread ends under it, and catches up with the next thread', async () => {
    const h = harness('writer thread');
    h.projection.start();
    await h.projection.waitForOffset(await appendOrders(h, 'm1', ['o1']));

    // A vault write that cannot succeed ends the writer thread, and the projection with it.
    const badVault = join(h.directory, 'not-a-file');
    mkdirSync(badVault);
    h.store.writer.putVault(badVault, { token: 'tok_x', sealed: Buffer.from([1]), createdAt: start });
    await expect(appendOrders(h, 'm1', ['lost'])).rejects.toThrow(/writer thread exited/);
    await vi.waitFor(() => expect(h.projection.status().restarts).toBe(1), { timeout: 10_000, interval: 10 });

    const offset = await appendOrders(h, 'm1', ['o2']);
    h.projection.notify();
    await h.projection.waitForOffset(offset);
    expect(h.readModel.getOrder('m1', 'o2')?.status).toBe('validated');
    expect(h.logs).toContainEqual({
      level: 'error',
      message: 'order projection worker ended unasked; restarting it',
    });
  });
});
