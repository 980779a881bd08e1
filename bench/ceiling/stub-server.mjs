/**
 * The ceiling benchmark's stub server: answers `POST /v1/orders` as the gateway does (201, an
 * executed order of ~430 bytes of JSON) while doing as little as a stage allows, so what this
 * machine can answer at most is measured with the gateway's own load generator.
 *
 * Run as a child process by `bench/ceiling.bench.ts`: `node stub-server.mjs --stage S --host H
 * --port P --data DIR`. Plain JavaScript (`.mjs`) on purpose: it runs under plain `node`, no
 * TypeScript loader in the measured process, as the gateway runs compiled.
 *
 * Stages:
 * - `http`: bare `node:http`; reads the whole body, `JSON.parse`s it, answers with
 *   `JSON.stringify` of the order.
 * - `fastify`: the same with Fastify, a JSON schema for the body (validation) and one for the 201
 *   answer (fast serialization), logger off.
 * - `durable`: `http` plus one event row per order in a SQLite journal (WAL, synchronous=FULL)
 *   written by a worker thread with group commit; a request is answered only after its row's
 *   transaction committed.
 * - `durable-inline`: the same group commit, committed on the main thread (each flush blocks the
 *   event loop for its fsync).
 *
 * `GET /health/live` answers 200; `GET /stats` the journal's counters (transactions, rows).
 * SIGTERM stops it.
 */
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { openJournal } from './journal.mjs';
import { orderEventOf, orderOf, orderRequestOf } from './shapes.mjs';

/** The stub ignores authorization: every order is this merchant's. */
const merchantId = 'merchant-a';
const persistenceId = `merchant-${merchantId}`;
/** A request body larger than this is refused with 413 (the load generator's are ~130 bytes). */
const bodyBytesMax = 64 * 1024;
/** Fastify's default; set on the bare server too, so idle keep-alive connections live as long. */
const keepAliveTimeoutMs = 72_000;
/**
 * Group commit: at most this many batches handed to the writer thread and not yet committed (the
 * gateway's `threadBatchesInFlightMax`); rows submitted meanwhile wait on the main thread.
 */
const batchesInFlightMax = 4;
/** Rows in one transaction, at most. */
const batchRowsMax = 1_024;
/** Rows waiting for a batch, at most; an order beyond it is answered 503 `journal_overloaded`. */
const pendingRowsMax = 16_384;

const stages = ['http', 'fastify', 'durable', 'durable-inline'];

const { values } = parseArgs({
  options: {
    stage: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    data: { type: 'string' },
  },
  strict: true,
});
const stage = values.stage ?? '';
if (!stages.includes(stage)) throw new Error(`--stage must be one of ${stages.join(', ')}, got ${stage}`);
const host = values.host ?? '127.0.0.1';
const port = Number(values.port);
if (!Number.isSafeInteger(port) || port <= 0)
  throw new Error(`--port must be a port number, got ${values.port}`);
const dataDir = values.data;
if (dataDir === undefined && stage.startsWith('durable')) throw new Error(`--data is needed for ${stage}`);

const stats = {
  stage,
  ordersAnswered: 0,
  transactions: 0,
  rows: 0,
  failedTransactions: 0,
  refusedOverloaded: 0,
  batchesInFlightPeak: 0,
  pendingRowsPeak: 0,
};
let sequence = 0;

/**
 * Group commit over `commitBatch(rows, done)`: every row submitted while a flush is pending joins
 * it, and the flush runs on `setImmediate`, so all rows submitted in one turn of the event loop
 * share one transaction (up to `batchRowsMax`). `canFlush()` says whether another batch may be
 * started now; `commitBatch` calls `done(ok)` once the batch's transaction committed (or failed),
 * and each row's callback is called then, never before.
 */
