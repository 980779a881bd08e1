/**
 * Three nodes in one process: a MemoryClusterStore as their shared database, one MemoryJournal and
 * snapshot store fenced by it, a MemoryNetwork between them, and the test kit's account entity in
 * two shard groups (one any node may run, one only nodes with role `bank-a` may). Time is one
 * SimulatedClock; waits are on conditions, never on sleeps.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { persistenceIdOf } from '../persistence/entity.js';
import { EntityRegistry } from '../persistence/entity-registry.js';
import type { ActorRef } from '../runtime/actor.js';
import { ActorSystem } from '../runtime/actor-system.js';
import { SimulatedClock } from '../runtime/clock.js';
import { type EntityAddress, entityAddress } from '../runtime/entity-address.js';
import { type Logger, silentLogger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import { StaleEpochError } from '../store/journal.js';
import { MemoryJournal } from '../store/memory/memory-journal.js';
import { MemorySnapshotStore } from '../store/memory/memory-snapshot-store.js';
import { type AccountCommand, type AccountReply, accountDefinition } from '../testing/fixtures/account.js';
import { clusterSettings } from './cluster-settings.js';
import type { ClusterStore } from './cluster-store.js';
import { MemoryClusterStore } from './memory-cluster-store.js';
import { MemoryNetwork, type MemoryTransport } from './memory-transport.js';
import { ShardManager } from './shard-manager.js';
import { ShardedMessenger } from './sharded-messenger.js';
import { parseShardId, shardGroup } from './shards.js';

const settings = clusterSettings({
  heartbeatIntervalMs: 100,
  memberTimeoutMs: 500,
  leaseTtlMs: 400,
  leaseRenewIntervalMs: 100,
  shardCount: 6,
  rebalanceShardsMax: 6,
});

const accounts = shardGroup('accounts');
const bankA = shardGroup('executor-bank-a', 'bank-a');
const groups = [accounts, bankA];
/** The same toy entity under a second type name, placed by role like a bank's Executor. */
const bankAccountType = 'bank-account';
const groupOf = (address: EntityAddress<unknown>) =>
  address.typeName === bankAccountType ? bankA : accounts;

const accountIds = Array.from({ length: 12 }, (_, index) => `acct-${index}`);

interface TestNode {
  readonly nodeId: string;
  readonly roles: readonly string[];
  readonly system: ActorSystem;
  readonly entities: EntityRegistry;
  readonly shards: ShardManager;
  readonly messenger: ShardedMessenger;
  readonly transport: MemoryTransport;
  /** Type names of every entity this node ever started. */
  readonly started: string[];
}

interface Cluster {
  readonly clock: SimulatedClock;
  readonly store: MemoryClusterStore;
  readonly journal: MemoryJournal;
  readonly network: MemoryNetwork;
  readonly nodes: TestNode[];
  /** Every warning the nodes' shard managers and entities logged, with its fields. */
  readonly warnings: Array<{ readonly message: string; readonly fields: Record<string, unknown> }>;
}

const clusters: Cluster[] = [];

afterEach(async () => {
  for (const cluster of clusters.splice(0)) {
    for (const node of cluster.nodes) {
      node.shards.halt();
      await node.system.terminate();
    }
    await cluster.journal.close();
  }
});

function cluster(): Cluster {
  const clock = new SimulatedClock();
  const store = new MemoryClusterStore(clock, settings);
  const created: Cluster = {
    clock,
    store,
    journal: new MemoryJournal({ fenceCheck: store, clock }),
    network: new MemoryNetwork(clock, new SeededRandom(7)),
    nodes: [],
    warnings: [],
  };
  clusters.push(created);
  return created;
}

/** Keeps warnings (with the logger's bindings) and drops the rest. */
function warningsLogger(c: Cluster, bindings: Record<string, unknown> = {}): Logger {
  const noop = (): void => {};
  return {
    debug: noop,
    info: noop,
    warn: (fields, message) => c.warnings.push({ message, fields: { ...bindings, ...fields } }),
    error: noop,
    child: (more) => warningsLogger(c, { ...bindings, ...more }),
  };
}

