import type { ClusterSettings } from '../cluster/cluster-settings.js';
import type { ClusterStore, JoiningMember } from '../cluster/cluster-store.js';
import { ShardManager } from '../cluster/shard-manager.js';
import { ShardedMessenger, type ShardedMessengerSettings } from '../cluster/sharded-messenger.js';
import { type ShardGroup, shardGroup, shardIdOf } from '../cluster/shards.js';
import type { Transport } from '../cluster/transport.js';
import type { BankErrorKind, BankPort } from '../payments/executor-protocol.js';
import { executorAddress } from '../payments/executor-protocol.js';
import { executorTypeName } from '../payments/protocol.js';
import type { EntityAddress } from '../runtime/entity-address.js';
import type { Logger } from '../runtime/logger.js';
import type { Fence } from '../store/journal.js';
import {
  type AssembledNode,
  type AssembleNodeOptions,
  assembleNode,
  type NodeMerchant,
} from './assemble-node.js';

/** The shard groups of a cluster and the group of each entity. */
export interface ClusterShardGroups {
  readonly groups: readonly ShardGroup[];
  readonly groupOf: (address: EntityAddress<unknown>) => ShardGroup;
}

/**
 * One group for every Merchant and Payment (any node may run them; a Payment, `payment-<order id>`,
 * is placed by its order id) and one per bank for its Executors, with that bank's role: only nodes
 * holding the bank's credentials run its Executor. Every node derives
 * the same groups from the same merchants, so all of them place shards alike.
 */
export function clusterShardGroups(merchants: readonly NodeMerchant[]): ClusterShardGroups {
  const merchantGroup = shardGroup('merchants');
  const executorGroups = new Map<string, ShardGroup>(
    [...new Set(merchants.map((merchant) => merchant.config.bank))].map((bank) => [
      bank,
      shardGroup(`executor-${bank}`, bank),
    ]),
  );
  return {
    groups: [merchantGroup, ...executorGroups.values()],
    // Merchants and Payments alike fall in the merchants' group.
    groupOf: (address) =>
      address.typeName === executorTypeName
        ? (executorGroups.get(address.entityId) ?? merchantGroup)
        : merchantGroup,
  };
}

/**
 * An authorization or a refund refused before it left: this node no longer owns the shard of the
 * bank's Executor (handed over, self-fenced, or the process is dead), so a call chain the Executor
 * started here must not move money. Nothing reached the bank: retryable, by whoever owns it now.
 */
export class ExecutorShardNotOwnedError extends Error {
  override readonly name = 'ExecutorShardNotOwnedError';
  constructor(
    readonly bank: string,
    readonly reference: string,
  ) {
    super(`bank call for ${reference} not sent: this node no longer owns the shard of ${bank}'s Executor`);
  }
}

/**
 * The bank port of a cluster node: an authorization or a refund goes out only while this node
 * holds a valid lease of the shard of the merchant's bank's Executor. The fence keeps a stale owner
 * from writing; this keeps its bank-call chain — an inquiry's answer arriving after a handover or a
 * pause, then the call it leads to — from sending. (The bank's deduplication by reference still
 * stands behind it.) Inquiries and cancellations only read or settle, and go out.
 */
export function ownedBankPort(
  bank: BankPort,
  ownership: { fenceFor(address: EntityAddress<unknown>): unknown },
  merchants: readonly NodeMerchant[],
): BankPort {
  const bankOf = new Map(merchants.map((merchant) => [merchant.id, merchant.config.bank]));
  const notOwned = (merchantId: string, reference: string): ExecutorShardNotOwnedError | undefined => {
    const executorBank = bankOf.get(merchantId);
    if (executorBank === undefined || ownership.fenceFor(executorAddress(executorBank)) !== undefined)
      return undefined;
    return new ExecutorShardNotOwnedError(executorBank, reference);
  };
  return {
    authorize: (request) => {
      const refused = notOwned(request.merchantId, request.reference);
      return refused === undefined ? bank.authorize(request) : Promise.reject(refused);
    },
    inquire: (reference) => bank.inquire(reference),
    cancel: (reference) => bank.cancel(reference),
    refund: (request) => {
      const refused = notOwned(request.merchantId, request.reference);
      return refused === undefined ? bank.refund(request) : Promise.reject(refused);
    },
    inquireRefund: (reference) => bank.inquireRefund(reference),
  };
}

/** The node's classification, with an authorization refused for lost ownership retryable. */
function classifyOwnedBankError(classify: (error: unknown) => BankErrorKind) {
  return (error: unknown): BankErrorKind =>
    error instanceof ExecutorShardNotOwnedError ? 'retryable' : classify(error);
}

