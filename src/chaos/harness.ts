import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { BankClient } from '../bank/bank-client.js';
import { noFaults } from '../bank/bank-protocol.js';
import { defaultClusterSettings } from '../cluster/cluster-settings.js';
import { demoMerchants } from '../node/demo-merchants.js';
import { terminalStatuses } from '../payments/order.js';
import { SeededRandom } from '../runtime/random.js';
import type { RunningPostgres } from '../store/postgres/embedded-postgres.js';
import {
  chaosReceiverFaults,
  owedWebhookEvents,
  receiverProcess,
  registerEndpoints,
} from './chaos-webhooks.js';
import { checkRun, type GatewayOrder, type JournalSequence } from './checker.js';
import {
  dropPostgresJournalEvent,
  dropSchema,
  readPostgresJournalSequences,
  runSchemaName,
  startRunPostgres,
} from './database.js';
import {
  clusterPlanLimits,
  defaultPlanLimits,
  emptyDisruptionCounts,
  planChaos,
  runChaosPlan,
} from './faults.js';
import { readJournalSequences } from './journal-sequences.js';
import {
  defaultLoadSettings,
  emptyLoadCounts,
  type LoadContext,
  type Merchant,
  type OrderRecord,
  type RefundRecord,
  resendUnanswered,
  runLoad,
} from './load.js';
import { defaultProcessSettings, freePort, ManagedProcess } from './processes.js';
import { checkRefunds, type GatewayRefund } from './refund-check.js';
import { listOrders, listRefunds, readLedger, setBankFaults } from './remit-api.js';
import { buildReport, type ChaosReport, type NodeReport } from './report.js';
import { dropJournalEvent, type Sabotage, strayCharge } from './sabotage.js';
import { monotonicMs, sleep } from './timing.js';
import { checkWebhooks, missingWebhooks, tallyWebhooks } from './webhook-check.js';
import { readReceiverLog } from './webhook-receiver.js';

/**
 * The crash-and-retry chaos run (DESIGN §6, "real-process chaos"): a bank simulator and a gateway
 * as real processes on fixed loopback ports in a fresh data folder; merchant-like clients under
 * load; the gateway SIGKILLed at random moments, the bank killed and paused less often, bank
 * faults changing all along; then faults off, a bounded wait for every order to settle, and the
 * evidence — what clients saw, the gateway's orders, the bank's ledger, the journal — judged by
 * `checkRun`. No process.exit here: tests call `runChaos` and read the report.
 *
 * On PostgreSQL the gateway keeps its stores in a fresh schema of the run. Either the harness
 * runs the server itself (embedded, data in the run's folder, fsync on) and then also SIGKILLs
 * it under load and starts it again, or it is given a database by URL, which it never kills.
 *
 * With `nodes` of 2 or more the gateway is a cluster: that many `remit node` processes on the
 * run's PostgreSQL schema, every bank's role on two of them. The same machinery drives them — a
 * node is a gateway to the load, the plan and the settling — and the plan adds graceful stops,
 * pauses longer than a lease, and kills both shorter and longer than one. The cluster's own
 * server is not killed: a database outage is the simulator's to explore on the cluster.
 */

/** Where the gateway keeps its journal, snapshots, vault and read model. */
export const chaosStores = ['sqlite', 'postgres'] as const;
export type ChaosStore = (typeof chaosStores)[number];

/** Most nodes of a cluster run: each has a pool of 8 connections on a server of 60. */
export const chaosNodesMax = 6;

