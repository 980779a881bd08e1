/**
 * Lease renewal costs one call to the store per renewal interval, whatever the number of shards a
 * node holds; a lease the store does not renew stops its shard. One node over a memory store on a
 * simulated clock; the store is wrapped to count its renewal calls.
 */
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../runtime/clock.js';
import { silentLogger } from '../runtime/logger.js';
import type { ClusterSettings } from './cluster-settings.js';
import type { ClusterStore } from './cluster-store.js';
import { MemoryClusterStore } from './memory-cluster-store.js';
import { ShardManager } from './shard-manager.js';
import { shardGroup } from './shards.js';

const settings: ClusterSettings = {
  heartbeatIntervalMs: 1_000,
  memberTimeoutMs: 5_000,
  leaseTtlMs: 4_000,
  leaseRenewIntervalMs: 1_000,
  shardCount: 6,
  rebalanceShardsMax: 6,
};

describe('ShardManager lease renewal', () => {
  it('renews every held lease in one call per interval, and stops a shard whose lease was not renewed', async () => {
    const clock = new SimulatedClock();
    const memory = new MemoryClusterStore(clock, settings);
    const calls = { renewLease: 0, renewLeases: [] as number[] };
    const store: ClusterStore = {
      join: (member) => memory.join(member),
      heartbeat: (self) => memory.heartbeat(self),
      leave: (self) => memory.leave(self),
      members: () => memory.members(),
      acquireLease: (shardId, owner) => memory.acquireLease(shardId, owner),
      acquireLeases: (shardIds, owner) => memory.acquireLeases(shardIds, owner),
      renewLease: (lease) => {
        calls.renewLease++;
        return memory.renewLease(lease);
      },
      renewLeases: (owner, leases) => {
        calls.renewLeases.push(leases.length);
        return memory.renewLeases(owner, leases);
      },
      releaseLease: (lease) => memory.releaseLease(lease),
      leases: () => memory.leases(),
      close: () => memory.close(),
    };
    const stopped: string[] = [];
    const group = shardGroup('orders');
    const shards = new ShardManager({
      store,
      self: { nodeId: 'node-a', address: 'node-a:7000', roles: [] },
      groups: [group],
      groupOf: () => group,
      settings,
      clock,
      logger: silentLogger,
      entities: {
        stopShard: async (shardId) => {
          stopped.push(shardId);
        },
        startShard: () => undefined,
      },
    });
    await shards.start();
    expect(shards.ownedShards()).toHaveLength(6);

    // Another owner's release and take of orders/0 leaves node-a's fence of it stale.
    const fence = shards.fenceOfShard('orders/0');
    if (fence === undefined) throw new Error('node-a holds no lease of orders/0');
    await memory.releaseLease(fence);
    await memory.acquireLease('orders/0', 'node-b');
    await clock.advanceAsync(settings.leaseRenewIntervalMs);

    expect(calls).toEqual({ renewLease: 0, renewLeases: [6] });
    expect(stopped).toEqual(['orders/0']);
    expect(shards.ownedShards()).toHaveLength(5);
    shards.halt();
  });
});
