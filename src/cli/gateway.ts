import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pino, { type Logger as PinoLogger } from 'pino';
import { collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { buildApp, MerchantDirectory } from '../api/app.js';
import { BankClient } from '../bank/bank-client.js';
import { BankConnection, classifyBankError } from '../bank/bank-connection.js';
import { type RunningBankServer, startBankServer } from '../bank/bank-server.js';
import { ApiError } from '../node/api-error.js';
import { assembleNode, type NodeProjection, type NodeStores } from '../node/assemble-node.js';
import { demoConfig } from '../node/demo-merchants.js';
import type { OrderQueries } from '../node/order-service.js';
import type { RefundQueries } from '../node/refund-queries.js';
import { vaultKeyBytes } from '../payments/card-vault.js';
import { defaultMerchantSettings } from '../payments/merchant.js';
import { orderQueries } from '../readmodel/audit-trail.js';
import type { OrderProjectionStats } from '../readmodel/order-projection.js';
import { hostedThread, OrderProjectionWorker } from '../readmodel/order-projection-worker.js';
import { OrderReadModel, readModelPath } from '../readmodel/order-read-model.js';
import { PostgresOrderReadModel } from '../readmodel/postgres-order-read-model.js';
import {
  type OrderProjectionStatus,
  SupervisedOrderProjection,
} from '../readmodel/supervised-order-projection.js';
import { type Cancellable, type Clock, systemClock } from '../runtime/clock.js';
import { systemRandom } from '../runtime/random.js';
import type { Journal, JournalStats } from '../store/journal.js';
import { openPostgresStore, type PostgresStore } from '../store/postgres/open-postgres-store.js';
import type { PostgresJournal } from '../store/postgres/postgres-journal.js';
import { describeDatabase, isDatabaseUnavailable } from '../store/postgres/postgres-pool.js';
import type { PostgresSettings } from '../store/postgres/postgres-settings.js';
import { PostgresWebhookStore } from '../store/postgres/postgres-webhook-store.js';
import { openSqliteStore } from '../store/sqlite/open-database.js';
import { SqliteVaultStorage } from '../store/sqlite/sqlite-vault-storage.js';
import { SqliteWebhookStore, webhooksPath } from '../store/sqlite/sqlite-webhook-store.js';
import { ThreadWriter } from '../store/sqlite/sqlite-writer.js';
import type { WebhookStore } from '../webhooks/webhook-store.js';
import { reverseClosers } from './closers.js';
import { databaseSettings, type StartConfig } from './config.js';
import { loadOrCreateMerchants } from './demo-merchants.js';
import { addWebhookMetrics, WebhookRuntime } from './webhooks.js';

export interface RunningGateway {
  readonly url: string;
  readonly port: number;
  readonly bankUrl: string;
  readonly dataDir: string;
  /** The webhook store (`webhooks.db` in the data folder): endpoints, events, deliveries. */
  readonly webhooks: WebhookStore;
  /** Stops taking requests, lets those in flight finish, then stops everything and closes the stores. */
  close(): Promise<void>;
}

export interface GatewayOptions {
  readonly clock?: Clock;
  readonly logger?: PinoLogger;
}

/**
 * The gateway: one node (`assembleNode`) over its stores — SQLite files in the data folder, or with
 * a database URL every store in PostgreSQL — and the bank connection (and the embedded bank
 * simulator, with its own SQLite ledger, unless a bank URL is given), with the HTTP API and metrics
 * around it. It
 * returns once recovery is done and the API listens; every merchant and executor is started at
 * boot, so orders in flight before a crash are finished without waiting for new traffic.
 */
export async function startGateway(
  config: StartConfig,
  options: GatewayOptions = {},
): Promise<RunningGateway> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? pino({ level: config.logLevel, base: { service: 'remit' } });
  const dataDir = resolve(config.data);
  mkdirSync(dataDir, { recursive: true });
  const { closers, closeAll } = reverseClosers(logger);

  try {
    let bank: RunningBankServer | undefined;
    if (config.bankUrl === undefined) {
      bank = await startBankServer({
        host: config.host,
        port: config.bankPort,
        dataDir: join(dataDir, 'bank'),
        // The bank binds component=bank itself; binding it here too would write the key twice.
        logger,
      });
      closers.push(() => bank?.close());
    }
    const bankUrl = config.bankUrl ?? bank?.url ?? '';

    const metrics = new Registry();
    const onCommitted = commitDurationObserver(metrics);
    const database = databaseSettings(config);
    const opened: GatewayStores & { readonly postgres?: PostgresStore } =
      database === undefined
        ? openSqliteStores(dataDir, clock, logger, onCommitted)
        : await openPostgresStores(database, clock, logger, onCommitted);
    closers.push(() => opened.close());
    const { projection } = opened;

    // Closed after the entities stop (closers run in reverse), so no bank call loses its client.
    const bankClient = new BankClient({
      baseUrl: bankUrl,
      requestTimeoutMs: config.bankTimeoutMs,
      authorizationBatchMax: config.bankBatchMax,
      clock,
    });
    closers.push(() => bankClient.close());
    const queries = opened.stores.queries;
    const node = assembleNode({
      stores: opened.stores,
      vaultKey: vaultKey(config, dataDir),
      bank: new BankConnection(bankClient),
      classifyBankError,
      clock,
      random: systemRandom,
      logger: logger.child({ component: 'actors' }),
      // Every durable append is signalled to the projection, so the read model trails the journal by
      // moments (on SQLite through shared memory; see readmodel/commit-signal.ts).
      projection,
      settings: {
        merchant: { ...defaultMerchantSettings, executionDeadlineMs: config.executionDeadlineMs },
      },
    });
    closers.push(() => node.close());

    const { merchants } = loadOrCreateMerchants(dataDir);
    // Start (and so recover) every entity now: unconfirmed deliveries resume without new traffic.
    await node.boot(
      merchants.map((merchant) => ({ id: merchant.id, config: demoConfig(merchant.bank) })),
      60_000,
    );
    // A worker that crashes is restarted; one that keeps crashing is reported (logs, metrics, ready).
    projection.start();
    await projection.caughtUp();
    const webhooks = new WebhookRuntime({
      // On PostgreSQL in the database's schema, as every other store; on SQLite its own file.
      store:
        opened.postgres === undefined
          ? SqliteWebhookStore.open(webhooksPath(dataDir), clock.now())
          : new PostgresWebhookStore(opened.postgres.pool, opened.postgres.quotedSchema),
      config,
      clock,
      logger,
      journal: opened.stores.journal,
      queries,
      readModelOffset: opened.readModelOffset,
      // Every merchant is this node's.
      merchantIds: () => undefined,
    });
    closers.push(() => webhooks.stop());
    webhooks.holdProjection();
    webhooks.start();

    const orders = node.orders;
    addGatewayMetrics(metrics, opened.stores.journal, projection);
    addWebhookMetrics(metrics, webhooks);
    const app = await buildApp({
      metrics,
      orders,
      queries,
      refunds: node.refunds,
      // On PostgreSQL a lost database is answered 503 (retry) on the webhook routes too, as on the orders'.
      webhooks:
        opened.postgres === undefined
          ? webhooks.api(config)
          : { ...webhooks.api(config), store: webhookStoreAnsweringUnavailable(webhooks.store) },
      merchants: new MerchantDirectory(
        merchants.map((merchant) => ({ merchantId: merchant.id, apiKeyHash: merchant.apiKeyHash })),
      ),
      // Not ready while the read model is not being updated (its answers would be stale), nor while
      // the database does not answer (writes fail).
      ready: () => projection.status().state !== 'failed' && opened.reachable(),
      logger: logger.child({ component: 'api' }),
      accessLogLevel: config.accessLogLevel,
      waitDefaultMs: node.settings.orderService.waitDefaultMs,
      waitMaxMs: node.settings.orderService.waitMaxMs,
      readModelCaughtUp: () => projection.caughtUp(),
    });
    const address = await app.listen({ host: config.host, port: config.port });
    // Closing the server first lets requests in flight finish before the entities stop.
    closers.push(() => app.close());
    const port = app.server.address();
    const boundPort = typeof port === 'object' && port !== null ? port.port : config.port;
    logger.info({ url: address, bankUrl, dataDir, store: opened.where }, 'gateway ready');
    const close = async (): Promise<void> => {
      await closeAll();
      // The last line: whoever reads the log knows the gateway ended as asked, not mid-flight.
      logger.info({ url: address }, 'gateway stopped');
    };
    return { url: address, port: boundPort, bankUrl, dataDir, webhooks: webhooks.store, close };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/** The vault key from the configuration, or (for development) one generated into the data folder. */
export function vaultKey(config: Pick<StartConfig, 'vaultKey'>, dataDir: string): Buffer {
  if (config.vaultKey !== undefined) return Buffer.from(config.vaultKey, 'base64');
  const path = join(dataDir, 'vault.key');
  if (!existsSync(path)) writeFileSync(path, randomBytes(vaultKeyBytes).toString('base64'), { mode: 0o600 });
  const key = Buffer.from(readFileSync(path, 'utf8').trim(), 'base64');
  if (key.length !== vaultKeyBytes)
    throw new Error(`${path} does not hold a ${vaultKeyBytes}-byte base64 key`);
  return key;
}

/** The histogram of journal commit durations in `registry`, and the observer that fills it. */
export function commitDurationObserver(registry: Registry): (seconds: number) => void {
  const commitDuration = new Histogram({
    name: 'remit_journal_commit_duration_seconds',
    help: 'Journal batches from their hand-over to the writer until durable (queue, transaction, fsync)',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  return (seconds) => commitDuration.observe(seconds);
}

/** Process metrics plus the journal's write counters and the read model's lag behind it. */
export function addGatewayMetrics(
  registry: Registry,
  journal: Journal,
  projection: Pick<GatewayProjection, 'status' | 'stats'>,
): void {
  collectDefaultMetrics({ register: registry });
  const counters: Array<[string, string, (stats: JournalStats) => number]> = [
    ['remit_journal_appends_total', 'Appends committed to the journal', (stats) => stats.appends],
    ['remit_journal_events_total', 'Events committed to the journal', (stats) => stats.events],
    [
      'remit_journal_transactions_total',
      'Journal transactions (each one fsync)',
      (stats) => stats.transactions,
    ],
    [
      'remit_journal_failed_appends_total',
      'Appends the journal refused or failed',
      (stats) => stats.failedAppends,
    ],
  ];
  for (const [name, help, read] of counters) {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read(journal.stats()));
      },
    });
  }
  new Gauge({
    name: 'remit_read_model_offset',
    help: 'The journal offset the order read model has applied',
    registers: [registry],
    collect() {
      this.set(projection.status().offset);
    },
  });
  new Gauge({
    name: 'remit_read_model_batches_total',
    help: 'Batches the order projection applied since start',
    registers: [registry],
    collect() {
      this.set(projection.stats().batches);
    },
  });
  new Gauge({
    name: 'remit_read_model_projection_restarts_total',
    help: 'Times the order projection was restarted after ending unasked',
    registers: [registry],
    collect() {
      this.set(projection.status().restarts);
    },
  });
  new Gauge({
    name: 'remit_read_model_projection_failed',
    help: '1 while the order projection keeps failing and the read model is not being updated',
    registers: [registry],
    collect() {
      this.set(projection.status().state === 'failed' ? 1 : 0);
    },
  });
}

