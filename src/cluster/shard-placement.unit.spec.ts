import { describe, expect, it } from 'vitest';
import type { Member, ShardLease } from './cluster-store.js';
import { placeShards } from './shard-placement.js';
import { shardGroup, shardIdsOf } from './shards.js';

const open = shardGroup('orders');
const bankA = shardGroup('executor-bank-a', 'bank-a');

function member(nodeId: string, roles: readonly string[] = [], state: Member['state'] = 'up'): Member {
  return { nodeId, address: `${nodeId}:1`, roles, incarnation: 1, state, heartbeatAgeMs: 0 };
}

function lease(shardId: string, owner: string | undefined): ShardLease {
  return { shardId, owner, epoch: 1, expiresAt: 0, acquirable: owner === undefined };
}

function loads(target: Map<string, string | undefined>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const owner of target.values()) if (owner !== undefined) counts[owner] = (counts[owner] ?? 0) + 1;
  return counts;
}

describe('placeShards', () => {
  it('spreads unowned shards evenly and only over nodes with the group’s role', () => {
    const target = placeShards({
      groups: [open, bankA],
      shardCount: 6,
      members: [member('a', ['bank-a']), member('b'), member('c', ['bank-a'])],
      leases: [],
      rebalanceShardsMax: 1,
    });
    for (const shardId of shardIdsOf(bankA, 6)) expect(['a', 'c']).toContain(target.get(shardId));
    expect(loads(new Map([...target].filter(([id]) => id.startsWith('orders/'))))).toEqual({
      a: 2,
      b: 2,
      c: 2,
    });
  });

  it('places a group of one shard on one node, keeps it there as nodes join, and moves it when its owner leaves', () => {
    const single = shardGroup('read-model', undefined, 1);
    const first = placeShards({
      groups: [open, single],
      shardCount: 4,
      members: [member('b'), member('c')],
      leases: [],
      rebalanceShardsMax: 4,
    });
    expect([...first.keys()].filter((shardId) => shardId.startsWith('read-model/'))).toEqual([
      'read-model/0',
    ]);
    expect(first.get('read-model/0')).toBe('b');
    const joined = placeShards({
      groups: [open, single],
      shardCount: 4,
      members: [member('a'), member('b'), member('c')],
      leases: [lease('read-model/0', 'b')],
      rebalanceShardsMax: 4,
    });
    expect(joined.get('read-model/0')).toBe('b');
    const left = placeShards({
      groups: [open, single],
      shardCount: 4,
      members: [member('a'), member('b', [], 'leaving'), member('c')],
      leases: [lease('read-model/0', 'b')],
      rebalanceShardsMax: 4,
    });
    expect(left.get('read-model/0')).toBe('a');
  });

  it('keeps shards with live owners and moves at most rebalanceShardsMax per round', () => {
    const shardIds = shardIdsOf(open, 8);
    const target = placeShards({
      groups: [open],
      shardCount: 8,
      members: [member('a'), member('b')],
      leases: shardIds.map((shardId) => lease(shardId, 'a')),
      rebalanceShardsMax: 3,
    });
    expect(loads(target)).toEqual({ a: 5, b: 3 });
  });

  it('gives no target to a group no live node may own, and none to down or leaving nodes', () => {
    const target = placeShards({
      groups: [open, bankA],
      shardCount: 2,
      members: [member('a', ['bank-a'], 'down'), member('b'), member('c', [], 'leaving')],
      leases: [lease('orders/0', 'c'), lease('orders/1', 'a')],
      rebalanceShardsMax: 1,
    });
    expect(target.get('executor-bank-a/0')).toBeUndefined();
    expect(target.get('orders/0')).toBe('b');
    expect(target.get('orders/1')).toBe('b');
  });

  it('moves a shard whose lease expired away from its owner, still up, and gives that owner nothing new', () => {
    const shardIds = shardIdsOf(open, 6);
    const expired = (shardId: string, owner: string): ShardLease => ({
      shardId,
      owner,
      epoch: 1,
      expiresAt: 0,
      acquirable: true,
    });
    // a was killed: its leases expired before the membership declared it down.
    const target = placeShards({
      groups: [open],
      shardCount: 6,
      members: [member('a'), member('b'), member('c')],
      leases: [
        expired('orders/0', 'a'),
        expired('orders/1', 'a'),
        lease('orders/2', 'b'),
        lease('orders/3', 'b'),
        lease('orders/4', 'c'),
        lease('orders/5', 'c'),
      ],
      rebalanceShardsMax: 6,
    });
    expect(shardIds.map((shardId) => target.get(shardId))).toEqual(['b', 'c', 'b', 'b', 'c', 'c']);
    // Alone, a node that let a lease expire takes it back.
    const alone = placeShards({
      groups: [open],
      shardCount: 1,
      members: [member('a')],
      leases: [expired('orders/0', 'a')],
      rebalanceShardsMax: 1,
    });
    expect(alone.get('orders/0')).toBe('a');
  });

  it('reaches the same answer whatever order the members are listed in', () => {
    const members = [member('c'), member('a'), member('b')];
    const input = { groups: [open], shardCount: 7, leases: [], rebalanceShardsMax: 2 };
    const forward = new Map(placeShards({ ...input, members }));
    const backward = new Map(placeShards({ ...input, members: [...members].reverse() }));
    expect(Object.fromEntries(forward)).toEqual(Object.fromEntries(backward));
    expect(new Set(forward.values())).toEqual(new Set(['a', 'b', 'c']));
  });
});
