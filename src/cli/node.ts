import { hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pino, { type Logger as PinoLogger } from 'pino';
import { Gauge, Registry } from 'prom-client';
import { buildApp, MerchantDirectory, problemSchema } from '../api/app.js';
import { BankClient } from '../bank/bank-client.js';
import { BankConnection, classifyBankError } from '../bank/bank-connection.js';
import type { ClusterSettings } from '../cluster/cluster-settings.js';
import { PostgresClusterStore } from '../cluster/postgres-cluster-store.js';
import { shardGroup, shardIdOf } from '../cluster/shards.js';
import { TcpTransport } from '../cluster/tcp-transport.js';
import { ApiError } from '../node/api-error.js';
import type { NodeMerchant } from '../node/assemble-node.js';
import { assembleClusterNode } from '../node/cluster-node.js';
import { demoConfig, demoMerchants } from '../node/demo-merchants.js';
import { defaultMerchantSettings } from '../payments/merchant.js';
import { merchantAddress } from '../payments/merchant-protocol.js';
import { persistenceIdOf } from '../persistence/entity.js';
import { LeasedOrderProjection } from '../readmodel/leased-order-projection.js';
import { AskTimeoutError } from '../runtime/actor.js';
import { type Clock, systemClock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { systemRandom } from '../runtime/random.js';
import { PostgresMerchants, type StoredMerchant } from '../store/postgres/postgres-merchants.js';
import { PostgresWebhookStore } from '../store/postgres/postgres-webhook-store.js';
import { reverseClosers } from './closers.js';
import { ConfigError, databaseSettings, type NodeConfig } from './config.js';
import {
  addGatewayMetrics,
  commitDurationObserver,
  openPostgresNodeStores,
  webhookStoreAnsweringUnavailable,
} from './gateway.js';
import { addWebhookMetrics, WebhookRuntime } from './webhooks.js';

export interface RunningClusterNode {
  readonly nodeId: string;
  readonly url: string;
  readonly port: number;
  /**
   * Graceful stop: stops taking requests, leaves the cluster (its shards are handed over to the
   * other nodes at once), then stops the entities and closes the stores.
   */
  close(): Promise<void>;
}

export interface ClusterNodeOptions {
  readonly clock?: Clock;
  readonly logger?: PinoLogger;
  /** Overrides the timing of the configuration (`config.cluster`), for tests running nodes in-process. */
  readonly cluster?: ClusterSettings;
}

/**
 * How boot waits for every Merchant to answer its configuration (shards are placed first): each
 * attempt asks them all and waits up to `attemptTimeoutMs`; 6 attempts make the minute a node
 * may take to boot. A configuration sent to a node that loses the shard on the way (it was paused,
 * or starved of CPU, and fenced itself) is lost with the link's at-most-once delivery; the next
 * attempt finds the shard's new owner. Configuring a Merchant again with the same settings changes
 * nothing.
 */
export const bootLimits = { attemptTimeoutMs: 10_000, attemptsMax: 6 } as const;

/**
 * Runs `boot` until it resolves, again after each attempt that ended in an ask's timeout, up to
 * `limits.attemptsMax` attempts; any other failure ends it at once.
 */
export async function bootPatiently(
  boot: (attemptTimeoutMs: number) => Promise<void>,
  limits: { readonly attemptTimeoutMs: number; readonly attemptsMax: number },
  logger: Pick<Logger, 'warn'>,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await boot(limits.attemptTimeoutMs);
      return;
    } catch (error) {
      if (!(error instanceof AskTimeoutError) || attempt >= limits.attemptsMax) throw error;
      logger.warn(
        { attempt, attemptsMax: limits.attemptsMax, error: error.message },
        'a merchant did not answer its configuration in time; asking again',
      );
    }
  }
}

/**
 * The read model's shard group: one shard, any node. Its lease names the one node of the cluster
 * that runs the order projection (see `LeasedOrderProjection`).
 */
