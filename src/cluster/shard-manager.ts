import type { EntityOwnership } from '../persistence/entity-registry.js';
import type { Cancellable, Clock } from '../runtime/clock.js';
import type { EntityAddress } from '../runtime/entity-address.js';
import type { Logger } from '../runtime/logger.js';
import type { Fence } from '../store/journal.js';
import type { ClusterSettings } from './cluster-settings.js';
import type { ClusterStore, Incarnation, JoiningMember, LeaseGrant, LeaseView } from './cluster-store.js';
import { placeShards } from './shard-placement.js';
import { type ShardGroup, shardOf } from './shards.js';
import type { Transport } from './transport.js';

/** What the node does with the entities of a shard when it gains or gives it up. */
export interface ShardEntities {
  /** Stops every running entity of the shard; resolves once they have stopped. */
  stopShard(shardId: string): Promise<void>;
  /**
   * Starts (and so recovers) the shard's entities that may have work, so deliveries left
   * unconfirmed by the previous owner resume without new traffic.
   */
  startShard(shardId: string): void;
}

export interface ShardManagerOptions {
  readonly store: ClusterStore;
  readonly self: JoiningMember;
  readonly groups: readonly ShardGroup[];
  /**
   * The shard group of an entity: by its type, and for a bank's Executor by its id (the bank),
   * since the bank decides which nodes may run it.
   */
  readonly groupOf: (address: EntityAddress<unknown>) => ShardGroup;
  readonly settings: ClusterSettings;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly entities: ShardEntities;
  /** Told the live members each round, so it keeps connections to them. */
  readonly transport?: Transport;
  /**
   * How long before a lease expires (counted from when its last successful renewal was *sent*, on
   * this node's clock) the node stops the shard if it could not renew it. Defaults to
   * `leaseRenewIntervalMs`: the node stops its shards a whole renewal interval before anyone may
   * take them, which covers a clock running slower than the store's by that much.
   */
  readonly selfFenceMarginMs?: number;
}

interface HeldLease {
  readonly fence: Fence;
  /** This node's clock: after this the lease is treated as lost, renewed or not. */
  validUntil: number;
}

/**
 * One node's part in the cluster: it joins the membership and heartbeats, reads members and
 * leases, decides with `placeShards` which shards it should own, and takes, renews and hands over
 * their leases. It is the node's `EntityOwnership`: an entity runs here only while this node holds
 * a valid lease of its shard, and writes under that lease's fence.
 *
 * **Self-fencing.** A lease is valid on this node until `leaseTtlMs - selfFenceMarginMs` after the
 * moment its last successful renewal was sent (its own clock, so earlier than the store's expiry
 * however long the request took). Past that, the node stops the shard's entities and forgets the
 * lease, whether or not the store could be reached. The fence on every write covers an entity
 * that is still finishing a message when the lease is taken over: its write is refused.
 *
 * **Handover.** A shard that should move is stopped here (entities first, then the lease is
 * released), so its next owner may take it at the next round instead of after the TTL.
 */
/** Shards taken in one statement at most: bounds a statement's size and its row locks. */
const acquireBatchMax = 64;

export class ShardManager implements EntityOwnership {
  private incarnation: Incarnation | undefined;
  private readonly held = new Map<string, HeldLease>();
  /** The owner of every shard with an unexpired lease, from the last lease view. */
  private owners = new Map<string, string>();
  /** The next tick of each periodic task, by name. */
  private readonly timers = new Map<string, Cancellable>();
  /** Fires when the earliest held lease reaches its self-fence time. */
  private selfFenceTimer: Cancellable | undefined;
  private roundInFlight = false;
  private renewalInFlight = false;
  private leaving = false;
  private halted = false;
  /** Whether the last heartbeat (or join) reached the store and was recorded. */
  private heartbeatRecorded = false;
  private readonly routingListeners: Array<() => void> = [];
  private readonly marginMs: number;

  constructor(private readonly options: ShardManagerOptions) {
    this.marginMs = options.selfFenceMarginMs ?? options.settings.leaseRenewIntervalMs;
    if (this.marginMs <= 0 || this.marginMs >= options.settings.leaseTtlMs) {
      throw new RangeError('selfFenceMarginMs must be positive and less than leaseTtlMs');
    }
  }

