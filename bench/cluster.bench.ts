/**
 * Throughput of a cluster against one node, on one PostgreSQL, in the same run.
 *
 * Starts an embedded PostgreSQL (fsync on) once; then, for each configuration in turn — (a) one
 * `remit node` with every bank's role, (b) three nodes (every bank on two) with the load spread
 * over all three — a fresh schema, a fresh bank simulator and fresh nodes (compiled, as `npm
 * start` runs them), waits until the shards have settled, and runs the same load as `npm run
 * bench` (`gateway/load.ts`: each order its own key and card, `Prefer: wait`, warm-up, window).
 * For each: executed orders/s, latency, CPU per order of every node, the bank and the PostgreSQL
 * server (from /proc, `gateway/process-stats.ts` and `gateway/postgres-stats.ts`), and the
 * server's commits (`pg_stat_database.xact_commit`) over the window. Last, the server's raw
 * ceiling: single-row INSERT commits in a tight loop for a few seconds, on one connection and on
 * several — what bounds a cluster of any size on this PostgreSQL. Prints JSON.
 *
 * Run: `npm run bench:cluster -- --duration 20 --json cluster.json` (see bench/README.md).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startRunPostgres } from '../src/chaos/database.js';
import type { RunningPostgres } from '../src/store/postgres/embedded-postgres.js';
import { gitCommit, progressOf, runBenchmark } from './cluster/bench-run.js';
import {
  allBankRoles,
  fetchClusterView,
  readClusterCredentials,
  settledOn,
  threeNodeRoles,
} from './cluster/cluster-view.js';
import { numberFlag } from './gateway/flags.js';
import { type LoadMode, type LoadResult, runLoad, sleepUntil } from './gateway/load.js';
import {
  type PostgresCounters,
  postgresServerCpuSeconds,
  samplePostgresCounters,
} from './gateway/postgres-stats.js';
import { clockTicksPerSecond, type ProcessSample, sampleProcess } from './gateway/process-stats.js';
import { freePort, type RemitChild, startRemitChild } from './gateway/remit-processes.js';

const usage = `Usage: npm run bench:cluster -- [flags]

  --duration S          measurement window of each configuration, seconds (default 20)
  --warmup S            warm-up before it, not counted (default 5)
  --connections C       HTTP connections, split over the configuration's nodes (default 64; open loop 256)
  --rate N              open loop at N orders/s; without it each run is a closed loop
  --max-in-flight M     open loop: orders outstanding at most (default 4096)
  --wait S              Prefer: wait=S (default 10)
  --rounds N            N runs of each configuration, alternating one node and three (default 1)
  --ceiling-seconds S   each raw INSERT-commit ceiling loop runs this long (default 3)
  --json FILE           also write the result there
  --keep-data           keep the temp folder and print its path`;

/** The configurations compared: one node with every role, and three (every bank on two). */
const configurations = {
  'one node': new Map([['node-1', allBankRoles]]),
  'three nodes': threeNodeRoles,
} as const satisfies Record<string, ReadonlyMap<string, readonly string[]>>;
type ConfigurationName = keyof typeof configurations;

/** Each node's PostgreSQL pool, the same in both configurations (three nodes: 30 of the server's 60). */
const nodePoolSize = 10;
/** The concurrencies of the raw commit ceiling: one session, and several whose commits the server can group. */
const ceilingConnections = [1, 8, 32] as const;
const requestTimeoutBeyondWaitMs = 10_000;
const stopGraceMs = 30_000;
const startDelayMs = 100;
const settleTimeoutMs = 180_000;
const settlePollMs = 250;
const adminTimeoutMs = 5_000;
/** The settled cluster's commits are counted this long without load (its fixed rate). */
const idleMs = 5_000;

