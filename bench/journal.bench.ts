/**
 * Durable write throughput of the SQLite journal.
 *
 * Goal: know how many events per second reach the disk (WAL, synchronous=FULL) when 1, 100 and
 * 10,000 entities each keep one append in flight, the way an entity waits for its write before
 * acting, and how close group commit gets to the ceiling: raw better-sqlite3 inserts of the same
 * rows into the same schema, in batches of the size group commit reached, one transaction each.
 *
 * Run: `npm run bench:journal -- --json results.json [--duration-ms 3000] [--events N]`.
 * Each scenario stops at whichever limit comes first. Files live in a fresh temp dir, removed after.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Database } from 'better-sqlite3';
import { rowChecksum } from '../src/store/checksum.js';
import type { SerializedEvent } from '../src/store/journal.js';
import { openDatabase, openSqliteStore } from '../src/store/sqlite/open-database.js';

interface ScenarioResult {
  readonly name: string;
  readonly eventsPerSecond: number;
  readonly events: number;
  readonly transactions: number;
  readonly durationMs: number;
  readonly meanBatchSize: number;
}

const defaultDurationMs = 3_000;
/** Distinct payloads cycled through, so building events costs nothing measurable. */
const payloadPoolSize = 1_024;
const entityCounts = [1, 100, 10_000] as const;

const { values } = parseArgs({
  options: {
    json: { type: 'string' },
    'duration-ms': { type: 'string' },
    events: { type: 'string' },
  },
  strict: true,
});

const durationMs = positiveInteger(values['duration-ms'], defaultDurationMs, '--duration-ms');
const eventsMax = positiveInteger(values.events, Number.MAX_SAFE_INTEGER, '--events');

function positiveInteger(text: string | undefined, fallback: number, flag: string): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new Error(`${flag} must be a positive integer, got ${text}`);
  return value;
}

/** ~200-byte JSON payloads shaped like an order event. */
function payloadPool(): string[] {
  return Array.from({ length: payloadPoolSize }, (_, index) =>
    JSON.stringify({
      orderId: `ord-${String(index).padStart(8, '0')}-7f3a9c`,
      merchantId: `merchant-${index % 97}`,
      amount: { minor: String(1_000 + index * 37), currency: 'EUR' },
      card: {
        token: `tok_${(index * 2_654_435_761).toString(36)}`,
        brand: 'visa',
        bin: '411111',
        last4: '1111',
      },
      idempotencyKey: `key-${index}-c0ffee`,
      acquirer: 'bank-a',
    }),
  );
}

const payloads = payloadPool();
const events: SerializedEvent[] = payloads.map((payload) => ({ type: 'OrderCreated', version: 1, payload }));

async function journalScenario(directory: string, entityCount: number): Promise<ScenarioResult> {
  const store = openSqliteStore({ path: path.join(directory, `journal-${entityCount}.db`) });
  const journal = store.journal;
  const timestamp = Date.now();
  let stopped = false;
  let appended = 0;
  const started = performance.now();
  const deadline = started + durationMs;

  // One in-flight append per entity: it awaits durability before its next write, as an entity does.
  const entity = async (index: number): Promise<void> => {
    const persistenceId = `merchant-${index}`;
    let seqNr = 1;
    while (!stopped) {
      const event = events[(index + seqNr) % payloadPoolSize];
      if (event === undefined) throw new Error('payload pool is empty');
      await journal.append({ persistenceId, fromSeqNr: seqNr, events: [event], timestamp });
      seqNr++;
      appended++;
      if (appended >= eventsMax || performance.now() >= deadline) stopped = true;
    }
  };

  await Promise.all(Array.from({ length: entityCount }, (_, index) => entity(index)));
  const elapsedMs = performance.now() - started;
  const stats = journal.stats();
  await store.close();
  return result(
    `sqlite-${entityCount === 1 ? '1-entity' : `${entityCount}-entities`}`,
    stats.events,
    stats.transactions,
    elapsedMs,
  );
}

/**
 * The ceiling: the same rows (ids, seqNrs, payloads, checksums) inserted with a cached prepared
 * statement, `batchSize` rows per transaction, no queueing, no promises and no sequence checks.
 */
function rawScenario(directory: string, batchSize: number, entityCount: number): ScenarioResult {
  const database: Database = openDatabase(path.join(directory, 'raw.db'));
  const insert = database.prepare(
    'INSERT INTO journal (persistence_id, seq_nr, event_type, event_version, payload, written_at, checksum) ' +
      'VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const ids = Array.from({ length: entityCount }, (_, index) => `merchant-${index}`);
  const seqNrs = new Array<number>(entityCount).fill(0);
  const timestamp = Date.now();
  let next = 0;
  const insertBatch = database.transaction((size: number) => {
    for (let row = 0; row < size; row++) {
      const index = next % entityCount;
      next++;
      const persistenceId = ids[index] ?? '';
      const seqNr = (seqNrs[index] ?? 0) + 1;
      seqNrs[index] = seqNr;
      const payload = payloads[(index + seqNr) % payloadPoolSize] ?? '';
      insert.run(
        persistenceId,
        seqNr,
        'OrderCreated',
        1,
        payload,
        timestamp,
        rowChecksum(persistenceId, seqNr, 'OrderCreated', 1, payload),
      );
    }
  });

  let written = 0;
  let transactions = 0;
  const started = performance.now();
  const deadline = started + durationMs;
  while (written < eventsMax && performance.now() < deadline) {
    const size = Math.min(batchSize, eventsMax - written);
    insertBatch.immediate(size);
    written += size;
    transactions++;
  }
  const elapsedMs = performance.now() - started;
  database.close();
  return result('raw-sqlite', written, transactions, elapsedMs);
}

function result(name: string, eventCount: number, transactions: number, elapsedMs: number): ScenarioResult {
  return {
    name,
    eventsPerSecond: Math.round((eventCount / elapsedMs) * 1_000),
    events: eventCount,
    transactions,
    durationMs: Math.round(elapsedMs),
    meanBatchSize: transactions === 0 ? 0 : Math.round((eventCount / transactions) * 10) / 10,
  };
}

async function main(): Promise<void> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'remit-journal-bench-'));
  try {
    const results: ScenarioResult[] = [];
    for (const entityCount of entityCounts) {
      const scenario = await journalScenario(directory, entityCount);
      process.stderr.write(`${JSON.stringify(scenario)}\n`);
      results.push(scenario);
    }
    const widest = results[results.length - 1];
    if (widest === undefined) throw new Error('no journal scenario ran');
    const raw = rawScenario(
      directory,
      Math.max(1, Math.round(widest.meanBatchSize)),
      entityCounts[entityCounts.length - 1] ?? 1,
    );
    process.stderr.write(`${JSON.stringify(raw)}\n`);
    results.push(raw);

    const cpus = os.cpus();
    const report = {
      results,
      ratioToRaw: Math.round((widest.eventsPerSecond / raw.eventsPerSecond) * 1_000) / 1_000,
      node: process.version,
      machine: {
        cpus: cpus.length,
        cpuModel: cpus[0]?.model ?? 'unknown',
        totalMemoryBytes: os.totalmem(),
        platform: `${os.platform()} ${os.release()}`,
        directory: os.tmpdir(),
      },
      settings: { durationMs, eventsMax: eventsMax === Number.MAX_SAFE_INTEGER ? null : eventsMax },
    };
    const text = JSON.stringify(report, null, 2);
    process.stdout.write(`${text}\n`);
    if (values.json !== undefined) fs.writeFileSync(values.json, `${text}\n`);
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
}

await main();
