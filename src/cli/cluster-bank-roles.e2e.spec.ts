/**
 * Bank roles in a cluster of real `remit node` processes on the test run's PostgreSQL: an Executor
 * runs only on a node holding its bank's role, and a bank no live node holds gets no Executor at
 * all — its orders wait, then end `failed` (`bank_unreachable`) past their deadline, and the bank
 * simulator's own ledger shows nothing charged for them. Two nodes: node-1 holds bank-a, node-2
 * bank-a and bank-b; nobody holds bank-c. Later node-2, the only node of bank-b, is killed.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BankClient } from '../bank/bank-client.js';
import { clusterSettings } from '../cluster/cluster-settings.js';
import { defaultMerchantSettings } from '../payments/merchant.js';
import { type ClusterNode, type ClusterView, NodeCluster } from '../testing/node-cluster.js';
import { until } from '../testing/orders-over-http.js';

const settings = clusterSettings({
  heartbeatIntervalMs: 500,
  memberTimeoutMs: 3_000,
  leaseTtlMs: 3_000,
  leaseRenewIntervalMs: 750,
  shardCount: 8,
  rebalanceShardsMax: 8,
});
const executionDeadlineMs = 2_000;
/** Polls 100 ms apart: long enough for the deadline, the Merchant's grace and a slow machine. */
const finalAttemptsMax =
  Math.ceil((executionDeadlineMs + defaultMerchantSettings.unacknowledgedGraceMs) / 100) + 300;

let cluster: NodeCluster;
let bank: BankClient;

beforeAll(async () => {
  cluster = await NodeCluster.start({
    databaseUrl: inject('postgresUrl'),
    nodes: [
      { nodeId: 'node-1', roles: ['bank-a'] },
      { nodeId: 'node-2', roles: ['bank-a', 'bank-b'] },
    ],
    settings,
    executionDeadlineMs,
    bankTimeoutMs: 1_000,
  });
  bank = new BankClient({ baseUrl: cluster.bankUrl, requestTimeoutMs: 10_000, connections: 1 });
  await until(
    async () =>
      (await cluster.view(cluster.node('node-1'))).shards.some(
        (shard) => shard.shard.startsWith('merchants/') && shard.owner !== null,
      ),
    'merchant shards owned',
    { explain: () => cluster.warnings() },
  );
}, 150_000);

afterAll(async () => {
  await bank?.close();
  await cluster?.stop();
}, 120_000);

function apiKeyOf(merchantId: string): string {
  const merchant = cluster.credentials.merchants.find((each) => each.id === merchantId);
  if (merchant === undefined) throw new Error(`no credentials for ${merchantId}`);
  return merchant.apiKey;
}

/** Creates a 12.50 EUR order (answered within a second: 201 when final, 202 while in flight). */
async function create(node: ClusterNode, merchantId: string, key: string): Promise<string> {
  let id: string | undefined;
  await until(async () => {
    const response = await fetch(`${node.url}/v1/orders`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${apiKeyOf(merchantId)}`,
        'content-type': 'application/json',
        'idempotency-key': key,
        prefer: 'wait=1',
      },
      body: JSON.stringify({
        amount: 1_250,
        currency: 'EUR',
        card: { number: '4111111111111111', expMonth: 12, expYear: 2030, cvc: '123' },
      }),
      signal: AbortSignal.timeout(10_000),
    });
    const json = (await response.json()) as { id?: unknown };
    if ((response.status === 201 || response.status === 202) && typeof json.id === 'string') id = json.id;
    return id !== undefined;
  }, `order ${key} accepted`);
  if (id === undefined) throw new Error(`order ${key} has no id`);
  return id;
}

/** Reads the order through `node` until it is final; returns its status and reason. */
async function final(
  node: ClusterNode,
  merchantId: string,
  id: string,
): Promise<{ status: string; reason?: string }> {
  let order: { status: string; reason?: string } = { status: '' };
  await until(
    async () => {
      const response = await fetch(`${node.url}/v1/orders/${id}`, {
        headers: { authorization: `Bearer ${apiKeyOf(merchantId)}` },
        signal: AbortSignal.timeout(10_000),
      });
      if (response.status !== 200) return false;
      order = (await response.json()) as { status: string; reason?: string };
      return ['executed', 'declined', 'rejected', 'failed'].includes(order.status);
    },
    `order ${id} final`,
    { attemptsMax: finalAttemptsMax, explain: () => cluster.warnings() },
  );
  return order;
}

function ownersOf(view: ClusterView, group: string): Array<string | null> {
  return view.shards.filter((shard) => shard.shard.startsWith(`${group}/`)).map((shard) => shard.owner);
}

describe('bank roles in a cluster', () => {
  it('runs each bank’s Executor only on a node of its role, and none for a bank nobody holds', async () => {
    const node1 = cluster.node('node-1');
    // Executors start on their first order: one order per served bank puts both to work.
    expect(await final(node1, 'merchant-a', await create(node1, 'merchant-a', 'roles-a'))).toMatchObject({
      status: 'executed',
    });
    expect(await final(node1, 'merchant-b', await create(node1, 'merchant-b', 'roles-b'))).toMatchObject({
      status: 'executed',
    });
    const view = await cluster.view(node1);
    const holding = (entity: string) => view.shards.filter((shard) => shard.entities.includes(entity));
    expect(holding('executor-bank-b').map((shard) => shard.owner)).toEqual(['node-2']);
    expect(holding('executor-bank-a')).toHaveLength(1);
    expect(['node-1', 'node-2']).toContain(holding('executor-bank-a')[0]?.owner);
    expect(ownersOf(view, 'executor-bank-b').every((owner) => owner === 'node-2')).toBe(true);
    expect(ownersOf(view, 'executor-bank-c').every((owner) => owner === null)).toBe(true);
    expect(holding('executor-bank-c')).toEqual([]);
  });

  it('ends the orders of a bank no node holds failed past their deadline, with nothing at the bank', async () => {
    const node1 = cluster.node('node-1');
    const id = await create(node1, 'merchant-c', 'no-bank-c');
    const order = await final(node1, 'merchant-c', id);
    expect(order).toMatchObject({ status: 'failed', reason: 'bank_unreachable' });
    expect(await bank.inquire(id)).toEqual({ kind: 'not_found', reference: id });
  }, 60_000);

  it('once the only node of a bank is killed, that bank’s new orders end failed and are never charged', async () => {
    await cluster.node('node-2').process.kill();
    const node1 = cluster.node('node-1');
    await until(
      async () => (await cluster.view(node1)).members.find((m) => m.nodeId === 'node-2')?.state === 'down',
      'node-2 down',
      { explain: () => cluster.warnings() },
    );
    const id = await create(node1, 'merchant-b', 'bank-b-node-gone');
    expect(await final(node1, 'merchant-b', id)).toMatchObject({
      status: 'failed',
      reason: 'bank_unreachable',
    });
    expect(await bank.inquire(id)).toEqual({ kind: 'not_found', reference: id });
    // merchant-a's bank is still held (by node-1): its orders go on.
    expect(
      await final(node1, 'merchant-a', await create(node1, 'merchant-a', 'a-still-served')),
    ).toMatchObject({
      status: 'executed',
    });
  }, 90_000);
});