interface Settings {
  readonly durationS: number;
  readonly warmupS: number;
  readonly connections: number;
  readonly rate: number | undefined;
  readonly inFlightMax: number;
  readonly waitS: number;
  readonly rounds: number;
  readonly ceilingSeconds: number;
  readonly json: string | undefined;
  readonly keepData: boolean;
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
      wait: { type: 'string' },
      rounds: { type: 'string' },
      'ceiling-seconds': { type: 'string' },
      json: { type: 'string' },
      'keep-data': { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help === true) return undefined;
  return {
    durationS: numberFlag(values.duration, 20, '--duration', { integer: false }),
    warmupS: numberFlag(values.warmup, 5, '--warmup', { integer: false, zero: true }),
    connections: numberFlag(values.connections, values.rate === undefined ? 64 : 256, '--connections', {
      integer: true,
    }),
    rate: values.rate === undefined ? undefined : numberFlag(values.rate, 0, '--rate', { integer: false }),
    inFlightMax: numberFlag(values['max-in-flight'], 4_096, '--max-in-flight', { integer: true }),
    waitS: numberFlag(values.wait, 10, '--wait', { integer: true }),
    rounds: numberFlag(values.rounds, 1, '--rounds', { integer: true }),
    ceilingSeconds: numberFlag(values['ceiling-seconds'], 3, '--ceiling-seconds', { integer: false }),
    json: values.json,
    keepData: values['keep-data'] === true,
  };
}

interface Sample {
  readonly at: number;
  readonly nodes: ReadonlyMap<string, ProcessSample | undefined>;
  readonly bank: ProcessSample | undefined;
  readonly postgresCpu: number | undefined;
  readonly postgresCounters: PostgresCounters | undefined;
  readonly loadGeneratorCpu: NodeJS.CpuUsage;
  readonly loadAverage: readonly number[];
}

interface RunFigures {
  readonly configuration: ConfigurationName;
  readonly ordersPerSecond: number;
  readonly cpuMsPerOrder: { readonly nodes: number | null; readonly all: number | null };
  readonly postgresCommitsPerOrder: number | null;
  /** Commits per order beyond the cluster's idle rate (heartbeats, lease renewals). */
  readonly postgresCommitsAddedPerOrder: number | null;
  readonly idleCommitsPerSecond: number | null;
  readonly result: Record<string, unknown>;
}

async function main(args: readonly string[]): Promise<number> {
  const settings = parseSettings(args);
  if (settings === undefined) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  const folder = mkdtempSync(path.join(os.tmpdir(), 'remit-bench-cluster-'));
  const startedAt = new Date().toISOString();
  let database: RunningPostgres | undefined;
  try {
    // The server runs as the `postgres` user, which must pass through the run's folder to its own.
    chmodSync(folder, 0o755);
    database = await startRunPostgres(path.join(folder, 'postgres'));
    progress(`PostgreSQL up in ${folder}`);
    const mode: LoadMode =
      settings.rate === undefined
        ? { kind: 'closed', connections: settings.connections }
        : {
            kind: 'open',
            connections: settings.connections,
            ratePerSecond: settings.rate,
            inFlightMax: settings.inFlightMax,
          };
    const runs: RunFigures[] = [];
    for (let round = 0; round < settings.rounds && !abort.signal.aborted; round++) {
      for (const configuration of Object.keys(configurations) as ConfigurationName[]) {
        if (abort.signal.aborted) break;
        runs.push(await runConfiguration(configuration, database, folder, settings, mode, abort.signal));
      }
    }
    progress('raw commit ceiling');
    const ceiling = await commitCeiling(database.url, settings.ceilingSeconds);
    const result = report(settings, args, startedAt, mode, runs, ceiling);
    const text = `${JSON.stringify(result, null, 2)}\n`;
    process.stdout.write(text);
    if (settings.json !== undefined) await writeFile(settings.json, text);
    return abort.signal.aborted ? 130 : 0;
  } finally {
    await database?.stop();
    if (settings.keepData) progress(`data kept in ${folder}`);
    else rmSync(folder, { recursive: true, force: true });
  }
}

