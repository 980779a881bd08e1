/**
 * One server stage of the ceiling benchmark: a fresh stub server (child process, its own temp
 * folder), loaded in a closed loop by the gateway benchmark's own load generator (`runLoad`, raw
 * client), with the server's CPU read from /proc and this process's (the load generator's) from
 * `process.cpuUsage()` at the start and the end of the measurement window, as `gateway.bench.ts`
 * samples them. The stub is stopped and the folder removed at the end, also on error.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { type BenchMerchant, type LoadResult, runLoad, sleepUntil } from '../gateway/load.js';
import {
  clockTicksPerSecond,
  type ProcessSample,
  sampleProcess,
  threadCpuSeconds,
} from '../gateway/process-stats.js';
import { type ServerStage, type StubChild, startStub } from './stub-process.js';

export interface ServerStageSettings {
  readonly durationS: number;
  readonly warmupS: number;
  readonly connections: number;
}

/** The stub ignores authorization; the load generator still sends a key. */
const merchants: readonly BenchMerchant[] = [{ id: 'merchant-a', apiKey: 'ceiling-bench' }];
/** `Prefer: wait=N` as the gateway benchmark sends it (the stub ignores it). */
const waitSeconds = 10;
/** A request without an answer this long after its write is a timeout (as gateway.bench.ts). */
const requestTimeoutMs = 20_000;
/** How long a stub gets to stop after SIGTERM before SIGKILL. */
const stopGraceMs = 10_000;
/** The load starts this long after the stub is ready (so the window's timers are set first). */
const startDelayMs = 100;
const statsRequestTimeoutMs = 5_000;

export const stageDescriptions: Readonly<Record<ServerStage, string>> = {
  http: 'bare node:http: read the body, JSON.parse it, answer 201 with JSON.stringify of the order',
  fastify: 'Fastify, body schema (validation) and 201 response schema (serialization), logger off',
  durable:
    'http + one ~360-byte event row per order in a SQLite journal (WAL, synchronous=FULL) by a worker ' +
    'thread, group commit (one postMessage and one transaction per event-loop turn, at most 4 batches ' +
    'in flight), answered after the commit',
  'durable-inline':
    'http + the same group commit, committed on the main thread (each setImmediate flush blocks for its fsync)',
};

/** The stub's `GET /stats` counters the benchmark reads. */
interface JournalStats {
  readonly transactions: number;
  readonly rows: number;
  readonly failedTransactions: number;
  readonly refusedOverloaded: number;
  readonly batchesInFlightPeak: number;
  readonly pendingRowsPeak: number;
}

export interface JournalFigures {
  readonly transactions: number;
  readonly rows: number;
  readonly transactionsPerSecond: number;
  readonly rowsPerTransaction: number | null;
  readonly failedTransactions: number;
  readonly refusedOverloaded: number;
  readonly batchesInFlightPeak: number;
  readonly pendingRowsPeak: number;
}

export interface ServerStageResult {
  readonly stage: ServerStage;
  readonly description: string;
  /** Requests answered 201 executed inside the window, per second of the window. */
  readonly requestsPerSecond: number;
  readonly executedRequests: number;
  readonly requestsSent: number;
  readonly latencyMs: LoadResult['latencyMs'];
  readonly errors: number;
  readonly errorsByKind: LoadResult['errorsByKind'];
  readonly server: {
    readonly cpuSeconds: number | null;
    readonly cpuMicrosPerRequest: number | null;
    readonly cpuCoresUsed: number | null;
    readonly mainThreadCpuSeconds: number | null;
    readonly mainThreadCpuMicrosPerRequest: number | null;
    readonly mainThreadCoresUsed: number | null;
    readonly peakRssMb: number | null;
    readonly exitedDuringRun: boolean;
  };
  readonly loadGenerator: {
    readonly cpuSeconds: number;
    readonly cpuMicrosPerRequest: number | null;
    readonly cpuCoresUsed: number | null;
  };
  /** Durable stages only: the stub's journal counters over the window. */
  readonly journal?: JournalFigures;
  readonly windowSeconds: number;
  readonly loadAverage1m: { readonly atWindowStart: number | null; readonly atWindowEnd: number | null };
  readonly warmup: LoadResult['warmup'];
  readonly aborted: boolean;
}

