import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { freePort, ManagedProcess } from '../chaos/processes.js';
import type { ClusterSettings } from '../cluster/cluster-settings.js';
import { dropSchema, testSchemaName } from './postgres-test-schema.js';

/**
 * Real `remit node` processes as one cluster for end-to-end tests of node faults: a bank simulator
 * process, and nodes on fixed loopback ports (HTTP and cluster), so a killed node starts again with
 * the same id and the same addresses. They share a schema of their own in the test run's
 * PostgreSQL. Every process is a `ManagedProcess`: SIGKILL, SIGSTOP, SIGCONT and SIGTERM go to
 * its pid, and nothing is stopped by name.
 */

export interface ClusterNodeSpec {
  readonly nodeId: string;
  readonly roles: readonly string[];
}

export interface NodeClusterOptions {
  readonly databaseUrl: string;
  readonly nodes: readonly ClusterNodeSpec[];
  readonly settings: ClusterSettings;
  /** The nodes' `--execution-deadline-ms`. */
  readonly executionDeadlineMs: number;
  /** The nodes' `--bank-timeout-ms`. */
  readonly bankTimeoutMs: number;
  /** More arguments every node is started with (webhook flags, say). */
  readonly nodeArgs?: readonly string[];
}

export interface ClusterNode {
  readonly nodeId: string;
  readonly url: string;
  readonly process: ManagedProcess;
}

const credentialsSchema = z.object({
  merchants: z.array(z.object({ id: z.string(), bank: z.string(), apiKey: z.string() })),
  adminToken: z.string(),
});
export type ClusterCredentials = z.infer<typeof credentialsSchema>;

const clusterViewSchema = z.object({
  members: z.array(
    z.object({
      nodeId: z.string(),
      url: z.string(),
      roles: z.array(z.string()),
      state: z.enum(['up', 'leaving', 'down']),
      lastHeartbeatAt: z.string(),
    }),
  ),
  shards: z.array(
    z.object({
      shard: z.string(),
      owner: z.string().nullable(),
      epoch: z.number(),
      entities: z.array(z.string()),
    }),
  ),
  settings: z.record(z.string(), z.number()),
});
export type ClusterView = z.infer<typeof clusterViewSchema>;

/** Bounds of the helper's own waits and calls. */
const limits = {
  /** A node's start: PostgreSQL migrations, joining, placing shards, booting the merchants. */
  nodeReadyTimeoutMs: 90_000,
  /** SIGTERM may take this long (handing shards over, closing stores) before SIGKILL. */
  nodeStopTimeoutMs: 20_000,
  /** Output kept per process: enough for every warning of a test, read by its assertions. */
  outputTailChars: 4_000_000,
  adminCallTimeoutMs: 5_000,
  /** Attempts to find distinct free ports. */
  portAttemptsMax: 50,
};

export class NodeCluster {
  private constructor(
    readonly folder: string,
    readonly schema: string,
    readonly bank: ManagedProcess,
    readonly bankUrl: string,
    readonly nodes: ReadonlyMap<string, ClusterNode>,
    readonly credentials: ClusterCredentials,
    private readonly databaseUrl: string,
  ) {}