export const readModelGroup = shardGroup('read-model', undefined, 1);
export const readModelShard = shardIdOf(readModelGroup, 0);
/**
 * The webhook projection's shard group: one shard, any node. Its lease names the one node that
 * derives webhook events from the journal; every node sends the deliveries of the merchants whose
 * shards it owns.
 */
export const webhooksGroup = shardGroup('webhooks', undefined, 1);
export const webhooksShard = shardIdOf(webhooksGroup, 0);
const webhookProjectionEntity = 'webhook-projection';
/** The name `GET /admin/cluster` lists in the read model shard's entities. */
const orderProjectionEntity = 'order-projection';

/**
 * The cluster secret, derived from the vault key with HKDF-SHA256: nodes that share
 * `REMIT_VAULT_KEY` share it without another secret to distribute, and the transport's handshake
 * proves it without revealing the vault key (HKDF is one-way).
 */
export function clusterSecretOf(vaultKey: Buffer): string {
  return Buffer.from(
    hkdfSync('sha256', vaultKey, Buffer.from('remit cluster'), Buffer.from('tcp transport secret'), 32),
  ).toString('base64');
}

/**
 * `remit node`: one node of a cluster. Every store is in the shared PostgreSQL schema (journal,
 * snapshots, vault, read model, membership and shard leases, merchants); the node joins the
 * membership with its roles, owns the shards `ShardManager` places on it (a bank's Executors only
 * on nodes with that bank's role), reaches the entities of other nodes' shards over
 * `TcpTransport`, and answers every merchant's API. When the database holds no merchants, exactly
 * one node creates the demo merchants and writes their keys and the admin token to its
 * `credentials.json`.
 */
