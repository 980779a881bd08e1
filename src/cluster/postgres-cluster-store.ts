import assert from 'node:assert/strict';
import type pg from 'pg';
import type { Fence } from '../store/journal.js';
import { statementName } from '../store/postgres/postgres-pool.js';
import { assertFence } from '../store/row-integrity.js';
import type {
  ClusterStore,
  ClusterStoreTiming,
  Incarnation,
  JoiningMember,
  LeaseGrant,
  LeaseView,
  Member,
  MembershipView,
  ShardLease,
} from './cluster-store.js';
import { assertJoiningMember } from './memory-cluster-store.js';

/**
 * The cluster's tables in PostgreSQL (`cluster_members`, `shard_leases`; created by the stores'
 * migrations, in the schema of the journal, so a journal append can check a lease in its own
 * transaction).
 *
 * Every operation is one statement, so one transaction that holds no lock beyond it, and every
 * time it compares or stores is the server's `now()`: the nodes' clocks never enter. Two nodes
 * racing for one lease are ordered by the row: `INSERT … ON CONFLICT DO UPDATE … WHERE` locks the
 * existing row and checks the condition against its latest committed version, so exactly one of
 * them raises the epoch and the other gets no row back.
 */
export class PostgresClusterStore implements ClusterStore {
  private readonly statements: ClusterStatements;

  constructor(
    private readonly pool: pg.Pool,
    /** The schema's quoted name (`escapeIdentifier`). */
    quotedSchema: string,
    private readonly timing: ClusterStoreTiming,
  ) {
    assert.ok(
      Number.isSafeInteger(timing.memberTimeoutMs) && timing.memberTimeoutMs > 0,
      'memberTimeoutMs must be a positive integer',
    );
    assert.ok(
      Number.isSafeInteger(timing.leaseTtlMs) && timing.leaseTtlMs > 0,
      'leaseTtlMs must be a positive integer',
    );
    this.statements = clusterStatements(quotedSchema);
  }

  async join(member: JoiningMember): Promise<Incarnation> {
    assertJoiningMember(member);
    const result = await this.pool.query<unknown[]>({
      ...this.statements.join,
      values: [member.nodeId, member.address, [...member.roles]],
      rowMode: 'array',
    });
    const incarnation = result.rows[0]?.[0];
    return { nodeId: member.nodeId, incarnation: positiveInteger(incarnation, 'incarnation') };
  }

  async heartbeat(self: Incarnation): Promise<boolean> {
    const result = await this.pool.query({
      ...this.statements.heartbeat,
      values: [self.nodeId, self.incarnation, this.timing.memberTimeoutMs],
    });
    return result.rowCount === 1;
  }

  async leave(self: Incarnation): Promise<boolean> {
    const result = await this.pool.query({
      ...this.statements.leave,
      values: [self.nodeId, self.incarnation, this.timing.memberTimeoutMs],
    });
    return result.rowCount === 1;
  }

  async members(): Promise<MembershipView> {
    const result = await this.pool.query<unknown[]>({
      ...this.statements.members,
      values: [this.timing.memberTimeoutMs],
      rowMode: 'array',
    });
    let now: number | undefined;
    const members: Member[] = [];
    for (const [time, nodeId, address, roles, incarnation, state, heartbeatAgeMs] of result.rows) {
      now = integer(time, 'now');
      if (nodeId === null) continue;
      assert.ok(typeof nodeId === 'string' && typeof address === 'string', 'malformed member row');
      assert.ok(Array.isArray(roles) && roles.every((role) => typeof role === 'string'), 'malformed roles');
      assert.ok(
        state === 'up' || state === 'leaving' || state === 'down',
        `malformed state ${String(state)}`,
      );
      members.push({
        nodeId,
        address,
        roles,
        incarnation: positiveInteger(incarnation, 'incarnation'),
        state,
        heartbeatAgeMs: Math.max(0, integer(heartbeatAgeMs, 'heartbeat age')),
      });
    }
    assert.ok(now !== undefined, 'the members query returned no row');
    return { now, members };
  }

  async acquireLease(shardId: string, owner: string): Promise<LeaseGrant | undefined> {
    assert.ok(shardId.length > 0 && owner.length > 0, 'shardId and owner must not be empty');
    const result = await this.pool.query<unknown[]>({
      ...this.statements.acquire,
      values: [shardId, owner, this.timing.leaseTtlMs],
      rowMode: 'array',
    });
    const row = result.rows[0];
    if (row === undefined) return undefined;
    return {
      shardId,
      owner,
      epoch: positiveInteger(row[0], 'epoch'),
      expiresAt: integer(row[1], 'expires_at'),
    };
  }

