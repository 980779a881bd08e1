/**
 * One order projection per cluster. Three `remit node`s run in this process over one PostgreSQL
 * schema (and one bank simulator); the read model's one-shard group is placed on one of them, and
 * only that node projects. The spec reads each node's metrics to see who projects, sends orders
 * through a node that does not and reads them back through it (order, listing), checks that no
 * projection ever refused another's batch, then stops the holder gracefully and sees another node
 * take the projection over and keep the read model current. Every wait is a condition.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { type RunningBankServer, startBankServer } from '../bank/bank-server.js';
import type { ClusterSettings } from '../cluster/cluster-settings.js';
import { finalStatusThrough, until } from '../testing/orders-over-http.js';
import { dropSchema, testSchemaName } from '../testing/postgres-test-schema.js';
import { parseNodeConfig } from './config.js';
import { type RunningClusterNode, readModelShard, startClusterNode } from './node.js';

const url = inject('postgresUrl');
const schema = testSchemaName('node_projection');
const vaultKey = Buffer.alloc(32, 9).toString('base64');
const settings: ClusterSettings = {
  heartbeatIntervalMs: 200,
  memberTimeoutMs: 1_500,
  leaseTtlMs: 1_500,
  leaseRenewIntervalMs: 200,
  shardCount: 8,
  rebalanceShardsMax: 8,
};
const nodeIds = ['node-a', 'node-b', 'node-c'] as const;

const credentialsSchema = z.object({
  merchants: z.array(z.object({ id: z.string(), bank: z.string(), apiKey: z.string() })),
  adminToken: z.string(),
});
const viewSchema = z.object({
  shards: z.array(
    z.object({ shard: z.string(), owner: z.string().nullable(), entities: z.array(z.string()) }),
  ),
});
const listSchema = z.object({ data: z.array(z.object({ id: z.string(), status: z.string() })) });

const folder = mkdtempSync(join(tmpdir(), 'remit-node-projection-'));
const logLines: string[] = [];
const running = new Map<string, RunningClusterNode>();
let bank: RunningBankServer;
let credentials: z.infer<typeof credentialsSchema>;

async function startNode(nodeId: string): Promise<RunningClusterNode> {
  const config = parseNodeConfig(
    [
      ...['--node-id', nodeId, '--roles', 'bank-a,bank-b,bank-c', '--bank-url', bank.url],
      ...['--database-url', url, '--database-schema', schema, '--port', '0', '--cluster-port', '0'],
      ...['--data', join(folder, nodeId), '--access-log-level', 'silent'],
    ],
    { REMIT_VAULT_KEY: vaultKey },
  );
  const logger = pino(
    { level: 'info', base: { nodeId } },
    {
      write: (line: string) => {
        logLines.push(line);
      },
    },
  );
  const node = await startClusterNode(config, { logger, cluster: settings });
  running.set(nodeId, node);
  return node;
}

/** Each running node's `remit_read_model_projection_held` and `remit_read_model_batches_total`. */
async function projectionMetrics(): Promise<Map<string, { held: number; batches: number }>> {
  const metrics = new Map<string, { held: number; batches: number }>();
  for (const [nodeId, node] of running) {
    const text = await (await fetch(`${node.url}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
    metrics.set(nodeId, {
      held: value('remit_read_model_projection_held'),
      batches: value('remit_read_model_batches_total'),
    });
  }
  return metrics;
}

/** The one node whose projection runs, once exactly one does; `undefined` before. */
async function holder(): Promise<string | undefined> {
  const holders = [...(await projectionMetrics())].filter(([, metric]) => metric.held === 1);
  return holders.length === 1 ? holders[0]?.[0] : undefined;
}

async function ownerOfReadModel(through: RunningClusterNode): Promise<string | null | undefined> {
  const response = await fetch(`${through.url}/admin/cluster`, {
    headers: { authorization: `Bearer ${credentials.adminToken}` },
  });
  return viewSchema.parse(await response.json()).shards.find((shard) => shard.shard === readModelShard)
    ?.owner;
}

async function listed(through: RunningClusterNode, apiKey: string, orderId: string): Promise<boolean> {
  const response = await fetch(`${through.url}/v1/orders?limit=100`, {
    headers: { authorization: `Bearer ${apiKey}` },
  });
  return listSchema.parse(await response.json()).data.some((order) => order.id === orderId);
}

async function orderIdOf(through: RunningClusterNode, apiKey: string, key: string): Promise<string> {
  const status = await finalStatusThrough(through.url, apiKey, key);
  expect(status).toBe('executed');
  // The same key again answers with the same order: its id.
  const response = await fetch(`${through.url}/v1/orders`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${apiKey}`,
      'content-type': 'application/json',
      'idempotency-key': key,
    },
    body: JSON.stringify({
      amount: 1_250,
      currency: 'EUR',
      card: { number: '4111111111111111', expMonth: 12, expYear: 2030, cvc: '123' },
    }),
  });
  return z.object({ id: z.string() }).parse(await response.json()).id;
}