export interface ChaosOptions {
  /** How long the load and the chaos last (the run takes longer: start, settle, checks). */
  readonly durationMs: number;
  /** Disruptions come every 0.5..1.5 × this. */
  readonly killIntervalMs: number;
  readonly seed: number;
  readonly clients: number;
  /** 1: the single gateway (`remit start`); 2 or more: a cluster of `remit node`s on PostgreSQL. */
  readonly nodes: number;
  readonly store: ChaosStore;
  /**
   * With `store: 'postgres'`: the database to use (a fresh schema in it, dropped after a clean run
   * unless `keepData`); the harness then starts no server of its own and kills no database.
   * Undefined: the harness runs an embedded PostgreSQL of its own.
   */
  readonly databaseUrl?: string | undefined;
  /** Where the processes keep their data; a fresh temporary folder when undefined. Must be empty. */
  readonly dataDir?: string | undefined;
  /** Keep the data folder after a clean run (it is always kept after violations or an error). */
  readonly keepData: boolean;
  readonly sabotage: readonly Sabotage[];
  /** How long to wait, after the chaos, for every order to be terminal. */
  readonly settleTimeoutMs: number;
  /** The gateway's `--execution-deadline-ms`: short, so orders the bank cannot take end within the run. */
  readonly executionDeadlineMs: number;
  /** The gateway's `--bank-timeout-ms`: short, so lost bank answers turn into inquiries quickly. */
  readonly bankTimeoutMs: number;
  /**
   * Webhooks: an endpoint per merchant pointing at a receiver process that fails on purpose (500s,
   * closed connections, hangs, crashes); every event the gateway owes must reach it, once.
   */
  readonly webhooks: boolean;
  /** Progress lines (to stderr in the command). */
  readonly log: (line: string) => void;
  /** Aborting it ends the run early; everything is stopped and runChaos rejects. */
  readonly signal?: AbortSignal | undefined;
}

export const defaultChaosOptions: ChaosOptions = {
  durationMs: 60_000,
  killIntervalMs: 5_000,
  seed: 7,
  clients: defaultLoadSettings.clients,
  nodes: 1,
  store: 'sqlite',
  keepData: false,
  sabotage: [],
  settleTimeoutMs: 60_000,
  executionDeadlineMs: 5_000,
  bankTimeoutMs: 1_000,
  webhooks: true,
  log: () => {},
};

/** Bounds of the harness's own calls. */
const limits = {
  /** An API call of the harness itself (listing, ledger, faults). */
  callTimeoutMs: 10_000,
  /** Pages of 100 orders per merchant when listing. */
  listPagesMax: 10_000,
  /** How often the settle phase looks at the orders again. */
  settlePollIntervalMs: 1_000,
  /** Refund listings the harness has in flight at once while settling and gathering evidence. */
  refundListingsInFlightMax: 8,
  /** The gateway's webhook retries in a run: a delay of at most 2 s, attempts cut at 2 s. */
  webhookRetryDelayMaxMs: 2_000,
  webhookAttemptTimeoutMs: 2_000,
  /** How often the harness looks whether the receiver crashed (and starts it again). */
  receiverWatchIntervalMs: 200,
  /** Starts of the receiver in a row that may fail (it crashed again before it was ready). */
  receiverStartAttemptsMax: 50,
  /** Attempts to switch the bank's faults off once the chaos is over. */
  faultsOffAttemptsMax: 20,
  /** Attempts to find each free port distinct from those found before it. */
  portAttemptsMax: 10,
  /** Each cluster node's database pool. */
  nodePoolSize: 8,
  /**
   * How long a cluster node may take to be ready: at the run's start every node boots at once on a
   * loaded machine, and a boot may ask the Merchants for their configuration more than once.
   */
  nodeReadyTimeoutMs: 120_000,
};

/** Log lines of a cluster node (at `warn`) that show it losing its leases. */
const fencingLines = {
  selfFencing: 'lease not renewed in time; self-fencing',
  leasesLost: 'lease lost; stopping the shard',
} as const;

/** Listeners on one stop signal: each client holds a few (a sleep, a retry), plus the chaos loops. */
const abortListenersMax = 4 * 256 + 16;

const credentialsSchema = z.object({
  merchants: z.array(z.object({ id: z.string(), apiKey: z.string() })),
});

/** The run's PostgreSQL: where, in which schema, and the server when the harness runs it. */
interface RunDatabase {
  readonly url: string;
  readonly schema: string;
  readonly owned: RunningPostgres | undefined;
}