function groupCommitter(commitBatch, canFlush) {
  let rows = [];
  let callbacks = [];
  let flushScheduled = false;
  const schedule = () => {
    if (flushScheduled || callbacks.length === 0 || !canFlush()) return;
    flushScheduled = true;
    setImmediate(flush);
  };
  const flush = () => {
    flushScheduled = false;
    if (callbacks.length === 0 || !canFlush()) return;
    let batchRows = rows;
    let batchCallbacks = callbacks;
    if (callbacks.length <= batchRowsMax) {
      rows = [];
      callbacks = [];
    } else {
      batchRows = rows.splice(0, 2 * batchRowsMax);
      batchCallbacks = callbacks.splice(0, batchRowsMax);
    }
    commitBatch(batchRows, (ok) => {
      stats.transactions++;
      stats.rows += batchCallbacks.length;
      if (!ok) stats.failedTransactions++;
      for (const callback of batchCallbacks) callback(ok);
      schedule();
    });
    // More rows than one batch takes: the rest go in the next batch, if one may start.
    schedule();
  };
  return {
    /** Queues one row; false (and nothing queued) when `pendingRowsMax` rows already wait. */
    submit(rowPersistenceId, payload, callback) {
      if (callbacks.length >= pendingRowsMax) {
        stats.refusedOverloaded++;
        return false;
      }
      rows.push(rowPersistenceId, payload);
      callbacks.push(callback);
      if (callbacks.length > stats.pendingRowsPeak) stats.pendingRowsPeak = callbacks.length;
      schedule();
      return true;
    },
  };
}

/** Stage durable: batches cross to the writer thread in one `postMessage` each. */
function threadCommitter(file) {
  const worker = new Worker(new URL('./journal-worker.mjs', import.meta.url), { workerData: { file } });
  // A benchmark whose writer died measures nothing: stop, the bench reports the server gone.
  worker.on('error', (error) => {
    process.stderr.write(`stub: the writer thread failed: ${String(error)}\n`);
    process.exit(1);
  });
  const waiting = new Map();
  let nextBatchId = 1;
  let inFlight = 0;
  worker.on('message', (message) => {
    const done = waiting.get(message.id);
    if (done === undefined) return;
    waiting.delete(message.id);
    inFlight--;
    done(message.ok === true);
  });
  const committer = groupCommitter(
    (rows, done) => {
      const id = nextBatchId++;
      waiting.set(id, done);
      inFlight++;
      if (inFlight > stats.batchesInFlightPeak) stats.batchesInFlightPeak = inFlight;
      worker.postMessage({ id, rows });
    },
    () => inFlight < batchesInFlightMax,
  );
  return { submit: committer.submit, close: () => worker.terminate() };
}

/** Stage durable-inline: each flush commits synchronously on the main thread. */
function inlineCommitter(file) {
  const journal = openJournal(file);
  const committer = groupCommitter(
    (rows, done) => {
      let ok = true;
      try {
        journal.commit(rows);
      } catch (error) {
        process.stderr.write(`stub: commit failed: ${String(error)}\n`);
        ok = false;
      }
      stats.batchesInFlightPeak = 1;
      done(ok);
    },
    () => true,
  );
  return { submit: committer.submit, close: async () => journal.close() };
}

function sendJson(response, status, text, headers = {}) {
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  response.end(text);
}

function sendOrder(response, order) {
  stats.ordersAnswered++;
  sendJson(response, 201, JSON.stringify(order), { location: `/v1/orders/${order.id}` });
}

