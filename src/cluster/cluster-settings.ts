import { z } from 'zod';

/**
 * The timing and size of a cluster, parsed at the boundary (command line, environment).
 *
 * **What the defaults imply.** A node that dies (SIGKILL, power cut, partition) stops renewing its
 * leases; another node takes its shards over once they have expired. The time from the death to
 * the shard running again elsewhere is
 *
 *     failover = lease left at death + noticing + acquire + recovery
 *
 * - *lease left at death*: the owner renewed last between 0 and `leaseRenewIntervalMs` before it
 *   died, so its lease has `leaseTtlMs - [0, leaseRenewIntervalMs]` left: 3–4 s, 3.5 s median.
 * - *noticing*: the other nodes look at the lease table once per `heartbeatIntervalMs` (they read
 *   it with their heartbeat), so they notice an expired lease 0–1 s after it expired, 0.5 s median.
 * - *acquire*: one statement, a few milliseconds.
 * - *recovery*: the new owner starts the shard's entities on their next message, each from its
 *   latest snapshot and the events after it: tens of milliseconds per entity, well under 1 s for
 *   a shard's active entities, about 2 s at worst on a loaded machine.
 *
 * Median ≈ 3.5 + 0.5 + 0 + 0.3 ≈ 4.3 s; worst ≈ 4 + 1 + 0.1 + 2 ≈ 7 s, leaving 3 s for a database
 * that answers slowly before the 10 s bound is reached.
 *
 * A node is down (`memberTimeoutMs`) after 5 missed heartbeats: long enough that a garbage
 * collection pause or a slow statement does not declare a live node dead (and move its shards),
 * short enough that shards are never placed on a dead node for long. Membership decides where
 * shards should go; the lease's expiry alone decides when they may be taken, so being declared
 * down a second later than the lease expires does not slow failover.
 *
 * Renewal runs at least three times per TTL, so a node that misses two renewals in a row (a slow
 * database, a lost connection) still holds its leases, and one that cannot renew at all learns it
 * with a third of the TTL left to stop its shards before anyone may take them (self-fencing). The
 * fence on every write makes a node that fails to stop in time harmless, not merely rare.
 */
export const clusterSettingsSchema = z
  .object({
    /** How often each node records that it is alive, and looks at the lease table. */
    heartbeatIntervalMs: z.number().int().min(10),
    /** A member whose last heartbeat (in database time) is older than this is down. */
    memberTimeoutMs: z.number().int().min(10),
    /** How long a lease lasts after it was taken or last renewed (database time). */
    leaseTtlMs: z.number().int().min(10),
    /** How often an owner renews each of its leases. */
    leaseRenewIntervalMs: z.number().int().min(1),
    /**
     * Shards of each shard group (see shards.ts). Far more than nodes, so shards spread evenly and
     * a failover moves small pieces; fixed for the life of a cluster, since it decides which shard
     * an entity is in.
     */
    shardCount: z.number().int().min(1).max(65_536),
    /** Shards moved at most per rebalance round, so a join or leave never moves everything at once. */
    rebalanceShardsMax: z.number().int().min(1),
  })
  .superRefine((settings, context) => {
    if (settings.leaseRenewIntervalMs * 3 >= settings.leaseTtlMs) {
      context.addIssue({
        code: 'custom',
        path: ['leaseRenewIntervalMs'],
        message: 'leaseRenewIntervalMs must be less than a third of leaseTtlMs (two renewals may fail)',
      });
    }
    if (settings.heartbeatIntervalMs * 3 >= settings.memberTimeoutMs) {
      context.addIssue({
        code: 'custom',
        path: ['memberTimeoutMs'],
        message:
          'memberTimeoutMs must be more than three heartbeatIntervalMs (a late heartbeat is not death)',
      });
    }
    if (settings.rebalanceShardsMax > settings.shardCount) {
      context.addIssue({
        code: 'custom',
        path: ['rebalanceShardsMax'],
        message: 'rebalanceShardsMax cannot exceed shardCount',
      });
    }
  });

export type ClusterSettings = z.infer<typeof clusterSettingsSchema>;

export const defaultClusterSettings: ClusterSettings = {
  heartbeatIntervalMs: 1_000,
  memberTimeoutMs: 5_000,
  leaseTtlMs: 4_000,
  leaseRenewIntervalMs: 1_000,
  shardCount: 128,
  rebalanceShardsMax: 8,
};

/** Parses settings given in part, filling the rest from the defaults. */
export function clusterSettings(input: Partial<ClusterSettings> = {}): ClusterSettings {
  return clusterSettingsSchema.parse({ ...defaultClusterSettings, ...input });
}