  /** Starts the bank, then every node at once (they race to create the demo merchants). */
  static async start(options: NodeClusterOptions): Promise<NodeCluster> {
    const folder = mkdtempSync(join(tmpdir(), 'remit-e2e-node-cluster-'));
    const schema = testSchemaName('node_cluster');
    const ports = await distinctFreePorts(1 + options.nodes.length * 2);
    const take = (): number => {
      const port = ports.shift();
      if (port === undefined) throw new Error('ran out of ports');
      return port;
    };
    const bankUrl = `http://127.0.0.1:${take()}`;
    const processSettings = {
      readyTimeoutMs: limits.nodeReadyTimeoutMs,
      readyPollIntervalMs: 100,
      stopTimeoutMs: limits.nodeStopTimeoutMs,
      outputTailChars: limits.outputTailChars,
    };
    const bank = new ManagedProcess(
      {
        name: 'bank',
        args: [
          'bank',
          '--port',
          new URL(bankUrl).port,
          '--data',
          join(folder, 'bank'),
          '--log-level',
          'warn',
        ],
        healthUrl: `${bankUrl}/health`,
      },
      processSettings,
    );
    const env = { REMIT_VAULT_KEY: randomBytes(32).toString('base64') };
    const nodes = new Map<string, ClusterNode>();
    for (const spec of options.nodes) {
      const port = take();
      const url = `http://127.0.0.1:${port}`;
      const managed = new ManagedProcess(
        {
          name: spec.nodeId,
          args: [
            'node',
            '--node-id',
            spec.nodeId,
            '--port',
            String(port),
            '--cluster-port',
            String(take()),
            '--roles',
            spec.roles.join(','),
            '--bank-url',
            bankUrl,
            '--database-url',
            options.databaseUrl,
            '--database-schema',
            schema,
            '--database-pool-size',
            '8',
            '--data',
            join(folder, spec.nodeId),
            '--execution-deadline-ms',
            String(options.executionDeadlineMs),
            '--bank-timeout-ms',
            String(options.bankTimeoutMs),
            '--access-log-level',
            'silent',
            '--heartbeat-interval-ms',
            String(options.settings.heartbeatIntervalMs),
            '--member-timeout-ms',
            String(options.settings.memberTimeoutMs),
            '--lease-ttl-ms',
            String(options.settings.leaseTtlMs),
            '--lease-renew-interval-ms',
            String(options.settings.leaseRenewIntervalMs),
            '--shard-count',
            String(options.settings.shardCount),
            '--rebalance-shards-max',
            String(options.settings.rebalanceShardsMax),
            ...(options.nodeArgs ?? []),
          ],
          healthUrl: `${url}/health/ready`,
          env,
        },
        processSettings,
      );
      nodes.set(spec.nodeId, { nodeId: spec.nodeId, url, process: managed });
    }
    try {
      await bank.start();
      await Promise.all([...nodes.values()].map((node) => node.process.start()));
      const written = options.nodes
        .map((spec) => join(folder, spec.nodeId, 'credentials.json'))
        .filter((path) => existsSync(path));
      if (written.length !== 1) throw new Error(`${written.length} nodes wrote credentials.json, not one`);
      const credentials = credentialsSchema.parse(JSON.parse(readFileSync(written[0] ?? '', 'utf8')));
      return new NodeCluster(folder, schema, bank, bankUrl, nodes, credentials, options.databaseUrl);
    } catch (error) {
      await Promise.allSettled([...nodes.values()].map((node) => node.process.stop()));
      await bank.stop();
      rmSync(folder, { recursive: true, force: true });
      throw error;
    }
  }

  node(nodeId: string): ClusterNode {
    const node = this.nodes.get(nodeId);
    if (node === undefined) throw new Error(`no node ${nodeId}`);
    return node;
  }

  /** `GET /admin/cluster` on one node, parsed. */
  async view(through: ClusterNode): Promise<ClusterView> {
    const response = await fetch(`${through.url}/admin/cluster`, {
      headers: { authorization: `Bearer ${this.credentials.adminToken}` },
      signal: AbortSignal.timeout(limits.adminCallTimeoutMs),
    });
    if (response.status !== 200) throw new Error(`/admin/cluster answered ${response.status}`);
    return clusterViewSchema.parse(await response.json());
  }

  /** Warnings and errors of every node in time order, the latest last, for a failure message. */
  warnings(lineCountMax = 40): string {
    const timeOf = (line: string): number => Number(/"time":(\d+)/.exec(line)?.[1] ?? 0);
    return [...this.nodes.values()]
      .flatMap((node) =>
        node.process
          .outputTail()
          .split('\n')
          .filter((line) => /"level":[456]0/.test(line)),
      )
      .sort((one, other) => timeOf(one) - timeOf(other))
      .slice(-lineCountMax)
      .join('\n');
  }

  /** Stops every node (SIGTERM, then SIGKILL if it lingers) and the bank, and drops the schema. */
  async stop(): Promise<void> {
    await Promise.allSettled([...this.nodes.values()].map((node) => node.process.stop()));
    await this.bank.stop();
    await dropSchema(this.databaseUrl, this.schema).catch(() => undefined);
    rmSync(this.folder, { recursive: true, force: true });
  }
}

/** The shard holding an entity (by persistence id) in a view, with its owner and epoch. */
export function shardHolding(
  view: ClusterView,
  persistenceId: string,
): ClusterView['shards'][number] | undefined {
  return view.shards.find((shard) => shard.entities.includes(persistenceId));
}

async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  for (let attempt = 0; attempt < limits.portAttemptsMax && ports.size < count; attempt++) {
    ports.add(await freePort());
  }
  if (ports.size < count) throw new Error(`found ${ports.size} distinct free ports, not ${count}`);
  return [...ports];
}
