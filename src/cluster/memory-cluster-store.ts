import assert from 'node:assert/strict';
import type { Clock } from '../runtime/clock.js';
import { type Fence, type FenceCheck, StoreUnavailableError } from '../store/journal.js';
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
} from './cluster-store.js';

interface MemberRow {
  readonly nodeId: string;
  readonly address: string;
  readonly roles: readonly string[];
  readonly incarnation: number;
  readonly lastHeartbeatAt: number;
  readonly state: 'up' | 'leaving';
}

interface LeaseRow {
  readonly owner: string | undefined;
  readonly epoch: number;
  readonly expiresAt: number;
}

/**
 * The cluster's tables in memory, for unit tests and the deterministic simulator: one instance is
 * the shared database of every simulated node, and its `Clock` is the database's clock, so the
 * simulator decides when heartbeats age and leases expire. Each method acts at once and whole, as
 * one statement does in PostgreSQL.
 *
 * It is also the `FenceCheck` of the memory journal and snapshot store that share it: their
 * writes ask it, inside the write, whether the writer's lease still holds.
 */
export class MemoryClusterStore implements ClusterStore, FenceCheck {
  private readonly memberRows = new Map<string, MemberRow>();
  private readonly leaseRows = new Map<string, LeaseRow>();
  private closed = false;
  /**
   * While true every call is refused with `StoreUnavailableError`, as by a database that cannot be
   * reached (the simulator's switch). `isCurrent` is the journal's check inside its own write, so
   * it is the journal that refuses then.
   */
  unavailable = false;

  constructor(
    private readonly clock: Clock,
    private readonly timing: ClusterStoreTiming,
  ) {
    assert.ok(timing.memberTimeoutMs > 0 && timing.leaseTtlMs > 0, 'timeouts must be positive');
  }

  async join(member: JoiningMember): Promise<Incarnation> {
    this.assertOpen();
    assertJoiningMember(member);
    const incarnation = (this.memberRows.get(member.nodeId)?.incarnation ?? 0) + 1;
    this.memberRows.set(member.nodeId, {
      nodeId: member.nodeId,
      address: member.address,
      roles: [...member.roles],
      incarnation,
      lastHeartbeatAt: this.clock.now(),
      state: 'up',
    });
    return { nodeId: member.nodeId, incarnation };
  }

  async heartbeat(self: Incarnation): Promise<boolean> {
    this.assertOpen();
    const row = this.liveRow(self);
    if (row === undefined) return false;
    this.memberRows.set(self.nodeId, { ...row, lastHeartbeatAt: this.clock.now() });
    return true;
  }

  async leave(self: Incarnation): Promise<boolean> {
    this.assertOpen();
    const row = this.liveRow(self);
    if (row === undefined) return false;
    this.memberRows.set(self.nodeId, { ...row, state: 'leaving' });
    return true;
  }

  async members(): Promise<MembershipView> {
    this.assertOpen();
    const now = this.clock.now();
    const members: Member[] = [...this.memberRows.values()]
      .sort((a, b) => compareText(a.nodeId, b.nodeId))
      .map((row) => {
        const heartbeatAgeMs = Math.max(0, now - row.lastHeartbeatAt);
        return {
          nodeId: row.nodeId,
          address: row.address,
          roles: [...row.roles],
          incarnation: row.incarnation,
          heartbeatAgeMs,
          state: heartbeatAgeMs > this.timing.memberTimeoutMs ? 'down' : row.state,
        };
      });
    return { now, members };
  }

  async acquireLease(shardId: string, owner: string): Promise<LeaseGrant | undefined> {
    this.assertOpen();
    assert.ok(shardId.length > 0 && owner.length > 0, 'shardId and owner must not be empty');
    const now = this.clock.now();
    const row = this.leaseRows.get(shardId);
    const takeable =
      row === undefined || row.owner === undefined || row.owner === owner || row.expiresAt <= now;
    if (!takeable) return undefined;
    const granted: LeaseRow = {
      owner,
      epoch: (row?.epoch ?? 0) + 1,
      expiresAt: now + this.timing.leaseTtlMs,
    };
    this.leaseRows.set(shardId, granted);
    return { shardId, owner, epoch: granted.epoch, expiresAt: granted.expiresAt };
  }

