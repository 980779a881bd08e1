/**
 * The floor: the least CPU one order of the gateway's real flow can cost on this machine, added up
 * from figures this run measured, each term named with its count per order and where its figure
 * comes from.
 *
 * What one order needs (docs/architecture.md, "Payments" and "Store"): the client's HTTP request
 * answered once its order is final; 6 journal events (Merchant: OrderCreated + OrderValidated,
 * OrderExecuted; Executor: ExecutionRequested, ExecutionSettled, ResultConfirmed) in ~3 sequential
 * group commits, plus 2 processed-message records; 1 card tokenized and sealed, and stored in the
 * vault's own SQLite file; 1 payment to the bank in a batched HTTP request, and 1 durable ledger
 * row at the bank; the projection decodes the 6 events and writes ~1–2 read-model row changes.
 *
 * It is a floor, so every term takes the cheapest measured figure that does the work and anything
 * not surely needed, or not measured here, is left out and listed in `leftOut`.
 */
import type { MicroResult } from './micro.js';
import { round, type ServerStageResult } from './server-stage.js';
import type { ServerStage } from './stub-process.js';

export interface FloorTerm {
  readonly name: string;
  readonly countPerOrder: number;
  readonly cpuMicrosEach: number;
  readonly cpuMicros: number;
  readonly measuredBy: string;
}

export type Floor =
  | {
      readonly cpuMicrosPerOrder: number;
      /** 2,000,000 µs of CPU per second on two cores, divided by the floor. */
      readonly ordersPerSecondOnTwoCores: number;
      /** The same with the load generator's own CPU per request (same machine) added. */
      readonly loadGeneratorCpuMicrosPerRequest: number | null;
      readonly ordersPerSecondOnTwoCoresWithLoadGenerator: number | null;
      readonly terms: readonly FloorTerm[];
      readonly leftOut: readonly string[];
      readonly assumptions: readonly string[];
    }
  | { readonly missing: readonly string[] };

/** µs of CPU two cores give in one second. */
const twoCoreMicrosPerSecond = 2_000_000;
/** The gateway's default `authorizationBatchMax`: at most this many payments share a bank request. */
const bankBatchPaymentsMax = 256;
const journalEventsPerOrder = 6;
const processedRecordsPerOrder = 2;

function term(name: string, countPerOrder: number, cpuMicrosEach: number, measuredBy: string): FloorTerm {
  return {
    name,
    countPerOrder,
    cpuMicrosEach: round(cpuMicrosEach, 2),
    cpuMicros: round(countPerOrder * cpuMicrosEach, 2),
    measuredBy,
  };
}