  async acquireLeases(shardIds: readonly string[], owner: string): Promise<LeaseGrant[]> {
    assert.ok(owner.length > 0 && shardIds.every((shardId) => shardId.length > 0), 'empty shard id or owner');
    // One row per shard: ON CONFLICT may not touch a row twice in one statement.
    const distinct = [...new Set(shardIds)];
    if (distinct.length === 0) return [];
    const result = await this.pool.query<unknown[]>({
      ...this.statements.acquireMany,
      values: [distinct, owner, this.timing.leaseTtlMs],
      rowMode: 'array',
    });
    return result.rows.map(([shardId, epoch, expiresAt]) => {
      assert.ok(typeof shardId === 'string', 'malformed shard id');
      return {
        shardId,
        owner,
        epoch: positiveInteger(epoch, 'epoch'),
        expiresAt: integer(expiresAt, 'expires_at'),
      };
    });
  }

  async renewLease(lease: Fence): Promise<LeaseGrant | undefined> {
    assertFence(lease);
    const result = await this.pool.query<unknown[]>({
      ...this.statements.renew,
      values: [lease.shardId, lease.owner, lease.epoch, this.timing.leaseTtlMs],
      rowMode: 'array',
    });
    const row = result.rows[0];
    if (row === undefined) return undefined;
    return { ...lease, expiresAt: integer(row[0], 'expires_at') };
  }

  async renewLeases(owner: string, leases: readonly Fence[]): Promise<LeaseGrant[]> {
    for (const lease of leases) {
      assertFence(lease);
      assert.ok(lease.owner === owner, `lease of ${lease.shardId} is not named for ${owner}`);
    }
    if (leases.length === 0) return [];
    const result = await this.pool.query<unknown[]>({
      ...this.statements.renewMany,
      values: [
        owner,
        leases.map((lease) => lease.shardId),
        leases.map((lease) => lease.epoch),
        this.timing.leaseTtlMs,
      ],
      rowMode: 'array',
    });
    const asked = new Map(leases.map((lease) => [lease.shardId, lease]));
    return result.rows.map(([shardId, expiresAt]) => {
      const lease = typeof shardId === 'string' ? asked.get(shardId) : undefined;
      assert.ok(lease !== undefined, `renewal returned a lease not asked for: ${String(shardId)}`);
      return { ...lease, expiresAt: integer(expiresAt, 'expires_at') };
    });
  }

  async releaseLease(lease: Fence): Promise<boolean> {
    assertFence(lease);
    const result = await this.pool.query({
      ...this.statements.release,
      values: [lease.shardId, lease.owner, lease.epoch],
    });
    return result.rowCount === 1;
  }

  async leases(): Promise<LeaseView> {
    const result = await this.pool.query<unknown[]>({ ...this.statements.leases, rowMode: 'array' });
    let now: number | undefined;
    const leases: ShardLease[] = [];
    for (const [time, shardId, owner, epoch, expiresAt, acquirable] of result.rows) {
      now = integer(time, 'now');
      if (shardId === null) continue;
      assert.ok(typeof shardId === 'string', 'malformed shard id');
      assert.ok(owner === null || typeof owner === 'string', 'malformed lease owner');
      assert.ok(typeof acquirable === 'boolean', 'malformed lease row');
      leases.push({
        shardId,
        owner: owner ?? undefined,
        epoch: positiveInteger(epoch, 'epoch'),
        expiresAt: integer(expiresAt, 'expires_at'),
        acquirable,
      });
    }
    assert.ok(now !== undefined, 'the leases query returned no row');
    return { now, leases };
  }

  /** The pool is its owner's to end. */
  async close(): Promise<void> {}
}

function integer(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    assert.fail(`cluster table holds a malformed ${what}: ${String(value)}`);
  }
  return value;
}

function positiveInteger(value: unknown, what: string): number {
  const checked = integer(value, what);
  assert.ok(checked >= 1, `cluster table holds a malformed ${what}: ${checked}`);
  return checked;
}

/** A named (prepared once per connection) statement. */
interface Statement {
  readonly name: string;
  readonly text: string;
}

interface ClusterStatements {
  readonly join: Statement;
  readonly heartbeat: Statement;
  readonly leave: Statement;
  readonly members: Statement;
  readonly acquire: Statement;
  readonly renew: Statement;
  readonly renewMany: Statement;
  readonly acquireMany: Statement;
  readonly release: Statement;
  readonly leases: Statement;
}

/** Milliseconds since the Unix epoch of a timestamptz expression, as bigint. */
function milliseconds(expression: string): string {
  return `floor(extract(epoch FROM ${expression}) * 1000)::bigint`;
}

/** `$n` milliseconds as an interval. */
function interval(parameter: string): string {
  return `(${parameter}::bigint * interval '1 millisecond')`;
}