interface Sample {
  readonly at: number;
  readonly server: ProcessSample | undefined;
  readonly serverMainThreadCpuSeconds: number | undefined;
  readonly loadGeneratorCpu: NodeJS.CpuUsage;
  readonly loadAverage: readonly number[];
  readonly stats: JournalStats | undefined;
}

export function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function numberField(value: unknown, name: string): number {
  const field: unknown = typeof value === 'object' && value !== null ? Reflect.get(value, name) : undefined;
  if (typeof field !== 'number' || !Number.isFinite(field)) throw new Error(`/stats has no number ${name}`);
  return field;
}

async function fetchStats(url: string): Promise<JournalStats | undefined> {
  try {
    const response = await fetch(`${url}/stats`, { signal: AbortSignal.timeout(statsRequestTimeoutMs) });
    const body: unknown = await response.json();
    return {
      transactions: numberField(body, 'transactions'),
      rows: numberField(body, 'rows'),
      failedTransactions: numberField(body, 'failedTransactions'),
      refusedOverloaded: numberField(body, 'refusedOverloaded'),
      batchesInFlightPeak: numberField(body, 'batchesInFlightPeak'),
      pendingRowsPeak: numberField(body, 'pendingRowsPeak'),
    };
  } catch (error) {
    process.stderr.write(`ceiling: could not read ${url}/stats: ${String(error)}\n`);
    return undefined;
  }
}

async function sample(stub: StubChild, ticks: number): Promise<Sample> {
  // CPU first, then the (slower) stats request, so the window's CPU is read at its edge.
  const snapshot = {
    at: performance.now(),
    server: sampleProcess(stub.pid, ticks),
    serverMainThreadCpuSeconds: threadCpuSeconds(stub.pid, stub.pid, ticks),
    loadGeneratorCpu: process.cpuUsage(),
    loadAverage: os.loadavg().map((value) => round(value, 2)),
  };
  return { ...snapshot, stats: await fetchStats(stub.url) };
}

/** CPU per executed request in µs, or null without a figure or without requests. */
function microsPerRequest(cpuSeconds: number | null, requests: number): number | null {
  return cpuSeconds === null || requests === 0 ? null : round((cpuSeconds * 1e6) / requests, 1);
}

function difference(from: number | undefined, to: number | undefined, digits: number): number | null {
  if (from === undefined || to === undefined) return null;
  return round(to - from, digits);
}