function addNode(
  c: Cluster,
  nodeId: string,
  roles: readonly string[],
  store: ClusterStore = c.store,
): TestNode {
  const system = new ActorSystem({
    name: 'remit',
    clock: c.clock,
    random: new SeededRandom(3),
    logger: warningsLogger(c, { nodeId }),
  });
  const transport = c.network.connect(nodeId);
  const started: string[] = [];
  let entities: EntityRegistry | undefined;
  const shards: ShardManager = new ShardManager({
    store,
    self: { nodeId, address: `${nodeId}:7000`, roles },
    groups,
    groupOf,
    settings,
    clock: c.clock,
    logger: warningsLogger(c, { nodeId }),
    transport,
    entities: {
      stopShard: (shardId): Promise<void> =>
        entities?.stopWhere((address) => shards.shardOf(address) === shardId) ?? Promise.resolve(),
      startShard: (shardId) => {
        // The node's boot hook: every entity it knows of in the shard, so their work resumes.
        const group = parseShardId(shardId)?.group;
        const typeName = group === bankA.name ? bankAccountType : 'account';
        for (const id of accountIds) {
          const address = entityAddress(typeName, id);
          if (shards.shardOf(address) === shardId) entities?.refFor(address);
        }
      },
    },
  });
  let messenger: ShardedMessenger | undefined;
  entities = new EntityRegistry({
    system,
    journal: c.journal,
    snapshots: new MemorySnapshotStore(c.store),
    clock: c.clock,
    random: new SeededRandom(4),
    logger: silentLogger,
    messenger: { tell: (address, message) => messenger?.tell(address, message) },
    ownership: shards,
    observer: { onRecovered: (persistenceId) => started.push(persistenceId) },
  });
  entities.register(accountDefinition());
  entities.register({ ...accountDefinition(), typeName: bankAccountType });
  messenger = new ShardedMessenger({
    shards,
    entities,
    system,
    transport,
    logger: silentLogger,
    // Every process its own session, also a node restarted under the same id.
    random: new SeededRandom(c.nodes.length + 1),
  });
  const node: TestNode = { nodeId, roles, system, entities, shards, messenger, transport, started };
  c.nodes.push(node);
  return node;
}

async function startAll(c: Cluster): Promise<void> {
  for (const node of c.nodes) await node.shards.start();
  await settleRounds(c, 10);
}

/** Lets `rounds` heartbeat intervals pass, with every promise continuation run in between. */
async function settleRounds(c: Cluster, rounds: number): Promise<void> {
  for (let round = 0; round < rounds; round++) await c.clock.advanceAsync(settings.heartbeatIntervalMs);
}

/** Advances time until the promise settles (an ask's own timeout bounds it). */
async function settled<T>(c: Cluster, promise: Promise<T>): Promise<T> {
  let done = false;
  const tracked = promise.finally(() => {
    done = true;
  });
  for (let step = 0; step < 1_000 && !done; step++) await c.clock.advanceAsync(10);
  return tracked;
}

function deposit(
  node: TestNode,
  address: EntityAddress<AccountCommand>,
  amount: bigint,
): Promise<AccountReply> {
  return node.messenger.ask<AccountCommand, AccountReply>(
    address,
    (replyTo: ActorRef<AccountReply>) => ({ type: 'Deposit', amount, replyTo }),
    2_000,
  );
}

function balance(node: TestNode, address: EntityAddress<AccountCommand>): Promise<AccountReply> {
  return node.messenger.ask<AccountCommand, AccountReply>(
    address,
    (replyTo) => ({ type: 'GetBalance', replyTo }),
    2_000,
  );
}

function ownersOf(c: Cluster): Map<string, string[]> {
  const owned = new Map<string, string[]>();
  for (const node of c.nodes)
    for (const shardId of node.shards.ownedShards())
      owned.set(shardId, [...(owned.get(shardId) ?? []), node.nodeId]);
  return owned;
}

function threeNodes(): Cluster {
  const c = cluster();
  addNode(c, 'node-a', ['bank-a']);
  addNode(c, 'node-b', []);
  addNode(c, 'node-c', ['bank-a']);
  return c;
}

function nodeOf(c: Cluster, nodeId: string): TestNode {
  const node = c.nodes.find((each) => each.nodeId === nodeId);
  if (node === undefined) throw new Error(`no node ${nodeId}`);
  return node;
}