/** One process that serves the merchants: the gateway, or one node of a cluster. */
interface ServingNode {
  readonly process: ManagedProcess;
  readonly url: string;
  readonly dataDir: string;
  /** The banks whose Executors it may run (a cluster node's `--roles`); empty for the gateway. */
  readonly roles: readonly string[];
  /** How often its log showed it losing leases (a cluster node only). */
  readonly fencing: { selfFencing: number; leasesLost: number };
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const startedMs = monotonicMs();
  const cluster = options.nodes > 1;
  if (cluster && options.store !== 'postgres') throw new Error('a cluster runs on PostgreSQL only');
  if (options.nodes < 1 || options.nodes > chaosNodesMax)
    throw new Error(`a run has 1 to ${chaosNodesMax} nodes`);
  const { dataDir, ownDir } = prepareDataDir(options.dataDir);
  let database: RunDatabase | undefined;
  try {
    database = await openRunDatabase(options, dataDir);
  } catch (error) {
    if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  const databaseArgs =
    database === undefined ? [] : ['--database-url', database.url, '--database-schema', database.schema];
  // The bank, then an HTTP port per node and, in a cluster, a node-to-node port each.
  // The last port is the webhook receiver's.
  const ports = await distinctFreePorts(2 + options.nodes * (cluster ? 2 : 1));
  const receiverPort = ports.at(-1) ?? 0;
  const receiverUrl = `http://127.0.0.1:${receiverPort}`;
  const bankUrl = `http://127.0.0.1:${ports[0]}`;
  const bank = new ManagedProcess({
    name: 'bank',
    args: [
      'bank',
      '--host',
      '127.0.0.1',
      '--port',
      String(ports[0]),
      '--data',
      join(dataDir, 'bank'),
      '--log-level',
      'warn',
    ],
    healthUrl: `${bankUrl}/health`,
  });
  const common = [
    '--host',
    '127.0.0.1',
    '--bank-url',
    bankUrl,
    '--execution-deadline-ms',
    String(options.executionDeadlineMs),
    '--bank-timeout-ms',
    String(options.bankTimeoutMs),
    ...databaseArgs,
    ...(options.webhooks
      ? [
          '--webhooks-allow-insecure',
          '--webhook-retry-delay-max-ms',
          String(limits.webhookRetryDelayMaxMs),
          '--webhook-attempt-timeout-ms',
          String(limits.webhookAttemptTimeoutMs),
        ]
      : []),
    '--log-level',
    'warn',
  ];
  const nodes = cluster
    ? clusterNodes(options.nodes, ports.slice(1), dataDir, common)
    : [gatewayNode(ports[1] ?? 0, dataDir, common)];
  const nodeUrls = nodes.map((node) => node.url);
  // The harness talks to the bank through the bank's own client: changing faults during the chaos
  // with the gateway's short bank timeout (a paused bank must not stall the plan), and auditing
  // (faults off, the stray charge, the ledger) with the patient one of every other call.
  const faultSetter = new BankClient({
    baseUrl: bankUrl,
    requestTimeoutMs: options.bankTimeoutMs,
    connections: 1,
  });
  const auditor = new BankClient({
    baseUrl: bankUrl,
    requestTimeoutMs: limits.callTimeoutMs,
    connections: 1,
    authorizationBatchMax: 1,
  });
  let receiver: { process: ManagedProcess; logPath: string } | undefined;
  const stopNodes = async (): Promise<void> => {
    await Promise.allSettled(nodes.map((node) => node.process.stop()));
  };
  let keep = true;
  let dropTheSchema = false;
  try {
    options.log(`data in ${dataDir}; bank ${bankUrl}, ${nodes.map(describeNode).join(', ')}`);
    if (database !== undefined) {
      options.log(
        `PostgreSQL schema ${database.schema}${database.owned === undefined ? ' in the given database' : ` on the run's own server (port ${database.owned.port}, fsync on)`}`,
      );
    }
    await bank.start();
    // A cluster's nodes start at once: they race to create the demo merchants, and one wins.
    await Promise.all(nodes.map((node) => node.process.start()));
    const merchants = readMerchants(nodes.map((node) => node.dataDir));
    if (options.webhooks) {
      const secrets = await registerEndpoints(
        nodeUrls[0] ?? '',
        merchants,
        receiverUrl,
        limits.callTimeoutMs,
      );
      receiver = receiverProcess(dataDir, receiverPort, options.seed, secrets, chaosReceiverFaults);
      await receiver.process.start();
      options.log(`webhook receiver ${receiverUrl}, an endpoint per merchant`);
    }

    // One seed, independent streams: the load's orders and the chaos plan do not perturb each other.
    const root = new SeededRandom(options.seed);
    const loadSeed = root.int(0x7fffffff);
    const plan = planChaos(
      root.fork(),
      options.durationMs,
      options.killIntervalMs,
      cluster ? clusterPlanLimits(defaultClusterSettings) : defaultPlanLimits,
      { database: database?.owned !== undefined && !cluster, nodes: nodes.length },
    );
    const jitter = root.fork();
    options.log(`plan: ${plan.disruptions.length} disruptions, ${plan.faultChanges.length} fault changes`);

    const loadStop = new AbortController();
    // Every client's backoff and think time listens to it: many listeners is by design.
    setMaxListeners(abortListenersMax, loadStop.signal);
    const onAbort = (): void => loadStop.abort();
    options.signal?.addEventListener('abort', onAbort);
    if (options.signal?.aborted === true) loadStop.abort();
    const loadCounts = emptyLoadCounts(nodes.length);
    const disruptions = emptyDisruptionCounts(nodes.map((node) => node.process.spec.name));
    const context: LoadContext = {
      nodeUrls,
      merchants,
      settings: { ...defaultLoadSettings, clients: options.clients },
      counts: loadCounts,
      seed: loadSeed,
      stop: loadStop.signal,
      forgetKey: options.sabotage.includes('forget-key') ? { ordersMax: 3 } : undefined,
      refunds: [],
    };
    // A failure on either side ends the other at once (the stop signal), and both are awaited to
    // the end before anything is torn down: nothing keeps running behind a rejected promise.
    const endOnFailure = <T>(work: Promise<T>): Promise<T> =>
      work.catch((error: unknown) => {
        loadStop.abort();
        throw error;
      });
    const chaos = endOnFailure(
      runChaosPlan(
        plan,
        {
          nodes: nodes.map((node) => node.process),
          bank,
          database: database?.owned,
          setBankFaults: (faults) => setBankFaults(faultSetter, faults),
          log: options.log,
        },
        loadStop.signal,
        disruptions,
      ),
    );
    const load = endOnFailure(runLoad(context));
    const timer = sleep(options.durationMs, loadStop.signal).then(() => loadStop.abort());
    const watch = endOnFailure(keepRunning(receiver?.process, loadStop.signal));
    const [loaded, chaosDone, , watched] = await Promise.allSettled([load, chaos, timer, watch]);
    if (watched.status === 'rejected') throw watched.reason;
    options.signal?.removeEventListener('abort', onAbort);
    if (loaded.status === 'rejected') throw loaded.reason;
    if (chaosDone.status === 'rejected') throw chaosDone.reason;
    const records = loaded.value;
    if (options.signal?.aborted === true) throw new Error('the chaos run was interrupted');
    options.log(`load over: ${records.length} orders; settling`);

    const settle = await settleRun({
      bank,
      nodes: nodes.map((node) => node.process),
      auditor,
      nodeUrls,
      merchants,
      records,
      context,
      jitter,
      options,
      receiver,
    });
    options.log(`settled: ${settle.settled} in ${Math.round(settle.ms)} ms; gathering evidence`);

    // The ledger before the orders: an order executed after the ledger was read would otherwise
    // look charged-but-not-executed; this way a late execution can only show as not terminal.
    const ledger = await readLedger(auditor);
    const gatewayOrders = await listAllOrders(nodeUrls, merchants);
    const gatewayRefunds = await listAllRefunds(nodeUrls, context.refunds);
    const owedEvents = owedWebhookEvents(gatewayOrders, gatewayRefunds);
    await receiver?.process.stop();
    const receiverLog = receiver === undefined ? [] : readReceiverLog(receiver.logPath);
    await stopNodes();
    await bank.stop();
    const journal = await readJournal(database, nodes[0]?.dataDir ?? dataDir, options);
    const refundedIds = new Set(context.refunds.map((refund) => refund.orderId));
    const violations = [
      ...checkRun({
        orders: records.map((record) => record.toSentOrder()),
        gatewayOrders,
        ledger: ledger.payments,
        journal,
      }),
      ...checkRefunds({
        sent: context.refunds.map((refund) => refund.toSentRefund()),
        gatewayRefunds,
        orders: gatewayOrders.filter((order) => refundedIds.has(order.id) || order.amountRefunded !== 0),
        ledgerRefunds: ledger.refunds,
        ledgerPayments: ledger.payments,
      }).map(({ ids, ...violation }) => ({ ...violation, orderIds: ids })),
      ...(receiver === undefined ? [] : checkWebhooks(owedEvents, receiverLog)).map(
        ({ eventIds, ...violation }) => ({
          ...violation,
          orderIds: eventIds,
        }),
      ),
    ];
    keep = options.keepData || !ownDir || violations.length > 0;
    dropTheSchema = !options.keepData && violations.length === 0;
    return buildReport({
      settings: {
        seed: options.seed,
        durationMs: options.durationMs,
        killIntervalMs: options.killIntervalMs,
        clients: options.clients,
        sabotage: options.sabotage,
      },
      database:
        database === undefined
          ? undefined
          : {
              schema: database.schema,
              serverOwned: database.owned !== undefined,
              schemaKept: !dropTheSchema,
            },
      nodes: nodes.map(
        (node, index): NodeReport => ({
          name: node.process.spec.name,
          url: node.url,
          roles: node.roles,
          requests: loadCounts.requestsByNode[index] ?? 0,
          unexpectedExits: node.process.unexpectedExits,
          ...node.fencing,
        }),
      ),
      records,
      loadCounts,
      disruptions,
      unexpectedExits: nodes.reduce((sum, node) => sum + node.process.unexpectedExits, bank.unexpectedExits),
      gatewayOrders,
      ledger: ledger.payments,
      ledgerTotals: ledger.totals,
      refunds: context.refunds,
      gatewayRefunds,
      webhooks:
        receiver === undefined
          ? undefined
          : { ...tallyWebhooks(owedEvents, receiverLog), receiverRestarts: receiver.process.unexpectedExits },
      journal,
      settle: { settled: settle.settled, ms: Math.round(settle.ms), timeoutMs: options.settleTimeoutMs },
      wallTimeMs: monotonicMs() - startedMs,
      dataDir,
      dataKept: keep,
      violations,
    });
  } finally {
    await Promise.allSettled([
      stopNodes(),
      bank.stop(),
      receiver?.process.stop(),
      faultSetter.close(),
      auditor.close(),
    ]);
    await closeRunDatabase(database, dropTheSchema, options.log);
    if (!keep) rmSync(dataDir, { recursive: true, force: true });
  }
}

function describeNode(node: ServingNode): string {
  const roles = node.roles.length === 0 ? '' : ` (${node.roles.join(',')})`;
  return `${node.process.spec.name} ${node.url}${roles}`;
}

/** The single gateway, `remit start`, with its data in `<dataDir>/gateway`. */
function gatewayNode(port: number, dataDir: string, common: readonly string[]): ServingNode {
  const url = `http://127.0.0.1:${port}`;
  const gatewayDir = join(dataDir, 'gateway');
  return {
    process: new ManagedProcess({
      name: 'gateway',
      args: ['start', '--port', String(port), '--data', gatewayDir, ...common],
      healthUrl: `${url}/health/ready`,
    }),
    url,
    dataDir: gatewayDir,
    roles: [],
    fencing: { selfFencing: 0, leasesLost: 0 },
  };
}

/**
 * `count` cluster nodes `node-1`… with their data in `<dataDir>/node-N`, sharing one vault key.
 * `ports` holds each node's HTTP port, then each node's node-to-node port. Bank number b is the
 * role of nodes b and b + 1 (mod count), so every bank is served by two nodes.
 */
export function clusterRoles(count: number): string[][] {
  const roles = Array.from({ length: count }, (): string[] => []);
  const banks = [...new Set(demoMerchants.map((merchant) => merchant.bank))];
  banks.forEach((bank, index) => {
    for (const node of new Set([index % count, (index + 1) % count])) roles[node]?.push(bank);
  });
  return roles;
}

function clusterNodes(
  count: number,
  ports: readonly number[],
  dataDir: string,
  common: readonly string[],
): ServingNode[] {
  const env = { REMIT_VAULT_KEY: randomBytes(32).toString('base64') };
  const roles = clusterRoles(count);
  return Array.from({ length: count }, (_, index): ServingNode => {
    const name = `node-${index + 1}`;
    const port = ports[index] ?? 0;
    const url = `http://127.0.0.1:${port}`;
    const nodeDir = join(dataDir, name);
    const nodeRoles = roles[index] ?? [];
    const fencing = { selfFencing: 0, leasesLost: 0 };
    const process = new ManagedProcess(
      {
        name,
        args: [
          'node',
          '--node-id',
          name,
          '--port',
          String(port),
          '--cluster-port',
          String(ports[count + index] ?? 0),
          '--roles',
          nodeRoles.join(','),
          '--data',
          nodeDir,
          '--database-pool-size',
          String(limits.nodePoolSize),
          ...common,
        ],
        healthUrl: `${url}/health/ready`,
        env,
        logPath: join(dataDir, `${name}.log`),
        onLine: (line) => {
          if (line.includes(fencingLines.selfFencing)) fencing.selfFencing++;
          if (line.includes(fencingLines.leasesLost)) fencing.leasesLost++;
        },
      },
      { ...defaultProcessSettings, readyTimeoutMs: limits.nodeReadyTimeoutMs },
    );
    return { process, url, dataDir: nodeDir, roles: nodeRoles, fencing };
  });
}

/** The given database, or a server of the run's own in `<dataDir>/postgres`; undefined on SQLite. */
async function openRunDatabase(options: ChaosOptions, dataDir: string): Promise<RunDatabase | undefined> {
  if (options.store === 'sqlite') {
    if (options.databaseUrl !== undefined) throw new Error('a database URL needs the postgres store');
    return undefined;
  }
  const schema = runSchemaName(options.seed);
  if (options.databaseUrl !== undefined) return { url: options.databaseUrl, schema, owned: undefined };
  // The server runs as the `postgres` user, which must pass through the run's folder to its own.
  chmodSync(dataDir, 0o755);
  const owned = await startRunPostgres(join(dataDir, 'postgres'));
  return { url: owned.url, schema, owned };
}

/**
 * Drops the run's schema from a given database after a clean run, and stops the run's own server
 * (its cluster goes with the data folder, or stays in it when the folder is kept).
 */
async function closeRunDatabase(
  database: RunDatabase | undefined,
  dropTheSchema: boolean,
  log: (line: string) => void,
): Promise<void> {
  if (database === undefined) return;
  if (database.owned !== undefined) {
    await database.owned.stop();
    return;
  }
  if (!dropTheSchema) {
    log(`PostgreSQL schema ${database.schema} kept`);
    return;
  }
  try {
    await dropSchema(database.url, database.schema);
  } catch (error) {
    log(`could not drop PostgreSQL schema ${database.schema}: ${String(error)}`);
  }
}

/** The journal's sequences, after the drop-event sabotage if asked for, from whichever store the gateway used. */
async function readJournal(
  database: RunDatabase | undefined,
  gatewayDir: string,
  options: ChaosOptions,
): Promise<JournalSequence[]> {
  const dropEvent = options.sabotage.includes('drop-event');
  if (database === undefined) {
    const journalPath = join(gatewayDir, 'journal.db');
    if (dropEvent) {
      const dropped = dropJournalEvent(journalPath);
      options.log(`sabotage: dropped ${dropped.persistenceId} #${dropped.seqNr} from the journal`);
    }
    return readJournalSequences(journalPath);
  }
  if (dropEvent) {
    const dropped = await dropPostgresJournalEvent(database.url, database.schema);
    options.log(`sabotage: dropped ${dropped.persistenceId} #${dropped.seqNr} from the journal`);
  }
  return readPostgresJournalSequences(database.url, database.schema);
}

/**
 * Every refund the clients asked for is finished, and (with webhooks) the receiver has processed
 * every event the gateway owes for the orders and refunds as they stand.
 */
async function refundsAndWebhooksSettled(
  inputs: SettleInputs,
  orders: readonly GatewayOrder[],
): Promise<boolean> {
  const refunds = await listAllRefunds(inputs.nodeUrls, inputs.context.refunds);
  if (refunds.some((refund) => refund.status === 'pending')) return false;
  if (inputs.receiver === undefined) return true;
  const missing = missingWebhooks(
    owedWebhookEvents(orders, refunds),
    readReceiverLog(inputs.receiver.logPath),
  );
  if (missing.length > 0) inputs.options.log(`settle: ${missing.length} webhook events not processed yet`);
  return missing.length === 0;
}

/** Starts the process again whenever it exits on its own, until `stop`; nothing when undefined. */
async function keepRunning(process: ManagedProcess | undefined, stop: AbortSignal): Promise<void> {
  if (process === undefined) return;
  while (!stop.aborted) {
    if (process.crashed) await startAgain(process);
    await sleep(limits.receiverWatchIntervalMs, stop);
  }
}

/**
 * Starts a process that crashes on purpose (the receiver) again. It can crash again before its
 * health check answers — deliveries come in at once — so a failed start is tried again, at most
 * `receiverStartAttemptsMax` times in a row.
 */
async function startAgain(process: ManagedProcess): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await process.start();
      return;
    } catch (error) {
      if (attempt >= limits.receiverStartAttemptsMax) throw error;
      await sleep(limits.receiverWatchIntervalMs);
    }
  }
}

