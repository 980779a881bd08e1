/**
 * ShardManager against a store whose statements take time, as PostgreSQL's do on a loaded
 * machine. A node that must take many shards at once (the first node up, or the survivor of a
 * failover) takes them in statements that each take time; it must go on heartbeating and renewing
 * while it does, or it is declared down by its own slowness, drops everything, joins again and
 * starts over.
 */
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../runtime/clock.js';
import { type Logger, silentLogger } from '../runtime/logger.js';
import type { Fence } from '../store/journal.js';
import { clusterSettings } from './cluster-settings.js';
import type {
  ClusterStore,
  Incarnation,
  JoiningMember,
  LeaseGrant,
  LeaseView,
  MembershipView,
} from './cluster-store.js';
import { MemoryClusterStore } from './memory-cluster-store.js';
import { ShardManager } from './shard-manager.js';
import { shardGroup } from './shards.js';

const settings = clusterSettings({ shardCount: 64, rebalanceShardsMax: 8 });

/** Every statement answers after `latencyMs` of the store's (simulated) time. */
class SlowStore implements ClusterStore {
  constructor(
    private readonly inner: MemoryClusterStore,
    private readonly clock: SimulatedClock,
    private readonly latencyMs: number,
  ) {}

  private later<T>(work: () => Promise<T>): Promise<T> {
    return new Promise((resolve, reject) => {
      this.clock.schedule(this.latencyMs, () => {
        work().then(resolve, reject);
      });
    });
  }

  join(member: JoiningMember): Promise<Incarnation> {
    return this.later(() => this.inner.join(member));
  }
  heartbeat(self: Incarnation): Promise<boolean> {
    return this.later(() => this.inner.heartbeat(self));
  }
  leave(self: Incarnation): Promise<boolean> {
    return this.later(() => this.inner.leave(self));
  }
  members(): Promise<MembershipView> {
    return this.later(() => this.inner.members());
  }
  acquireLease(shardId: string, owner: string): Promise<LeaseGrant | undefined> {
    return this.later(() => this.inner.acquireLease(shardId, owner));
  }
  renewLease(lease: Fence): Promise<LeaseGrant | undefined> {
    return this.later(() => this.inner.renewLease(lease));
  }
  renewLeases(owner: string, leases: readonly Fence[]): Promise<LeaseGrant[]> {
    return this.later(() => this.inner.renewLeases(owner, leases));
  }
  acquireLeases(shardIds: readonly string[], owner: string): Promise<LeaseGrant[]> {
    return this.later(() => this.inner.acquireLeases(shardIds, owner));
  }
  releaseLease(lease: Fence): Promise<boolean> {
    return this.later(() => this.inner.releaseLease(lease));
  }
  leases(): Promise<LeaseView> {
    return this.later(() => this.inner.leases());
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

function recordingLogger(warnings: string[]): Logger {
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    warn: (_fields, message) => warnings.push(message),
    error: (_fields, message) => warnings.push(message),
    child: () => logger,
  };
  return logger;
}

describe('ShardManager on a slow store', () => {
  it('takes many shards a few per round and stays a member with every lease', async () => {
    const clock = new SimulatedClock();
    const memory = new MemoryClusterStore(clock, settings);
    // 64 acquisitions of 100 ms each: 6.4 s, longer than memberTimeoutMs (5 s).
    const store = new SlowStore(memory, clock, 100);
    const warnings: string[] = [];
    const group = shardGroup('accounts');
    const shards = new ShardManager({
      store,
      self: { nodeId: 'node-1', address: 'node-1:7070', roles: [] },
      groups: [group],
      groupOf: () => group,
      settings,
      clock,
      logger: recordingLogger(warnings),
      entities: { stopShard: async () => {}, startShard: () => {} },
    });
    let started = false;
    const starting = shards.start().then(() => {
      started = true;
    });
    for (let step = 0; step < 2_000 && !started; step++) await clock.advanceAsync(10);
    await starting;
    for (let step = 0; step < 2_000; step++) await clock.advanceAsync(10);

    expect(warnings).toEqual([]);
    expect(shards.ownedShards()).toHaveLength(settings.shardCount);
    const { members } = await memory.members();
    expect(members.map((member) => [member.nodeId, member.incarnation, member.state])).toEqual([
      ['node-1', 1, 'up'],
    ]);
    shards.halt();
  });
});

/** Short timings for the self-fencing cases. */
const selfFenceSettings = clusterSettings({
  heartbeatIntervalMs: 100,
  memberTimeoutMs: 500,
  leaseTtlMs: 400,
  leaseRenewIntervalMs: 100,
  shardCount: 4,
  rebalanceShardsMax: 4,
});
const accounts = shardGroup('accounts');

describe('ShardManager self-fencing', () => {
  it('stops each shard once when every timer finds its lease expired at the same moment', async () => {
    const clock = new SimulatedClock();
    const store = new MemoryClusterStore(clock, selfFenceSettings);
    const stops: string[] = [];
    const shards = new ShardManager({
      store,
      self: { nodeId: 'node-a', address: 'a:1', roles: [] },
      groups: [accounts],
      groupOf: () => accounts,
      settings: selfFenceSettings,
      clock,
      logger: silentLogger,
      entities: {
        // Stopping a shard's entities takes a while: they finish their current message first.
        stopShard: (shardId) =>
          new Promise<void>((resolve) => {
            stops.push(shardId);
            clock.schedule(30, resolve);
          }),
        startShard: () => {},
      },
    });
    await shards.start();
    expect(shards.ownedShards()).toHaveLength(selfFenceSettings.shardCount);
    // The database goes away; the renewals, the rounds and the self-fence timer all come due.
    store.unavailable = true;
    for (let step = 0; step < 20; step++) await clock.advanceAsync(50);
    expect(shards.ownedShards()).toEqual([]);
    expect(stops.sort()).toEqual(['accounts/0', 'accounts/1', 'accounts/2', 'accounts/3']);
    shards.halt();
  });

  it('owns nothing once halted: no shard, no fence, so nothing of a dead node starts or writes', async () => {
    const clock = new SimulatedClock();
    const store = new MemoryClusterStore(clock, selfFenceSettings);
    const shards = new ShardManager({
      store,
      self: { nodeId: 'node-a', address: 'a:1', roles: [] },
      groups: [accounts],
      groupOf: () => accounts,
      settings: selfFenceSettings,
      clock,
      logger: silentLogger,
      entities: { stopShard: async () => {}, startShard: () => {} },
    });
    await shards.start();
    const address = { typeName: 'account', entityId: 'acct-1' };
    expect(shards.fenceFor(address)).toBeDefined();
    shards.halt();
    expect(shards.ownedShards()).toEqual([]);
    expect(shards.fenceFor(address)).toBeUndefined();
    expect(shards.ownerOf(shards.shardOf(address))).toBeUndefined();
  });
});