/** One configuration from nothing: schema, bank, nodes, settle, warm-up, window, stop. */
async function runConfiguration(
  configuration: ConfigurationName,
  database: RunningPostgres,
  folder: string,
  settings: Settings,
  mode: LoadMode,
  signal: AbortSignal,
): Promise<RunFigures> {
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  const runFolder = path.join(folder, schema);
  const roles = configurations[configuration];
  let bank: RemitChild | undefined;
  const nodes = new Map<string, RemitChild>();
  try {
    progress(`${configuration}: starting the bank and ${roles.size} node(s), schema ${schema}`);
    bank = await startRemitChild(
      'bank',
      ['bank', '--data', path.join(runFolder, 'bank'), '--log-level', 'warn'],
      '/health',
    );
    const bankUrl = bank.url;
    const environment = { REMIT_VAULT_KEY: randomBytes(32).toString('base64') };
    // Started at once: they race to create the demo merchants, and exactly one writes credentials.json.
    const started = await Promise.allSettled(
      [...roles].map(async ([nodeId, nodeRoles]) => {
        const child = await startRemitChild(
          `node ${nodeId}`,
          [
            'node',
            '--node-id',
            nodeId,
            '--cluster-port',
            String(await freePort()),
            '--roles',
            nodeRoles.join(','),
            '--bank-url',
            bankUrl,
            '--database-url',
            database.url,
            '--database-schema',
            schema,
            '--database-pool-size',
            String(nodePoolSize),
            '--data',
            path.join(runFolder, nodeId),
            '--log-level',
            'warn',
          ],
          '/health/ready',
          [],
          undefined,
          environment,
        );
        nodes.set(nodeId, child);
      }),
    );
    const failed = started.find((outcome) => outcome.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    const credentials = readClusterCredentials(
      [...roles.keys()].map((nodeId) => path.join(runFolder, nodeId)),
    );
    const settleMs = await waitUntilSettled([...nodes.values()], [...roles.keys()], credentials.adminToken);
    progress(`${configuration}: settled after ${settleMs} ms; load from the same machine`);

    const ticks = clockTicksPerSecond();
    const take = (): Promise<Sample> => sample(nodes, bank, database, schema, ticks);
    // The cluster's own commits without orders (heartbeats, lease renewals): measured idle, so
    // the window's commits can be split into that fixed rate and what each order adds.
    const idleStart = await take();
    await sleepUntil(performance.now() + idleMs, signal);
    const idleEnd = await take();
    const startAt = performance.now() + startDelayMs;
    const windowStart = startAt + settings.warmupS * 1_000;
    const windowEnd = windowStart + settings.durationS * 1_000;
    const startSample = sleepUntil(windowStart, signal).then(take);
    const endSample = sleepUntil(windowEnd, signal).then(take);
    const load = await runLoad({
      baseUrls: [...nodes.values()].map((node) => node.url),
      client: 'raw',
      merchants: credentials.merchants,
      mode,
      startAt,
      warmupMs: settings.warmupS * 1_000,
      durationMs: settings.durationS * 1_000,
      waitSeconds: settings.waitS,
      requestTimeoutMs: settings.waitS * 1_000 + requestTimeoutBeyondWaitMs,
      runId: `bench-cluster-${randomUUID()}`,
      signal,
      onProgress: (report) =>
        progress(
          `${configuration}: t=${report.elapsedS}s executed/s=${report.executedPerSecond} in flight=${report.inFlight} errors=${report.errors}`,
        ),
    });
    const [start, end] = await Promise.all([startSample, endSample]);
    const exitedEarly = [...nodes.values()].filter((node) => !node.running()).map((node) => node.name);
    return figures(configuration, settings, load, start, end, {
      schema,
      settleMs,
      exitedEarly,
      roles,
      idleCommitsPerSecond: commitRate(idleStart, idleEnd),
      idleCores: idleCores(idleStart, idleEnd),
    });
  } finally {
    await Promise.all([...nodes.values()].map((node) => node.stop(stopGraceMs)));
    await bank?.stop(stopGraceMs);
  }
}

/** Polls `/admin/cluster` until every shard has settled on the configuration's nodes; ms it took. */
async function waitUntilSettled(
  nodes: readonly RemitChild[],
  nodeIds: readonly string[],
  token: string,
): Promise<number> {
  const began = performance.now();
  const pollsMax = Math.ceil(settleTimeoutMs / settlePollMs);
  for (let poll = 0; poll < pollsMax; poll++) {
    const node = nodes[poll % nodes.length];
    const view =
      node === undefined
        ? undefined
        : await fetchClusterView(node.url, token, adminTimeoutMs).catch(() => undefined);
    if (view !== undefined && settledOn(view, nodeIds)) return Math.round(performance.now() - began);
    await new Promise((resolve) => setTimeout(resolve, settlePollMs));
  }
  throw new Error(`the shards did not settle on ${nodeIds.join(', ')} within ${settleTimeoutMs} ms`);
}

async function sample(
  nodes: ReadonlyMap<string, RemitChild>,
  bank: RemitChild | undefined,
  database: RunningPostgres,
  schema: string,
  ticks: number,
): Promise<Sample> {
  const postmaster = database.postmasterPid();
  const snapshot = {
    at: performance.now(),
    nodes: new Map([...nodes].map(([nodeId, child]) => [nodeId, sampleProcess(child.pid, ticks)])),
    bank: bank === undefined ? undefined : sampleProcess(bank.pid, ticks),
    postgresCpu: postmaster === undefined ? undefined : postgresServerCpuSeconds(postmaster, ticks),
    loadGeneratorCpu: process.cpuUsage(),
    loadAverage: os.loadavg().map((value) => round(value, 2)),
  };
  return { ...snapshot, postgresCounters: await samplePostgresCounters(database.url, schema) };
}

/** Cores the nodes and the PostgreSQL server used between two samples without load. */
function idleCores(from: Sample, to: Sample): { nodes: number | null; postgresServer: number | null } {
  const seconds = (to.at - from.at) / 1_000;
  let nodes: number | null = 0;
  for (const [nodeId, end] of to.nodes) {
    const start = from.nodes.get(nodeId);
    nodes =
      nodes === null || start === undefined || end === undefined
        ? null
        : nodes + end.cpuSeconds - start.cpuSeconds;
  }
  const postgres =
    from.postgresCpu === undefined || to.postgresCpu === undefined ? null : to.postgresCpu - from.postgresCpu;
  return {
    nodes: nodes === null ? null : round(nodes / seconds, 3),
    postgresServer: postgres === null ? null : round(postgres / seconds, 3),
  };
}

/** Commits per second between two samples, or null without counters. */
function commitRate(from: Sample, to: Sample): number | null {
  if (from.postgresCounters === undefined || to.postgresCounters === undefined) return null;
  return (to.postgresCounters.commits - from.postgresCounters.commits) / ((to.at - from.at) / 1_000);
}

function figures(
  configuration: ConfigurationName,
  settings: Settings,
  load: LoadResult,
  start: Sample,
  end: Sample,
  setup: {
    schema: string;
    settleMs: number;
    exitedEarly: readonly string[];
    roles: ReadonlyMap<string, readonly string[]>;
    idleCommitsPerSecond: number | null;
    idleCores: { nodes: number | null; postgresServer: number | null };
  },
): RunFigures {
  const windowS = (end.at - start.at) / 1_000;
  const executed = load.executedInWindow;
  const cpuOf = (from: ProcessSample | undefined, to: ProcessSample | undefined): number | null =>
    from === undefined || to === undefined ? null : to.cpuSeconds - from.cpuSeconds;
  const nodeCpu = new Map(
    [...end.nodes].map(([nodeId, to]) => [nodeId, cpuOf(start.nodes.get(nodeId), to)] as const),
  );
  const nodesCpu = [...nodeCpu.values()].every((value) => value !== null)
    ? [...nodeCpu.values()].reduce<number>((sum, value) => sum + (value ?? 0), 0)
    : null;
  const bankCpu = cpuOf(start.bank, end.bank);
  const postgresCpu =
    start.postgresCpu === undefined || end.postgresCpu === undefined
      ? null
      : end.postgresCpu - start.postgresCpu;
  const loadCpu =
    (end.loadGeneratorCpu.user +
      end.loadGeneratorCpu.system -
      start.loadGeneratorCpu.user -
      start.loadGeneratorCpu.system) /
    1e6;
  const all =
    nodesCpu === null || bankCpu === null || postgresCpu === null ? null : nodesCpu + bankCpu + postgresCpu;
  const perOrderMs = (seconds: number | null): number | null =>
    seconds === null || executed === 0 ? null : round((seconds * 1_000) / executed, 3);
  const cores = (seconds: number | null): number | null =>
    seconds === null ? null : round(seconds / windowS, 2);
  const commits =
    start.postgresCounters === undefined || end.postgresCounters === undefined
      ? null
      : end.postgresCounters.commits - start.postgresCounters.commits;
  const commitsPerOrder = commits === null || executed === 0 ? null : round(commits / executed, 2);
  const idle = setup.idleCommitsPerSecond;
  const commitsAddedPerOrder =
    commits === null || idle === null || executed === 0
      ? null
      : round((commits - idle * windowS) / executed, 2);
  const ordersPerSecond = round(executed / settings.durationS, 1);
  return {
    configuration,
    ordersPerSecond,
    cpuMsPerOrder: { nodes: perOrderMs(nodesCpu), all: perOrderMs(all) },
    postgresCommitsPerOrder: commitsPerOrder,
    postgresCommitsAddedPerOrder: commitsAddedPerOrder,
    idleCommitsPerSecond: idle,
    result: {
      configuration,
      nodes: Object.fromEntries([...setup.roles].map(([nodeId, roles]) => [nodeId, roles.join(',')])),
      schema: setup.schema,
      settledBeforeLoadMs: setup.settleMs,
      ordersPerSecond,
      executedOrders: executed,
      ordersSent: load.sentInWindow,
      latencyMs: load.latencyMs,
      errors: load.errors,
      errorsByKind: load.errorsByKind,
      warmup: load.warmup,
      cpuMsPerOrder: {
        nodes: perOrderMs(nodesCpu),
        byNode: Object.fromEntries([...nodeCpu].map(([nodeId, seconds]) => [nodeId, perOrderMs(seconds)])),
        bank: perOrderMs(bankCpu),
        postgresServer: perOrderMs(postgresCpu),
        nodesBankAndPostgres: perOrderMs(all),
        loadGenerator: perOrderMs(loadCpu),
      },
      /** The settled cluster without load (heartbeats, lease renewals): what every order's CPU above includes a share of. */
      idleCores: setup.idleCores,
      coresUsed: {
        nodes: cores(nodesCpu),
        bank: cores(bankCpu),
        postgresServer: cores(postgresCpu),
        loadGenerator: cores(loadCpu),
      },
      postgres: {
        commitsPerSecond: commits === null ? null : round(commits / windowS, 1),
        commitsPerOrder,
        idleCommitsPerSecond: idle === null ? null : round(idle, 1),
        commitsAddedPerOrder,
        measuredBy:
          'pg_stat_database.xact_commit of the database over the window (every session: nodes, heartbeats, leases, reads)',
      },
      peakRssMb: Object.fromEntries(
        [...end.nodes].map(([nodeId, to]) => [nodeId, to === undefined ? null : round(to.peakRssMb, 1)]),
      ),
      loadAverage1m5m15m: { atWindowStart: start.loadAverage, atWindowEnd: end.loadAverage },
      nodesExitedDuringRun: setup.exitedEarly,
    },
  };
}

interface CeilingRun {
  readonly connections: number;
  readonly commits: number;
  readonly commitsPerSecond: number;
}

/**
 * What the server itself allows: sessions each committing one single-row INSERT at a time (every
 * statement its own transaction, so its own WAL flush unless the server groups concurrent ones),
 * into a table of a schema of its own, for `seconds` per concurrency.
 */
async function commitCeiling(url: string, seconds: number): Promise<CeilingRun[]> {
  const schema = `ceiling_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url, application_name: 'remit-bench-ceiling' });
  await admin.connect();
  try {
    const table = `${admin.escapeIdentifier(schema)}.commits`;
    await admin.query(`CREATE SCHEMA ${admin.escapeIdentifier(schema)}`);
    await admin.query(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, payload text NOT NULL)`);
    const runs: CeilingRun[] = [];
    for (const connections of ceilingConnections) {
      const clients = Array.from(
        { length: connections },
        () => new pg.Client({ connectionString: url, application_name: 'remit-bench-ceiling' }),
      );
      await Promise.all(clients.map((client) => client.connect()));
      try {
        const began = performance.now();
        const until = began + seconds * 1_000;
        const counts = await Promise.all(
          clients.map(async (client) => {
            let count = 0;
            while (performance.now() < until) {
              await client.query(`INSERT INTO ${table} (payload) VALUES ($1)`, [
                'a row of about forty bytes, like a key',
              ]);
              count++;
            }
            return count;
          }),
        );
        const elapsedS = (performance.now() - began) / 1_000;
        const commits = counts.reduce((sum, count) => sum + count, 0);
        runs.push({ connections, commits, commitsPerSecond: round(commits / elapsedS, 1) });
        progress(`ceiling: ${connections} connection(s): ${round(commits / elapsedS, 1)} commits/s`);
      } finally {
        await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
      }
    }
    await admin.query(`DROP SCHEMA ${admin.escapeIdentifier(schema)} CASCADE`);
    return runs;
  } finally {
    await admin.end().catch(() => undefined);
  }
}