/**
 * The refunds of every order the clients asked to refund, through the first node that answers;
 * throws when none does.
 */
async function listAllRefunds(
  nodeUrls: readonly string[],
  refunds: readonly RefundRecord[],
): Promise<GatewayRefund[]> {
  const orders = [...new Map(refunds.map((refund) => [refund.orderId, refund.merchant])).entries()];
  let lastError: unknown;
  for (const url of nodeUrls) {
    try {
      const listed: GatewayRefund[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: limits.refundListingsInFlightMax }, async () => {
          for (let order = orders[next++]; order !== undefined; order = orders[next++]) {
            const [orderId, merchant] = order;
            for (const refund of await listRefunds(url, merchant.apiKey, orderId, limits.callTimeoutMs)) {
              listed.push({ ...refund, merchantId: merchant.id });
            }
          }
        }),
      );
      return listed;
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

/** `count` distinct free ports: a port just closed may be handed out again by the next request. */
async function distinctFreePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let attempt = 0; ports.length < count; attempt++) {
    if (attempt >= count * limits.portAttemptsMax)
      throw new Error(`could not find ${count} distinct free ports`);
    const port = await freePort();
    if (!ports.includes(port)) ports.push(port);
  }
  return ports;
}

/** The given folder (created if missing, refused unless empty) or a fresh temporary one. */
function prepareDataDir(given: string | undefined): { dataDir: string; ownDir: boolean } {
  if (given === undefined) return { dataDir: mkdtempSync(join(tmpdir(), 'remit-chaos-')), ownDir: true };
  const dataDir = resolve(given);
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) {
    throw new Error(`${dataDir} is not empty: a chaos run needs a fresh data folder`);
  }
  mkdirSync(dataDir, { recursive: true });
  return { dataDir, ownDir: false };
}

