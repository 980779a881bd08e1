/**
 * Durable write throughput of the journal, on SQLite (default) or PostgreSQL (`--store postgres`).
 *
 * Goal: know how many events per second reach the disk (WAL, synchronous=FULL) when 1, 100 and
 * 10,000 entities each keep one append in flight, the way an entity waits for its write before
 * acting, and how close group commit gets to the ceiling: raw better-sqlite3 inserts of the same
 * rows into the same schema, in batches of the size group commit reached, one transaction each.
 *
 * On PostgreSQL the ceiling is raw `pg` multi-row inserts (`INSERT … SELECT FROM unnest(…)`, arrays
 * sent as literals) of the same rows into the same table, one statement (one transaction) per batch of the size group commit
 * reached, one batch in flight. The server is `--database-url` (or DATABASE_URL), each scenario in a
 * fresh schema dropped after; without one, an embedded PostgreSQL (src/store/postgres/embedded-postgres.ts)
 * with `fsync` and `synchronous_commit` on, in a temp folder removed after.
 *
 * Run: `npm run bench:journal -- --json results.json [--store sqlite|postgres] [--database-url URL]
 * [--duration-ms 3000] [--events N]`.
 * Each scenario stops at whichever limit comes first. Files live in a fresh temp dir, removed after.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Database } from 'better-sqlite3';
import pg from 'pg';
import { rowChecksum } from '../src/store/checksum.js';
import type { Journal, SerializedEvent } from '../src/store/journal.js';
import { integerArrayLiteral, textArrayLiteral } from '../src/store/postgres/array-literal.js';
import { startEmbeddedPostgres } from '../src/store/postgres/embedded-postgres.js';
import { openPostgresStore } from '../src/store/postgres/open-postgres-store.js';
import { postgresSettings } from '../src/store/postgres/postgres-settings.js';
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
    store: { type: 'string' },
    'database-url': { type: 'string' },
  },
  strict: true,
});

const durationMs = positiveInteger(values['duration-ms'], defaultDurationMs, '--duration-ms');
const eventsMax = positiveInteger(values.events, Number.MAX_SAFE_INTEGER, '--events');
const storeKind = values.store ?? 'sqlite';
if (storeKind !== 'sqlite' && storeKind !== 'postgres') {
  throw new Error(`--store must be sqlite or postgres, got ${storeKind}`);
}
const databaseUrl = values['database-url'] ?? process.env.DATABASE_URL;
/** The bench's pool: group commit keeps one batch in flight, reads are the checks of each batch. */
const postgresPoolSizeMax = 4;

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

interface OpenedJournal {
  readonly journal: Journal;
  close(): Promise<void>;
}