export async function startClusterNode(
  config: NodeConfig,
  options: ClusterNodeOptions = {},
): Promise<RunningClusterNode> {
  const clock = options.clock ?? systemClock;
  const cluster = options.cluster ?? config.cluster;
  const logger =
    options.logger ?? pino({ level: config.logLevel, base: { service: 'remit', nodeId: config.nodeId } });
  const dataDir = resolve(config.data);
  mkdirSync(dataDir, { recursive: true });
  const { closers, closeAll } = reverseClosers(logger);

  try {
    const database = databaseSettings(config);
    if (database === undefined) throw new ConfigError('invalid --database-url: a node needs PostgreSQL');
    const metrics = new Registry();
    const opened = await openPostgresNodeStores(database, clock, logger, commitDurationObserver(metrics));
    closers.push(() => opened.close());
    const { postgres } = opened;
    // One projection for the cluster, run where the read model's lease is: every node writing the
    // one read model would only make the projections refuse each other's batches.
    const projection = new LeasedOrderProjection({
      journal: opened.stores.journal,
      readModel: opened.readModel,
      clock,
      random: systemRandom,
      logger,
    });
    closers.push(() => projection.stop());
    const vaultKey = Buffer.from(config.vaultKey, 'base64');

    const directory = new PostgresMerchants(postgres.pool, postgres.quotedSchema);
    await createDemoMerchantsOnce(directory, dataDir, logger);
    const stored = await directory.merchants();
    const merchants: NodeMerchant[] = stored.map((merchant) => ({
      id: merchant.id,
      config: demoConfig(merchant.bank),
    }));
    const adminTokenHashes = await directory.adminTokenHashes();

    const bankClient = new BankClient({
      baseUrl: config.bankUrl,
      requestTimeoutMs: config.bankTimeoutMs,
      authorizationBatchMax: config.bankBatchMax,
      clock,
    });
    closers.push(() => bankClient.close());

    const transport = await TcpTransport.listen({
      nodeId: config.nodeId,
      host: config.host,
      port: config.clusterPort,
      clusterSecret: clusterSecretOf(vaultKey),
      clock,
      random: systemRandom,
      logger: logger.child({ component: 'cluster' }),
    });
    closers.push(() => transport.close());

    const clusterStore = new PostgresClusterStore(postgres.pool, postgres.quotedSchema, cluster);
    // Assigned below: the dispatcher asks it which merchants' shards this node owns at every poll.
    let ownedMerchants: () => readonly string[] = () => [];
    const webhooks = new WebhookRuntime({
      store: new PostgresWebhookStore(postgres.pool, postgres.quotedSchema),
      config,
      clock,
      logger,
      journal: opened.stores.journal,
      queries: opened.stores.queries,
      readModelOffset: opened.readModelOffset,
      merchantIds: () => ownedMerchants(),
    });
    closers.push(() => webhooks.stop());
    const { node, shards } = assembleClusterNode({
      store: clusterStore,
      transport,
      self: { nodeId: config.nodeId, address: `${config.host}:${transport.port}`, roles: config.roles },
      cluster,
      merchants,
      singletons: [
        {
          group: readModelGroup,
          hold: (fence) => void projection.hold(fence),
          release: () => projection.release(),
        },
        {
          group: webhooksGroup,
          hold: () => webhooks.holdProjection(),
          release: () => webhooks.releaseProjection(),
        },
      ],
      stores: opened.stores,
      vaultKey,
      bank: new BankConnection(bankClient),
      classifyBankError,
      clock,
      random: systemRandom,
      logger: logger.child({ component: 'actors' }),
      shardsLogger: logger.child({ component: 'shards' }),
      messengerLogger: logger.child({ component: 'messenger' }),
      projection,
      settings: {
        merchant: { ...defaultMerchantSettings, executionDeadlineMs: config.executionDeadlineMs },
      },
    });
    closers.push(() => node.close());

    ownedMerchants = () => {
      const owned = new Set(shards.ownedShards());
      return merchants.flatMap((merchant) =>
        owned.has(shards.shardOf(merchantAddress(merchant.id))) ? [merchant.id] : [],
      );
    };
    webhooks.start();
    addGatewayMetrics(metrics, opened.stores.journal, projection);
    addWebhookMetrics(metrics, webhooks);
    new Gauge({
      name: 'remit_read_model_projection_held',
      help: '1 while this node holds the read model lease and runs the order projection',
      registers: [metrics],
      collect() {
        this.set(projection.holding() ? 1 : 0);
      },
    });
    const app = await buildApp({
      metrics,
      orders: node.orders,
      queries: opened.stores.queries,
      refunds: node.refunds,
      // A lost database is answered 503 (retry) on the webhook routes, as on the orders'.
      webhooks: { ...webhooks.api(config), store: webhookStoreAnsweringUnavailable(webhooks.store) },
      merchants: new MerchantDirectory(
        stored.map((merchant) => ({ merchantId: merchant.id, apiKeyHash: merchant.apiKeyHash })),
      ),
      // Ready only while this node is a live member (it may own shards) and the database answers;
      // the read model's freshness counts only where the projection runs (another node takes the
      // lease of a holder that stops).
      ready: () =>
        opened.reachable() &&
        shards.isLiveMember() &&
        !(projection.holding() && projection.status().state === 'failed'),
      logger: logger.child({ component: 'api' }),
      accessLogLevel: config.accessLogLevel,
      waitDefaultMs: node.settings.orderService.waitDefaultMs,
      waitMaxMs: node.settings.orderService.waitMaxMs,
      readModelCaughtUp: () => projection.caughtUp(),
    });
    app.get('/admin/cluster', { schema: clusterViewSchema }, async (request) => {
      if (!isAdmin(request.headers.authorization, adminTokenHashes))
        throw new ApiError(401, 'unauthorized', 'Give the admin token as a Bearer token.');
      const [membership, leaseView] = await Promise.all([clusterStore.members(), clusterStore.leases()]);
      const entitiesByShard = new Map<string, string[]>();
      for (const address of node.entitiesOf(merchants)) {
        const shardId = shards.shardOf(address);
        entitiesByShard.set(shardId, [...(entitiesByShard.get(shardId) ?? []), persistenceIdOf(address)]);
      }
      entitiesByShard.set(readModelShard, [orderProjectionEntity]);
      entitiesByShard.set(webhooksShard, [webhookProjectionEntity]);
      return {
        members: membership.members.map((member) => ({
          nodeId: member.nodeId,
          url: member.address,
          roles: member.roles,
          state: member.state,
          lastHeartbeatAt: new Date(membership.now - member.heartbeatAgeMs).toISOString(),
        })),
        shards: leaseView.leases.map((lease) => ({
          shard: lease.shardId,
          owner: lease.acquirable ? null : (lease.owner ?? null),
          epoch: lease.epoch,
          entities: entitiesByShard.get(lease.shardId) ?? [],
        })),
        settings: cluster,
      };
    });
    // The app's schemas compile here, a second or more of CPU on a busy machine: before the node
    // holds any lease, so the work cannot starve lease renewal and make the node fence itself.
    await app.ready();

    await shards.start();
    // Handing the shards over comes after the API stops and before the entities stop (reverse order).
    closers.push(() => shards.leave());
    // Configures every Merchant wherever its shard is; the owners start the Executors of theirs.
    const booting = node;
    await bootPatiently((timeoutMs) => booting.boot(merchants, timeoutMs), bootLimits, logger);

    const address = await app.listen({ host: config.host, port: config.port });
    closers.push(() => app.close());
    const bound = app.server.address();
    const port = typeof bound === 'object' && bound !== null ? bound.port : config.port;
    logger.info(
      { url: address, clusterPort: transport.port, roles: config.roles, store: opened.where },
      'node ready',
    );
    return {
      nodeId: config.nodeId,
      url: address,
      port,
      close: async () => {
        await closeAll();
        logger.info({ url: address }, 'node stopped');
      },
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

const clusterViewSchema = {
  summary: 'The cluster as this node sees it: members, shard owners, timing settings (admin token)',
  tags: ['operations'],
  response: {
    200: {
      type: 'object',
      properties: {
        members: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              nodeId: { type: 'string' },
              url: { type: 'string' },
              roles: { type: 'array', items: { type: 'string' } },
              state: { type: 'string', enum: ['up', 'leaving', 'down'] },
              lastHeartbeatAt: { type: 'string' },
            },
            required: ['nodeId', 'url', 'roles', 'state', 'lastHeartbeatAt'],
          },
        },
        shards: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              shard: { type: 'string' },
              owner: { type: ['string', 'null'] },
              epoch: { type: 'integer' },
              entities: { type: 'array', items: { type: 'string' } },
            },
            required: ['shard', 'owner', 'epoch', 'entities'],
          },
        },
        settings: { type: 'object', additionalProperties: { type: 'integer' } },
      },
      required: ['members', 'shards', 'settings'],
    },
    401: problemSchema,
  },
} as const;