describe('a cluster of three nodes', () => {
  it('spreads the shards evenly, each with one owner, role-bound groups only on nodes with the role', async () => {
    const c = threeNodes();
    await startAll(c);
    const owners = ownersOf(c);
    expect(owners.size).toBe(settings.shardCount * groups.length);
    for (const [shardId, nodes] of owners) {
      expect(nodes).toHaveLength(1);
      if (shardId.startsWith(`${bankA.name}/`)) expect(nodes[0]).not.toBe('node-b');
    }
    for (const node of c.nodes) {
      const accountShards = node.shards
        .ownedShards()
        .filter((shardId) => shardId.startsWith(`${accounts.name}/`));
      expect(accountShards).toHaveLength(2);
    }
    const bankShardsOf = (nodeId: string) =>
      nodeOf(c, nodeId)
        .shards.ownedShards()
        .filter((shardId) => shardId.startsWith(`${bankA.name}/`)).length;
    expect([bankShardsOf('node-a'), bankShardsOf('node-c')]).toEqual([3, 3]);
  });

  it('routes a command sent on any node to the one owner, and its reply back to the asker', async () => {
    const c = threeNodes();
    await startAll(c);
    for (const [index, id] of accountIds.entries()) {
      const asker = c.nodes[index % c.nodes.length];
      if (asker === undefined) throw new Error('no node');
      const reply = await settled(c, deposit(asker, entityAddress('account', id), 10n + BigInt(index)));
      expect(reply).toEqual({ type: 'Accepted', balance: 10n + BigInt(index) });
    }
    for (const id of accountIds) {
      const address = entityAddress('account', id);
      const shardId = nodeOf(c, 'node-a').shards.shardOf(address);
      const runningOn = c.nodes.filter((node) =>
        node.entities.runningAddresses().some((each) => persistenceIdOf(each) === persistenceIdOf(address)),
      );
      expect(runningOn.map((node) => node.nodeId)).toEqual(ownersOf(c).get(shardId));
    }
  });

  it('never starts a role-bound entity on a node without the role', async () => {
    const c = threeNodes();
    await startAll(c);
    for (const id of accountIds) {
      const reply = await settled(c, deposit(nodeOf(c, 'node-b'), entityAddress(bankAccountType, id), 5n));
      expect(reply).toEqual({ type: 'Accepted', balance: 5n });
    }
    expect(nodeOf(c, 'node-b').started.filter((id) => id.startsWith(`${bankAccountType}-`))).toEqual([]);
    expect(nodeOf(c, 'node-a').started.some((id) => id.startsWith(`${bankAccountType}-`))).toBe(true);
  });

  it('takes a killed node’s shards over after the lease TTL and recovers its entities from the journal', async () => {
    const c = threeNodes();
    await startAll(c);
    const address = entityAddress<AccountCommand>('account', 'acct-1');
    const victimId = ownersOf(c).get(nodeOf(c, 'node-a').shards.shardOf(address))?.[0];
    const survivor = c.nodes.find((node) => node.nodeId !== victimId);
    if (victimId === undefined || survivor === undefined) throw new Error('no owner');
    expect(await settled(c, deposit(survivor, address, 42n))).toEqual({ type: 'Accepted', balance: 42n });

    const victim = nodeOf(c, victimId);
    victim.shards.halt();
    await victim.transport.close();
    await settleRounds(c, settings.leaseTtlMs / settings.heartbeatIntervalMs + 3);

    const shardId = survivor.shards.shardOf(address);
    const newOwner = ownersOf(c).get(shardId);
    expect(newOwner).toHaveLength(1);
    expect(newOwner?.[0]).not.toBe(victimId);
    // The new owner started the entity when it took the shard, from the journal, without traffic.
    const owner = nodeOf(c, newOwner?.[0] ?? '');
    expect(owner.started).toContain(persistenceIdOf(address));
    expect(await settled(c, balance(survivor, address))).toEqual({ type: 'Balance', balance: 42n });
  });

  it('self-fences a node that cannot reach the store before its leases expire; its stale write is refused', async () => {
    const c = cluster();
    let storeReachable = true;
    const flaky = unreachableWhen(c.store, () => !storeReachable);
    const paused = addNode(c, 'node-a', ['bank-a'], flaky);
    addNode(c, 'node-b', ['bank-a']);
    addNode(c, 'node-c', ['bank-a']);
    await startAll(c);
    const address = entityAddress<AccountCommand>('account', 'acct-3');
    const shardId = paused.shards.shardOf(address);
    // Put the entity on node-a: find an id whose shard node-a owns.
    const ownedId = accountIds.find((id) =>
      paused.shards.ownedShards().includes(paused.shards.shardOf(entityAddress('account', id))),
    );
    if (ownedId === undefined) throw new Error(`node-a owns no account shard (${shardId})`);
    const owned = entityAddress<AccountCommand>('account', ownedId);
    expect(await settled(c, deposit(paused, owned, 7n))).toEqual({ type: 'Accepted', balance: 7n });
    const oldFence = paused.shards.fenceFor(owned);
    if (oldFence === undefined) throw new Error('node-a holds no fence');

    storeReachable = false;
    const lostAt = c.clock.now();
    // Just before the TTL, nobody else may have taken the shard, and node-a has already stopped it.
    await c.clock.advanceAsync(settings.leaseTtlMs - 10);
    expect(paused.shards.ownedShards()).toEqual([]);
    expect(paused.entities.runningAddresses()).toEqual([]);
    expect(c.clock.now() - lostAt).toBeLessThan(settings.leaseTtlMs);
    expect(c.warnings).toContainEqual({
      message: 'lease not renewed in time; self-fencing: stopping the shard',
      fields: { nodeId: 'node-a', shardId: oldFence.shardId, epoch: oldFence.epoch },
    });

    await settleRounds(c, 5);
    const newOwner = ownersOf(c).get(paused.shards.shardOf(owned))?.[0];
    expect(newOwner).toBeDefined();
    expect(newOwner).not.toBe('node-a');

    // A write node-a might still attempt under its old lease is refused, and nothing of it lands.
    const before = await c.journal.highestSeqNr(persistenceIdOf(owned));
    await expect(
      c.journal.append({
        persistenceId: persistenceIdOf(owned),
        fromSeqNr: before + 1,
        events: [{ type: 'Deposited', version: 2, payload: '{"amount":"1"}' }],
        timestamp: c.clock.now(),
        fence: oldFence,
      }),
    ).rejects.toBeInstanceOf(StaleEpochError);
    expect(await c.journal.highestSeqNr(persistenceIdOf(owned))).toBe(before);
    expect(await settled(c, balance(nodeOf(c, 'node-b'), owned))).toEqual({ type: 'Balance', balance: 7n });
  });

  it('stops an entity that writes with a stale epoch, without restarting it', async () => {
    const c = threeNodes();
    await startAll(c);
    const stale = nodeOf(c, 'node-a');
    const ownedId = accountIds.find((id) =>
      stale.shards.ownedShards().includes(stale.shards.shardOf(entityAddress('account', id))),
    );
    if (ownedId === undefined) throw new Error('node-a owns no account shard');
    const address = entityAddress<AccountCommand>('account', ownedId);
    expect(await settled(c, deposit(stale, address, 3n))).toEqual({ type: 'Accepted', balance: 3n });
    // node-a stops dead (a long pause); its entity is still there when it wakes up.
    stale.shards.halt();
    await settleRounds(c, settings.leaseTtlMs / settings.heartbeatIntervalMs + 3);
    expect(ownersOf(c).get(stale.shards.shardOf(address))?.[0]).not.toBe('node-a');

    const before = await c.journal.highestSeqNr(persistenceIdOf(address));
    const ref = stale.entities.refFor(address);
    ref.tell({ type: 'Deposit', amount: 100n, replyTo: { path: '/nowhere', tell: () => undefined } });
    await c.clock.advanceAsync(10);
    expect(await c.journal.highestSeqNr(persistenceIdOf(address))).toBe(before);
    const refusal = c.warnings.find((warning) =>
      warning.message.startsWith('write refused by the epoch check'),
    );
    expect(refusal?.fields).toMatchObject({
      nodeId: 'node-a',
      persistenceId: persistenceIdOf(address),
      shardId: stale.shards.shardOf(address),
      owner: 'node-a',
    });
    const runsHere = () =>
      stale.entities.runningAddresses().some((each) => persistenceIdOf(each) === persistenceIdOf(address));
    expect(runsHere()).toBe(false);
    // And no revival loop: it stays stopped.
    await c.clock.advanceAsync(5_000);
    expect(runsHere()).toBe(false);
  });

  it('drops a reply meant for an ask of the process that ran before under the same node id', async () => {
    const c = threeNodes();
    await startAll(c);
    const old = nodeOf(c, 'node-a');
    const remote = (except: string) =>
      accountIds.find((id) => {
        const owner = ownersOf(c).get(old.shards.shardOf(entityAddress('account', id)))?.[0];
        return owner !== 'node-a' && id !== except;
      });
    const first = remote('');
    const second = first === undefined ? undefined : remote(first);
    if (first === undefined || second === undefined) throw new Error('node-a owns every account shard');
    // The old process asks (its reply address is its first ask's), and dies before the request
    // is even delivered; a new process under the same id asks too, from a reply address of the
    // same path. The owner answers both: each answer must reach its own ask, or none.
    const lost = deposit(old, entityAddress('account', first), 5n);
    lost.catch(() => {});
    old.shards.halt();
    await old.transport.close();
    await old.system.terminate();
    const restarted = addNode(c, 'node-a', ['bank-a']);
    await restarted.shards.start();
    const answer = await settled(c, balance(restarted, entityAddress('account', second)));
    expect(answer).toEqual({ type: 'Balance', balance: 0n });
  });

  it('hands a leaving node’s shards over at once, not after the TTL', async () => {
    const c = threeNodes();
    await startAll(c);
    const leaving = nodeOf(c, 'node-c');
    const handed = leaving.shards.ownedShards();
    expect(handed.length).toBeGreaterThan(0);
    await settled(c, leaving.shards.leave());
    expect(leaving.shards.ownedShards()).toEqual([]);
    expect(leaving.entities.runningAddresses()).toEqual([]);
    const leftAt = c.clock.now();
    await settleRounds(c, 2);
    expect(c.clock.now() - leftAt).toBeLessThan(settings.leaseTtlMs);
    const owners = ownersOf(c);
    for (const shardId of handed) {
      expect(owners.get(shardId)).toHaveLength(1);
      expect(owners.get(shardId)?.[0]).not.toBe('node-c');
    }
    // With node-c gone, every bank-a shard is on node-a, the only other node with the role.
    for (const [shardId, nodes] of owners)
      if (shardId.startsWith(`${bankA.name}/`)) expect(nodes).toEqual(['node-a']);
  });

  it('moves shards to a node that joins, a bounded number per round', async () => {
    const c = cluster();
    addNode(c, 'node-a', ['bank-a']);
    await startAll(c);
    expect(nodeOf(c, 'node-a').shards.ownedShards()).toHaveLength(settings.shardCount * groups.length);
    const late = addNode(c, 'node-b', []);
    await late.shards.start();
    await settleRounds(c, 10);
    expect(late.shards.ownedShards()).toHaveLength(settings.shardCount / 2);
    expect(late.shards.ownedShards().every((shardId) => shardId.startsWith(`${accounts.name}/`))).toBe(true);
  });
});

/** The store, as seen by a node cut off from the database while `cut()` says so. */
function unreachableWhen(store: ClusterStore, cut: () => boolean): ClusterStore {
  const guard = async <T>(call: () => Promise<T>): Promise<T> => {
    if (cut()) throw new Error('cluster store unreachable');
    return call();
  };
  return {
    join: (member) => guard(() => store.join(member)),
    heartbeat: (self) => guard(() => store.heartbeat(self)),
    leave: (self) => guard(() => store.leave(self)),
    members: () => guard(() => store.members()),
    acquireLease: (shardId, owner) => guard(() => store.acquireLease(shardId, owner)),
    renewLease: (lease) => guard(() => store.renewLease(lease)),
    renewLeases: (owner, leases) => guard(() => store.renewLeases(owner, leases)),
    acquireLeases: (shardIds, owner) => guard(() => store.acquireLeases(shardIds, owner)),
    releaseLease: (lease) => guard(() => store.releaseLease(lease)),
    leases: () => guard(() => store.leases()),
    close: () => store.close(),
  };
}
