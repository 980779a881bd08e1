/**
 * What the cluster benchmarks read from a running cluster: the credentials file one node wrote,
 * `GET /admin/cluster` (parsed with a schema at this boundary), and the questions asked of it —
 * which shard holds an entity, who owns it, and whether the shards have settled.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { parseShardId } from '../../src/cluster/shards.js';

/**
 * Three nodes whose roles give every bank two nodes (as `remit cluster` and the cluster's e2e
 * spec place them), so killing any one node leaves every bank's Executor a home.
 */
export const threeNodeRoles: ReadonlyMap<string, readonly string[]> = new Map([
  ['node-1', ['bank-a', 'bank-b']],
  ['node-2', ['bank-b', 'bank-c']],
  ['node-3', ['bank-a', 'bank-c']],
]);

/** One node that may run every bank's Executor. */
export const allBankRoles: readonly string[] = ['bank-a', 'bank-b', 'bank-c'];

const credentialsSchema = z.object({
  merchants: z.array(z.object({ id: z.string(), bank: z.string(), apiKey: z.string() })).min(1),
  adminToken: z.string().min(1),
});
export type ClusterCredentials = z.infer<typeof credentialsSchema>;

/**
 * The credentials of the node that created the demo merchants: exactly one of the nodes' data
 * folders holds `credentials.json` (the nodes race for it, one wins).
 */
export function readClusterCredentials(dataFolders: readonly string[]): ClusterCredentials {
  const written = dataFolders
    .map((folder) => path.join(folder, 'credentials.json'))
    .filter((file) => existsSync(file));
  if (written.length !== 1 || written[0] === undefined) {
    throw new Error(`expected exactly one node to write credentials.json, found ${written.length}`);
  }
  return credentialsSchema.parse(JSON.parse(readFileSync(written[0], 'utf8')));
}

const clusterViewSchema = z.object({
  members: z.array(
    z.object({
      nodeId: z.string(),
      url: z.string(),
      roles: z.array(z.string()),
      state: z.enum(['up', 'leaving', 'down']),
      lastHeartbeatAt: z.string(),
    }),
  ),
  shards: z.array(
    z.object({
      shard: z.string(),
      owner: z.string().nullable(),
      epoch: z.number().int(),
      entities: z.array(z.string()),
    }),
  ),
  settings: z.record(z.string(), z.number()),
});
export type ClusterView = z.infer<typeof clusterViewSchema>;
export type ShardView = ClusterView['shards'][number];

