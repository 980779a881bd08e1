/**
 * The real node (`assembleNode`: Merchants, Executors, the order service) three times in one
 * process, as a cluster: a MemoryClusterStore, one MemoryJournal fenced by it, a MemoryNetwork, the
 * simulated bank. Node b has no bank role, so no Executor may run there; orders taken on any node
 * still execute, and an Executor's node may die without losing an order.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { classifySimulatedBankError, SimulatedBank } from '../bank/simulated-bank.js';
import type { AssembledNode, NodeMerchant } from '../node/assemble-node.js';
import { assembleClusterNode } from '../node/cluster-node.js';
import { demoConfig } from '../node/demo-merchants.js';
import type { OrderRequest } from '../node/order-service.js';
import { MemoryVaultStorage } from '../payments/card-vault.js';
import { defaultMerchantSettings } from '../payments/merchant.js';
import { executorTypeName } from '../payments/protocol.js';
import { persistenceIdOf } from '../persistence/entity.js';
import { SimulatedClock } from '../runtime/clock.js';
import { silentLogger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import { MemoryJournal } from '../store/memory/memory-journal.js';
import { JournalQueries } from '../testing/journal-queries.js';
import { testVaultKey } from '../testing/test-node.js';
import { clusterSettings } from './cluster-settings.js';
import { MemoryClusterStore } from './memory-cluster-store.js';
import { MemoryNetwork, type MemoryTransport } from './memory-transport.js';
import type { ShardManager } from './shard-manager.js';

const settings = clusterSettings({
  heartbeatIntervalMs: 100,
  memberTimeoutMs: 500,
  leaseTtlMs: 400,
  leaseRenewIntervalMs: 100,
  shardCount: 4,
  rebalanceShardsMax: 4,
});

const merchants: NodeMerchant[] = [
  { id: 'merchant-a', config: demoConfig('bank-a') },
  { id: 'merchant-b', config: demoConfig('bank-a') },
];
const request: OrderRequest = {
  amount: 1_250,
  currency: 'EUR',
  card: { number: '4242424242424242', expMonth: 12, expYear: 2030, cvc: '123' },
};

interface ClusterNode {
  readonly nodeId: string;
  readonly node: AssembledNode;
  readonly shards: ShardManager;
  readonly transport: MemoryTransport;
  readonly recovered: string[];
}

const running: ClusterNode[] = [];
afterEach(async () => {
  for (const each of running.splice(0)) {
    each.shards.halt();
    await each.node.close();
  }
});

function world() {
  const clock = new SimulatedClock(Date.UTC(2026, 10, 24));
  const store = new MemoryClusterStore(clock, settings);
  const memory = new MemoryJournal({ clock, fenceCheck: store });
  const bank = new SimulatedBank(new SeededRandom(3));
  const network = new MemoryNetwork(clock, new SeededRandom(5));
  // One vault for all, as the cluster's PostgreSQL is: the Executor reads cards sealed elsewhere.
  const vault = new MemoryVaultStorage();
  const start = (nodeId: string, roles: readonly string[]): ClusterNode => {
    const transport = network.connect(nodeId);
    const recovered: string[] = [];
    const { node, shards } = assembleClusterNode({
      store,
      transport,
      self: { nodeId, address: `${nodeId}:7000`, roles },
      cluster: settings,
      merchants,
      stores: { journal: memory, vault, queries: new JournalQueries(memory) },
      vaultKey: testVaultKey,
      bank,
      classifyBankError: classifySimulatedBankError,
      clock,
      random: new SeededRandom(1),
      logger: silentLogger,
      name: 'remit',
      observer: { onRecovered: (persistenceId) => recovered.push(persistenceId) },
    });
    const started = { nodeId, node, shards, transport, recovered };
    running.push(started);
    return started;
  };
  return { clock, bank, start };
}

async function settled<T>(clock: SimulatedClock, promise: Promise<T>): Promise<T> {
  let done = false;
  const finish = (): void => {
    done = true;
  };
  promise.then(finish, finish);
  for (let round = 0; round < 2_000 && !done; round++) await clock.advanceAsync(10);
  return promise;
}

/** One node without bank-a's role, and a merchant-a order it accepted: no node may execute it. */
async function orderWithoutBankNode() {
  const { clock, bank, start } = world();
  const only = start('node-b', []);
  await settled(clock, only.shards.start());
  await settled(clock, clock.advanceAsync(1_000));
  await settled(clock, only.node.boot(merchants, 10_000));
  const created = await settled(clock, only.node.orders.create('merchant-a', 'no-bank-node', request, 1_000));
  expect(created.order.status).toBe('validated');
  return { clock, bank, start, only, created };
}

