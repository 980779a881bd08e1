/**
 * A three-node cluster for the failover benchmark: an embedded PostgreSQL (fsync on), the bank
 * simulator and three `remit node` processes on fixed ports, each a `ManagedProcess` the
 * benchmark can SIGKILL, SIGTERM and start again on the same ports. Roles give every bank two
 * nodes; every node shares one `REMIT_VAULT_KEY`.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync } from 'node:fs';
import path from 'node:path';
import { startRunPostgres } from '../../src/chaos/database.js';
import { defaultProcessSettings, freePort, ManagedProcess } from '../../src/chaos/processes.js';
import type { RunningPostgres } from '../../src/store/postgres/embedded-postgres.js';
import { type ClusterCredentials, readClusterCredentials, threeNodeRoles } from './cluster-view.js';

/** Three nodes under tsx on two busy cores can take long to boot: more than the chaos default. */
const nodeProcessSettings = {
  ...defaultProcessSettings,
  readyTimeoutMs: 180_000,
  stopTimeoutMs: 30_000,
  // The nodes log at info (shard acquisitions and handovers, which say where a failover's time
  // went) without access logs: a few hundred lines per failover round.
  outputTailChars: 8 * 1024 * 1024,
};
/** Each node's PostgreSQL pool: three nodes and the benchmark's own sessions stay below the server's limit. */
const nodePoolSize = 8;

export interface ClusterNode {
  readonly nodeId: string;
  readonly url: string;
  readonly roles: readonly string[];
  readonly process: ManagedProcess;
}

export interface RunningCluster {
  readonly database: RunningPostgres;
  readonly bank: ManagedProcess;
  readonly nodes: readonly ClusterNode[];
  readonly credentials: ClusterCredentials;
  /** Stops the nodes (SIGTERM), the bank and PostgreSQL; never rejects. */
  stop(): Promise<void>;
}

/**
 * Starts everything in `folder` (which the caller removes). The nodes start at once, as a real
 * cluster's would: they race to create the demo merchants, and exactly one writes credentials.json.
 */
export async function startThreeNodeCluster(folder: string): Promise<RunningCluster> {
  // The server runs as the `postgres` user, which must pass through the run's folder to its own.
  chmodSync(folder, 0o755);
  const database = await startRunPostgres(path.join(folder, 'postgres'));
  const started: ManagedProcess[] = [];
  const stop = async (): Promise<void> => {
    for (const child of started.reverse()) await child.stop().catch(() => undefined);
    await database.stop().catch(() => undefined);
  };
  try {
    const bankPort = await freePort();
    const bankUrl = `http://127.0.0.1:${bankPort}`;
    const bank = new ManagedProcess(
      {
        name: 'bank',
        args: [
          'bank',
          '--port',
          String(bankPort),
          '--data',
          path.join(folder, 'bank'),
          '--log-level',
          'warn',
        ],
        healthUrl: `${bankUrl}/health`,
      },
      nodeProcessSettings,
    );
    started.push(bank);
    await bank.start();
    const environment = { REMIT_VAULT_KEY: randomBytes(32).toString('base64') };
    const nodes: ClusterNode[] = [];
    for (const [nodeId, roles] of threeNodeRoles) {
      const port = await freePort();
      const clusterPort = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const child = new ManagedProcess(
        {
          name: nodeId,
          args: [
            'node',
            '--node-id',
            nodeId,
            '--port',
            String(port),
            '--cluster-port',
            String(clusterPort),
            '--roles',
            roles.join(','),
            '--bank-url',
            bankUrl,
            '--database-url',
            database.url,
            '--database-pool-size',
            String(nodePoolSize),
            '--data',
            path.join(folder, nodeId),
            '--log-level',
            'info',
            '--access-log-level',
            'debug',
          ],
          healthUrl: `${url}/health/ready`,
          env: environment,
        },
        nodeProcessSettings,
      );
      started.push(child);
      nodes.push({ nodeId, url, roles, process: child });
    }
    await Promise.all(nodes.map((node) => node.process.start()));
    const credentials = readClusterCredentials(nodes.map((node) => path.join(folder, node.nodeId)));
    return { database, bank, nodes, credentials, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