  get nodeId(): string {
    return this.options.self.nodeId;
  }

  /** Joins the membership, runs a first round, and starts heartbeating and renewing. */
  async start(): Promise<void> {
    this.incarnation = await this.options.store.join(this.options.self);
    this.heartbeatRecorded = true;
    await this.round();
    this.every('round', this.options.settings.heartbeatIntervalMs, () => this.round());
    this.every('renewal', this.options.settings.leaseRenewIntervalMs, () => this.renewAll());
  }

  /** The shard of an entity, in its group. */
  shardOf(address: EntityAddress<unknown>): string {
    return shardOf(this.options.groupOf(address), address.entityId, this.options.settings.shardCount);
  }

  fenceFor(address: EntityAddress<unknown>): Fence | undefined {
    return this.fenceOfShard(this.shardOf(address));
  }

  /** The fence of a shard this node holds a valid lease of; `undefined` otherwise. */
  fenceOfShard(shardId: string): Fence | undefined {
    return this.validLease(shardId)?.fence;
  }

  /** The node that owns the shard as far as this node knows; `undefined` when nobody does. */
  ownerOf(shardId: string): string | undefined {
    if (this.validLease(shardId) !== undefined) return this.nodeId;
    const owner = this.owners.get(shardId);
    return owner === this.nodeId ? undefined : owner;
  }

  /**
   * Whether this node is a live member now: joined, not leaving, and its last heartbeat was
   * recorded (a node declared down, or whose store does not answer, is not).
   */
  isLiveMember(): boolean {
    return this.incarnation !== undefined && this.heartbeatRecorded && !this.leaving && !this.halted;
  }

  /** The shards this node holds a valid lease of, in id order. */
  ownedShards(): string[] {
    return [...this.held.keys()].filter((shardId) => this.validLease(shardId) !== undefined).sort();
  }

  /** Called after each round that may have changed who owns what. */
  onRoutingChanged(listener: () => void): void {
    this.routingListeners.push(listener);
  }

  /**
   * Graceful leave: marks this node leaving (so no node places shards here), stops the entities of
   * every shard and releases the leases, so their next owners take them at once.
   */
  async leave(): Promise<void> {
    this.leaving = true;
    if (this.incarnation !== undefined) await this.options.store.leave(this.incarnation).catch(() => false);
    for (const shardId of [...this.held.keys()]) await this.handOver(shardId);
    this.halted = true;
    this.cancelTimers();
  }

  /**
   * Stops every timer and forgets every lease without handing anything over, as a crashed process
   * would: its leases run out in the store and other nodes take its shards after the TTL. For
   * tests and the simulator.
   */
  halt(): void {
    this.halted = true;
    this.cancelTimers();
    // A dead process owns nothing: whatever of it still runs (a bank call's continuation, a
    // message in its mailbox) finds no shard here to start an entity or write under.
    this.held.clear();
    this.owners.clear();
  }

  // ---- rounds -----------------------------------------------------------------------------------

  private every(name: string, intervalMs: number, task: () => Promise<void>): void {
    const tick = () => {
      if (this.halted) return;
      this.timers.set(name, this.options.clock.schedule(intervalMs, tick));
      void task().catch((error: unknown) => {
        this.options.logger.warn(
          { nodeId: this.nodeId, task: name, error: String(error) },
          'cluster task failed',
        );
      });
    };
    this.timers.set(name, this.options.clock.schedule(intervalMs, tick));
  }

  private cancelTimers(): void {
    for (const timer of this.timers.values()) timer.cancel();
    this.timers.clear();
    this.selfFenceTimer?.cancel();
    this.selfFenceTimer = undefined;
  }

