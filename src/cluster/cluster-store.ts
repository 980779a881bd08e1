import type { Fence } from '../store/journal.js';

/**
 * Where a cluster keeps who its members are and who owns which shard: a table of members and a
 * table of shard leases, in PostgreSQL in production (as Orleans keeps its membership table and
 * Temporal its shard ranges) and in memory for unit tests and the simulator. No consensus of our
 * own: the database orders every change.
 *
 * **One clock.** Every judgment of time (is a heartbeat too old, has a lease expired) is made with
 * the store's clock: `now()` of the PostgreSQL server, an injected `Clock` in memory. No method
 * takes a time from its caller, and every time it returns is the store's, so a node whose clock
 * is skewed cannot declare a live node down or take a lease early.
 *
 * **Leases and epochs.** A shard is owned through a lease with an epoch. Taking a lease raises the
 * epoch every time (also when the owner takes its own lease again, e.g. after a restart, so no two
 * processes ever hold one epoch); renewing keeps it. A write of an entity carries its shard's
 * `{ shardId, epoch, owner }` as its fence, and the journal refuses it unless the lease still
 * holds exactly that: an old owner, however long it was paused, cannot write after a takeover.
 */
export interface ClusterStore {
  /**
   * Records `member` as up with a new incarnation (1 for a node id never seen, else the previous
   * one + 1), heartbeating now. A process running under the same node id before is thereby
   * replaced: its heartbeats fail from now on.
   */
  join(member: JoiningMember): Promise<Incarnation>;
  /**
   * Records that the member is alive. `false` when this incarnation is no longer a live member
   * (declared down, replaced by a newer incarnation, or unknown): the node must stop its shards
   * and join again.
   */
  heartbeat(self: Incarnation): Promise<boolean>;
  /** Marks the member `leaving` (it keeps heartbeating while it hands its shards over). */
  leave(self: Incarnation): Promise<boolean>;
  /** Every member with its state in the store's time. */
  members(): Promise<MembershipView>;

  /**
   * Takes the shard's lease for `owner`, in one atomic step: succeeds only if the shard has no
   * lease, no owner, an expired lease, or is already `owner`'s; raises the epoch and starts a
   * fresh TTL. `undefined` when another owner holds an unexpired lease.
   */
  acquireLease(shardId: string, owner: string): Promise<LeaseGrant | undefined>;
  /**
   * `acquireLease` for many shards at once, in one statement: the grants of those taken, in no
   * particular order; a shard missing from the answer is held by another owner.
   */
  acquireLeases(shardIds: readonly string[], owner: string): Promise<LeaseGrant[]>;
  /**
   * Extends the lease by a fresh TTL, keeping its epoch: only for its owner at that epoch, and
   * only while it has not expired. `undefined` otherwise: the lease is lost, the owner must stop
   * the shard (it may try `acquireLease`, which raises the epoch).
   */
  renewLease(lease: Fence): Promise<LeaseGrant | undefined>;
  /**
   * `renewLease` for every lease of `owner` at once, in one statement: the grants of those renewed,
   * in any order. A lease left out is lost (not `owner`'s at that epoch, or expired). Every fence
   * must name `owner`.
   */
  renewLeases(owner: string, leases: readonly Fence[]): Promise<LeaseGrant[]>;
  /**
   * Gives the lease up (owner at that epoch only): it has no owner from now on and may be taken at
   * once, and writes fenced with it are refused. `false` when it was not held so.
   */
  releaseLease(lease: Fence): Promise<boolean>;
  /** Every lease row, by shard id, with its expiry in the store's time. */
  leases(): Promise<LeaseView>;

  close(): Promise<void>;
}

export interface JoiningMember {
  /** Stable for a node across restarts (its name in the deployment). */
  readonly nodeId: string;
  /** Where other nodes reach it (`host:port`). */
  readonly address: string;
  /** What it may run, e.g. `bank-a` (see ShardGroup). */
  readonly roles: readonly string[];
}

/** One process's life as a member: a restart of the node is a new incarnation. */
export interface Incarnation {
  readonly nodeId: string;
  readonly incarnation: number;
}

/**
 * `up`: heartbeating; `leaving`: heartbeating and handing its shards over; `down`: its last
 * heartbeat is older than `memberTimeoutMs`, whatever it said before.
 */
export type MemberState = 'up' | 'leaving' | 'down';

export interface Member extends JoiningMember, Incarnation {
  readonly state: MemberState;
  /** Milliseconds since its last heartbeat, in the store's time. */
  readonly heartbeatAgeMs: number;
}

export interface MembershipView {
  /** The store's time when it was read, in milliseconds since the Unix epoch. */
  readonly now: number;
  /** Ordered by node id. */
  readonly members: readonly Member[];
}

/** A lease just taken or renewed. */
export interface LeaseGrant extends Fence {
  /** When it expires, in the store's time (milliseconds since the Unix epoch). */
  readonly expiresAt: number;
}

export interface ShardLease {
  readonly shardId: string;
  /** `undefined` when released. */
  readonly owner: string | undefined;
  readonly epoch: number;
  /** In the store's time (milliseconds since the Unix epoch). */
  readonly expiresAt: number;
  /** Whether anyone may take it now: released or expired. */
  readonly acquirable: boolean;
}

export interface LeaseView {
  /** The store's time when it was read, in milliseconds since the Unix epoch. */
  readonly now: number;
  /** Ordered by shard id. */
  readonly leases: readonly ShardLease[];
}

/** The timing a store judges with: the cluster settings' `memberTimeoutMs` and `leaseTtlMs`. */
export interface ClusterStoreTiming {
  readonly memberTimeoutMs: number;
  readonly leaseTtlMs: number;
}