export function floorOf(
  stages: Partial<Record<ServerStage, ServerStageResult>>,
  micro: MicroResult | undefined,
): Floor {
  const durableStages = (['durable', 'durable-inline'] as const).flatMap((name) => {
    const stage = stages[name];
    const micros = stage?.server.cpuMicrosPerRequest;
    return stage === undefined || micros === null || micros === undefined ? [] : [{ name, stage, micros }];
  });
  const cheapestDurable = durableStages.sort((a, b) => a.micros - b.micros)[0];
  const missing = [
    ...(micro === undefined ? ['stage micro'] : []),
    ...(cheapestDurable === undefined ? ['stage durable or durable-inline (with a CPU figure)'] : []),
  ];
  if (micro === undefined || cheapestDurable === undefined) return { missing };

  const eventRow = micro.sqlite.eventRowFull.cpuMicrosPerRow;
  const smallRow = micro.sqlite.smallRowFull.cpuMicrosPerRow;
  const cheapestDurableRow = Math.min(eventRow, smallRow);
  const httpStage = stages.http?.server.cpuMicrosPerRequest;
  const terms: FloorTerm[] = [
    term(
      'client HTTP exchange (read, JSON.parse the request, JSON.stringify the answer) + the first journal ' +
        'event (JSON.stringify, one row in a group commit, answered after the commit)',
      1,
      cheapestDurable.micros,
      `stage ${cheapestDurable.name}: server CPU per request (the cheaper of durable and durable-inline)`,
    ),
    term(
      'the other journal events: one row each (WAL, synchronous=FULL)',
      journalEventsPerOrder - 1,
      eventRow,
      'micro sqlite.eventRowFull.cpuMicrosPerRow (64 rows per transaction)',
    ),
    term(
      'the other journal events: JSON.stringify each',
      journalEventsPerOrder - 1,
      micro.json.stringify.cpuMicrosPerOperation,
      'micro json.stringify',
    ),
    term(
      'processed-message records (idempotent receivers): one small row each, same journal file',
      processedRecordsPerOrder,
      smallRow,
      'micro sqlite.smallRowFull.cpuMicrosPerRow (64 rows per transaction)',
    ),
    term(
      'card vault: HMAC-SHA256 token + AES-256-GCM seal',
      1,
      micro.cardTokenAndSeal.cpuMicrosPerOperation,
      'micro cardTokenAndSeal',
    ),
    term(
      'card vault: the sealed card, one small row in vault.db (synchronous=FULL)',
      1,
      smallRow,
      'micro sqlite.smallRowFull.cpuMicrosPerRow',
    ),
    term(
      'order id: sha256 of merchant id and idempotency key',
      1,
      micro.orderIdSha256.cpuMicrosPerOperation,
      'micro orderIdSha256',
    ),
    term(
      'bank payment: encoded by the gateway, decoded by the bank (one JSON.stringify + JSON.parse of an event-sized object)',
      1,
      micro.json.stringifyAndParse.cpuMicrosPerOperation,
      'micro json.stringifyAndParse',
    ),
    term(
      'bank ledger: one durable row (synchronous=FULL)',
      1,
      cheapestDurableRow,
      'micro sqlite, the cheaper of eventRowFull and smallRowFull per row',
    ),
    term(
      'projection: JSON.parse of every journal event',
      journalEventsPerOrder,
      micro.json.parse.cpuMicrosPerOperation,
      'micro json.parse',
    ),
    term(
      'read model: one row change per order (synchronous=NORMAL)',
      1,
      micro.sqlite.smallRowNormal.cpuMicrosPerRow,
      'micro sqlite.smallRowNormal.cpuMicrosPerRow',
    ),
  ];
  if (httpStage !== null && httpStage !== undefined) {
    terms.push(
      term(
        `bank: its server's share of one batched HTTP request (at most ${bankBatchPaymentsMax} payments each)`,
        1 / bankBatchPaymentsMax,
        httpStage,
        'stage http: server CPU per request',
      ),
    );
  }
  const fastify = stages.fastify?.server.cpuMicrosPerRequest;
  const fastifyOverHttp =
    fastify === null || fastify === undefined || httpStage === null || httpStage === undefined
      ? 'not measured in this run'
      : `${round(fastify - httpStage, 1)} µs per request in this run (stage fastify − stage http)`;
  const cpuMicrosPerOrder = round(
    terms.reduce((sum, each) => sum + each.cpuMicros, 0),
    1,
  );
  const loadGenerator = cheapestDurable.stage.loadGenerator.cpuMicrosPerRequest;
  return {
    cpuMicrosPerOrder,
    ordersPerSecondOnTwoCores: Math.round(twoCoreMicrosPerSecond / cpuMicrosPerOrder),
    loadGeneratorCpuMicrosPerRequest: loadGenerator,
    ordersPerSecondOnTwoCoresWithLoadGenerator:
      loadGenerator === null
        ? null
        : Math.round(twoCoreMicrosPerSecond / (cpuMicrosPerOrder + loadGenerator)),
    terms,
    leftOut: [
      `Fastify's cost over bare node:http (the gateway answers through Fastify): ${fastifyOverHttp}`,
      'the hand-overs of the 2nd and 3rd sequential journal commits to the writer thread and back (one postMessage each way per batch)',
      "the gateway as HTTP client of the bank (undici), the JSON of the bank's answer per payment, and the larger share of a batch smaller than its maximum",
      httpStage === null || httpStage === undefined
        ? 'the bank server share of a batched HTTP request (stage http not run)'
        : 'the bank server work per payment beyond its ledger row (deduplication by reference, a savepoint each)',
      'the request fingerprint (one more HMAC) and the idempotency-key lookups',
      'the entity runtime: commands and replies, evolve, outbox and redelivery bookkeeping, persistent maps, the validation rules, the waiting-request table',
      'the CRC-32 checksum of every journal row, written and verified',
      "the projection's reads of the journal and its own transaction per batch; a second read-model row change for some orders",
      'journal commits for smaller batches than 64 rows (per-row figures are at 64 rows per transaction)',
      'metrics, logging, timers',
    ],
    assumptions: [
      'ordersPerSecondOnTwoCores assumes both cores do nothing else and the work spreads perfectly over them; one Node process runs its HTTP on one thread, so a single process gets at most one core for that part',
      'CPU per request of a server stage is the whole process (all threads) over the window divided by the requests answered in it',
    ],
  };
}
