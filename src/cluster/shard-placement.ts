import type { Member, ShardLease } from './cluster-store.js';
import { mayOwn, type ShardGroup, shardIdsOf } from './shards.js';

export interface PlacementInput {
  readonly groups: readonly ShardGroup[];
  readonly shardCount: number;
  /** Every member as the store reports it; only `up` members receive shards. */
  readonly members: readonly Member[];
  /** Every lease row as the store reports it. */
  readonly leases: readonly ShardLease[];
  /** Shards moved at most from one live owner to another in this round. */
  readonly rebalanceShardsMax: number;
}

/**
 * Where every shard should be, by a rule each node applies to the same views of the store and
 * reaches the same answer with, so no coordinator is needed:
 *
 * 1. A shard stays with its owner while that owner is `up`, may own the shard's group, and its
 *    lease has not expired.
 * 2. Every other shard (no owner, an expired lease, or an owner that is down, leaving, or lacks the
 *    role) goes to the eligible `up` node with the fewest shards of its group, the smallest node id
 *    on a tie.
 * 3. Then, while some eligible node has at least two shards of a group more than another, one shard
 *    (the last it was given in the order above) moves from the most loaded (largest node id on a tie) to the least loaded,
 *    at most `rebalanceShardsMax` moves per round over all groups.
 *
 * A node that let a lease expire is *suspect*: it died, or is paused, or could not reach the store
 * in time. It receives no shard in rules 2 and 3 while another eligible node can take it (it keeps
 * those whose leases still hold), so a dead node's shards move once its leases expire, without
 * waiting for the membership to declare it down, and are never handed to it meanwhile.
 *
 * A shard with no eligible node has no target (`undefined`): it waits until a node of its role joins.
 * Nodes that read slightly different views may briefly disagree; leases decide, and the next round
 * converges.
 */
export function placeShards(input: PlacementInput): Map<string, string | undefined> {
  const owners = new Map(
    input.leases.filter((lease) => !lease.acquirable).map((lease) => [lease.shardId, lease.owner]),
  );
  const suspects = new Set(
    input.leases.filter((lease) => lease.acquirable && lease.owner !== undefined).map((lease) => lease.owner),
  );
  const up = input.members.filter((member) => member.state === 'up');
  const target = new Map<string, string | undefined>();
  let movesLeft = input.rebalanceShardsMax;
  for (const group of input.groups) {
    const eligible = up
      .filter((member) => mayOwn(group, member.roles))
      .map((member) => member.nodeId)
      .sort();
    const shardIds = shardIdsOf(group, input.shardCount);
    if (eligible.length === 0) {
      for (const shardId of shardIds) target.set(shardId, undefined);
      continue;
    }
    const held = new Map<string, string[]>(eligible.map((nodeId) => [nodeId, []]));
    const homeless: string[] = [];
    for (const shardId of shardIds) {
      const owner = owners.get(shardId);
      const shards = owner === undefined ? undefined : held.get(owner);
      if (shards === undefined) homeless.push(shardId);
      else shards.push(shardId);
    }
    const receiving = receivers(held, suspects);
    for (const shardId of homeless) leastLoaded(receiving).push(shardId);
    while (movesLeft > 0) {
      const [fullest, fullestShards] = mostLoaded(held);
      const emptiest = leastLoaded(receiving);
      if (fullestShards.length - emptiest.length < 2) break;
      const moved = fullestShards.pop();
      if (moved === undefined || fullest === undefined) break;
      emptiest.push(moved);
      movesLeft--;
    }
    for (const [nodeId, shards] of held) for (const shardId of shards) target.set(shardId, nodeId);
  }
  return target;
}

/** The nodes that may receive shards: every eligible one but the suspects, unless all are suspects. */
function receivers(
  held: Map<string, string[]>,
  suspects: ReadonlySet<string | undefined>,
): Map<string, string[]> {
  const trusted = new Map([...held].filter(([nodeId]) => !suspects.has(nodeId)));
  return trusted.size > 0 ? trusted : held;
}

function leastLoaded(held: Map<string, string[]>): string[] {
  let best: [string, string[]] | undefined;
  for (const entry of held) {
    if (
      best === undefined ||
      entry[1].length < best[1].length ||
      (entry[1].length === best[1].length && entry[0] < best[0])
    ) {
      best = entry;
    }
  }
  if (best === undefined) throw new Error('placement needs at least one eligible node');
  return best[1];
}

function mostLoaded(held: Map<string, string[]>): [string | undefined, string[]] {
  let best: [string, string[]] | undefined;
  for (const entry of held) {
    if (
      best === undefined ||
      entry[1].length > best[1].length ||
      (entry[1].length === best[1].length && entry[0] > best[0])
    ) {
      best = entry;
    }
  }
  return best === undefined ? [undefined, []] : best;
}