function report(
  settings: Settings,
  args: readonly string[],
  startedAt: string,
  mode: LoadMode,
  runs: readonly RunFigures[],
  ceiling: readonly CeilingRun[],
): Record<string, unknown> {
  const mean = (
    configuration: ConfigurationName,
    pick: (run: RunFigures) => number | null,
  ): number | null => {
    const values = runs
      .filter((run) => run.configuration === configuration)
      .map(pick)
      .filter((value): value is number => value !== null);
    return values.length === 0 ? null : values.reduce((sum, value) => sum + value, 0) / values.length;
  };
  const ratio = (pick: (run: RunFigures) => number | null): number | null => {
    const one = mean('one node', pick);
    const three = mean('three nodes', pick);
    return one === null || three === null || one === 0 ? null : round(three / one, 2);
  };
  const ceilingMax = Math.max(...ceiling.map((run) => run.commitsPerSecond));
  const commitsPerOrder = mean('three nodes', (run) => run.postgresCommitsAddedPerOrder);
  const idleCommits = mean('three nodes', (run) => run.idleCommitsPerSecond);
  const nodeCpuMs = mean('three nodes', (run) => run.cpuMsPerOrder.nodes);
  return {
    benchmark:
      'remit cluster throughput: three nodes on one PostgreSQL against one node on the same PostgreSQL',
    command: `npm run bench:cluster -- ${args.join(' ')}`.trim(),
    startedAt,
    commit: gitCommit(),
    mode: mode.kind === 'closed' ? 'closed loop' : 'open loop',
    loadGenerator:
      'same machine, raw client (gateway/load.ts), connections split evenly over the nodes, each order to the nodes in turn',
    settings: {
      durationS: settings.durationS,
      warmupS: settings.warmupS,
      connections: settings.connections,
      ...(mode.kind === 'open' ? { ratePerSecond: mode.ratePerSecond, maxInFlight: mode.inFlightMax } : {}),
      preferWaitS: settings.waitS,
      rounds: settings.rounds,
      nodePoolSize,
    },
    machine: {
      node: process.version,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      totalMemoryMb: Math.round(os.totalmem() / 2 ** 20),
    },
    setup:
      'embedded PostgreSQL (fsync and synchronous_commit on) for the whole run, a fresh schema, bank simulator and nodes (node dist/cli/main.js node, --log-level warn) per configuration, all on this machine',
    threeNodesAgainstOne: {
      ordersPerSecond: ratio((run) => run.ordersPerSecond),
      cpuPerOrderOfTheNodes: ratio((run) => run.cpuMsPerOrder.nodes),
      cpuPerOrderNodesBankAndPostgres: ratio((run) => run.cpuMsPerOrder.all),
      postgresCommitsPerOrder: ratio((run) => run.postgresCommitsPerOrder),
      postgresCommitsAddedPerOrder: ratio((run) => run.postgresCommitsAddedPerOrder),
      idleCommitsPerSecond: ratio((run) => run.idleCommitsPerSecond),
    },
    postgresCommitCeiling: {
      what: 'single-row INSERT commits in a tight loop, each its own transaction, same server, same machine',
      secondsEach: settings.ceilingSeconds,
      runs: ceiling,
    },
    bound: {
      what: 'a cluster of any size on this PostgreSQL executes at most (ceiling commits/s - the idle cluster’s commits/s) / (commits each order adds) orders/s; on N machines the nodes cost their CPU per order spread over N',
      ceilingCommitsPerSecond: ceilingMax,
      idleCommitsPerSecondThreeNodes: idleCommits === null ? null : round(idleCommits, 1),
      commitsAddedPerOrderThreeNodes: commitsPerOrder === null ? null : round(commitsPerOrder, 2),
      ordersPerSecondAtMost:
        commitsPerOrder === null || commitsPerOrder <= 0 || idleCommits === null
          ? null
          : Math.round((ceilingMax - idleCommits) / commitsPerOrder),
      nodeCpuMsPerOrderThreeNodes: nodeCpuMs === null ? null : round(nodeCpuMs, 3),
      ordersPerSecondPerNodeCore:
        nodeCpuMs === null || nodeCpuMs === 0 ? null : Math.round(1_000 / nodeCpuMs),
    },
    runs: runs.map((run) => run.result),
  };
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

const progress = progressOf('bench:cluster');

runBenchmark('bench:cluster', () => main(process.argv.slice(2)));
