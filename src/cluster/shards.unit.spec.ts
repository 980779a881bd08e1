import { describe, expect, it } from 'vitest';
import { mayOwn, parseShardId, shardGroup, shardIdsOf, shardOf } from './shards.js';

describe('shards', () => {
  const orders = shardGroup('orders');
  const executorsOfBankA = shardGroup('executor-bank-a', 'bank-a');

  it('puts an entity in the same shard every time, named by its group and index', () => {
    expect(shardOf(orders, 'order-1', 128)).toBe(shardOf(orders, 'order-1', 128));
    expect(shardOf(orders, 'order-1', 128)).toMatch(/^orders\/(\d|[1-9]\d|1[01]\d|12[0-7])$/);
    expect(shardOf(executorsOfBankA, 'order-1', 128)).toBe(
      shardOf(orders, 'order-1', 128).replace('orders', 'executor-bank-a'),
    );
    // CRC-32's published check value: the hash is the standard one, the same on every machine.
    expect(shardOf(orders, '123456789', 1_000_000)).toBe(`orders/${0xcbf43926 % 1_000_000}`);
  });

  it('spreads ids over every shard roughly evenly', () => {
    const shardCount = 16;
    const counts = new Map<string, number>();
    for (let index = 0; index < 16_000; index++) {
      const shard = shardOf(orders, `order-${index}`, shardCount);
      counts.set(shard, (counts.get(shard) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(shardIdsOf(orders, shardCount).sort());
    for (const count of counts.values()) {
      expect(count).toBeGreaterThan(800);
      expect(count).toBeLessThan(1_200);
    }
  });

  it('parses a shard id back into its group and index, and refuses what is not one', () => {
    expect(parseShardId('executor-bank-a/17')).toEqual({ group: 'executor-bank-a', index: 17 });
    for (const text of ['orders', 'orders/', 'orders/01', 'Orders/1', 'orders/-1', '/1', 'orders/1/2']) {
      expect(parseShardId(text)).toBeUndefined();
    }
  });

  it("places a role's group only on nodes with that role, and a group without a role anywhere", () => {
    expect(mayOwn(executorsOfBankA, ['bank-a'])).toBe(true);
    expect(mayOwn(executorsOfBankA, ['bank-b'])).toBe(false);
    expect(mayOwn(executorsOfBankA, [])).toBe(false);
    expect(mayOwn(orders, [])).toBe(true);
  });

  it('gives a group with a shard count of its own that many shards, whatever the cluster’s', () => {
    const readModel = shardGroup('read-model', undefined, 1);
    expect(shardIdsOf(readModel, 128)).toEqual(['read-model/0']);
    expect(shardOf(readModel, 'orders', 128)).toBe('read-model/0');
    expect(shardIdsOf(shardGroup('few', undefined, 3), 128)).toEqual(['few/0', 'few/1', 'few/2']);
    expect(() => shardGroup('none', undefined, 0)).toThrow();
  });

  it('refuses a group name that would not round-trip through a shard id', () => {
    expect(() => shardGroup('Orders')).toThrow();
    expect(() => shardGroup('orders/a')).toThrow();
    expect(() => shardGroup('')).toThrow();
  });
});
