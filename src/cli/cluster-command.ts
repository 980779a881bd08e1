import { type ChildProcess, spawn } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pino, { type Logger as PinoLogger } from 'pino';
import { z } from 'zod';
import { startBankServer, urlHost } from '../bank/bank-server.js';
import { demoMerchants } from '../node/demo-merchants.js';
import { freePort, startEmbeddedPostgres } from '../store/postgres/embedded-postgres.js';
import { defaultPostgresSettings } from '../store/postgres/postgres-settings.js';
import { reverseClosers } from './closers.js';
import { assignRoles } from './cluster-roles.js';
import type { ClusterConfig } from './config.js';
import { vaultKey } from './gateway.js';

export const clusterLimits = {
  /** A node's start on a busy machine: the schema's migrations, shard placement, every Merchant's boot. */
  readyTimeoutMs: 120_000,
  readyPollIntervalMs: 250,
  /** One readiness request. */
  readyRequestTimeoutMs: 2_000,
  /** A node's graceful stop (it hands its shards over, then closes its stores) before SIGKILL. */
  nodeStopTimeoutMs: 20_000,
  /** PostgreSQL connections a node opens beyond its pool (projection, health probe), with room to spare. */
  connectionsPerNodeExtra: 10,
  /** Connections beyond the nodes', for a person's psql and the like. */
  connectionsSpare: 10,
};

/** `DIR/cluster.json`: what runs, for people and outside checks. Removed when the cluster stops. */
export interface ClusterFile {
  readonly databaseUrl: string;
  readonly bankUrl: string;
  readonly nodes: ReadonlyArray<{
    readonly nodeId: string;
    readonly url: string;
    readonly roles: readonly string[];
    readonly pid: number;
  }>;
}

export interface RunningCluster {
  readonly dataDir: string;
  readonly file: ClusterFile;
  readonly clusterFilePath: string;
  /** `DIR/credentials.json`, or undefined when no start on this folder ever wrote one. */
  readonly credentials: { readonly path: string; readonly adminToken: string } | undefined;
  /** Stops the nodes (SIGTERM, SIGKILL after `nodeStopTimeoutMs`), then the bank, then PostgreSQL. */
  close(): Promise<void>;
}

/** A stop signal came while the cluster was starting; what had started is stopped again. */
export class ClusterStartStopped extends Error {
  override readonly name = 'ClusterStartStopped';
}

/** A node did not become ready (a port in use, say); the message names its log. */
export class NodeStartFailed extends Error {
  override readonly name = 'NodeStartFailed';
}

/**
 * `remit cluster`: an embedded PostgreSQL (durable, data in `DIR/postgres`), the bank simulator
 * and `config.nodes` `remit node` processes on one machine, sharing one vault key.
 *
 * The bank runs in this process: it is the real server with its own SQLite ledger in `DIR/bank`,
 * started before the nodes and stopped after them; as a child it would cost one more start of the
 * runtime on a small machine and bring no isolation worth it, since this process does nothing else
 * once the nodes run. Nodes listen for HTTP on consecutive ports from `config.port` (0: each on a
 * free port) and for each other on ports the kernel picks: nodes find each other through the
 * membership table, so nobody needs to know those in advance, and they cannot collide.
 */
