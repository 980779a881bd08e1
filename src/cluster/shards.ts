import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';

/**
 * Which shard an entity lives in.
 *
 * **The shard space is split into shard groups.** A shard id is `<group>/<index>`, with
 * `0 <= index < shardCount`, and every entity type belongs to one group. A group names the node
 * role its shards may be placed on: the Executors of bank X form the group `executor-bank-x`
 * with role `bank-x`, so every shard holding one of them can be placed only on nodes that hold
 * that bank's credentials, while orders and merchants share groups any node may run. Mixing types
 * of different roles in one shard would make the shard placeable nowhere (or everywhere), which is
 * why a role belongs to the group, not to an entity. The group is part of the shard id, so a lease
 * row says by itself which nodes may take it.
 *
 * **The hash is CRC-32 of the entity id's UTF-8 bytes, modulo `shardCount`.** It is stable across
 * processes, machines and Node versions (a fixed polynomial, nothing seeded), which is what
 * matters: every node must compute the same shard for an id, forever. `shardCount` therefore must
 * never change for a running cluster. CRC-32 spreads ids evenly enough for placement; it is not
 * meant to resist crafted ids, and ids here are made by the gateway.
 */

/** A named set of shards and the role a node must have to run them. */
export interface ShardGroup {
  /** Lower-case letters, digits and dashes; part of every shard id of the group. */
  readonly name: string;
  /** The role a node needs to own this group's shards; `undefined`: any node may. */
  readonly role: string | undefined;
  /**
   * The group's own number of shards, fixed for the life of the cluster like `shardCount`;
   * `undefined`: the cluster's `shardCount`. The read model's group has one shard: its lease
   * names the one node that runs the order projection.
   */
  readonly shardCount: number | undefined;
}

/** A shard id taken apart. */
export interface ShardAddress {
  readonly group: string;
  readonly index: number;
}

const groupNamePattern = /^[a-z][a-z0-9-]{0,62}$/;
const shardIdPattern = /^([a-z][a-z0-9-]{0,62})\/(0|[1-9][0-9]{0,4})$/;

export function shardGroup(name: string, role?: string, shardCount?: number): ShardGroup {
  assert.ok(groupNamePattern.test(name), `shard group name ${JSON.stringify(name)} is not lower-case-dashed`);
  assert.ok(role === undefined || role.length > 0, 'a shard group role must not be empty');
  assert.ok(
    shardCount === undefined || (Number.isSafeInteger(shardCount) && shardCount >= 1),
    'a shard group shardCount must be an integer >= 1',
  );
  return { name, role, shardCount };
}

/** How many shards `group` has: its own count, else the cluster's `shardCount`. */
export function shardCountOf(group: ShardGroup, shardCount: number): number {
  return group.shardCount ?? shardCount;
}

/** The shard of `entityId` within `group` (`shardCount` is the cluster's; the group's own wins). */
export function shardOf(group: ShardGroup, entityId: string, shardCount: number): string {
  const count = shardCountOf(group, shardCount);
  assert.ok(Number.isSafeInteger(count) && count >= 1, 'shardCount must be an integer >= 1');
  assert.ok(entityId.length > 0, 'an entity id must not be empty');
  return shardIdOf(group, crc32(entityId) % count);
}

export function shardIdOf(group: ShardGroup, index: number): string {
  assert.ok(Number.isSafeInteger(index) && index >= 0, 'a shard index must be an integer >= 0');
  return `${group.name}/${index}`;
}

/** Every shard id of a group, in index order (`shardCount` is the cluster's; the group's own wins). */
export function shardIdsOf(group: ShardGroup, shardCount: number): string[] {
  return Array.from({ length: shardCountOf(group, shardCount) }, (_, index) => shardIdOf(group, index));
}

/** The group and index of a shard id; `undefined` for a string that is not one. */
export function parseShardId(shardId: string): ShardAddress | undefined {
  const match = shardIdPattern.exec(shardId);
  if (match === null) return undefined;
  const [, group, index] = match;
  if (group === undefined || index === undefined) return undefined;
  return { group, index: Number(index) };
}

/** Whether a node with `roles` may own shards of `group`. */
export function mayOwn(group: ShardGroup, roles: readonly string[]): boolean {
  return group.role === undefined || roles.includes(group.role);
}
