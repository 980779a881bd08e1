import { parseArgs } from 'node:util';
import { z } from 'zod';
import { defaultAuthorizationBatchMax } from '../bank/bank-client.js';
import { batchPaymentsMax } from '../bank/bank-schemas.js';
import { clusterSettingsSchema, defaultClusterSettings } from '../cluster/cluster-settings.js';
import {
  defaultPostgresSettings,
  type PostgresSettings,
  postgresSettings,
} from '../store/postgres/postgres-settings.js';
import { defaultWebhookDeliverySettings } from '../webhooks/retry-schedule.js';

/**
 * Configuration of `remit start` and `remit bank`: flags first, then `REMIT_*` environment
 * variables, then defaults. Anything wrong is a `ConfigError` with a sentence a person can act on;
 * the command prints it and exits with code 2.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const port = z.coerce
  .number({ error: 'must be a number' })
  .int('must be a whole number')
  .min(0, 'must be 0 to 65535')
  .max(65_535, 'must be 0 to 65535');
const host = z.string().min(1, 'must not be empty');
const wholeNumber = z.coerce.number({ error: 'must be a number' }).int('must be a whole number');
const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

const startSchema = z
  .object({
    host,
    port,
    data: z.string().min(1, 'must not be empty'),
    bankUrl: z.url({ error: 'must be a URL such as http://127.0.0.1:8081' }).optional(),
    bankPort: port,
    vaultKey: z
      .string()
      .regex(/^[A-Za-z0-9+/]{43}=$/, 'must be 32 bytes in base64 (44 characters)')
      .optional(),
    logLevel,
    accessLogLevel: logLevel,
    executionDeadlineMs: z.coerce.number().int('must be a whole number').min(1_000, 'must be at least 1000'),
    bankTimeoutMs: z.coerce.number().int('must be a whole number').min(100, 'must be at least 100'),
    bankBatchMax: z.coerce
      .number()
      .int('must be a whole number')
      .min(1, 'must be 1 to 1024')
      .max(batchPaymentsMax, `must be 1 to ${batchPaymentsMax}`),
    // Without a URL every store is SQLite in the data folder. The message never repeats the value:
    // a URL may hold a password.
    databaseUrl: z
      .string()
      .regex(/^postgres(ql)?:\/\/\S+$/, 'must be a URL such as postgresql://user:password@host:5432/database')
      .optional(),
    databaseSchema: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be 1 to 63 lower-case letters, digits and underscores'),
    databasePoolSize: z.coerce
      .number()
      .int('must be a whole number')
      .min(1, 'must be 1 to 1000')
      .max(1_000, 'must be 1 to 1000'),
    databaseStatementTimeoutMs: z.coerce.number().int('must be a whole number').min(1, 'must be at least 1'),
    databaseIdleInTransactionTimeoutMs: z.coerce
      .number()
      .int('must be a whole number')
      .min(1, 'must be at least 1'),
    // The webhook retry schedule's cap and each attempt's timeout (retry-schedule.ts): short ones
    // let a test or a chaos run see every delivery through within the run.
    webhookRetryDelayMaxMs: z.coerce.number().int('must be a whole number').min(1, 'must be at least 1'),
    webhookAttemptTimeoutMs: z.coerce.number().int('must be a whole number').min(1, 'must be at least 1'),
    // Whether webhook endpoints may be http and on any address (loopback, private): for development
    // and tests whose receivers listen on 127.0.0.1. The node's `WebhookUrlPolicy.allowInsecure`.
    webhooksAllowInsecure: z
      .enum(['true', 'false'], { error: 'REMIT_WEBHOOKS_ALLOW_INSECURE must be true or false' })
      .transform((value) => value === 'true'),
  })
  .strict();

/**
 * `remit node`: one node of a cluster. PostgreSQL, the bank's URL and the vault key are required
 * (every node of a cluster shares the database and the key); roles name the banks whose Executors
 * the node may run.
 */
