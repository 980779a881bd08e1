/**
 * End-to-end throughput and latency of one Remit node, as a merchant's system sees it.
 *
 * Starts a fresh bank simulator (`remit bank`, zero latency) and gateway (`remit start`, SQLite
 * or — `--store postgres` — PostgreSQL stores, `--log-level warn`) as child processes on 127.0.0.1
 * with their data in a new temp folder (on PostgreSQL: a fresh embedded server, fsync on, or a
 * fresh schema in `--database-url`), loads the gateway with `POST /v1/orders` (each order its own idempotency key and card,
 * waiting for the terminal status), then prints JSON: executed orders/s, latency percentiles
 * (HdrHistogram), errors by kind, journal events/s and transactions/s (from `GET /metrics`), and
 * the gateway's CPU seconds and peak RSS (from /proc). Everything it started is stopped at the
 * end, also on error and on Ctrl-C; the temp folder is removed unless --keep-data. `--store both`
 * alternates runs on SQLite and on PostgreSQL in one invocation and prints both with their ratio.
 *
 * Run: `npm run bench -- --duration 20 --connections 64 --json bench-result.json` (see bench/README.md).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { BankClient } from '../src/bank/bank-client.js';
import type { BankFaults } from '../src/bank/bank-protocol.js';
import { startRunPostgres } from '../src/chaos/database.js';
import { luhnValid } from '../src/payments/card.js';
import { approvedCard } from './gateway/cards.js';
import { numberFlag } from './gateway/flags.js';
import {
  type BenchMerchant,
  type LoadClient,
  type LoadMode,
  type LoadResult,
  loadClients,
  runLoad,
  sleepUntil,
} from './gateway/load.js';
import {
  enableStatementStats,
  type PostgresCounters,
  postgresServerCpuSeconds,
  samplePostgresCounters,
} from './gateway/postgres-stats.js';
import { clockTicksPerSecond, type ProcessSample, sampleProcess } from './gateway/process-stats.js';
import {
  fetchMetricsText,
  type HistogramSample,
  histogramBetween,
  histogramSample,
  sampleValues,
} from './gateway/prometheus.js';
import { type RemitChild, startRemitChild } from './gateway/remit-processes.js';

const usage = `Usage: npm run bench -- [flags]

  --duration S        measurement window in seconds (default 20)
  --warmup S          warm-up before it, not counted (default 5)
  --connections C     HTTP connections; closed loop: C orders in flight, one per connection
                      (default 64; open loop 256, so that orders due do not queue in the client)
  --rate N            open loop: N orders/s due at fixed intervals, latency from the intended send time
  --max-in-flight M   open loop: orders outstanding at most; an order due beyond it is dropped (default 4096)
  --merchants K       send to the first K demo merchants in turn, 1 to 3 (default 3); 1 = one hot merchant
  --wait S            Prefer: wait=S, how long the gateway may hold a request for the final status (default 10)
  --client raw|undici the load generator's HTTP client: raw (node:net, default) or undici's Pool
  --store S           the gateway's stores: sqlite (default), postgres (an embedded PostgreSQL the
                      bench starts, fsync on, or --database-url), or both: SQLite and PostgreSQL
                      runs in turn, printed side by side with their ratio
  --rounds N          with --store both: N SQLite runs and N PostgreSQL runs, alternating (default 1)
  --database-url URL  PostgreSQL to run on instead of an embedded one (a fresh schema, dropped after)
  --statement-stats   the embedded PostgreSQL loads pg_stat_statements: statements (round trips) per
                      order, the most frequent listed (off by default: its bookkeeping costs server CPU)
  --json FILE         also write the result there
  --keep-data         keep the temp folder (journal, read model, logs) and print its path
  --cpu-prof DIR      write V8 CPU profiles of the gateway and the bank into DIR (node --cpu-prof)
  --gateway-node-flags=F     extra node flags for the gateway, space-separated, e.g. --gateway-node-flags=--trace-gc
  --gateway-output FILE      also write everything the gateway prints to FILE`;

const journalMetrics = ['remit_journal_events_total', 'remit_journal_transactions_total'] as const;
const commitHistogramName = 'remit_journal_commit_duration_seconds';
/**
 * Warm-up and open-loop connections: with 2 s and 64 connections, the first second of an open-loop
 * window still held the warm-up's backlog (JIT, heaps growing; orders queued in the client behind
 * 64 busy connections): at 900 orders/s, 310 ms worst latency in second 0 and 19-51 ms in every
 * later second (see `latencyBySecond`), and that one second set the run's p99.
 */