/** The webhook dispatcher's counters and queues, and the webhook projection's progress. */

/** The read model's writer as the gateway drives and watches it, on either store. */
export interface GatewayProjection extends NodeProjection {
  start(): void;
  caughtUp(): Promise<void>;
  status(): OrderProjectionStatus;
  stats(): OrderProjectionStats;
}

/** Every store of the node, the projection that keeps its read model, and how to close them. */
export interface GatewayStores {
  readonly stores: NodeStores;
  readonly projection: GatewayProjection;
  /** The journal offset the read model has applied, as its queries see it. */
  readModelOffset(): Promise<number>;
  /** False while the database does not answer (PostgreSQL); SQLite is a file, always there. */
  reachable(): boolean;
  /** Where the stores are, for the log: never a password. */
  readonly where: string;
  /** Stops the projection and closes the stores. */
  close(): Promise<void>;
}

/** The stores in PostgreSQL, with the store itself for the other tables of its schema (a cluster's). */
export interface PostgresGatewayStores extends GatewayStores {
  readonly postgres: PostgresStore;
  readonly readModel: PostgresOrderReadModel;
}

/** The stores in PostgreSQL without a projection: a cluster node runs the cluster's under a lease. */
export type PostgresNodeStores = Omit<PostgresGatewayStores, 'projection' | 'stores'> & {
  readonly stores: NodeStores & { readonly journal: PostgresJournal };
};