function report(
  stage: ServerStage,
  settings: ServerStageSettings,
  load: LoadResult,
  start: Sample,
  end: Sample,
  final: ProcessSample | undefined,
  serverExitedDuringRun: boolean,
): ServerStageResult {
  const windowS = (end.at - start.at) / 1_000;
  const executed = load.executedInWindow;
  const serverCpu = difference(start.server?.cpuSeconds, end.server?.cpuSeconds, 2);
  const mainCpu = difference(start.serverMainThreadCpuSeconds, end.serverMainThreadCpuSeconds, 2);
  const loadCpu = round(
    (end.loadGeneratorCpu.user +
      end.loadGeneratorCpu.system -
      start.loadGeneratorCpu.user -
      start.loadGeneratorCpu.system) /
      1e6,
    2,
  );
  const cores = (cpu: number | null): number | null => (cpu === null ? null : round(cpu / windowS, 2));
  const journal: JournalFigures | undefined =
    start.stats === undefined || end.stats === undefined || !stage.startsWith('durable')
      ? undefined
      : {
          transactions: end.stats.transactions - start.stats.transactions,
          rows: end.stats.rows - start.stats.rows,
          transactionsPerSecond: round((end.stats.transactions - start.stats.transactions) / windowS, 1),
          rowsPerTransaction:
            end.stats.transactions === start.stats.transactions
              ? null
              : round(
                  (end.stats.rows - start.stats.rows) / (end.stats.transactions - start.stats.transactions),
                  2,
                ),
          failedTransactions: end.stats.failedTransactions - start.stats.failedTransactions,
          refusedOverloaded: end.stats.refusedOverloaded - start.stats.refusedOverloaded,
          batchesInFlightPeak: end.stats.batchesInFlightPeak,
          pendingRowsPeak: end.stats.pendingRowsPeak,
        };
  return {
    stage,
    description: stageDescriptions[stage],
    requestsPerSecond: round(executed / settings.durationS, 1),
    executedRequests: executed,
    requestsSent: load.sentInWindow,
    latencyMs: load.latencyMs,
    errors: load.errors,
    errorsByKind: load.errorsByKind,
    server: {
      cpuSeconds: serverCpu,
      cpuMicrosPerRequest: microsPerRequest(serverCpu, executed),
      cpuCoresUsed: cores(serverCpu),
      mainThreadCpuSeconds: mainCpu,
      mainThreadCpuMicrosPerRequest: microsPerRequest(mainCpu, executed),
      mainThreadCoresUsed: cores(mainCpu),
      peakRssMb: final === undefined ? null : round(final.peakRssMb, 1),
      exitedDuringRun: serverExitedDuringRun,
    },
    loadGenerator: {
      cpuSeconds: loadCpu,
      cpuMicrosPerRequest: microsPerRequest(loadCpu, executed),
      cpuCoresUsed: cores(loadCpu),
    },
    ...(journal === undefined ? {} : { journal }),
    windowSeconds: round(windowS, 3),
    loadAverage1m: { atWindowStart: start.loadAverage[0] ?? null, atWindowEnd: end.loadAverage[0] ?? null },
    warmup: load.warmup,
    aborted: load.aborted,
  };
}

/** Runs one stage end to end and returns its figures. */
export async function runServerStage(
  stage: ServerStage,
  settings: ServerStageSettings,
  signal: AbortSignal,
): Promise<ServerStageResult> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `remit-ceiling-${stage}-`));
  let stub: StubChild | undefined;
  try {
    stub = await startStub(stage, dataDir);
    const ticks = clockTicksPerSecond();
    const startAt = performance.now() + startDelayMs;
    const windowStart = startAt + settings.warmupS * 1_000;
    const windowEnd = windowStart + settings.durationS * 1_000;
    process.stderr.write(
      `ceiling: stage ${stage}, ${settings.warmupS} s warm-up + ${settings.durationS} s, ` +
        `${settings.connections} connections, load average ${os.loadavg()[0]?.toFixed(2)}\n`,
    );
    const child = stub;
    const startSample = sleepUntil(windowStart, signal).then(() => sample(child, ticks));
    const endSample = sleepUntil(windowEnd, signal).then(() => sample(child, ticks));
    const load = await runLoad({
      baseUrls: [stub.url],
      client: 'raw',
      merchants,
      mode: { kind: 'closed', connections: settings.connections },
      startAt,
      warmupMs: settings.warmupS * 1_000,
      durationMs: settings.durationS * 1_000,
      waitSeconds,
      requestTimeoutMs,
      runId: `ceiling-${randomUUID()}`,
      signal,
      onProgress: (progress) => {
        process.stderr.write(
          `ceiling: ${stage} t=${progress.elapsedS}s requests/s=${progress.executedPerSecond} ` +
            `in flight=${progress.inFlight} errors=${progress.errors}\n`,
        );
      },
    });
    const [start, end] = await Promise.all([startSample, endSample]);
    const exitedDuringRun = !stub.running();
    const final = sampleProcess(stub.pid, ticks);
    // On Ctrl-C the stub gets the terminal's SIGINT too and ends: that is no failure of the stage.
    if (exitedDuringRun && !signal.aborted)
      process.stderr.write(`ceiling: the ${stage} stub exited during the run:\n${stub.output()}\n`);
    return report(stage, settings, load, start, end, final, exitedDuringRun);
  } finally {
    await stub?.stop(stopGraceMs);
    rmSync(dataDir, { recursive: true, force: true });
  }
}