const projectionStarts = () =>
  logLines.filter((line) => line.includes('order projection runs on this node')).map(nodeIdOfLine);
const nodeIdOfLine = (line: string) => z.object({ nodeId: z.string() }).parse(JSON.parse(line)).nodeId;
const refusals = () => logLines.filter((line) => line.includes('another projection writes'));
const warnings = () =>
  logLines
    .filter((line) => /"level":(40|50)/.test(line))
    .slice(-20)
    .join('');

beforeAll(async () => {
  bank = await startBankServer({ port: 0, dataDir: join(folder, 'bank') });
  for (const nodeId of nodeIds) await startNode(nodeId);
  const credentialsPath = join(folder, 'node-a', 'credentials.json');
  credentials = credentialsSchema.parse(JSON.parse(readFileSync(credentialsPath, 'utf8')));
}, 120_000);

afterAll(async () => {
  for (const node of running.values()) await node.close();
  await bank?.close();
  await dropSchema(url, schema);
  rmSync(folder, { recursive: true, force: true });
}, 60_000);

describe('remit node: one order projection per cluster', () => {
  it('runs the projection on the lease holder only, and serves reads through every node', async () => {
    let first: string | undefined;
    await until(
      async () => {
        first = await holder();
        return first !== undefined;
      },
      'exactly one node runs the projection',
      { explain: warnings },
    );
    const nodeA = running.get('node-a');
    if (first === undefined || nodeA === undefined) throw new Error('no holder');
    expect(await ownerOfReadModel(nodeA)).toBe(first);

    const merchant = credentials.merchants[0];
    if (merchant === undefined) throw new Error('no demo merchant');
    const others = [...running.keys()].filter((nodeId) => nodeId !== first);
    for (const nodeId of others) {
      const through = running.get(nodeId);
      if (through === undefined) throw new Error(`${nodeId} is not running`);
      const orderId = await orderIdOf(through, merchant.apiKey, `through-${nodeId}`);
      await until(() => listed(through, merchant.apiKey, orderId), `order listed through ${nodeId}`, {
        explain: warnings,
      });
    }
    const metrics = await projectionMetrics();
    for (const nodeId of others) expect(metrics.get(nodeId)).toEqual({ held: 0, batches: 0 });
    expect(metrics.get(first)?.batches).toBeGreaterThan(0);
    expect(refusals()).toEqual([]);
    expect(projectionStarts()).toEqual([first]);

    // The holder leaves: it stops its projection and hands the lease over; another node projects.
    await running.get(first)?.close();
    running.delete(first);
    let second: string | undefined;
    await until(
      async () => {
        second = await holder();
        return second !== undefined;
      },
      'another node runs the projection',
      { explain: warnings },
    );
    expect(second).not.toBe(first);
    const remaining = [...running.entries()].find(([nodeId]) => nodeId !== second);
    if (remaining === undefined) throw new Error('no node besides the holder');
    const [, through] = remaining;
    const orderId = await orderIdOf(through, merchant.apiKey, 'after-handover');
    await until(() => listed(through, merchant.apiKey, orderId), 'order listed after the handover', {
      explain: warnings,
    });
    expect(refusals()).toEqual([]);
    expect(projectionStarts()).toEqual([first, second]);
  }, 120_000);
});