/** Journal, snapshots, vault and read model in SQLite files of the data folder. */
function openSqliteStores(
  dataDir: string,
  clock: Clock,
  logger: PinoLogger,
  onCommitted: (seconds: number) => void,
): GatewayStores {
  const closers: Array<() => Promise<void> | void> = [];
  try {
    // Journal, snapshot and vault writes run in one writer thread: fsyncs never block the event loop.
    const store = openSqliteStore({
      path: join(dataDir, 'journal.db'),
      writer: 'thread',
      onWriterFailure: (error) => logger.error({ err: error }, 'journal writer thread failed'),
      onCommitted,
    });
    closers.push(() => store.close());
    const vault = new SqliteVaultStorage(join(dataDir, 'vault.db'), store.writer);
    closers.push(() => vault.close());
    // The projection runs in the writer thread, as its guest, and is the read model's only writer;
    // this thread queries it over a read-only connection.
    const readModel = OrderReadModel.openForQueries(readModelPath(dataDir));
    closers.push(() => readModel.close());
    const projection = new OrderProjectionWorker({
      journalPath: store.path,
      readModelPath: readModel.path,
      clock,
      random: systemRandom,
      logger,
      ...(store.writer instanceof ThreadWriter ? { startThread: hostedThread(store.writer) } : {}),
    });
    closers.push(() => projection.stop());
    return {
      stores: {
        journal: store.journal,
        snapshots: store.snapshots,
        vault,
        queries: orderQueries(readModel, store.journal),
        refunds: readModel,
      },
      projection,
      readModelOffset: async () => readModel.offset(),
      reachable: () => true,
      where: `sqlite:${dataDir}`,
      close: () => closeInReverse(closers, logger),
    };
  } catch (error) {
    void closeInReverse(closers, logger);
    throw error;
  }
}