async function journalScenario(
  name: string,
  entityCount: number,
  open: () => Promise<OpenedJournal>,
): Promise<ScenarioResult> {
  const store = await open();
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
    `${name}-${entityCount === 1 ? '1-entity' : `${entityCount}-entities`}`,
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

/**
 * The PostgreSQL ceiling: the same rows inserted by raw `pg` multi-row inserts, `batchSize` rows
 * per statement (each its own transaction), one statement in flight, with global offsets counted
 * here: no queueing, no sequence checks, no offset counter row.
 */
async function rawPostgresScenario(
  url: string,
  batchSize: number,
  entityCount: number,
): Promise<ScenarioResult> {
  const schema = `bench_raw_${process.pid}`;
  const store = await openPostgresStore({ settings: postgresSettings({ url, schema }) });
  await store.close();
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  const table = `${pg.escapeIdentifier(schema)}.journal`;
  const insert = {
    name: 'bench-raw-insert',
    text:
      `INSERT INTO ${table} (global_offset, persistence_id, seq_nr, event_type, event_version, payload, ` +
      'written_at, checksum) SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], ' +
      '$5::integer[], $6::text[], $7::bigint[], $8::bigint[])',
  };
  const ids = Array.from({ length: entityCount }, (_, index) => `merchant-${index}`);
  const seqNrs = new Array<number>(entityCount).fill(0);
  const timestamp = Date.now();
  let next = 0;
  const batchValues = (size: number): unknown[] => {
    const columns = {
      offsets: [] as number[],
      ids: [] as string[],
      seqNrs: [] as number[],
      payloads: [] as string[],
      checksums: [] as number[],
    };
    for (let row = 0; row < size; row++) {
      const index = next % entityCount;
      next++;
      const persistenceId = ids[index] ?? '';
      const seqNr = (seqNrs[index] ?? 0) + 1;
      seqNrs[index] = seqNr;
      const payload = payloads[(index + seqNr) % payloadPoolSize] ?? '';
      columns.offsets.push(next);
      columns.ids.push(persistenceId);
      columns.seqNrs.push(seqNr);
      columns.payloads.push(payload);
      columns.checksums.push(rowChecksum(persistenceId, seqNr, 'OrderCreated', 1, payload));
    }
    // The same array literals the journal builds (array-literal.ts): node-postgres's own conversion
    // of JS arrays costs about as much as the insert itself, and the ceiling is the fastest raw way.
    return [
      integerArrayLiteral(columns.offsets),
      textArrayLiteral(columns.ids),
      integerArrayLiteral(columns.seqNrs),
      textArrayLiteral(new Array<string>(size).fill('OrderCreated')),
      integerArrayLiteral(new Array<number>(size).fill(1)),
      textArrayLiteral(columns.payloads),
      integerArrayLiteral(new Array<number>(size).fill(timestamp)),
      integerArrayLiteral(columns.checksums),
    ];
  };

  let written = 0;
  let transactions = 0;
  const started = performance.now();
  const deadline = started + durationMs;
  try {
    while (written < eventsMax && performance.now() < deadline) {
      const size = Math.min(batchSize, eventsMax - written);
      await client.query({ ...insert, values: batchValues(size) });
      written += size;
      transactions++;
    }
    return result('raw-postgres', written, transactions, performance.now() - started);
  } finally {
    await client.query(`DROP SCHEMA ${pg.escapeIdentifier(schema)} CASCADE`);
    await client.end();
  }
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
  const server =
    storeKind === 'postgres' && databaseUrl === undefined
      ? await startEmbeddedPostgres({ durable: true, connectionsMax: 50 })
      : undefined;
  const url = databaseUrl ?? server?.url;
  try {
    const results: ScenarioResult[] = [];
    for (const entityCount of entityCounts) {
      const scenario =
        storeKind === 'postgres' && url !== undefined
          ? await journalScenario('postgres', entityCount, () => openPostgresJournal(url, entityCount))
          : await journalScenario('sqlite', entityCount, async () =>
              openSqliteStore({ path: path.join(directory, `journal-${entityCount}.db`) }),
            );
      process.stderr.write(`${JSON.stringify(scenario)}\n`);
      results.push(scenario);
    }
    const widest = results[results.length - 1];
    if (widest === undefined) throw new Error('no journal scenario ran');
    const batchSize = Math.max(1, Math.round(widest.meanBatchSize));
    const widestEntityCount = entityCounts[entityCounts.length - 1] ?? 1;
    const raw =
      storeKind === 'postgres' && url !== undefined
        ? await rawPostgresScenario(url, batchSize, widestEntityCount)
        : rawScenario(directory, batchSize, widestEntityCount);
    process.stderr.write(`${JSON.stringify(raw)}\n`);
    results.push(raw);

    const cpus = os.cpus();
    const report = {
      store: storeKind,
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
      settings: {
        durationMs,
        eventsMax: eventsMax === Number.MAX_SAFE_INTEGER ? null : eventsMax,
        ...(storeKind === 'postgres'
          ? { postgres: databaseUrl === undefined ? 'embedded, fsync on' : 'given URL', postgresPoolSizeMax }
          : {}),
      },
    };
    const text = JSON.stringify(report, null, 2);
    process.stdout.write(`${text}\n`);
    if (values.json !== undefined) fs.writeFileSync(values.json, `${text}\n`);
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
    await server?.stop();
  }
}

/** A PostgreSQL journal in a schema of its own, dropped when closed. */
async function openPostgresJournal(url: string, entityCount: number): Promise<OpenedJournal> {
  const schema = `bench_${entityCount}_${process.pid}`;
  const store = await openPostgresStore({
    settings: postgresSettings({ url, schema, poolSizeMax: postgresPoolSizeMax }),
  });
  return {
    journal: store.journal,
    close: async () => {
      await store.pool.query(`DROP SCHEMA ${pg.escapeIdentifier(schema)} CASCADE`);
      await store.close();
    },
  };
}

await main();