/**
 * Something one node of the cluster runs at a time (the order projection, say), placed like an
 * entity: a shard group of one shard, whose lease names the node that runs it.
 */
export interface ClusterSingleton {
  /** A group of one shard (`shardGroup(name, role, 1)`). */
  readonly group: ShardGroup;
  /** This node took the shard's lease: run, writing under this fence. */
  hold(fence: Fence): void;
  /** This node handed the lease over, lost it or fenced itself: stop. */
  release(): Promise<void>;
}

export interface AssembleClusterNodeOptions
  extends Omit<AssembleNodeOptions, 'ownership' | 'messenger' | 'asker'> {
  /** The cluster's membership and leases (PostgreSQL, or memory in tests and the simulator). */
  readonly store: ClusterStore;
  /** This node's end of the node-to-node transport. */
  readonly transport: Transport;
  /** Who this node is in the membership: its id, transport address and roles. */
  readonly self: JoiningMember;
  readonly cluster: ClusterSettings;
  /** Every merchant of the cluster: their banks name the Executors' shard groups. */
  readonly merchants: readonly NodeMerchant[];
  /** What runs on one node of the cluster at a time, each in a one-shard group of its own. */
  readonly singletons?: readonly ClusterSingleton[];
  /** Told of every message an entity of this node sends, before it is routed (the simulator's checks). */
  readonly onSend?: (address: EntityAddress<unknown>, message: unknown) => void;
  readonly shardsLogger?: Logger;
  readonly messengerLogger?: Logger;
  readonly messengerSettings?: Partial<ShardedMessengerSettings>;
}

export interface AssembledClusterNode {
  readonly node: AssembledNode;
  /** Membership, leases and this node's shards; `start()` joins the cluster. */
  readonly shards: ShardManager;
  readonly messenger: ShardedMessenger;
}

/**
 * One node of a cluster, wired as `remit node` wires it: `assembleNode` whose ownership is a
 * `ShardManager` (an entity runs here only under a valid lease of its shard, and writes under that
 * lease's fence), whose entities send and whose order service asks through a `ShardedMessenger`
 * over the transport, and whose shards start their entities when taken (so deliveries left
 * unconfirmed by the previous owner resume) and stop them when given up. Its bank port sends an
 * authorization only while the node owns the Executor's shard (`ownedBankPort`). Nothing is started: the
 * caller starts `shards`, then boots the node.
 */
export function assembleClusterNode(options: AssembleClusterNodeOptions): AssembledClusterNode {
  const { store, transport, self, cluster, merchants, onSend, singletons = [], ...nodeOptions } = options;
  const entityGroups = clusterShardGroups(merchants);
  const groups = [...entityGroups.groups, ...singletons.map((singleton) => singleton.group)];
  const singletonOf = new Map(singletons.map((singleton) => [shardIdOf(singleton.group, 0), singleton]));
  let node: AssembledNode | undefined;
  let messenger: ShardedMessenger | undefined;
  const shards: ShardManager = new ShardManager({
    store,
    self,
    groups,
    groupOf: entityGroups.groupOf,
    settings: cluster,
    clock: options.clock,
    logger: options.shardsLogger ?? options.logger,
    transport,
    entities: {
      stopShard: async (shardId) => {
        const singleton = singletonOf.get(shardId);
        if (singleton !== undefined) return singleton.release();
        await node?.entities.stopWhere((address) => shards.shardOf(address) === shardId);
      },
      startShard: (shardId) => {
        const singleton = singletonOf.get(shardId);
        if (singleton !== undefined) {
          const fence = shards.fenceOfShard(shardId);
          if (fence !== undefined) singleton.hold(fence);
          return;
        }
        for (const address of node?.entitiesOf(merchants) ?? []) {
          if (shards.shardOf(address) === shardId) node?.entities.refFor(address);
        }
      },
    },
  });
  node = assembleNode({
    ...nodeOptions,
    bank: ownedBankPort(options.bank, shards, merchants),
    classifyBankError: classifyOwnedBankError(options.classifyBankError),
    ownership: shards,
    messenger: {
      tell: (address, message) => {
        onSend?.(address, message);
        messenger?.tell(address, message);
      },
    },
    asker: {
      ask: (address, make, timeoutMs) =>
        messenger === undefined
          ? Promise.reject(new Error('the node is not started'))
          : messenger.ask(address, make, timeoutMs),
    },
  });
  messenger = new ShardedMessenger({
    shards,
    entities: node.entities,
    system: node.system,
    transport,
    logger: options.messengerLogger ?? options.logger,
    random: options.random,
    ...(options.messengerSettings === undefined ? {} : { settings: options.messengerSettings }),
  });
  return { node, shards, messenger };
}