function clusterStatements(quotedSchema: string): ClusterStatements {
  const named = (name: string, text: string): Statement => ({
    name: statementName(name, quotedSchema),
    text,
  });
  const members = `${quotedSchema}.cluster_members`;
  const leases = `${quotedSchema}.shard_leases`;
  // A member is alive while its last heartbeat is at most memberTimeoutMs old ($3).
  const alive = `last_heartbeat_at >= now() - ${interval('$3')}`;
  return {
    join: named(
      'cluster-join',
      `INSERT INTO ${members} AS member
         (node_id, address, roles, incarnation, joined_at, last_heartbeat_at, state)
       VALUES ($1, $2, $3::text[], 1, now(), now(), 'up')
       ON CONFLICT (node_id) DO UPDATE SET
         address = excluded.address, roles = excluded.roles, incarnation = member.incarnation + 1,
         joined_at = now(), last_heartbeat_at = now(), state = 'up'
       RETURNING incarnation`,
    ),
    heartbeat: named(
      'cluster-heartbeat',
      `UPDATE ${members} SET last_heartbeat_at = now()
       WHERE node_id = $1 AND incarnation = $2 AND ${alive}`,
    ),
    leave: named(
      'cluster-leave',
      `UPDATE ${members} SET state = 'leaving'
       WHERE node_id = $1 AND incarnation = $2 AND ${alive}`,
    ),
    // The outer join yields one row even with no members, so the server's time always comes back.
    members: named(
      'cluster-members',
      `SELECT ${milliseconds('now()')}, node_id, address, roles, incarnation,
              CASE WHEN last_heartbeat_at < now() - ${interval('$1')} THEN 'down' ELSE state END,
              ${milliseconds('now()')} - ${milliseconds('last_heartbeat_at')}
       FROM (VALUES (1)) AS one LEFT JOIN ${members} ON true
       ORDER BY node_id`,
    ),
    // Raising the epoch also when the owner takes its own lease again: a restarted process must
    // not share an epoch with the one it replaces.
    acquire: named(
      'cluster-acquire',
      `INSERT INTO ${leases} AS lease (shard_id, owner, epoch, expires_at)
       VALUES ($1, $2, 1, now() + ${interval('$3')})
       ON CONFLICT (shard_id) DO UPDATE SET
         owner = excluded.owner, epoch = lease.epoch + 1, expires_at = excluded.expires_at
       WHERE lease.owner IS NULL OR lease.owner = excluded.owner OR lease.expires_at <= now()
       RETURNING epoch, ${milliseconds('expires_at')}`,
    ),
    renew: named(
      'cluster-renew',
      `UPDATE ${leases} SET expires_at = now() + ${interval('$4')}
       WHERE shard_id = $1 AND owner = $2 AND epoch = $3 AND expires_at > now()
       RETURNING ${milliseconds('expires_at')}`,
    ),
    // Rows are taken in shard id order, as a fenced journal append share-locks them (see renewMany).
    acquireMany: named(
      'cluster-acquire-many',
      `INSERT INTO ${leases} AS lease (shard_id, owner, epoch, expires_at)
       SELECT asked.shard_id, $2, 1, now() + ${interval('$3')} FROM unnest($1::text[]) AS asked (shard_id)
       ORDER BY asked.shard_id
       ON CONFLICT (shard_id) DO UPDATE SET
         owner = excluded.owner, epoch = lease.epoch + 1, expires_at = excluded.expires_at
       WHERE lease.owner IS NULL OR lease.owner = excluded.owner OR lease.expires_at <= now()
       RETURNING shard_id, epoch, ${milliseconds('expires_at')}`,
    ),
    // The rows are locked in shard id order, as a fenced journal append share-locks them, so a
    // renewal and an append that wait on each other's rows can never wait in a circle.
    renewMany: named(
      'cluster-renew-many',
      `WITH locked AS (
         SELECT lease.shard_id FROM ${leases} AS lease
         JOIN unnest($2::text[], $3::bigint[]) AS wanted(shard_id, epoch)
           ON lease.shard_id = wanted.shard_id AND lease.epoch = wanted.epoch
         WHERE lease.owner = $1 AND lease.expires_at > now()
         ORDER BY lease.shard_id
         FOR UPDATE OF lease
       )
       UPDATE ${leases} AS lease SET expires_at = now() + ${interval('$4')}
       FROM locked
       WHERE lease.shard_id = locked.shard_id AND lease.owner = $1 AND lease.expires_at > now()
       RETURNING lease.shard_id, ${milliseconds('lease.expires_at')}`,
    ),
    // The epoch stays: only ever raising it keeps every earlier fence stale.
    release: named(
      'cluster-release',
      `UPDATE ${leases} SET owner = NULL, expires_at = now()
       WHERE shard_id = $1 AND owner = $2 AND epoch = $3`,
    ),
    leases: named(
      'cluster-leases',
      `SELECT ${milliseconds('now()')}, shard_id, owner, epoch, ${milliseconds('expires_at')},
              owner IS NULL OR expires_at <= now()
       FROM (VALUES (1)) AS one LEFT JOIN ${leases} ON true
       ORDER BY shard_id`,
    ),
  };
}