/** How often, and how long at most, the readiness probe asks PostgreSQL whether it answers. */
const databaseProbeIntervalMs = 1_000;
const databaseProbeTimeoutMs = 2_000;

/**
 * Journal, snapshots, vault and read model in one PostgreSQL schema. The projection runs in this
 * thread (its work is round trips to the database), supervised as the SQLite worker is. A
 * database that cannot be reached rejects with `DatabaseUnreachableError`.
 */
export async function openPostgresStores(
  settings: PostgresSettings,
  clock: Clock,
  logger: PinoLogger,
  onCommitted: (seconds: number) => void,
): Promise<PostgresGatewayStores> {
  const opened = await openPostgresNodeStores(settings, clock, logger, onCommitted);
  const projection = new SupervisedOrderProjection({
    journal: opened.stores.journal,
    readModel: opened.readModel,
    clock,
    random: systemRandom,
    logger,
  });
  return {
    ...opened,
    projection,
    close: async () => {
      await projection.stop();
      await opened.close();
    },
  };
}

/**
 * Journal, snapshots, vault and read model in one PostgreSQL schema, with no projection. A
 * database that cannot be reached rejects with `DatabaseUnreachableError`.
 */
export async function openPostgresNodeStores(
  settings: PostgresSettings,
  clock: Clock,
  logger: PinoLogger,
  onCommitted: (seconds: number) => void,
): Promise<PostgresNodeStores> {
  const log = logger.child({ component: 'postgres' });
  const store = await openPostgresStore({
    settings,
    clock,
    onCommitted,
    // node-postgres reports a connection the server ended as an 'error' event; the pool drops it and
    // the next query opens another, so a database that comes back is used again.
    onConnectionLost: (error) => log.warn({ error: error.message }, 'a PostgreSQL connection was lost'),
  });
  const closers: Array<() => Promise<void> | void> = [() => store.close()];
  try {
    const readModel = await PostgresOrderReadModel.open(store.pool, store.quotedSchema);
    const probe = new ReachabilityProbe(() => store.isReachable(), clock, log);
    closers.push(() => probe.stop());
    probe.start();
    return {
      stores: {
        journal: store.journal,
        snapshots: store.snapshots,
        vault: store.vault,
        queries: answeringUnavailable(orderQueries(readModel, store.journal)),
        refunds: refundsAnsweringUnavailable(readModel),
      },
      postgres: store,
      readModel,
      readModelOffset: () => readModel.offset(),
      reachable: () => probe.reachable,
      where: `postgresql:${describeDatabase(settings.url)} schema ${settings.schema}`,
      close: () => closeInReverse(closers, logger),
    };
  } catch (error) {
    await closeInReverse(closers, logger);
    throw error;
  }
}