/**
 * The merchants from the one `credentials.json` among the nodes' data folders: the gateway writes
 * it, and in a cluster only the node that created the demo merchants does.
 */
function readMerchants(nodeDirs: readonly string[]): Merchant[] {
  const written = nodeDirs.map((dir) => join(dir, 'credentials.json')).filter((path) => existsSync(path));
  if (written.length !== 1 || written[0] === undefined) {
    throw new Error(`expected one credentials.json among the nodes, found ${written.length}`);
  }
  const credentials = credentialsSchema.parse(JSON.parse(readFileSync(written[0], 'utf8')));
  if (credentials.merchants.length === 0) throw new Error('the gateway has no merchants');
  return credentials.merchants;
}

/**
 * Every merchant's orders, through the first node that answers (any node reads the whole read
 * model); throws when none does.
 */
async function listAllOrders(
  nodeUrls: readonly string[],
  merchants: readonly Merchant[],
): Promise<GatewayOrder[]> {
  let lastError: unknown;
  for (const url of nodeUrls) {
    try {
      const pages = await Promise.all(
        merchants.map((merchant) =>
          listOrders(url, merchant, { pagesMax: limits.listPagesMax, timeoutMs: limits.callTimeoutMs }),
        ),
      );
      return pages.flat();
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

interface SettleInputs {
  readonly bank: ManagedProcess;
  readonly nodes: readonly ManagedProcess[];
  /** The bank's client for the harness's own calls (faults off, the stray charge). */
  readonly auditor: BankClient;
  readonly nodeUrls: readonly string[];
  readonly merchants: readonly Merchant[];
  readonly records: readonly OrderRecord[];
  readonly context: LoadContext;
  readonly jitter: SeededRandom;
  readonly options: ChaosOptions;
  readonly receiver: { readonly process: ManagedProcess; readonly logPath: string } | undefined;
}

/**
 * After the chaos: every process up and running, faults off, unanswered orders sent again, then
 * wait (bounded) until every order the gateway lists, and every order a client was given, is
 * terminal. The time is measured from the moment the chaos stopped.
 */
async function settleRun(inputs: SettleInputs): Promise<{ settled: boolean; ms: number }> {
  const { options } = inputs;
  const everyProcess = [
    inputs.bank,
    ...inputs.nodes,
    ...(inputs.receiver === undefined ? [] : [inputs.receiver.process]),
  ];
  const startedMs = monotonicMs();
  const deadlineMs = startedMs + options.settleTimeoutMs;
  for (const target of everyProcess) {
    target.resume();
    if (target.running) continue;
    if (target === inputs.receiver?.process) await startAgain(target);
    else await target.start();
  }
  let faultsOff = false;
  for (let attempt = 0; attempt < limits.faultsOffAttemptsMax && !faultsOff; attempt++) {
    faultsOff = await setBankFaults(inputs.auditor, noFaults);
    if (!faultsOff) await sleep(250);
  }
  if (!faultsOff) throw new Error('the bank would not switch its faults off');
  if (options.sabotage.includes('stray-charge')) {
    await strayCharge(inputs.auditor);
    options.log('sabotage: charged a reference the gateway never created');
  }
  const settleStop = AbortSignal.timeout(options.settleTimeoutMs);
  setMaxListeners(abortListenersMax, settleStop);
  await resendUnanswered(inputs.records, { ...inputs.context, stop: settleStop }, inputs.jitter);

  const accepted = inputs.records.flatMap((record) => [...record.acceptedIds]);
  while (monotonicMs() < deadlineMs) {
    if (options.signal?.aborted === true) throw new Error('the chaos run was interrupted');
    // A process that died on its own while settling is started again: settling needs them all.
    for (const target of everyProcess) {
      if (!target.crashed) continue;
      if (target === inputs.receiver?.process) await startAgain(target);
      else await target.start();
    }
    try {
      const orders = await listAllOrders(inputs.nodeUrls, inputs.merchants);
      const statusById = new Map(orders.map((order) => [order.id, order.status]));
      const pending =
        orders.some((order) => !terminalStatuses.has(order.status)) ||
        accepted.some((id) => {
          const status = statusById.get(id);
          return status === undefined || !terminalStatuses.has(status);
        });
      if (!pending && (await refundsAndWebhooksSettled(inputs, orders))) {
        return { settled: true, ms: monotonicMs() - startedMs };
      }
    } catch (error) {
      options.log(
        `settle: listing failed (${error instanceof Error ? error.message : String(error)}); trying again`,
      );
    }
    await sleep(limits.settlePollIntervalMs);
  }
  return { settled: false, ms: monotonicMs() - startedMs };
}