const defaultWarmupS = 5;
const defaultClosedLoopConnections = 64;
const defaultOpenLoopConnections = 256;
const demoMerchantCount = 3;
/** A request without an answer this long after the gateway's wait is a timeout. */
const requestTimeoutBeyondWaitMs = 10_000;
/** How long the gateway and bank get to stop after SIGTERM before SIGKILL. */
const stopGraceMs = 30_000;
/** The load starts this long after the processes are ready (so timers are scheduled first). */
const startDelayMs = 100;
/**
 * With `--statement-stats` the embedded server loads `pg_stat_statements`, so the report can count
 * the node's statements (round trips) per order; its bookkeeping then adds to the server's CPU.
 */
const statementStatsServerSettings = ['shared_preload_libraries=pg_stat_statements'] as const;
/** Statements listed per run, the most frequent first. */
const statementsListedMax = 12;
/** The targets for the node on PostgreSQL against the node on SQLite in the same run. */
const postgresTargets = { ordersPerSecondRatioMin: 0.6, p99RatioMax: 2 } as const;

const benchStores = ['sqlite', 'postgres'] as const;
type BenchStore = (typeof benchStores)[number];

interface Settings {
  readonly durationS: number;
  readonly warmupS: number;
  readonly connections: number;
  readonly rate: number | undefined;
  readonly inFlightMax: number;
  readonly merchants: number;
  readonly waitS: number;
  readonly client: LoadClient;
  readonly store: BenchStore | 'both';
  readonly rounds: number;
  readonly databaseUrl: string | undefined;
  readonly statementStats: boolean;
  readonly json: string | undefined;
  readonly keepData: boolean;
  readonly cpuProfDir: string | undefined;
  /** Extra `node` flags for the gateway (V8 experiments: `--trace-gc`, `--single-threaded-gc`, …). */
  readonly gatewayNodeFlags: readonly string[];
  readonly gatewayOutput: string | undefined;
}

/** The gateway's resident memory every 5 s, against the orders executed so far. */
interface RssPoint {
  readonly atS: number;
  readonly executedTotal: number;
  readonly rssMb: number;
}

interface Sample {
  readonly at: number;
  readonly gateway: ProcessSample | undefined;
  readonly bank: ProcessSample | undefined;
  readonly loadGeneratorCpu: NodeJS.CpuUsage;
  readonly metrics: Record<(typeof journalMetrics)[number], number> | undefined;
  readonly commitHistogram: HistogramSample | undefined;
  readonly loadAverage: readonly number[];
  /** CPU seconds of the PostgreSQL server's processes, when it runs here. */
  readonly postgresCpu: number | undefined;
  readonly postgresCounters: PostgresCounters | undefined;
}

/** The PostgreSQL one run uses: where, in which schema, and its postmaster's pid when it runs here. */
interface BenchDatabase {
  readonly url: string;
  readonly schema: string;
  postmasterPid(): number | undefined;
  readonly description: string;
  close(): Promise<void>;
}

