import { describe, expect, it } from 'vitest';
import { targetOf } from '../gateway/load.js';
import { type ClusterView, settledOn, shardLogEvents, summarize, warningCounts } from './cluster-view.js';

const members: ClusterView['members'] = [
  { nodeId: 'node-1', url: 'a', roles: ['bank-a'], state: 'up', lastHeartbeatAt: '' },
  { nodeId: 'node-2', url: 'b', roles: ['bank-b'], state: 'up', lastHeartbeatAt: '' },
];

function view(owners: ReadonlyArray<[string, string | null]>, state: 'up' | 'down' = 'up'): ClusterView {
  return {
    members: members.map((member) => (member.nodeId === 'node-2' ? { ...member, state } : member)),
    shards: owners.map(([shard, owner]) => ({ shard, owner, epoch: 1, entities: [] })),
    settings: {},
  };
}

describe('settledOn', () => {
  it('is settled when every shard is owned and each group is spread within one', () => {
    const spread = view([
      ['merchants/0', 'node-1'],
      ['merchants/1', 'node-2'],
      ['merchants/2', 'node-1'],
      ['executor-bank-a/0', 'node-1'],
      ['executor-bank-a/1', 'node-1'],
    ]);
    expect(settledOn(spread, ['node-1', 'node-2'])).toBe(true);
  });

  it('is not settled while a group is two apart, a shard has no owner, or a node is not up', () => {
    const uneven = view([
      ['merchants/0', 'node-1'],
      ['merchants/1', 'node-1'],
    ]);
    expect(settledOn(uneven, ['node-1', 'node-2'])).toBe(false);
    expect(settledOn(view([['merchants/0', null]]), ['node-1', 'node-2'])).toBe(false);
    expect(settledOn(view([['merchants/0', 'node-1']], 'down'), ['node-1', 'node-2'])).toBe(false);
  });

  it('is not settled when a shard of a role sits on a node without it', () => {
    expect(settledOn(view([['executor-bank-a/0', 'node-2']]), ['node-1', 'node-2'])).toBe(false);
  });
});

describe('summarize', () => {
  it('gives the median, the 90th percentile by nearest rank and the worst', () => {
    expect(summarize([5, 1, 4, 2, 3, 10, 9, 8, 7, 6])).toEqual({ count: 10, median: 6, p90: 9, worst: 10 });
    expect(summarize([])).toEqual({ count: 0, median: null, p90: null, worst: null });
  });
});

describe('shardLogEvents', () => {
  it('keeps the shard lines logged since the given time, in order', () => {
    const output = [
      '{"level":30,"time":100,"shardId":"merchants/1","msg":"shard acquired"}',
      'not json "shard ',
      '{"level":30,"time":200,"shardId":"merchants/2","msg":"shard acquired"}',
      '{"level":30,"time":300,"shardId":"merchants/2","msg":"shard handed over"}',
      '{"level":40,"time":400,"msg":"cluster task failed"}',
    ].join('\n');
    expect(shardLogEvents(output, 150)).toEqual([
      { atEpochMs: 200, what: 'shard acquired', shardId: 'merchants/2' },
      { atEpochMs: 300, what: 'shard handed over', shardId: 'merchants/2' },
    ]);
  });
});

describe('targetOf', () => {
  it('sends every merchant’s orders to every server', () => {
    const merchants = 3;
    const servers = 3;
    const pairs = new Set(
      Array.from(
        { length: 9 },
        (_, sequence) => `${sequence % merchants}@${targetOf(sequence, merchants, servers)}`,
      ),
    );
    expect(pairs.size).toBe(9);
  });
});

describe('warningCounts', () => {
  it('counts warnings and errors by message, most frequent first', () => {
    const output = [
      '{"level":30,"time":1,"msg":"shard acquired"}',
      '{"level":40,"time":2,"msg":"lease not renewed in time; self-fencing"}',
      '{"level":50,"time":3,"msg":"order projection failed"}',
      '{"level":40,"time":4,"msg":"lease not renewed in time; self-fencing"}',
    ].join('\n');
    expect(warningCounts(output)).toEqual({
      'lease not renewed in time; self-fencing': 2,
      'order projection failed': 1,
    });
  });
});