  /** Heartbeat, read the tables, then take and give up shards to match the placement. */
  private async round(): Promise<void> {
    if (this.roundInFlight || this.halted) return;
    this.roundInFlight = true;
    try {
      await this.fenceExpired();
      const { store } = this.options;
      let recorded = false;
      try {
        recorded = this.incarnation !== undefined && (await store.heartbeat(this.incarnation));
      } finally {
        // A store that does not answer (the heartbeat throws) leaves the node not live until it does.
        this.heartbeatRecorded = recorded;
      }
      if (this.incarnation !== undefined && !recorded) {
        // Declared down or replaced: whatever we hold may be taken; start over as a new incarnation.
        this.options.logger.warn(
          { nodeId: this.nodeId },
          'membership lost; stopping every shard and joining again',
        );
        for (const shardId of [...this.held.keys()]) await this.drop(shardId);
        if (this.leaving) return;
        this.incarnation = await store.join(this.options.self);
        this.heartbeatRecorded = true;
      }
      const [membership, leaseView] = await Promise.all([store.members(), store.leases()]);
      this.options.transport?.setPeers(
        membership.members
          .filter((member) => member.state !== 'down' && member.nodeId !== this.nodeId)
          .map((member) => ({ nodeId: member.nodeId, address: member.address })),
      );
      const liveNodes = new Set(membership.members.filter((m) => m.state !== 'down').map((m) => m.nodeId));
      this.owners = new Map(
        leaseView.leases
          .filter((lease) => !lease.acquirable && lease.owner !== undefined && liveNodes.has(lease.owner))
          .map((lease) => [lease.shardId, lease.owner ?? '']),
      );
      if (!this.leaving) {
        const target = placeShards({
          groups: this.options.groups,
          shardCount: this.options.settings.shardCount,
          members: membership.members,
          leases: leaseView.leases,
          rebalanceShardsMax: this.options.settings.rebalanceShardsMax,
        });
        await this.converge(target, leaseView);
      }
    } finally {
      this.roundInFlight = false;
    }
    for (const listener of this.routingListeners) listener();
  }

  /**
   * Hands over the held shards the placement gives to others and takes the ones it gives here:
   * the shards to take in statements of at most `acquireBatchMax` (one commit for a failover's
   * whole share, not one per shard). A round ends within about a heartbeat interval — the rest
   * waits for the next — so a node taking many shards from a slow database still heartbeats in
   * time: a heartbeat later than `memberTimeoutMs` would declare it down, drop everything it took
   * and start it over as a new incarnation, again and again.
   */
  private async converge(
    target: ReadonlyMap<string, string | undefined>,
    leaseView: LeaseView,
  ): Promise<void> {
    const stepsEndAt = this.options.clock.now() + this.options.settings.heartbeatIntervalMs;
    const timeLeft = (): boolean => this.options.clock.now() < stepsEndAt;
    for (const shardId of [...this.held.keys()]) {
      if (target.get(shardId) !== this.nodeId) await this.handOver(shardId);
      if (!timeLeft()) return;
    }
    const known = new Set(leaseView.leases.map((lease) => lease.shardId));
    const toTake = [
      ...leaseView.leases
        .filter((lease) => lease.acquirable && target.get(lease.shardId) === this.nodeId)
        .map((lease) => lease.shardId),
      ...[...target]
        .filter(([shardId, nodeId]) => nodeId === this.nodeId && !known.has(shardId))
        .map(([shardId]) => shardId),
    ].filter((shardId) => !this.held.has(shardId));
    for (let from = 0; from < toTake.length && timeLeft(); from += acquireBatchMax) {
      await this.acquire(toTake.slice(from, from + acquireBatchMax));
    }
  }

  private async acquire(shardIds: readonly string[]): Promise<void> {
    const sentAt = this.options.clock.now();
    const grants = await this.options.store.acquireLeases(shardIds, this.nodeId);
    if (this.halted) return;
    if (this.leaving) {
      await Promise.all(grants.map((grant) => this.options.store.releaseLease(grant).catch(() => false)));
      return;
    }
    for (const grant of grants) {
      this.hold(grant, sentAt);
      this.owners.set(grant.shardId, this.nodeId);
      this.options.logger.info(
        { nodeId: this.nodeId, shardId: grant.shardId, epoch: grant.epoch },
        'shard acquired',
      );
      this.options.entities.startShard(grant.shardId);
    }
  }

  private hold(grant: LeaseGrant, sentAt: number): void {
    const fence: Fence = { shardId: grant.shardId, epoch: grant.epoch, owner: grant.owner };
    this.held.set(grant.shardId, {
      fence,
      validUntil: sentAt + this.options.settings.leaseTtlMs - this.marginMs,
    });
    this.armSelfFence();
  }