function parseSettings(args: readonly string[]): Settings | undefined {
  const { values } = parseArgs({
    args: [...args],
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      rate: { type: 'string' },
      'max-in-flight': { type: 'string' },
      merchants: { type: 'string' },
      wait: { type: 'string' },
      client: { type: 'string' },
      store: { type: 'string' },
      rounds: { type: 'string' },
      'database-url': { type: 'string' },
      'statement-stats': { type: 'boolean' },
      json: { type: 'string' },
      'keep-data': { type: 'boolean' },
      'cpu-prof': { type: 'string' },
      'gateway-node-flags': { type: 'string' },
      'gateway-output': { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help === true) return undefined;
  const merchants = numberFlag(values.merchants, 3, '--merchants', { integer: true });
  if (merchants > demoMerchantCount) throw new Error(`--merchants must be 1 to ${demoMerchantCount}`);
  const client = loadClients.find((name) => name === (values.client ?? 'raw'));
  if (client === undefined)
    throw new Error(`--client must be ${loadClients.join(' or ')}, got ${values.client}`);
  const store = [...benchStores, 'both' as const].find((name) => name === (values.store ?? 'sqlite'));
  if (store === undefined) throw new Error(`--store must be sqlite, postgres or both, got ${values.store}`);
  if (values['database-url'] !== undefined && store === 'sqlite') {
    throw new Error('--database-url needs --store postgres or both');
  }
  return {
    store,
    rounds: numberFlag(values.rounds, 1, '--rounds', { integer: true }),
    databaseUrl: values['database-url'],
    statementStats: values['statement-stats'] === true,
    durationS: numberFlag(values.duration, 20, '--duration', { integer: false }),
    warmupS: numberFlag(values.warmup, defaultWarmupS, '--warmup', { integer: false, zero: true }),
    connections: numberFlag(
      values.connections,
      values.rate === undefined ? defaultClosedLoopConnections : defaultOpenLoopConnections,
      '--connections',
      { integer: true },
    ),
    rate: values.rate === undefined ? undefined : numberFlag(values.rate, 0, '--rate', { integer: false }),
    inFlightMax: numberFlag(values['max-in-flight'], 4_096, '--max-in-flight', { integer: true }),
    merchants,
    waitS: numberFlag(values.wait, 10, '--wait', { integer: true }),
    client,
    json: values.json,
    keepData: values['keep-data'] === true,
    cpuProfDir: values['cpu-prof'] === undefined ? undefined : path.resolve(values['cpu-prof']),
    gatewayNodeFlags: (values['gateway-node-flags'] ?? '').split(' ').filter((flag) => flag !== ''),
    gatewayOutput:
      values['gateway-output'] === undefined ? undefined : path.resolve(values['gateway-output']),
  };
}

/** Node flags that make a child write its CPU profile into `dir` when it exits. */
function profileFlags(dir: string | undefined, name: string): readonly string[] {
  if (dir === undefined) return [];
  return ['--cpu-prof', '--cpu-prof-dir', path.join(dir, name)];
}

function readMerchants(dataDir: string, count: number): BenchMerchant[] {
  const parsed: unknown = JSON.parse(readFileSync(path.join(dataDir, 'credentials.json'), 'utf8'));
  const list: unknown =
    typeof parsed === 'object' && parsed !== null ? Reflect.get(parsed, 'merchants') : undefined;
  if (!Array.isArray(list)) throw new Error('credentials.json has no merchants');
  const merchants: BenchMerchant[] = [];
  for (const entry of list as unknown[]) {
    const id: unknown = typeof entry === 'object' && entry !== null ? Reflect.get(entry, 'id') : undefined;
    const apiKey: unknown =
      typeof entry === 'object' && entry !== null ? Reflect.get(entry, 'apiKey') : undefined;
    if (typeof id === 'string' && typeof apiKey === 'string') merchants.push({ id, apiKey });
  }
  merchants.sort((a, b) => a.id.localeCompare(b.id));
  if (merchants.length < count)
    throw new Error(`credentials.json has ${merchants.length} merchants, ${count} asked`);
  return merchants.slice(0, count);
}

/**
 * Journal batches committed in the window: count, mean, and the bucket bound each quantile falls
 * under (from the gateway's `remit_journal_commit_duration_seconds`: hand-over to the writer thread
 * until durable).
 */
function commitLatency(
  start: HistogramSample | undefined,
  end: HistogramSample | undefined,
): Record<string, unknown> | null {
  if (start === undefined || end === undefined) return null;
  const between = histogramBetween(start, end, [0.5, 0.9, 0.99], 1_000);
  return {
    batches: between.count,
    mean: between.mean === null ? null : round(between.mean, 2),
    atMost: between.atMost,
  };
}

async function sample(
  gateway: RemitChild,
  bank: RemitChild,
  database: BenchDatabase | undefined,
  ticks: number,
): Promise<Sample> {
  const at = performance.now();
  const postmaster = database?.postmasterPid();
  const snapshot = {
    at,
    gateway: sampleProcess(gateway.pid, ticks),
    bank: sampleProcess(bank.pid, ticks),
    loadGeneratorCpu: process.cpuUsage(),
    loadAverage: os.loadavg().map((value) => round(value, 2)),
    postgresCpu: postmaster === undefined ? undefined : postgresServerCpuSeconds(postmaster, ticks),
  };
  const counters =
    database === undefined
      ? Promise.resolve(undefined)
      : samplePostgresCounters(database.url, database.schema);
  try {
    const text = await fetchMetricsText(gateway.url);
    return {
      ...snapshot,
      metrics: sampleValues(text, journalMetrics),
      commitHistogram: histogramSample(text, commitHistogramName),
      postgresCounters: await counters,
    };
  } catch (error) {
    process.stderr.write(`bench: could not read /metrics: ${String(error)}\n`);
    return { ...snapshot, metrics: undefined, commitHistogram: undefined, postgresCounters: await counters };
  }
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** A rate per second, or null when either sample is missing. */
function perSecond(from: number | undefined, to: number | undefined, seconds: number): number | null {
  if (from === undefined || to === undefined || !Number.isFinite(from) || !Number.isFinite(to)) return null;
  return round((to - from) / seconds, 1);
}

function delta(from: number | undefined, to: number | undefined, digits: number): number | null {
  if (from === undefined || to === undefined || !Number.isFinite(from) || !Number.isFinite(to)) return null;
  return round(to - from, digits);
}

/**
 * Where one order's time and work go: CPU of each process per executed order, and on PostgreSQL
 * the server's commits, statement time, WAL fsyncs and rows written per order (by table).
 */
function perOrder(
  executed: number,
  cpu: { gateway: number | null; bank: number | null; loadGenerator: number; postgres: number | null },
  start: Sample,
  end: Sample,
  windowS: number,
): Record<string, unknown> {
  const each = (value: number | null | undefined, digits: number): number | null =>
    value === null || value === undefined || executed === 0 ? null : round(value / executed, digits);
  const ms = (seconds: number | null): number | null => (seconds === null ? null : seconds * 1_000);
  const cpuMs = {
    gateway: each(ms(cpu.gateway), 3),
    bank: each(ms(cpu.bank), 3),
    loadGenerator: each(ms(cpu.loadGenerator), 3),
    postgresServer: each(ms(cpu.postgres), 3),
  };
  const from = start.postgresCounters;
  const to = end.postgresCounters;
  if (from === undefined || to === undefined) return { cpuMs };
  const tables: Record<string, Record<string, number | null>> = {};
  for (const [name, counters] of Object.entries(to.tables)) {
    const before = from.tables[name];
    if (before === undefined) continue;
    tables[name] = {
      inserted: each(counters.inserted - before.inserted, 3),
      updated: each(counters.updated - before.updated, 3),
      deleted: each(counters.deleted - before.deleted, 3),
      indexScans: each(counters.indexScans - before.indexScans, 3),
    };
  }
  const statements = statementsInWindow(from, to, executed);
  const walFsyncs = from.wal === undefined || to.wal === undefined ? null : to.wal.fsyncs - from.wal.fsyncs;
  const commits = to.commits - from.commits;
  return {
    cpuMs,
    postgres: {
      commits: each(commits, 3),
      rollbacks: each(to.rollbacks - from.rollbacks, 3),
      statementMs: each(to.activeMs - from.activeMs, 3),
      walFsyncs: each(walFsyncs, 3),
      walBytes:
        from.walBytes === undefined || to.walBytes === undefined
          ? null
          : each(to.walBytes - from.walBytes, 0),
      statements: statements?.perOrder ?? null,
      rowsByTable: tables,
      statementsByFrequency: statements?.listed ?? null,
    },
    postgresPerSecond: {
      commits: round(commits / windowS, 1),
      walFsyncs: walFsyncs === null ? null : round(walFsyncs / windowS, 1),
      statementSecondsPerSecond: round((to.activeMs - from.activeMs) / 1_000 / windowS, 3),
    },
  };
}

/** Statements (round trips) per order in the window, and the most frequent ones with their mean time. */
function statementsInWindow(
  from: PostgresCounters,
  to: PostgresCounters,
  executed: number,
): { perOrder: number | null; listed: Record<string, unknown>[] } | undefined {
  if (from.statements === undefined || to.statements === undefined || executed === 0) return undefined;
  const rows = [...to.statements].map(([id, counters]) => {
    const before = from.statements?.get(id);
    const calls = counters.calls - (before?.calls ?? 0);
    const totalMs = counters.totalMs - (before?.totalMs ?? 0);
    return { query: counters.query, calls, totalMs };
  });
  const calls = rows.reduce((sum, row) => sum + row.calls, 0);
  const listed = rows
    .filter((row) => row.calls > 0)
    .sort((a, b) => b.calls - a.calls)
    .slice(0, statementsListedMax)
    .map((row) => ({
      perOrder: round(row.calls / executed, 3),
      meanMs: round(row.totalMs / row.calls, 3),
      query: row.query,
    }));
  return { perOrder: round(calls / executed, 2), listed };
}

function report(
  settings: Settings,
  args: readonly string[],
  mode: LoadMode,
  load: LoadResult,
  start: Sample,
  end: Sample,
  final: { gateway: ProcessSample | undefined; bank: ProcessSample | undefined },
  setup: {
    store: BenchStore;
    database: BenchDatabase | undefined;
    faults: BankFaults;
    dataDir: string;
    startedAt: string;
    gatewayExitedEarly: boolean;
    rssTimeline: readonly RssPoint[];
  },
): Record<string, unknown> {
  const windowS = (end.at - start.at) / 1_000;
  const events = delta(start.metrics?.remit_journal_events_total, end.metrics?.remit_journal_events_total, 0);
  const transactions = delta(
    start.metrics?.remit_journal_transactions_total,
    end.metrics?.remit_journal_transactions_total,
    0,
  );
  const gatewayCpu = delta(start.gateway?.cpuSeconds, end.gateway?.cpuSeconds, 2);
  const bankCpu = delta(start.bank?.cpuSeconds, end.bank?.cpuSeconds, 2);
  const loadCpu =
    (end.loadGeneratorCpu.user +
      end.loadGeneratorCpu.system -
      start.loadGeneratorCpu.user -
      start.loadGeneratorCpu.system) /
    1e6;
  const postgresCpu =
    start.postgresCpu === undefined || end.postgresCpu === undefined
      ? null
      : round(end.postgresCpu - start.postgresCpu, 2);
  const cores = (cpu: number | null): number | null => (cpu === null ? null : round(cpu / windowS, 2));
  const peakRssMb = final.gateway === undefined ? null : round(final.gateway.peakRssMb, 1);
  return {
    benchmark: 'remit gateway end to end: POST /v1/orders until the terminal status',
    mode: mode.kind === 'closed' ? 'closed loop' : 'open loop',
    hotMerchant: settings.merchants === 1,
    loadGenerator: 'same machine',
    command: `npm run bench -- ${args.join(' ')}`.trim(),
    startedAt: setup.startedAt,
    settings: {
      durationS: settings.durationS,
      warmupS: settings.warmupS,
      connections: settings.connections,
      ...(mode.kind === 'open' ? { ratePerSecond: mode.ratePerSecond, maxInFlight: mode.inFlightMax } : {}),
      merchants: settings.merchants,
      preferWaitS: settings.waitS,
      client: settings.client,
      requestTimeoutMs: settings.waitS * 1_000 + requestTimeoutBeyondWaitMs,
      ...(settings.gatewayNodeFlags.length === 0 ? {} : { gatewayNodeFlags: settings.gatewayNodeFlags }),
    },
    machine: {
      node: process.version,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      totalMemoryMb: Math.round(os.totalmem() / 2 ** 20),
      loadAverage1m5m15m: { atWindowStart: start.loadAverage, atWindowEnd: end.loadAverage },
    },
    store: setup.store,
    setup: {
      gateway:
        setup.store === 'sqlite'
          ? 'remit start as a child process, --log-level warn, SQLite journal (WAL, synchronous=FULL)'
          : `remit start as a child process, --log-level warn, PostgreSQL stores (${setup.database?.description ?? '?'})`,
      bank: 'remit bank as a separate child process',
      bankFaults: setup.faults,
      dataDir: setup.dataDir,
    },
    ordersPerSecond: round(load.executedInWindow / settings.durationS, 1),
    executedOrders: load.executedInWindow,
    ordersSent: load.sentInWindow,
    latencyMs: load.latencyMs,
    latencyMeasuredFrom:
      mode.kind === 'closed'
        ? 'the actual send, executed orders only'
        : 'the intended send time, executed orders only',
    latencyBySecond: load.latencyBySecond,
    errors: load.errors,
    errorsByKind: load.errorsByKind,
    journal: {
      eventsPerSecond: perSecond(
        start.metrics?.remit_journal_events_total,
        end.metrics?.remit_journal_events_total,
        windowS,
      ),
      transactionsPerSecond: perSecond(
        start.metrics?.remit_journal_transactions_total,
        end.metrics?.remit_journal_transactions_total,
        windowS,
      ),
      events,
      transactions,
      eventsPerTransaction:
        events === null || transactions === null || transactions === 0
          ? null
          : round(events / transactions, 2),
      commitLatencyMs: commitLatency(start.commitHistogram, end.commitHistogram),
    },
    cpuSeconds: gatewayCpu,
    peakRssMb,
    gateway: {
      cpuSeconds: gatewayCpu,
      cpuCoresUsed: cores(gatewayCpu),
      peakRssMb,
      rssMbAtEnd: end.gateway === undefined ? null : round(end.gateway.rssMb, 1),
      rssTimeline: setup.rssTimeline,
      exitedDuringRun: setup.gatewayExitedEarly,
    },
    bank: {
      cpuSeconds: bankCpu,
      cpuCoresUsed: cores(bankCpu),
      peakRssMb: final.bank === undefined ? null : round(final.bank.peakRssMb, 1),
    },
    loadGeneratorProcess: { cpuSeconds: round(loadCpu, 2), cpuCoresUsed: cores(round(loadCpu, 2)) },
    ...(setup.store === 'postgres'
      ? {
          postgresServer: {
            cpuSeconds: postgresCpu,
            cpuCoresUsed: cores(postgresCpu),
            measured:
              postgresCpu === null
                ? 'not on this machine (--database-url)'
                : 'from /proc, every process of the postmaster',
          },
        }
      : {}),
    perOrder: perOrder(
      load.executedInWindow,
      { gateway: gatewayCpu, bank: bankCpu, loadGenerator: loadCpu, postgres: postgresCpu },
      start,
      end,
      windowS,
    ),
    windowSeconds: round(windowS, 3),
    warmup: load.warmup,
    aborted: load.aborted,
  };
}

async function main(args: readonly string[]): Promise<number> {
  const settings = parseSettings(args);
  if (settings === undefined) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  for (const sequence of [0, 1, 9_999_999]) {
    if (!luhnValid(approvedCard(sequence))) throw new Error(`generated card ${sequence} fails Luhn`);
  }
  const mode: LoadMode =
    settings.rate === undefined
      ? { kind: 'closed', connections: settings.connections }
      : {
          kind: 'open',
          connections: settings.connections,
          ratePerSecond: settings.rate,
          inFlightMax: settings.inFlightMax,
        };
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (): void => {
    signals++;
    if (signals === 1) {
      process.stderr.write('bench: stopping (again to kill at once)\n');
      controller.abort();
    } else {
      process.exit(130); // The exit handler SIGKILLs the children.
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  // Alternating, so that a machine that gets busier or quieter during the invocation weighs on both.
  const stores: BenchStore[] =
    settings.store === 'both'
      ? Array.from({ length: settings.rounds }, () => ['sqlite', 'postgres'] as const).flat()
      : [settings.store];
  const runs: RunOutcome[] = [];
  for (const store of stores) {
    if (controller.signal.aborted) break;
    process.stderr.write(`bench: run ${runs.length + 1} of ${stores.length}, ${store}\n`);
    runs.push(await runOnce(settings, args, mode, store, controller.signal));
  }
  const [only] = runs;
  const result =
    settings.store === 'both' || only === undefined ? comparison(settings, args, runs) : only.result;
  const json = JSON.stringify(result, null, 2);
  process.stdout.write(`${json}\n`);
  if (settings.json !== undefined) writeFileSync(settings.json, `${json}\n`);
  if (runs.some((run) => run.exitCode !== 0)) return Math.max(...runs.map((run) => run.exitCode));
  return controller.signal.aborted ? 130 : 0;
}

interface RunOutcome {
  readonly store: BenchStore;
  readonly result: Record<string, unknown>;
  readonly ordersPerSecond: number;
  readonly p99Ms: number;
  readonly exitCode: number;
}

/** SQLite and PostgreSQL side by side: each run, the medians per store, and PostgreSQL's ratio to SQLite. */
function comparison(
  settings: Settings,
  args: readonly string[],
  runs: readonly RunOutcome[],
): Record<string, unknown> {
  const summary = (store: BenchStore): { ordersPerSecond: number; p99Ms: number } | null => {
    const mine = runs.filter((run) => run.store === store);
    if (mine.length === 0) return null;
    return {
      ordersPerSecond: median(mine.map((run) => run.ordersPerSecond)),
      p99Ms: median(mine.map((run) => run.p99Ms)),
    };
  };
  const sqlite = summary('sqlite');
  const postgres = summary('postgres');
  const ratio =
    sqlite === null || postgres === null || sqlite.ordersPerSecond === 0 || sqlite.p99Ms === 0
      ? null
      : {
          ordersPerSecond: round(postgres.ordersPerSecond / sqlite.ordersPerSecond, 3),
          p99: round(postgres.p99Ms / sqlite.p99Ms, 3),
        };
  return {
    benchmark: 'remit gateway end to end on SQLite and on PostgreSQL, alternating',
    command: `npm run bench -- ${args.join(' ')}`.trim(),
    rounds: settings.rounds,
    medians: { sqlite, postgres },
    postgresToSqlite: ratio,
    targets: {
      ordersPerSecondRatioAtLeast: postgresTargets.ordersPerSecondRatioMin,
      p99RatioAtMost: postgresTargets.p99RatioMax,
      met:
        ratio === null
          ? null
          : ratio.ordersPerSecond >= postgresTargets.ordersPerSecondRatioMin &&
            ratio.p99 <= postgresTargets.p99RatioMax,
    },
    runs: runs.map((run) => run.result),
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const upper = sorted[middle] ?? 0;
  return sorted.length % 2 === 1 ? upper : round(((sorted[middle - 1] ?? 0) + upper) / 2, 2);
}

/**
 * The PostgreSQL of one run: a fresh embedded server (fsync on, its data in its own temp folder)
 * or a fresh schema in the given database; either is gone after `close`.
 */
async function openBenchDatabase(settings: Settings, dataDir: string): Promise<BenchDatabase> {
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  if (settings.databaseUrl !== undefined) {
    const url = settings.databaseUrl;
    return {
      url,
      schema,
      postmasterPid: () => undefined,
      description: `given by --database-url, schema ${schema}`,
      close: () => dropBenchSchema(url, schema),
    };
  }
  // The server runs as the `postgres` user, which must pass through the run's folder to its own.
  chmodSync(dataDir, 0o755);
  const server = await startRunPostgres(
    path.join(dataDir, 'postgres'),
    settings.statementStats ? statementStatsServerSettings : [],
  );
  const statementStats = settings.statementStats && (await enableStatementStats(server.url));
  return {
    url: server.url,
    schema,
    postmasterPid: () => server.postmasterPid(),
    description: `embedded, started by the bench, fsync and synchronous_commit on, same machine${statementStats ? ', pg_stat_statements loaded' : ''}`,
    close: () => server.stop(),
  };
}

async function dropBenchSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${client.escapeIdentifier(schema)} CASCADE`);
  } catch (error) {
    process.stderr.write(`bench: could not drop schema ${schema}: ${String(error)}\n`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** One run from nothing: bank, gateway (and PostgreSQL), warm-up, window, report, teardown. */
async function runOnce(
  settings: Settings,
  args: readonly string[],
  mode: LoadMode,
  store: BenchStore,
  signal: AbortSignal,
): Promise<RunOutcome> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'remit-bench-'));
  const startedAt = new Date().toISOString();
  let bank: RemitChild | undefined;
  let gateway: RemitChild | undefined;
  let database: BenchDatabase | undefined;
  try {
    if (store === 'postgres') {
      database = await openBenchDatabase(settings, dataDir);
      process.stderr.write(`bench: PostgreSQL ${database.description}\n`);
    }
    const databaseArgs =
      database === undefined ? [] : ['--database-url', database.url, '--database-schema', database.schema];
    process.stderr.write(`bench: starting bank and gateway in ${dataDir}\n`);
    bank = await startRemitChild(
      'bank',
      ['bank', '--data', path.join(dataDir, 'bank'), '--log-level', 'warn'],
      '/health',
      profileFlags(settings.cpuProfDir, `${store}-bank`),
    );
    const gatewayDir = path.join(dataDir, 'gateway');
    gateway = await startRemitChild(
      'gateway',
      ['start', '--data', gatewayDir, '--bank-url', bank.url, ...databaseArgs, '--log-level', 'warn'],
      '/health/ready',
      [...profileFlags(settings.cpuProfDir, `${store}-gateway`), ...settings.gatewayNodeFlags],
      settings.gatewayOutput,
    );
    const faults = await bankFaults(bank.url);
    const merchants = readMerchants(gatewayDir, settings.merchants);
    const ticks = clockTicksPerSecond();
    const startAt = performance.now() + startDelayMs;
    const windowStart = startAt + settings.warmupS * 1_000;
    const windowEnd = windowStart + settings.durationS * 1_000;
    process.stderr.write(
      `bench: ${mode.kind} loop, ${settings.warmupS} s warm-up + ${settings.durationS} s, ` +
        `load generator (${settings.client} client) on the same machine (${os.cpus().length} cpus, load average ${os.loadavg()[0]?.toFixed(2)})\n`,
    );
    const gatewayChild = gateway;
    const bankChild = bank;
    const runDatabase = database;
    const rssTimeline: RssPoint[] = [];
    const startSample = sleepUntil(windowStart, signal).then(() =>
      sample(gatewayChild, bankChild, runDatabase, ticks),
    );
    const endSample = sleepUntil(windowEnd, signal).then(() =>
      sample(gatewayChild, bankChild, runDatabase, ticks),
    );
    const load = await runLoad({
      baseUrls: [gateway.url],
      client: settings.client,
      merchants,
      mode,
      startAt,
      warmupMs: settings.warmupS * 1_000,
      durationMs: settings.durationS * 1_000,
      waitSeconds: settings.waitS,
      requestTimeoutMs: settings.waitS * 1_000 + requestTimeoutBeyondWaitMs,
      runId: `bench-${randomUUID()}`,
      signal,
      onProgress: (progress) => {
        const rssMb = sampleProcess(gatewayChild.pid, ticks)?.rssMb;
        if (rssMb !== undefined) {
          rssTimeline.push({
            atS: progress.elapsedS,
            executedTotal: progress.executedTotal,
            rssMb: round(rssMb, 1),
          });
        }
        process.stderr.write(
          `bench: t=${progress.elapsedS}s executed/s=${progress.executedPerSecond} ` +
            `executed=${progress.executedTotal} in flight=${progress.inFlight} errors=${progress.errors} ` +
            `gateway rss=${rssMb === undefined ? '?' : Math.round(rssMb)} MB\n`,
        );
      },
    });
    const [start, end] = await Promise.all([startSample, endSample]);
    const gatewayExitedEarly = !gateway.running();
    const final = { gateway: sampleProcess(gateway.pid, ticks), bank: sampleProcess(bank.pid, ticks) };
    const result = report(settings, args, mode, load, start, end, final, {
      store,
      database,
      faults,
      dataDir: settings.keepData ? dataDir : `${dataDir} (removed)`,
      startedAt,
      gatewayExitedEarly,
      rssTimeline,
    });
    if (gatewayExitedEarly) {
      process.stderr.write(`bench: the gateway exited during the run:\n${gateway.output()}\n`);
    }
    return {
      store,
      result,
      ordersPerSecond: round(load.executedInWindow / settings.durationS, 1),
      p99Ms: load.latencyMs.p99,
      exitCode: gatewayExitedEarly ? 1 : load.aborted ? 130 : 0,
    };
  } finally {
    await gateway?.stop(stopGraceMs);
    await bank?.stop(stopGraceMs);
    await database?.close();
    if (settings.keepData) process.stderr.write(`bench: data kept in ${dataDir}\n`);
    else rmSync(dataDir, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);

/** The faults the bank runs with, for the report, read through the bank's own client. */
async function bankFaults(bankUrl: string): Promise<BankFaults> {
  const client = new BankClient({ baseUrl: bankUrl, requestTimeoutMs: 10_000, connections: 1 });
  try {
    return await client.faults();
  } finally {
    await client.close();
  }
}