/**
 * Creates the demo merchants and an admin token when the database holds no merchants; only the
 * node whose insert won writes the plain keys and token to its `credentials.json`.
 */
async function createDemoMerchantsOnce(
  directory: PostgresMerchants,
  dataDir: string,
  logger: PinoLogger,
): Promise<void> {
  const credentials = demoMerchants.map((merchant) => ({
    id: merchant.id,
    bank: merchant.bank,
    apiKey: `sk_test_${randomBytes(24).toString('base64url')}`,
  }));
  const adminToken = `adm_${randomBytes(24).toString('base64url')}`;
  const records: StoredMerchant[] = credentials.map((entry) => ({
    id: entry.id,
    bank: entry.bank,
    apiKeyHash: MerchantDirectory.hashKey(entry.apiKey),
  }));
  if (!(await directory.createIfEmpty(records, MerchantDirectory.hashKey(adminToken)))) return;
  const path = join(dataDir, 'credentials.json');
  writeFileSync(path, `${JSON.stringify({ merchants: credentials, adminToken }, null, 2)}\n`, {
    mode: 0o600,
  });
  logger.info({ path }, 'created the demo merchants; their keys and the admin token are in credentials.json');
}

function isAdmin(authorization: string | undefined, tokenHashes: readonly string[]): boolean {
  const match = /^Bearer (\S+)$/.exec(authorization ?? '');
  if (match?.[1] === undefined) return false;
  const given = Buffer.from(MerchantDirectory.hashKey(match[1]), 'hex');
  return tokenHashes.some((hash) => timingSafeEqual(Buffer.from(hash, 'hex'), given));
}