  /**
   * Schedules the self-fence check for the earliest lease's deadline, so a shard is stopped on
   * time even when every renewal hangs (a renewal tick only runs once the one before has settled).
   */
  private armSelfFence(): void {
    this.selfFenceTimer?.cancel();
    this.selfFenceTimer = undefined;
    if (this.halted || this.held.size === 0) return;
    const earliest = Math.min(...[...this.held.values()].map((lease) => lease.validUntil));
    this.selfFenceTimer = this.options.clock.schedule(earliest - this.options.clock.now(), () => {
      this.selfFenceTimer = undefined;
      void this.fenceExpired().finally(() => this.armSelfFence());
    });
  }

  private async renewAll(): Promise<void> {
    if (this.renewalInFlight || this.halted) return;
    this.renewalInFlight = true;
    try {
      await this.fenceExpired();
      const leases = [...this.held.values()];
      if (leases.length > 0) await this.renew(leases);
      await this.fenceExpired();
      this.armSelfFence();
    } finally {
      this.renewalInFlight = false;
    }
  }

  /** Renews `leases` in one call to the store; stops the shards of those it did not renew. */
  private async renew(leases: readonly HeldLease[]): Promise<void> {
    const sentAt = this.options.clock.now();
    let grants: LeaseGrant[];
    try {
      grants = await this.options.store.renewLeases(
        this.nodeId,
        leases.map((lease) => lease.fence),
      );
    } catch (error) {
      // Unreachable store: keep the leases until their self-fence time, and try again next tick.
      this.options.logger.warn({ shards: leases.length, error: String(error) }, 'lease renewal failed');
      return;
    }
    const renewed = new Set(grants.map((grant) => grant.shardId));
    for (const lease of leases) {
      if (this.held.get(lease.fence.shardId) !== lease) continue;
      if (!renewed.has(lease.fence.shardId)) {
        this.options.logger.warn(
          { nodeId: this.nodeId, shardId: lease.fence.shardId, epoch: lease.fence.epoch },
          'lease lost (taken over or expired); stopping the shard',
        );
        await this.drop(lease.fence.shardId);
        continue;
      }
      lease.validUntil = sentAt + this.options.settings.leaseTtlMs - this.marginMs;
    }
  }

  /** Stops every shard whose lease could not be renewed in time (self-fencing). */
  private async fenceExpired(): Promise<void> {
    const now = this.options.clock.now();
    for (const [shardId, lease] of [...this.held]) {
      // Dropping awaits the shard's entities, and other rounds run meanwhile: a shard dropped by one
      // of them, or taken again since (a new lease), is not this loop's to drop.
      if (this.held.get(shardId) !== lease) continue;
      if (now >= lease.validUntil) {
        this.options.logger.warn(
          { nodeId: this.nodeId, shardId, epoch: lease.fence.epoch },
          'lease not renewed in time; self-fencing: stopping the shard',
        );
        await this.drop(shardId);
      }
    }
  }

  private validLease(shardId: string): HeldLease | undefined {
    const lease = this.held.get(shardId);
    return lease !== undefined && this.options.clock.now() < lease.validUntil ? lease : undefined;
  }

  /** Stops the shard's entities and forgets the lease (lost or expired: nothing to release). */
  private async drop(shardId: string): Promise<void> {
    this.held.delete(shardId);
    this.owners.delete(shardId);
    await this.options.entities.stopShard(shardId);
  }

  /** Stops the shard's entities, then releases its lease so the next owner may take it at once. */
  private async handOver(shardId: string): Promise<void> {
    const lease = this.held.get(shardId);
    if (lease === undefined) return;
    // No entity starts here from now on; the running ones finish their current message and stop.
    this.held.delete(shardId);
    this.owners.delete(shardId);
    await this.options.entities.stopShard(shardId);
    await this.options.store.releaseLease(lease.fence).catch((error: unknown) => {
      // It expires on its own after the TTL.
      this.options.logger.warn({ shardId, error: String(error) }, 'lease release failed');
    });
    this.options.logger.info({ nodeId: this.nodeId, shardId }, 'shard handed over');
  }
}