const nodeSchema = startSchema
  .omit({ bankPort: true })
  .extend({
    bankUrl: z.url({ error: 'must be a URL such as http://127.0.0.1:8081' }),
    vaultKey: z
      .string({ error: 'REMIT_VAULT_KEY must be set (32 bytes in base64, the same on every node)' })
      .regex(/^[A-Za-z0-9+/]{43}=$/, 'must be 32 bytes in base64 (44 characters)'),
    databaseUrl: z
      .string({ error: 'is required: every node of a cluster shares one PostgreSQL database' })
      .regex(
        /^postgres(ql)?:\/\/\S+$/,
        'must be a URL such as postgresql://user:password@host:5432/database',
      ),
    nodeId: z
      .string({ error: 'is required (a name unique in the cluster, e.g. node-1)' })
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be 1 to 63 lower-case letters, digits and dashes'),
    clusterPort: port,
    roles: z
      .string()
      .transform((value) =>
        value
          .split(',')
          .map((role) => role.trim())
          .filter((role) => role.length > 0),
      )
      .pipe(z.array(z.string().regex(/^[a-z0-9-]+$/, 'must be names such as bank-a,bank-b'))),
    heartbeatIntervalMs: wholeNumber,
    memberTimeoutMs: wholeNumber,
    leaseTtlMs: wholeNumber,
    leaseRenewIntervalMs: wholeNumber,
    shardCount: wholeNumber,
    rebalanceShardsMax: wholeNumber,
  })
  .strict()
  // The cluster's timing is checked by its own schema (limits and how the settings relate), whose
  // issues keep their field names, so a refusal names the flag to change.
  .transform((input, context) => {
    const {
      heartbeatIntervalMs,
      memberTimeoutMs,
      leaseTtlMs,
      leaseRenewIntervalMs,
      shardCount,
      rebalanceShardsMax,
      ...node
    } = input;
    const cluster = clusterSettingsSchema.safeParse({
      heartbeatIntervalMs,
      memberTimeoutMs,
      leaseTtlMs,
      leaseRenewIntervalMs,
      shardCount,
      rebalanceShardsMax,
    });
    if (!cluster.success) {
      for (const issue of cluster.error.issues)
        context.addIssue({ code: 'custom', path: issue.path, message: issue.message });
      return z.NEVER;
    }
    return { ...node, cluster: cluster.data };
  });

const bankSchema = z.object({ host, port, data: z.string().min(1, 'must not be empty'), logLevel }).strict();

/** Most nodes `remit cluster` starts: each is a process of its own on one machine. */
export const clusterNodesMax = 16;

/**
 * `remit cluster`: PostgreSQL, the bank and N nodes on one machine. Nodes listen on consecutive
 * ports from `port` (0: each on a free port), so the last one must still be a port.
 */
const clusterSchema = z
  .object({
    nodes: z.coerce
      .number({ error: 'must be a number' })
      .int('must be a whole number')
      .min(1, `must be 1 to ${clusterNodesMax}`)
      .max(clusterNodesMax, `must be 1 to ${clusterNodesMax}`),
    host,
    port,
    bankPort: port,
    data: z.string().min(1, 'must not be empty'),
    vaultKey: startSchema.shape.vaultKey,
    logLevel,
  })
  .strict()
  .refine((config) => config.port === 0 || config.port + config.nodes - 1 <= 65_535, {
    error: 'leaves no room for a port per node below 65536',
    path: ['port'],
  });

export type StartConfig = z.infer<typeof startSchema>;
export type BankConfig = z.infer<typeof bankSchema>;
export type NodeConfig = z.output<typeof nodeSchema>;
export type ClusterConfig = z.infer<typeof clusterSchema>;

type Environment = Readonly<Record<string, string | undefined>>;

const startOptions = {
  host: { type: 'string' },
  port: { type: 'string' },
  data: { type: 'string' },
  'bank-url': { type: 'string' },
  'bank-port': { type: 'string' },
  'log-level': { type: 'string' },
  'access-log-level': { type: 'string' },
  'execution-deadline-ms': { type: 'string' },
  'bank-timeout-ms': { type: 'string' },
  'bank-batch-max': { type: 'string' },
  'database-url': { type: 'string' },
  'database-schema': { type: 'string' },
  'database-pool-size': { type: 'string' },
  'database-statement-timeout-ms': { type: 'string' },
  'database-idle-in-transaction-timeout-ms': { type: 'string' },
  'webhooks-allow-insecure': { type: 'boolean' },
  'webhook-retry-delay-max-ms': { type: 'string' },
  'webhook-attempt-timeout-ms': { type: 'string' },
} as const;

const nodeOptions = {
  ...startOptions,
  'node-id': { type: 'string' },
  'cluster-port': { type: 'string' },
  roles: { type: 'string' },
  'heartbeat-interval-ms': { type: 'string' },
  'member-timeout-ms': { type: 'string' },
  'lease-ttl-ms': { type: 'string' },
  'lease-renew-interval-ms': { type: 'string' },
  'shard-count': { type: 'string' },
  'rebalance-shards-max': { type: 'string' },
} as const;

const clusterOptions = {
  nodes: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  'bank-port': { type: 'string' },
  data: { type: 'string' },
  'log-level': { type: 'string' },
} as const;

const bankOptions = {
  host: { type: 'string' },
  port: { type: 'string' },
  data: { type: 'string' },
  'log-level': { type: 'string' },
} as const;