/** `GET /admin/cluster` of one node with the admin token; rejects on any answer but 200. */
export async function fetchClusterView(
  nodeUrl: string,
  adminToken: string,
  timeoutMs: number,
): Promise<ClusterView> {
  const response = await fetch(`${nodeUrl}/admin/cluster`, {
    headers: { authorization: `Bearer ${adminToken}` },
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`GET /admin/cluster answered ${response.status}: ${text}`);
  return clusterViewSchema.parse(JSON.parse(text));
}

/** The persistence id of a merchant's entity, as `/admin/cluster` lists it. */
export function merchantEntityId(merchantId: string): string {
  return `merchant-${merchantId}`;
}

/** The shard whose entities include `entityId`. */
export function shardHolding(view: ClusterView, entityId: string): ShardView | undefined {
  return view.shards.find((shard) => shard.entities.includes(entityId));
}

/** The shard of a shard group that holds entities (a bank's Executor group holds one entity). */
export function occupiedShardOf(view: ClusterView, groupName: string): ShardView | undefined {
  return view.shards.find(
    (shard) => parseShardId(shard.shard)?.group === groupName && shard.entities.length > 0,
  );
}

/**
 * The role a shard group needs, by the names `remit node` gives its groups: `executor-bank-x`
 * needs `bank-x`; `merchants` needs none.
 */
function roleOfGroup(groupName: string): string | undefined {
  return groupName.startsWith('executor-') ? groupName.slice('executor-'.length) : undefined;
}

/**
 * Whether the cluster has settled with exactly `nodeIds` up: every shard is owned by one of them,
 * and in every shard group the eligible nodes' counts differ by less than two — the point at which
 * placement (src/cluster/shard-placement.ts) moves nothing more.
 */
export function settledOn(view: ClusterView, nodeIds: readonly string[]): boolean {
  const up = view.members.filter((member) => member.state === 'up');
  if (up.length !== nodeIds.length || !nodeIds.every((id) => up.some((member) => member.nodeId === id))) {
    return false;
  }
  const countsByGroup = new Map<string, Map<string, number>>();
  for (const shard of view.shards) {
    const group = parseShardId(shard.shard)?.group;
    if (group === undefined || shard.owner === null || !nodeIds.includes(shard.owner)) return false;
    const role = roleOfGroup(group);
    let counts = countsByGroup.get(group);
    if (counts === undefined) {
      const eligible = up.filter((member) => role === undefined || member.roles.includes(role));
      counts = new Map(eligible.map((member) => [member.nodeId, 0]));
      countsByGroup.set(group, counts);
    }
    const count = counts.get(shard.owner);
    if (count === undefined) return false;
    counts.set(shard.owner, count + 1);
  }
  for (const counts of countsByGroup.values()) {
    const values = [...counts.values()];
    if (Math.max(...values) - Math.min(...values) >= 2) return false;
  }
  return true;
}

/** Median, 90th percentile (nearest rank) and worst of a list of samples; nulls when it is empty. */
export function summarize(values: readonly number[]): {
  readonly count: number;
  readonly median: number | null;
  readonly p90: number | null;
  readonly worst: number | null;
} {
  const sorted = [...values].sort((a, b) => a - b);
  const count = sorted.length;
  if (count === 0) return { count, median: null, p90: null, worst: null };
  const middle = Math.floor(count / 2);
  const median =
    count % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
  const p90 = sorted[Math.min(count - 1, Math.ceil(0.9 * count) - 1)] ?? 0;
  return {
    count,
    median: Math.round(median),
    p90: Math.round(p90),
    worst: Math.round(sorted[count - 1] ?? 0),
  };
}

const shardLogLineSchema = z.object({
  time: z.number(),
  msg: z.enum(['shard acquired', 'shard handed over']),
  shardId: z.string(),
});

/** A node's log line saying it took or gave up a shard, at its wall-clock time. */
export interface ShardLogEvent {
  readonly atEpochMs: number;
  readonly what: 'shard acquired' | 'shard handed over';
  readonly shardId: string;
}

/**
 * The shard acquisitions and handovers a node logged (pino's JSON lines at info) at or after
 * `sinceEpochMs`, in order. Other lines are skipped.
 */
export function shardLogEvents(output: string, sinceEpochMs: number): ShardLogEvent[] {
  const events: ShardLogEvent[] = [];
  for (const line of output.split('\n')) {
    if (!line.includes('"shard ')) continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      continue;
    }
    const parsed = shardLogLineSchema.safeParse(json);
    if (!parsed.success || parsed.data.time < sinceEpochMs) continue;
    events.push({ atEpochMs: parsed.data.time, what: parsed.data.msg, shardId: parsed.data.shardId });
  }
  return events;
}

const warningLineSchema = z.object({ level: z.number().min(40), msg: z.string() });

/** How many warnings and errors a node logged (pino's JSON lines, level 40 and up), by message. */
export function warningCounts(output: string): Record<string, number> {
  const counts = new Map<string, number>();
  for (const line of output.split('\n')) {
    if (!line.startsWith('{"level":')) continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      continue;
    }
    const parsed = warningLineSchema.safeParse(json);
    if (!parsed.success) continue;
    counts.set(parsed.data.msg, (counts.get(parsed.data.msg) ?? 0) + 1);
  }
  return Object.fromEntries([...counts].sort(([, a], [, b]) => b - a));
}