export async function startCluster(
  config: ClusterConfig,
  stopRequested: AbortSignal,
): Promise<RunningCluster> {
  const dataDir = resolve(config.data);
  mkdirSync(dataDir, { recursive: true });
  const logger = pino(
    { level: config.logLevel, base: { service: 'remit-cluster' } },
    pino.destination({ dest: 2, sync: true }),
  );
  const clusterFilePath = join(dataDir, 'cluster.json');
  // A file left by a cluster that was SIGKILLed names processes that are gone (or pids reused).
  rmSync(clusterFilePath, { force: true });
  const { closers, closeAll } = reverseClosers(logger);
  try {
    const key = vaultKey(config, dataDir).toString('base64');
    const postgres = await startEmbeddedPostgres({
      durable: true,
      connectionsMax:
        config.nodes * (defaultPostgresSettings.poolSizeMax + clusterLimits.connectionsPerNodeExtra) +
        clusterLimits.connectionsSpare,
      folder: join(dataDir, 'postgres'),
      leaveSignalsToCaller: true,
    });
    closers.push(() => postgres.stop());
    logger.info({ dataFolder: postgres.dataFolder, pid: postgres.postmasterPid() }, 'PostgreSQL ready');

    const bankDir = join(dataDir, 'bank');
    const bank = await startBankServer({
      host: config.host,
      port: config.bankPort,
      dataDir: bankDir,
      logger: pino(
        { level: config.logLevel, base: { service: 'remit-bank' } },
        pino.destination({ dest: join(bankDir, 'bank.log'), mkdir: true, sync: true }),
      ),
    });
    closers.push(() => bank.close());
    logger.info({ url: bank.url }, 'bank simulator ready');

    const banks = [...new Set(demoMerchants.map((merchant) => merchant.bank))];
    const roles = assignRoles(config.nodes, banks);
    const nodes: NodeProcess[] = [];
    // Stopped all at once: handing shards from one leaving node to another that leaves next is wasted.
    closers.push(async () => {
      await Promise.all(nodes.map((node) => node.stop()));
    });
    const startedAt = Date.now();
    for (const [index, nodeRoles] of roles.entries()) {
      const port = config.port === 0 ? await freePort() : config.port + index;
      nodes.push(
        spawnNode(
          {
            nodeId: `node-${index + 1}`,
            host: config.host,
            port,
            roles: nodeRoles,
            bankUrl: bank.url,
            databaseUrl: postgres.url,
            dataDir: join(dataDir, `node-${index + 1}`),
            logLevel: config.logLevel,
            vaultKey: key,
          },
          logger,
        ),
      );
    }
    await Promise.all(nodes.map((node) => untilReady(node, stopRequested)));
    for (const node of nodes) reportUnexpectedExit(node, logger);

    const file: ClusterFile = {
      databaseUrl: postgres.url,
      bankUrl: bank.url,
      nodes: nodes.map(({ nodeId, url, roles: nodeRoles, pid }) => ({ nodeId, url, roles: nodeRoles, pid })),
    };
    writeWhole(clusterFilePath, `${JSON.stringify(file, null, 2)}\n`);
    closers.push(() => rmSync(clusterFilePath, { force: true }));
    const credentials = gatherCredentials(
      dataDir,
      nodes.map((node) => node.dataDir),
      startedAt,
    );
    logger.info({ nodes: file.nodes, bankUrl: bank.url, clusterFile: clusterFilePath }, 'cluster ready');
    return {
      dataDir,
      file,
      clusterFilePath,
      credentials,
      close: async () => {
        await closeAll();
        logger.info({}, 'cluster stopped');
      },
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/**
 * Logs a node's exit that nobody asked for. It is not restarted: the other nodes take its shards
 * over, which is what a cluster is for, and a restart loop would hide a crash from the person
 * watching.
 */
function reportUnexpectedExit(node: NodeProcess, logger: PinoLogger): void {
  void node.unexpectedExit.then(({ code, signal }) =>
    logger.error(
      { nodeId: node.nodeId, pid: node.pid, code, signal, log: node.logPath },
      'node exited unexpectedly; the other nodes keep running and take its shards over; it is not restarted',
    ),
  );
}

/** Writes the file whole or not at all (a new file renamed over it): a reader never sees half of it. */
function writeWhole(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

/** What `remit cluster` prints once every node is ready. */
export function clusterSummary(cluster: RunningCluster): string {
  const { file } = cluster;
  const nodeLines = file.nodes.map(
    (node) =>
      `  ${node.nodeId}  ${node.url}  roles ${node.roles.join(',') || '(none)'}  pid ${node.pid}  log ${join(cluster.dataDir, node.nodeId, 'node.log')}`,
  );
  const credentialLines =
    cluster.credentials === undefined
      ? [
          'credentials: none in this folder (the database holds merchants an earlier start created; their keys are in its credentials.json)',
        ]
      : [`credentials: ${cluster.credentials.path}`, `admin token: ${cluster.credentials.adminToken}`];
  return [
    `Remit cluster of ${file.nodes.length} node${file.nodes.length === 1 ? '' : 's'} is ready (data in ${cluster.dataDir})`,
    ...nodeLines,
    `  bank  ${file.bankUrl}  in the cluster's own process, pid ${process.pid}  ledger and log in ${join(cluster.dataDir, 'bank')}`,
    `  database  ${file.databaseUrl}  data in ${join(cluster.dataDir, 'postgres', 'data')}`,
    ...credentialLines,
    `cluster.json: ${cluster.clusterFilePath}`,
    `Ctrl-C, or SIGTERM to pid ${process.ppid} (the command) or ${process.pid}, stops all of it, PostgreSQL last.`,
  ].join('\n');
}

/** Set in the environment of the process that runs the cluster in a process group of its own. */
export const ownGroupVariable = 'REMIT_CLUSTER_OWN_GROUP';

/**
 * Runs `remit cluster` again as a child in a process group of its own, passes SIGINT, SIGTERM and
 * SIGHUP on to it as SIGTERM, and resolves with its exit code. Why: a terminal's Ctrl-C signals
 * the whole foreground group, and PostgreSQL's postmaster (started by the embedded-postgres
 * library in its launcher's group, with no way to choose another) takes SIGINT for a fast
 * shutdown, which would stop the database before the nodes have handed their shards over. In a
 * group of its own, the cluster hears only the SIGTERM this process sends and stops in order.
 */
export function runInOwnProcessGroup(args: readonly string[]): Promise<number> {
  const child = spawn(process.execPath, remitArguments(['cluster', ...args]), {
    detached: true,
    stdio: 'inherit',
    env: { ...process.env, [ownGroupVariable]: '1' },
  });
  const stop = (): void => {
    child.kill('SIGTERM');
  };
  for (const signal of stopSignals) process.on(signal, stop);
  return new Promise((resolveExit) => {
    child.once('error', () => resolveExit(1));
    child.once('exit', (code) => {
      for (const signal of stopSignals) process.off(signal, stop);
      resolveExit(code ?? 1);
    });
  });
}

const stopSignals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * The arguments that start `remit` again with the same runtime options as this process:
 * `process.execArgv` carries tsx's loader under `npm run remit`, nothing under the built JavaScript.
 */
function remitArguments(args: readonly string[]): string[] {
  const program = process.argv[1];
  if (program === undefined) throw new Error('cannot tell which program this process runs');
  return [...process.execArgv, program, ...args];
}

interface NodeSpec {
  readonly nodeId: string;
  readonly host: string;
  readonly port: number;
  readonly roles: readonly string[];
  readonly bankUrl: string;
  readonly databaseUrl: string;
  readonly dataDir: string;
  readonly logLevel: string;
  readonly vaultKey: string;
}

interface NodeProcess {
  readonly nodeId: string;
  readonly url: string;
  readonly roles: readonly string[];
  readonly pid: number;
  readonly dataDir: string;
  readonly logPath: string;
  hasExited(): boolean;
  /** Resolves when the process exits without having been asked to stop (never otherwise). */
  readonly unexpectedExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `nodeStopTimeoutMs`; resolves once the process is gone. */
  stop(): Promise<void>;
}

/** Starts `remit node` as a child, its output appended to `node.log` in its data folder. */
function spawnNode(spec: NodeSpec, logger: PinoLogger): NodeProcess {
  mkdirSync(spec.dataDir, { recursive: true });
  const logPath = join(spec.dataDir, 'node.log');
  const log = openSync(logPath, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(
      process.execPath,
      remitArguments([
        'node',
        ...['--node-id', spec.nodeId, '--host', spec.host, '--port', String(spec.port)],
        ...['--cluster-port', '0', '--roles', spec.roles.join(','), '--bank-url', spec.bankUrl],
        ...['--database-url', spec.databaseUrl, '--data', spec.dataDir, '--log-level', spec.logLevel],
      ]),
      { env: { ...process.env, REMIT_VAULT_KEY: spec.vaultKey }, stdio: ['ignore', log, log] },
    );
  } finally {
    closeSync(log);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${spec.nodeId} did not start (see ${logPath})`);
  let stopping = false;
  let exited = false;
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    child.once('exit', (code, signal) => {
      exited = true;
      resolveExit({ code, signal });
    });
  });
  child.on('error', (error) => logger.error({ nodeId: spec.nodeId, err: error }, 'node process error'));
  return {
    nodeId: spec.nodeId,
    url: `http://${urlHost(spec.host)}:${spec.port}`,
    roles: spec.roles,
    pid,
    dataDir: spec.dataDir,
    logPath,
    hasExited: () => exited,
    unexpectedExit: exit.then((status) => (stopping ? new Promise<never>(() => {}) : status)),
    stop: async () => {
      if (exited) return;
      stopping = true;
      child.kill('SIGTERM');
      if (await settlesWithin(exit, clusterLimits.nodeStopTimeoutMs)) return;
      logger.warn(
        { nodeId: spec.nodeId, pid, timeoutMs: clusterLimits.nodeStopTimeoutMs },
        'node did not stop in time; killing it',
      );
      child.kill('SIGKILL');
      await exit;
    },
  };
}

async function settlesWithin(promise: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  const timeout = new AbortController();
  const settled = await Promise.race([
    promise.then(() => true),
    sleep(timeoutMs, false, { signal: timeout.signal }).catch(() => false),
  ]);
  timeout.abort();
  return settled;
}

/** Resolves once the node's `/health/ready` answers 200: it is a live member that serves. */
async function untilReady(node: NodeProcess, stopRequested: AbortSignal): Promise<void> {
  const deadline = Date.now() + clusterLimits.readyTimeoutMs;
  while (Date.now() < deadline) {
    if (stopRequested.aborted) throw new ClusterStartStopped('stopped while the cluster was starting');
    if (node.hasExited())
      throw new NodeStartFailed(`${node.nodeId} exited before it was ready; its log: ${node.logPath}`);
    if (await answersReady(node.url)) return;
    await sleep(clusterLimits.readyPollIntervalMs);
  }
  throw new NodeStartFailed(
    `${node.nodeId} was not ready within ${clusterLimits.readyTimeoutMs} ms; its log: ${node.logPath}`,
  );
}

async function answersReady(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/health/ready`, {
      signal: AbortSignal.timeout(clusterLimits.readyRequestTimeoutMs),
    });
    await response.arrayBuffer();
    return response.status === 200;
  } catch {
    return false;
  }
}

const credentialsSchema = z.object({ adminToken: z.string().min(1) });

/**
 * `DIR/credentials.json`: a copy of the file the node that created the demo merchants wrote in its
 * own folder during this start, or the copy an earlier start on this folder made (the database then
 * held the merchants already, and no node wrote one).
 */
function gatherCredentials(
  dataDir: string,
  nodeDirs: readonly string[],
  startedAt: number,
): RunningCluster['credentials'] {
  const path = join(dataDir, 'credentials.json');
  const written = nodeDirs
    .map((nodeDir) => join(nodeDir, 'credentials.json'))
    .find((candidate) => existsSync(candidate) && statSync(candidate).mtimeMs >= startedAt);
  if (written !== undefined) {
    copyFileSync(written, path);
    chmodSync(path, 0o600);
  }
  if (!existsSync(path)) return undefined;
  const parsed = credentialsSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success)
    throw new Error(`${path} is not a credentials file: ${parsed.error.issues[0]?.message}`);
  return { path, adminToken: parsed.data.adminToken };
}