const executorId = persistenceIdOf({ typeName: executorTypeName, entityId: 'bank-a' });

describe('assembled nodes as a cluster', () => {
  it('executes orders taken on every node, with the Executor only on a node of its role', async () => {
    const { clock, bank, start } = world();
    const nodes = [start('node-a', ['bank-a']), start('node-b', []), start('node-c', ['bank-a'])];
    for (const each of nodes) await settled(clock, each.shards.start());
    await settled(clock, clock.advanceAsync(1_000));
    const first = nodes[0];
    if (first === undefined) throw new Error('no node');
    await settled(clock, first.node.boot(merchants, 10_000));
    for (const [index, each] of nodes.entries()) {
      const created = await settled(
        clock,
        each.node.orders.create('merchant-a', `key-${index}`, request, 5_000),
      );
      expect(created.order.status).toBe('executed');
      expect(bank.payments.get(created.order.id)?.requestCount).toBe(1);
    }
    expect(nodes.find((each) => each.nodeId === 'node-b')?.recovered).not.toContain(executorId);
    expect(nodes.filter((each) => each.recovered.includes(executorId)).length).toBeGreaterThan(0);
  });

  it('recovers the Executor on the other node of its role when its node dies', async () => {
    const { clock, start } = world();
    const nodes = [start('node-a', ['bank-a']), start('node-b', []), start('node-c', ['bank-a'])];
    for (const each of nodes) await settled(clock, each.shards.start());
    await settled(clock, clock.advanceAsync(1_000));
    const nodeB = nodes[1];
    if (nodeB === undefined) throw new Error('no node');
    await settled(clock, nodeB.node.boot(merchants, 10_000));
    const owner = nodes.find((each) =>
      each.node.entities.runningAddresses().some((a) => persistenceIdOf(a) === executorId),
    );
    const other = nodes.find((each) => each !== owner && each.nodeId !== 'node-b');
    if (owner === undefined || other === undefined) throw new Error('the Executor runs nowhere');
    owner.shards.halt();
    await owner.transport.close();
    await owner.node.system.terminate();
    await settled(clock, clock.advanceAsync(settings.leaseTtlMs + 500));
    expect(other.recovered).toContain(executorId);
    const created = await settled(
      clock,
      nodeB.node.orders.create('merchant-b', 'after-failover', request, 5_000),
    );
    expect(created.order.status).toBe('executed');
  });

  it('holds the orders for an Executor no live node may run, and executes them once a node of its role joins', async () => {
    const { clock, bank, start, only, created } = await orderWithoutBankNode();
    await clock.advanceAsync(5_000);
    expect(bank.payments.get(created.order.id)).toBeUndefined();
    expect(only.recovered).not.toContain(executorId);

    const bankNode = start('node-a', ['bank-a']);
    await settled(clock, bankNode.shards.start());
    await clock.advanceAsync(5_000);
    const final = await settled(clock, only.node.orders.get('merchant-a', created.order.id));
    expect(final?.status).toBe('executed');
    expect(bank.payments.get(created.order.id)?.requestCount).toBe(1);
    expect(bankNode.recovered).toContain(executorId);
  });

  it('ends an order no node of its bank acknowledged failed at its deadline, and nothing is charged, then or later', async () => {
    const { clock, bank, start, only, created } = await orderWithoutBankNode();
    const { executionDeadlineMs, unacknowledgedGraceMs } = defaultMerchantSettings;
    await clock.advanceAsync(executionDeadlineMs + unacknowledgedGraceMs - 2_000);
    expect((await settled(clock, only.node.orders.get('merchant-a', created.order.id)))?.status).toBe(
      'validated',
    );
    await clock.advanceAsync(3_000);
    const failed = await settled(clock, only.node.orders.get('merchant-a', created.order.id));
    expect(failed).toMatchObject({ status: 'failed', reason: 'bank_unreachable' });
    expect(bank.payments.get(created.order.id)).toBeUndefined();

    // A node of the bank joins: nothing still on its way may charge the ended order.
    const bankNode = start('node-a', ['bank-a']);
    await settled(clock, bankNode.shards.start());
    await clock.advanceAsync(10_000);
    expect(['cancelled', undefined]).toContain(bank.payments.get(created.order.id)?.answer.kind);
    expect((await settled(clock, only.node.orders.get('merchant-a', created.order.id)))?.status).toBe(
      'failed',
    );
  });

  it('refunds asked on any node reach the bank once, through the Executor of the order’s bank, even when its node dies with one in flight', async () => {
    const { clock, bank, start } = world();
    const nodes = [start('node-a', ['bank-a']), start('node-b', []), start('node-c', ['bank-a'])];
    for (const each of nodes) await settled(clock, each.shards.start());
    await settled(clock, clock.advanceAsync(1_000));
    const nodeB = nodes[1];
    if (nodeB === undefined) throw new Error('no node');
    await settled(clock, nodeB.node.boot(merchants, 10_000));
    const created = await settled(clock, nodeB.node.orders.create('merchant-a', 'to-refund', request, 5_000));
    const orderId = created.order.id;
    const refundOn = (node: AssembledNode, key: string, amount: bigint) =>
      settled(
        clock,
        node.refunds.requestRefund(
          'merchant-a',
          orderId,
          { amount, currency: undefined, reason: undefined },
          key,
        ),
      );
    for (const [index, each] of nodes.entries()) await refundOn(each.node, `refund-${index}`, 100n);
    const listed = async () =>
      (await settled(clock, nodeB.node.refunds.listRefunds('merchant-a', orderId))) ?? [];
    await settled(clock, clock.advanceAsync(2_000));
    expect((await listed()).map((refund) => refund.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);

    // A refund whose answer the bank loses, then the Executor's node dies: the other node of the
    // role recovers the Executor, which inquires instead of sending it again.
    bank.faults = { errorRate: 0, lostAnswerRate: 1, declineRate: 0 };
    const inFlight = await refundOn(nodeB.node, 'refund-in-flight', 500n);
    await settled(clock, clock.advanceAsync(100));
    expect(bank.refunds.has(inFlight.refund.id)).toBe(true);
    const owner = nodes.find((each) =>
      each.node.entities.runningAddresses().some((a) => persistenceIdOf(a) === executorId),
    );
    if (owner === undefined || owner === nodeB) throw new Error('the Executor runs nowhere');
    owner.shards.halt();
    await owner.transport.close();
    await owner.node.system.terminate();
    bank.faults = { errorRate: 0, lostAnswerRate: 0, declineRate: 0 };
    await settled(clock, clock.advanceAsync(settings.leaseTtlMs + 3_000));
    expect((await listed()).map((refund) => refund.status)).toEqual([
      'succeeded',
      'succeeded',
      'succeeded',
      'succeeded',
    ]);
    for (const refund of await listed()) expect(bank.refunds.get(refund.id)?.requestCount).toBe(1);
    expect(bank.refunded(orderId)).toBe(800n);
  });
});
