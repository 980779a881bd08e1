import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../runtime/clock.js';
import { silentLogger } from '../runtime/logger.js';
import { clusterSettings } from './cluster-settings.js';
import { MemoryClusterStore } from './memory-cluster-store.js';
import { ShardManager } from './shard-manager.js';
import { shardGroup } from './shards.js';

const settings = clusterSettings({
  heartbeatIntervalMs: 100,
  memberTimeoutMs: 500,
  leaseTtlMs: 400,
  leaseRenewIntervalMs: 100,
  shardCount: 4,
  rebalanceShardsMax: 4,
});
const group = shardGroup('accounts');

describe('ShardManager self-fencing', () => {
  it('stops each shard once when every timer finds its lease expired at the same moment', async () => {
    const clock = new SimulatedClock();
    const store = new MemoryClusterStore(clock, settings);
    const stops: string[] = [];
    const shards = new ShardManager({
      store,
      self: { nodeId: 'node-a', address: 'a:1', roles: [] },
      groups: [group],
      groupOf: () => group,
      settings,
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
    expect(shards.ownedShards()).toHaveLength(settings.shardCount);
    // The database goes away; the renewals, the rounds and the self-fence timer all come due.
    store.unavailable = true;
    for (let step = 0; step < 20; step++) await clock.advanceAsync(50);
    expect(shards.ownedShards()).toEqual([]);
    expect(stops.sort()).toEqual(['accounts/0', 'accounts/1', 'accounts/2', 'accounts/3']);
    shards.halt();
  });

  it('owns nothing once halted: no shard, no fence, so nothing of a dead node starts or writes', async () => {
    const clock = new SimulatedClock();
    const store = new MemoryClusterStore(clock, settings);
    const shards = new ShardManager({
      store,
      self: { nodeId: 'node-a', address: 'a:1', roles: [] },
      groups: [group],
      groupOf: () => group,
      settings,
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