export function parseStartConfig(args: readonly string[], env: Environment): StartConfig {
  return validate(startSchema, parseStartInput(parseFlags(args, startOptions), env));
}

/** The raw values of `remit start`'s settings, flags before environment before defaults. */
function parseStartInput(
  flags: FlagValues<typeof startOptions>,
  env: Environment,
): Record<string, string | undefined> {
  return {
    host: flags.host ?? env.REMIT_HOST ?? '127.0.0.1',
    port: flags.port ?? env.REMIT_PORT ?? '8080',
    data: flags.data ?? env.REMIT_DATA ?? './data',
    bankUrl: flags['bank-url'] ?? env.REMIT_BANK_URL,
    bankPort: flags['bank-port'] ?? env.REMIT_BANK_PORT ?? '8081',
    vaultKey: env.REMIT_VAULT_KEY,
    logLevel: flags['log-level'] ?? env.REMIT_LOG_LEVEL ?? 'info',
    accessLogLevel: flags['access-log-level'] ?? env.REMIT_ACCESS_LOG_LEVEL ?? 'info',
    executionDeadlineMs: flags['execution-deadline-ms'] ?? env.REMIT_EXECUTION_DEADLINE_MS ?? '60000',
    bankTimeoutMs: flags['bank-timeout-ms'] ?? env.REMIT_BANK_TIMEOUT_MS ?? '10000',
    bankBatchMax: flags['bank-batch-max'] ?? env.REMIT_BANK_BATCH_MAX ?? String(defaultAuthorizationBatchMax),
    databaseUrl: flags['database-url'] ?? env.REMIT_DATABASE_URL ?? env.DATABASE_URL,
    databaseSchema: flags['database-schema'] ?? env.REMIT_DATABASE_SCHEMA ?? defaultPostgresSettings.schema,
    databasePoolSize:
      flags['database-pool-size'] ??
      env.REMIT_DATABASE_POOL_SIZE ??
      String(defaultPostgresSettings.poolSizeMax),
    databaseStatementTimeoutMs:
      flags['database-statement-timeout-ms'] ??
      env.REMIT_DATABASE_STATEMENT_TIMEOUT_MS ??
      String(defaultPostgresSettings.statementTimeoutMs),
    databaseIdleInTransactionTimeoutMs:
      flags['database-idle-in-transaction-timeout-ms'] ??
      env.REMIT_DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS ??
      String(defaultPostgresSettings.idleInTransactionSessionTimeoutMs),
    // The flag only turns it on; without the flag the variable decides.
    webhookRetryDelayMaxMs:
      flags['webhook-retry-delay-max-ms'] ??
      env.REMIT_WEBHOOK_RETRY_DELAY_MAX_MS ??
      String(defaultWebhookDeliverySettings.retryDelayMaxMs),
    webhookAttemptTimeoutMs:
      flags['webhook-attempt-timeout-ms'] ??
      env.REMIT_WEBHOOK_ATTEMPT_TIMEOUT_MS ??
      String(defaultWebhookDeliverySettings.attemptTimeoutMs),
    webhooksAllowInsecure: flags['webhooks-allow-insecure']
      ? 'true'
      : (env.REMIT_WEBHOOKS_ALLOW_INSECURE ?? 'false'),
  };
}

export function parseNodeConfig(args: readonly string[], env: Environment): NodeConfig {
  const { 'bank-port': bankPort, ...flags } = parseFlags(args, nodeOptions);
  if (env.REMIT_VAULT_KEY === undefined)
    throw new ConfigError(
      'REMIT_VAULT_KEY must be set for a node: the card vault key, 32 bytes in base64, the same on every node of the cluster',
    );
  if (bankPort !== undefined)
    throw new ConfigError('invalid --bank-port: a node never runs a bank simulator; give --bank-url');
  const start = parseStartInput(flags, env);
  const { bankPort: _ignored, ...shared } = start;
  return validate(nodeSchema, {
    ...shared,
    nodeId: flags['node-id'] ?? env.REMIT_NODE_ID,
    clusterPort: flags['cluster-port'] ?? env.REMIT_CLUSTER_PORT ?? '7070',
    roles: flags.roles ?? env.REMIT_ROLES ?? '',
    heartbeatIntervalMs:
      flags['heartbeat-interval-ms'] ??
      env.REMIT_HEARTBEAT_INTERVAL_MS ??
      String(defaultClusterSettings.heartbeatIntervalMs),
    memberTimeoutMs:
      flags['member-timeout-ms'] ??
      env.REMIT_MEMBER_TIMEOUT_MS ??
      String(defaultClusterSettings.memberTimeoutMs),
    leaseTtlMs: flags['lease-ttl-ms'] ?? env.REMIT_LEASE_TTL_MS ?? String(defaultClusterSettings.leaseTtlMs),
    leaseRenewIntervalMs:
      flags['lease-renew-interval-ms'] ??
      env.REMIT_LEASE_RENEW_INTERVAL_MS ??
      String(defaultClusterSettings.leaseRenewIntervalMs),
    shardCount: flags['shard-count'] ?? env.REMIT_SHARD_COUNT ?? String(defaultClusterSettings.shardCount),
    rebalanceShardsMax:
      flags['rebalance-shards-max'] ??
      env.REMIT_REBALANCE_SHARDS_MAX ??
      String(defaultClusterSettings.rebalanceShardsMax),
  });
}