/** The bare `node:http` server of stages http, durable and durable-inline. */
function bareServer(journal) {
  const onOrder = (request, response, text) => {
    let body;
    try {
      body = orderRequestOf(JSON.parse(text));
    } catch {
      body = undefined;
    }
    if (body === undefined) {
      sendJson(response, 400, '{"code":"invalid_order"}');
      return;
    }
    const order = orderOf(sequence++, merchantId, body, new Date().toISOString());
    if (journal === undefined) {
      sendOrder(response, order);
      return;
    }
    const key = request.headers['idempotency-key'];
    const payload = JSON.stringify(orderEventOf(order, typeof key === 'string' ? key : ''));
    const queued = journal.submit(persistenceId, payload, (ok) => {
      if (ok) sendOrder(response, order);
      else sendJson(response, 503, '{"code":"journal_unavailable"}');
    });
    if (!queued) sendJson(response, 503, '{"code":"journal_overloaded"}');
  };
  const server = http.createServer((request, response) => {
    if (request.method === 'POST' && request.url === '/v1/orders') {
      let text = '';
      let bytes = 0;
      request.setEncoding('utf8');
      request.on('data', (chunk) => {
        bytes += Buffer.byteLength(chunk);
        if (bytes <= bodyBytesMax) text += chunk;
      });
      request.on('end', () => {
        if (bytes > bodyBytesMax) sendJson(response, 413, '{"code":"body_too_large"}');
        else onOrder(request, response, text);
      });
      return;
    }
    if (request.method === 'GET' && request.url === '/health/live') {
      sendJson(response, 200, '{"status":"live"}');
      return;
    }
    if (request.method === 'GET' && request.url === '/stats') {
      sendJson(response, 200, JSON.stringify(stats));
      return;
    }
    sendJson(response, 404, '{"code":"not_found"}');
  });
  server.keepAliveTimeout = keepAliveTimeoutMs;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () =>
      resolve(async () => {
        server.closeAllConnections();
        await new Promise((closed) => server.close(() => closed(undefined)));
      }),
    );
  });
}

const cardSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['token', 'brand', 'bin', 'last4', 'expMonth', 'expYear'],
  properties: {
    token: { type: 'string' },
    brand: { type: 'string' },
    bin: { type: 'string' },
    last4: { type: 'string' },
    expMonth: { type: 'integer' },
    expYear: { type: 'integer' },
  },
};
const nullableString = { type: ['string', 'null'] };
const orderSchema = {
  type: 'object',
  additionalProperties: false,
  required: [
    'id',
    'merchantId',
    'status',
    'amount',
    'currency',
    'card',
    'bank',
    'reference',
    'description',
    'reason',
    'createdAt',
    'updatedAt',
  ],
  properties: {
    id: { type: 'string' },
    merchantId: { type: 'string' },
    status: { type: 'string' },
    amount: { type: 'integer' },
    currency: { type: 'string' },
    card: cardSchema,
    bank: nullableString,
    reference: nullableString,
    description: nullableString,
    reason: nullableString,
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
};
const orderRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['amount', 'currency', 'card'],
  properties: {
    amount: { type: 'integer', minimum: 1 },
    currency: { type: 'string', minLength: 3, maxLength: 3 },
    card: {
      type: 'object',
      additionalProperties: false,
      required: ['number', 'expMonth', 'expYear'],
      properties: {
        number: { type: 'string', pattern: '^[0-9]{12,19}$' },
        expMonth: { type: 'integer', minimum: 1, maximum: 12 },
        expYear: { type: 'integer' },
        cvc: { type: 'string' },
      },
    },
  },
};

/** Stage fastify: Fastify with a body schema and a response schema, logger off. */
async function fastifyServer() {
  const { default: Fastify } = await import('fastify');
  const app = Fastify({ logger: false, bodyLimit: bodyBytesMax, keepAliveTimeout: keepAliveTimeoutMs });
  app.post(
    '/v1/orders',
    { schema: { body: orderRequestSchema, response: { 201: orderSchema } } },
    async (request, reply) => {
      const order = orderOf(sequence++, merchantId, request.body, new Date().toISOString());
      stats.ordersAnswered++;
      reply.code(201).header('location', `/v1/orders/${order.id}`);
      return order;
    },
  );
  app.get('/health/live', async () => ({ status: 'live' }));
  app.get('/stats', async () => stats);
  await app.listen({ host, port });
  return () => app.close();
}

const journal =
  stage === 'durable'
    ? threadCommitter(path.join(dataDir, 'journal.db'))
    : stage === 'durable-inline'
      ? inlineCommitter(path.join(dataDir, 'journal.db'))
      : undefined;
const closeServer = stage === 'fastify' ? await fastifyServer() : await bareServer(journal);

process.once('SIGTERM', () => {
  const stop = async () => {
    await closeServer();
    await journal?.close();
  };
  stop().then(
    () => process.exit(0),
    (error) => {
      process.stderr.write(`stub: stop failed: ${String(error)}\n`);
      process.exit(1);
    },
  );
});
