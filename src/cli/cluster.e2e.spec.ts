/**
 * Three `remit node` processes as one cluster, end to end: an embedded PostgreSQL of this test's
 * own, a bank simulator process, and nodes whose roles give every bank two nodes. Every merchant's
 * orders are executed through every node; after one node is SIGKILLed, the merchants' orders
 * through the other two still execute once its shards have failed over.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningPostgres, startEmbeddedPostgres } from '../store/postgres/embedded-postgres.js';
import { finalStatusThrough, until } from '../testing/orders-over-http.js';
import { type RemitProcess, startRemit } from '../testing/processes.js';

const roles: Record<string, string> = {
  'node-1': 'bank-a,bank-b',
  'node-2': 'bank-b,bank-c',
  'node-3': 'bank-a,bank-c',
};

interface Credentials {
  readonly merchants: Array<{ id: string; bank: string; apiKey: string }>;
  readonly adminToken: string;
}

let database: RunningPostgres;
let bank: RemitProcess;
const nodes = new Map<string, RemitProcess>();
/** Every node process started, killed ones included, for the checks of their whole output. */
const everyNode: RemitProcess[] = [];
let folder: string;
let credentials: Credentials;

beforeAll(async () => {
  folder = mkdtempSync(join(tmpdir(), 'remit-e2e-cluster-'));
  database = await startEmbeddedPostgres({ durable: false, connectionsMax: 60 });
  bank = await startRemit(['bank', '--port', '0', '--data', join(folder, 'bank')]);
  const env = { REMIT_VAULT_KEY: randomBytes(32).toString('base64') };
  // Started at once: they race to create the demo merchants, and exactly one may win.
  const started = await Promise.all(
    Object.entries(roles).map(async ([nodeId, nodeRoles]) => {
      const node = await startRemit(
        [
          'node',
          '--node-id',
          nodeId,
          '--port',
          '0',
          '--cluster-port',
          '0',
          '--roles',
          nodeRoles,
          '--bank-url',
          bank.url,
          '--database-url',
          database.url,
          '--database-pool-size',
          '8',
          '--data',
          join(folder, nodeId),
        ],
        env,
        90_000,
      );
      return [nodeId, node] as const;
    }),
  );
  for (const [nodeId, node] of started) {
    nodes.set(nodeId, node);
    everyNode.push(node);
  }
  const written = Object.keys(roles)
    .map((nodeId) => join(folder, nodeId, 'credentials.json'))
    .filter((path) => existsSync(path));
  expect(written).toHaveLength(1);
  credentials = JSON.parse(readFileSync(written[0] ?? '', 'utf8')) as Credentials;
}, 180_000);

afterAll(async () => {
  for (const node of nodes.values()) await node.kill('SIGTERM');
  await bank?.kill('SIGTERM');
  await database?.stop();
  rmSync(folder, { recursive: true, force: true });
}, 120_000);

/** The nodes' warnings and errors say why a condition failed: a failure without them is hard to read. */
function nodeWarnings(): string {
  return [...nodes.values()]
    .flatMap((node) =>
      node
        .output()
        .split('\n')
        .filter((line) => /"level":[456]0/.test(line)),
    )
    .slice(-20)
    .join('\n');
}

function executedThrough(node: RemitProcess, apiKey: string, key: string): Promise<string> {
  return finalStatusThrough(node.url, apiKey, key, nodeWarnings);
}

describe('remit node, three processes as one cluster', () => {
  it('executes every merchant’s orders through every node, and after a node is killed', async () => {
    expect(credentials.merchants.map((merchant) => merchant.id).sort()).toEqual([
      'merchant-a',
      'merchant-b',
      'merchant-c',
    ]);
    for (const [nodeId, node] of nodes) {
      for (const merchant of credentials.merchants) {
        expect(await executedThrough(node, merchant.apiKey, `${nodeId}-${merchant.id}`)).toBe('executed');
      }
    }

    const killed = nodes.get('node-1');
    await killed?.kill('SIGKILL');
    nodes.delete('node-1');
    for (const [nodeId, node] of nodes) {
      for (const merchant of credentials.merchants) {
        expect(await executedThrough(node, merchant.apiKey, `after-${nodeId}-${merchant.id}`)).toBe(
          'executed',
        );
      }
    }
  }, 240_000);

  it('shows the cluster to the admin token only', async () => {
    const node = [...nodes.values()][0];
    if (node === undefined) throw new Error('no node');
    const denied = await fetch(`${node.url}/admin/cluster`);
    expect(denied.status).toBe(401);
    const answered = await fetch(`${node.url}/admin/cluster`, {
      headers: { authorization: `Bearer ${credentials.adminToken}` },
    });
    expect(answered.status).toBe(200);
    const view = (await answered.json()) as {
      members: Array<{ nodeId: string; state: string }>;
      shards: Array<{ shard: string; owner: string | null; entities: string[] }>;
    };
    expect(view.members.map((member) => member.nodeId).sort()).toEqual(['node-1', 'node-2', 'node-3']);
    const merchantShard = view.shards.find((shard) => shard.entities.includes('merchant-merchant-a'));
    expect(merchantShard?.owner).toMatch(/^node-[23]$/);
  }, 60_000);

  it('runs one order projection for the cluster, on a live node, and lists orders through every node', async () => {
    const [node] = nodes.values();
    if (node === undefined) throw new Error('no node');
    const readModelOwner = async () => {
      const response = await fetch(`${node.url}/admin/cluster`, {
        headers: { authorization: `Bearer ${credentials.adminToken}` },
      });
      const view = (await response.json()) as { shards: Array<{ shard: string; owner: string | null }> };
      return view.shards.find((shard) => shard.shard === 'read-model/0')?.owner;
    };
    await until(async () => /^node-[23]$/.test((await readModelOwner()) ?? ''), 'a live node projects', {
      explain: nodeWarnings,
    });
    const merchant = credentials.merchants[0];
    if (merchant === undefined) throw new Error('no merchant');
    for (const through of nodes.values()) {
      await until(
        async () => {
          const response = await fetch(`${through.url}/v1/orders?limit=100`, {
            headers: { authorization: `Bearer ${merchant.apiKey}` },
          });
          const page = (await response.json()) as { data: Array<{ status: string }> };
          // One order of this merchant through each of three nodes before the kill, one through each survivor after.
          return page.data.filter((order) => order.status === 'executed').length === 5;
        },
        'every executed order listed',
        { explain: nodeWarnings },
      );
    }
    // Projections of several nodes on one read model would refuse each other's batches.
    const refusals = everyNode.flatMap((each) =>
      each
        .output()
        .split('\n')
        .filter((line) => line.includes('another projection writes')),
    );
    expect(refusals).toEqual([]);
  }, 60_000);
});
