import { type ClusterSettings, clusterSettings } from '../cluster/cluster-settings.js';
import type {
  ClusterStore,
  Incarnation,
  JoiningMember,
  LeaseGrant,
  LeaseView,
  MembershipView,
} from '../cluster/cluster-store.js';
import type { Transport, TransportPeer, WireValue } from '../cluster/transport.js';
import type { BankPort } from '../payments/executor-protocol.js';
import type { Cancellable, Clock } from '../runtime/clock.js';
import type { Fence } from '../store/journal.js';
import type { ClusterFaults } from './faults.js';
import { NodeDownError } from './sim-journal.js';

/**
 * The cluster's timing in the simulator: the production defaults (so failover, self-fencing and
 * membership run on the real numbers), with fewer shards per group so a seed stays cheap; far more
 * shards than nodes all the same.
 */
export const simClusterSettings: ClusterSettings = clusterSettings({ shardCount: 8, rebalanceShardsMax: 4 });

/** A cluster seed given its faults outright (e.g. calm ones): nothing of the cluster's goes wrong. */
export const noClusterFaults: ClusterFaults = {
  pausesPerMinute: 0,
  pauseMsMin: 0,
  pauseMsMax: 0,
  databaseOutagesPerMinute: 0,
  databaseOutageMsMax: 0,
  clockSkewMsMax: 0,
};

/** The banks whose Executors need a node with their role, in the order roles are dealt. */
export const simBanks = ['bank-a', 'bank-b', 'bank-c'] as const;

/**
 * The roles of node `index` of `nodes`: bank j on nodes j and j+1 (mod nodes), so each bank is
 * served by two nodes whenever there are two, and an order can finish while one of them is down.
 */
export function simRolesOf(index: number, nodes: number): string[] {
  return simBanks.filter((_, bank) => bank % nodes === index || (bank + 1) % nodes === index);
}

/**
 * One process's ability to be stopped (SIGSTOP) and continued: while frozen, nothing of the node
 * runs — its timers, the messages that reach it, the answers of the database and the bank wait —
 * while simulated time goes on for everyone else. What the node sent before it froze still
 * arrives, as a request already on the wire does. On `thaw` everything held runs in the order it
 * was held, as a continued process works through what piled up.
 */
export class NodeFreeze {
  private frozen = false;
  private readonly held: Array<() => void> = [];

  constructor(private readonly world: Clock) {}

  get isFrozen(): boolean {
    return this.frozen;
  }

  freeze(): void {
    this.frozen = true;
  }

  thaw(): void {
    this.frozen = false;
    // Held tasks run one at a time; one that freezes the node again leaves the rest held.
    while (!this.frozen) {
      const task = this.held.shift();
      if (task === undefined) return;
      task();
    }
  }

  /** Runs `task` now, or when the node is thawed. */
  run(task: () => void): void {
    if (this.frozen) this.held.push(task);
    else task();
  }

  /** Settles as `promise` does, but never while the node is frozen. */
  gate<T>(promise: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      promise.then(
        (value) => this.run(() => resolve(value)),
        (error: unknown) => this.run(() => reject(error)),
      );
    });
  }

  /**
   * The node's clock: the world's time plus a constant skew (a machine's clock set slightly
   * wrong), with timers that fire only while the node runs.
   */
  clock(skewMs: number): Clock {
    const world = this.world;
    return {
      now: () => world.now() + skewMs,
      schedule: (delayMs: number, callback: () => void): Cancellable =>
        world.schedule(delayMs, () => this.run(callback)),
    };
  }
}

/**
 * One node's connection to the shared cluster store: a dead process reaches nothing, a frozen one
 * hears no answer until it is thawed (its statement may still have run, as a request on the wire).
 */
export class NodeClusterStore implements ClusterStore {
  constructor(
    private readonly inner: ClusterStore,
    private readonly node: number,
    private readonly alive: () => boolean,
    private readonly freeze: NodeFreeze,
  ) {}

  join(member: JoiningMember): Promise<Incarnation> {
    return this.call(() => this.inner.join(member));
  }

  heartbeat(self: Incarnation): Promise<boolean> {
    return this.call(() => this.inner.heartbeat(self));
  }

  leave(self: Incarnation): Promise<boolean> {
    return this.call(() => this.inner.leave(self));
  }

  members(): Promise<MembershipView> {
    return this.call(() => this.inner.members());
  }

  acquireLease(shardId: string, owner: string): Promise<LeaseGrant | undefined> {
    return this.call(() => this.inner.acquireLease(shardId, owner));
  }

  renewLease(lease: Fence): Promise<LeaseGrant | undefined> {
    return this.call(() => this.inner.renewLease(lease));
  }

  renewLeases(owner: string, leases: readonly Fence[]): Promise<LeaseGrant[]> {
    return this.call(() => this.inner.renewLeases(owner, leases));
  }

  acquireLeases(shardIds: readonly string[], owner: string): Promise<LeaseGrant[]> {
    return this.call(() => this.inner.acquireLeases(shardIds, owner));
  }

  releaseLease(lease: Fence): Promise<boolean> {
    return this.call(() => this.inner.releaseLease(lease));
  }

  leases(): Promise<LeaseView> {
    return this.call(() => this.inner.leases());
  }

  /** A node never closes the shared store: the seed owns it. */
  async close(): Promise<void> {}

  private call<T>(statement: () => Promise<T>): Promise<T> {
    if (!this.alive()) return Promise.reject(new NodeDownError(this.node));
    return this.freeze.gate(statement());
  }
}

/** A node's transport whose arriving frames wait while the node is frozen. */
export class FrozenTransport implements Transport {
  constructor(
    private readonly inner: Transport,
    private readonly freeze: NodeFreeze,
  ) {}

  get nodeId(): string {
    return this.inner.nodeId;
  }

  send(toNodeId: string, frame: WireValue): boolean {
    return this.inner.send(toNodeId, frame);
  }

  onFrame(handler: (fromNodeId: string, frame: WireValue) => void): void {
    this.inner.onFrame((from, frame) => this.freeze.run(() => handler(from, frame)));
  }

  setPeers(peers: readonly TransportPeer[]): void {
    this.inner.setPeers(peers);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A node's bank connection whose answers wait while the node is frozen. */
export function frozenBank(bank: BankPort, freeze: NodeFreeze): BankPort {
  return {
    authorize: (request) => freeze.gate(bank.authorize(request)),
    inquire: (reference) => freeze.gate(bank.inquire(reference)),
    cancel: (reference) => freeze.gate(bank.cancel(reference)),
    refund: (request) => freeze.gate(bank.refund(request)),
    inquireRefund: (reference) => freeze.gate(bank.inquireRefund(reference)),
  };
}