/**
 * The read model's queries, with a database that cannot be used now answered as a 503 the client
 * may retry: an outage is no bug, and a 500 is kept for bugs.
 */
function answered<T>(query: Promise<T>): Promise<T> {
  return query.catch((error: unknown) => {
    if (!isDatabaseUnavailable(error)) throw error;
    throw new ApiError(
      503,
      'store_unavailable',
      'The gateway cannot read its database just now; retry shortly.',
      undefined,
      { 'retry-after': '1' },
    );
  });
}

/** The read model's refunds, with a lost database answered as `answeringUnavailable` does. */
function refundsAnsweringUnavailable(queries: RefundQueries): RefundQueries {
  return {
    getRefund: (merchantId, refundId) => answered(queries.getRefund(merchantId, refundId)),
    listRefunds: (merchantId, orderId) => answered(queries.listRefunds(merchantId, orderId)),
    pendingRefunds: (limit, afterRefundId) => answered(queries.pendingRefunds(limit, afterRefundId)),
  };
}

/** The webhook store as the API uses it, with a lost database answered as `answeringUnavailable` does. */
export function webhookStoreAnsweringUnavailable(store: WebhookStore): WebhookStore {
  return {
    createEndpoint: (endpoint) => answered(store.createEndpoint(endpoint)),
    getEndpoint: (merchantId, endpointId) => answered(store.getEndpoint(merchantId, endpointId)),
    listEndpoints: (merchantId) => answered(store.listEndpoints(merchantId)),
    updateEndpoint: (merchantId, endpointId, change) =>
      answered(store.updateEndpoint(merchantId, endpointId, change)),
    deleteEndpoint: (merchantId, endpointId) => answered(store.deleteEndpoint(merchantId, endpointId)),
    offset: () => answered(store.offset()),
    appendEvents: (events, toOffset, now) => answered(store.appendEvents(events, toOffset, now)),
    dueDeliveries: (query) => answered(store.dueDeliveries(query)),
    recordAttempt: (attempt, outcome) => answered(store.recordAttempt(attempt, outcome)),
    listDeliveries: (query) => answered(store.listDeliveries(query)),
    getDelivery: (merchantId, deliveryId) => answered(store.getDelivery(merchantId, deliveryId)),
    listAttempts: (deliveryId) => answered(store.listAttempts(deliveryId)),
    resendDelivery: (merchantId, deliveryId, now) =>
      answered(store.resendDelivery(merchantId, deliveryId, now)),
    close: () => store.close(),
  };
}

function answeringUnavailable(queries: OrderQueries): OrderQueries {
  return {
    getOrder: (merchantId, orderId) => answered(queries.getOrder(merchantId, orderId)),
    listOrders: (query) => answered(queries.listOrders(query)),
    orderEvents: (merchantId, orderId) => answered(queries.orderEvents(merchantId, orderId)),
  };
}

/**
 * Asks the database every `databaseProbeIntervalMs` whether it answers, one probe at a time, each
 * given up after `databaseProbeTimeoutMs`; readiness reads the last answer, so no request ever
 * waits on the database for it.
 */
class ReachabilityProbe {
  reachable = true;
  private timer: Cancellable | undefined;
  private stopped = false;

  constructor(
    private readonly ask: () => Promise<boolean>,
    private readonly clock: Clock,
    private readonly log: PinoLogger,
  ) {}

  start(): void {
    this.timer = this.clock.schedule(databaseProbeIntervalMs, () => void this.probe());
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  private async probe(): Promise<void> {
    let timeout: Cancellable | undefined;
    const answered = await Promise.race([
      this.ask(),
      new Promise<boolean>((resolve) => {
        timeout = this.clock.schedule(databaseProbeTimeoutMs, () => resolve(false));
      }),
    ]);
    timeout?.cancel();
    if (answered !== this.reachable) {
      if (answered) this.log.info({}, 'PostgreSQL answers again');
      else this.log.error({}, 'PostgreSQL does not answer: not ready');
    }
    this.reachable = answered;
    if (!this.stopped) this.start();
  }
}

async function closeInReverse(closers: Array<() => Promise<void> | void>, logger: PinoLogger): Promise<void> {
  for (const close of closers.splice(0).reverse()) {
    try {
      await close();
    } catch (error) {
      logger.error({ err: error }, 'error while stopping');
    }
  }
}