  async renewLease(lease: Fence): Promise<LeaseGrant | undefined> {
    this.assertOpen();
    assertFence(lease);
    return this.renewNow(lease);
  }

  async renewLeases(owner: string, leases: readonly Fence[]): Promise<LeaseGrant[]> {
    this.assertOpen();
    for (const lease of leases) {
      assertFence(lease);
      assert.ok(lease.owner === owner, `lease of ${lease.shardId} is not named for ${owner}`);
    }
    // In one synchronous step, as the one statement of PostgreSQL: nothing interleaves.
    return leases.flatMap((lease) => this.renewNow(lease) ?? []);
  }

  private renewNow(lease: Fence): LeaseGrant | undefined {
    const now = this.clock.now();
    const row = this.leaseRows.get(lease.shardId);
    if (row === undefined || !holds(row, lease) || row.expiresAt <= now) return undefined;
    const renewed: LeaseRow = { ...row, expiresAt: now + this.timing.leaseTtlMs };
    this.leaseRows.set(lease.shardId, renewed);
    return { ...lease, expiresAt: renewed.expiresAt };
  }

  async acquireLeases(shardIds: readonly string[], owner: string): Promise<LeaseGrant[]> {
    const grants: LeaseGrant[] = [];
    for (const shardId of new Set(shardIds)) {
      const grant = await this.acquireLease(shardId, owner);
      if (grant !== undefined) grants.push(grant);
    }
    return grants;
  }

  async releaseLease(lease: Fence): Promise<boolean> {
    this.assertOpen();
    assertFence(lease);
    const row = this.leaseRows.get(lease.shardId);
    if (row === undefined || !holds(row, lease)) return false;
    // The epoch stays: only ever raising it keeps every earlier fence stale.
    this.leaseRows.set(lease.shardId, { owner: undefined, epoch: row.epoch, expiresAt: this.clock.now() });
    return true;
  }

  async leases(): Promise<LeaseView> {
    this.assertOpen();
    const now = this.clock.now();
    const leases = [...this.leaseRows.entries()]
      .sort(([a], [b]) => compareText(a, b))
      .map(([shardId, row]) => ({
        shardId,
        owner: row.owner,
        epoch: row.epoch,
        expiresAt: row.expiresAt,
        acquirable: row.owner === undefined || row.expiresAt <= now,
      }));
    return { now, leases };
  }

  /**
   * Whether the lease holds exactly this owner and epoch, expired or not: an expired lease that no
   * one has taken yet has had no other writer (taking it raises the epoch), as in PostgreSQL.
   */
  isCurrent(fence: Fence): boolean {
    const row = this.leaseRows.get(fence.shardId);
    return row !== undefined && holds(row, fence);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** The member's row if it is this incarnation and not down. */
  private liveRow(self: Incarnation): MemberRow | undefined {
    const row = this.memberRows.get(self.nodeId);
    if (row === undefined || row.incarnation !== self.incarnation) return undefined;
    if (this.clock.now() - row.lastHeartbeatAt > this.timing.memberTimeoutMs) return undefined;
    return row;
  }

  private assertOpen(): void {
    assert.ok(!this.closed, 'cluster store is closed');
    if (this.unavailable) throw new StoreUnavailableError('the memory cluster store');
  }
}

function holds(row: LeaseRow, fence: Fence): boolean {
  return row.owner === fence.owner && row.epoch === fence.epoch;
}

/** Byte order of the UTF-16 code units, like `COLLATE "C"` for the ids used here. */
function compareText(a: string, b: string): number {
  if (a < b) return -1;
  return a > b ? 1 : 0;
}

export function assertJoiningMember(member: JoiningMember): void {
  assert.ok(member.nodeId.length > 0, 'nodeId must not be empty');
  assert.ok(member.address.length > 0, 'address must not be empty');
  for (const role of member.roles) assert.ok(role.length > 0, 'a role must not be empty');
}