export function parseBankConfig(args: readonly string[], env: Environment): BankConfig {
  const flags = parseFlags(args, bankOptions);
  return validate(bankSchema, {
    host: flags.host ?? env.REMIT_BANK_HOST ?? '127.0.0.1',
    port: flags.port ?? env.REMIT_BANK_PORT ?? '8081',
    data: flags.data ?? env.REMIT_BANK_DATA ?? './bank-data',
    logLevel: flags['log-level'] ?? env.REMIT_LOG_LEVEL ?? 'info',
  });
}

/**
 * `remit cluster`'s settings. Its own data folder by default (`./cluster-data`, beside `remit
 * bank`'s `./bank-data`), never `remit start`'s `./data`, whose credentials file is another
 * gateway's. The bank listens on a free port unless one is given: nodes get its URL at each start.
 */
export function parseClusterConfig(args: readonly string[], env: Environment): ClusterConfig {
  const flags = parseFlags(args, clusterOptions);
  return validate(clusterSchema, {
    nodes: flags.nodes ?? env.REMIT_NODES ?? '3',
    host: flags.host ?? env.REMIT_HOST ?? '127.0.0.1',
    port: flags.port ?? env.REMIT_PORT ?? '8080',
    bankPort: flags['bank-port'] ?? env.REMIT_BANK_PORT ?? '0',
    data: flags.data ?? env.REMIT_DATA ?? './cluster-data',
    vaultKey: env.REMIT_VAULT_KEY,
    logLevel: flags['log-level'] ?? env.REMIT_LOG_LEVEL ?? 'info',
  });
}

type FlagOptions = Record<string, { type: 'string' } | { type: 'boolean' }>;

/** The values of flags given: a string for a flag that takes one, `true` for a switch. */
type FlagValues<O extends FlagOptions> = {
  readonly [K in keyof O]?: O[K] extends { type: 'boolean' } ? boolean : string;
};

function parseFlags<O extends FlagOptions>(args: readonly string[], options: O): FlagValues<O> {
  try {
    const { values } = parseArgs({ args: [...args], options, strict: true, allowPositionals: false });
    return values as FlagValues<O>;
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : String(error));
  }
}

function validate<T>(schema: z.ZodType<T>, input: Record<string, unknown>): T {
  const defined = Object.fromEntries(Object.entries(input).filter(([, value]) => value !== undefined));
  const result = schema.safeParse(defined);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue?.path.join('.') ?? 'configuration';
  // The vault key has no flag: a key on the command line would sit in the shell's history.
  const flag =
    field === 'vaultKey'
      ? 'REMIT_VAULT_KEY'
      : `--${String(field).replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`;
  throw new ConfigError(`invalid ${flag}: ${issue?.message ?? 'not valid'}`);
}

/** The PostgreSQL settings `remit start` names, or undefined when the node runs on SQLite. */
export function databaseSettings(
  config: Pick<
    StartConfig,
    | 'databaseUrl'
    | 'databaseSchema'
    | 'databasePoolSize'
    | 'databaseStatementTimeoutMs'
    | 'databaseIdleInTransactionTimeoutMs'
  >,
): PostgresSettings | undefined {
  if (config.databaseUrl === undefined) return undefined;
  return postgresSettings({
    url: config.databaseUrl,
    schema: config.databaseSchema,
    poolSizeMax: config.databasePoolSize,
    statementTimeoutMs: config.databaseStatementTimeoutMs,
    idleInTransactionSessionTimeoutMs: config.databaseIdleInTransactionTimeoutMs,
    // The client's own limit stays behind the server's, so the server's cancellation comes first.
    queryTimeoutMs: Math.max(
      defaultPostgresSettings.queryTimeoutMs,
      config.databaseStatementTimeoutMs +
        defaultPostgresSettings.queryTimeoutMs -
        defaultPostgresSettings.statementTimeoutMs,
    ),
  });
}
