import { CardVault, type VaultStorage } from '../payments/card-vault.js';
import { defaultExecutorSettings, type ExecutorSettings, executorDefinition } from '../payments/executor.js';
import type { BankErrorKind, BankPort } from '../payments/executor-protocol.js';
import { executorAddress } from '../payments/executor-protocol.js';
import { defaultMerchantSettings, type MerchantSettings, merchantDefinition } from '../payments/merchant.js';
import { type MerchantCommand, merchantAddress } from '../payments/merchant-protocol.js';
import {
  defaultOrderWaitersSettings,
  OrderWaiters,
  type OrderWaitersSettings,
} from '../payments/order-waiters.js';
import { defaultPaymentSettings, type PaymentSettings, paymentDefinition } from '../payments/payment.js';
import type { MerchantConfig } from '../payments/validator.js';
import type { EntityObserver, EntitySettings } from '../persistence/entity.js';
import { EntityNotOwnedError, type EntityOwnership, EntityRegistry } from '../persistence/entity-registry.js';
import { ActorSystem } from '../runtime/actor-system.js';
import type { Clock } from '../runtime/clock.js';
import type { EntityAddress, EntityAsker, Messenger } from '../runtime/entity-address.js';
import type { Logger } from '../runtime/logger.js';
import type { Random } from '../runtime/random.js';
import type { Journal, SnapshotStore } from '../store/journal.js';
import { ObservedJournal } from '../store/observed-journal.js';
import {
  defaultOrderServiceSettings,
  type OrderQueries,
  OrderService,
  type OrderServiceSettings,
} from './order-service.js';
import {
  defaultPendingRefundSweepSettings,
  PendingRefundSweep,
  type PendingRefundSweepSettings,
} from './pending-refund-sweep.js';
import type { RefundQueries } from './refund-queries.js';
import { defaultRefundServiceSettings, RefundService, type RefundServiceSettings } from './refund-service.js';

/** Where a node keeps what outlives it. The node opens and closes none of them. */
export interface NodeStores {
  readonly journal: Journal;
  readonly snapshots?: SnapshotStore;
  readonly vault: VaultStorage;
  /** The read model as the API reads it. */
  readonly queries: OrderQueries;
  /**
   * The read model's refunds, if it projects them: refunds are read there first, and the node
   * sweeps its pending refunds (`PendingRefundSweep`) so a delivery a crash cut short resumes.
   */
  readonly refunds?: RefundQueries;
}

/** The read model's writer, as far as the node drives it: told of every durable append, stopped last. */
export interface NodeProjection {
  notify(): void;
  stop(): Promise<void>;
}

export interface NodeSettings {
  readonly merchant: MerchantSettings;
  readonly executor: ExecutorSettings;
  readonly payment: PaymentSettings;
  readonly orderService: OrderServiceSettings;
  readonly refundService: RefundServiceSettings;
  readonly refundSweep: PendingRefundSweepSettings;
  readonly orderWaiters: OrderWaitersSettings;
  /** Runtime settings of every entity (e.g. `passivateAfterMs`). */
  readonly entities: Partial<EntitySettings>;
}

export const defaultNodeSettings: NodeSettings = {
  merchant: defaultMerchantSettings,
  executor: defaultExecutorSettings,
  payment: defaultPaymentSettings,
  orderService: defaultOrderServiceSettings,
  refundService: defaultRefundServiceSettings,
  refundSweep: defaultPendingRefundSweepSettings,
  orderWaiters: defaultOrderWaitersSettings,
  entities: {},
};

type MerchantDefinition = ReturnType<typeof merchantDefinition>;
type ExecutorDefinition = ReturnType<typeof executorDefinition>;

/**
 * Replacements of the node's parts, for a deliberately broken system in the simulator: each gets
 * the real part and the node's messenger and returns the one to run instead.
 */
export interface NodeVariants {
  readonly merchant?: (definition: MerchantDefinition, messenger: Messenger) => MerchantDefinition;
  readonly executor?: (definition: ExecutorDefinition) => ExecutorDefinition;
  readonly orderService?: (parts: OrderServiceParts) => OrderService;
}

/** What an OrderService is built from. */
export interface OrderServiceParts {
  /** How the order service asks Merchants: this node's registry, or a cluster's messenger. */
  readonly entities: EntityAsker;
  readonly vault: CardVault;
  readonly queries: OrderQueries;
  readonly clock: Clock;
  readonly settings: OrderServiceSettings;
}

export interface AssembleNodeOptions {
  readonly stores: NodeStores;
  /** The key the card vault seals card numbers with and derives tokens and fingerprints from. */
  readonly vaultKey: Buffer;
  /** The acquiring banks, one port for all of them (the reference names the order). */
  readonly bank: BankPort;
  /** Tells the Executor whether an error of the bank port is worth retrying. */
  readonly classifyBankError: (error: unknown) => BankErrorKind;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  /**
   * How entities send to other entities. Without one they send through this node's registry (all
   * entities in one process); the simulator puts its faulty network here, a cluster its shard
   * regions.
   */
  readonly messenger?: Messenger;
  /**
   * How the order service (and `boot`) ask Merchants. Defaults to this node's registry; a cluster
   * puts its messenger here, so an ask reaches the Merchant on whichever node owns its shard.
   */
  readonly asker?: EntityAsker;
  /** In a cluster: which entities this node may run and the fence of their writes (its shards). */
  readonly ownership?: EntityOwnership;
  /** Tells a projection of the read model of every durable append. */
  readonly projection?: NodeProjection;
  readonly observer?: EntityObserver;
  readonly settings?: Partial<NodeSettings>;
  readonly variants?: NodeVariants;
  /** The actor system's name (the root of every actor path). */
  readonly name?: string;
}

/** A merchant this node serves, with the configuration it is given at boot. */
export interface NodeMerchant {
  readonly id: string;
  readonly config: MerchantConfig;
}

export interface AssembledNode {
  readonly system: ActorSystem;
  readonly entities: EntityRegistry;
  readonly orders: OrderService;
  /** What the API calls for refunds (`RefundOperations`). */
  readonly refunds: RefundService;
  /** Wakes the Payments of pending refunds; started by `boot`, present when the stores have `refunds`. */
  readonly refundSweep: PendingRefundSweep | undefined;
  readonly vault: CardVault;
  /** The requests waiting for their orders to finish, and the orders finished last. */
  readonly waiters: OrderWaiters;
  readonly projection: NodeProjection | undefined;
  readonly settings: NodeSettings;
  /**
   * Starts (and so recovers) every merchant's Executor and Merchant, so that work in flight before a
   * crash resumes without new traffic, configures each Merchant, then starts the pending-refund
   * sweep. Rejects when a Merchant does not answer within `timeoutMs`.
   */
  boot(merchants: readonly NodeMerchant[], timeoutMs: number): Promise<void>;
  /**
   * The entities that may have work of their own for these merchants: each bank's Executor and
   * each Merchant. A cluster node starts the ones of a shard when it takes the shard over.
   */
  entitiesOf(merchants: readonly NodeMerchant[]): EntityAddress<unknown>[];
  /** Stops the entities, then the projection. The stores stay open: their owner closes them. */
  close(): Promise<void>;
}

/**
 * One node of Remit: the actor system, the entity registry with the Merchant, Executor and Payment
 * definitions, the card vault, the order and refund services, over stores, a bank port and a messenger the
 * caller brings. The gateway wraps it in SQLite, HTTP and metrics; the simulator, the benchmarks
 * and the tests run the very same node over their own stores and transports.
 */
export function assembleNode(options: AssembleNodeOptions): AssembledNode {
  const { stores, clock, random, logger, projection, variants = {} } = options;
  const settings: NodeSettings = { ...defaultNodeSettings, ...options.settings };
  const vault = new CardVault(options.vaultKey, stores.vault, () => clock.now());
  const system = new ActorSystem({ name: options.name ?? 'remit', clock, random, logger });
  const journal =
    projection === undefined
      ? stores.journal
      : new ObservedJournal(stores.journal, () => projection.notify());
  const entities = new EntityRegistry({
    system,
    journal,
    clock,
    random,
    logger,
    ...(stores.snapshots === undefined ? {} : { snapshots: stores.snapshots }),
    ...(options.messenger === undefined ? {} : { messenger: options.messenger }),
    ...(options.observer === undefined ? {} : { observer: options.observer }),
    ...(options.ownership === undefined ? {} : { ownership: options.ownership }),
  });
  const messenger = options.messenger ?? entities;
  const asker = options.asker ?? entities;
  const waiters = new OrderWaiters(settings.orderWaiters);
  const merchant = merchantDefinition(waiters, settings.merchant);
  entities.register(variants.merchant?.(merchant, messenger) ?? merchant, settings.entities);
  const executor = executorDefinition(
    { bank: options.bank, cards: vault, classify: options.classifyBankError },
    settings.executor,
  );
  entities.register(variants.executor?.(executor) ?? executor, settings.entities);
  // Payments are per order: unlike Merchants and Executors they leave memory when idle.
  entities.register(paymentDefinition(settings.payment), {
    ...settings.entities,
    passivateAfterMs: settings.payment.passivateAfterMs,
  });
  const parts: OrderServiceParts = {
    entities: asker,
    vault,
    queries: stores.queries,
    clock,
    settings: settings.orderService,
  };
  const orders =
    variants.orderService?.(parts) ??
    new OrderService(parts.entities, parts.vault, parts.queries, parts.clock, parts.settings);
  const refunds = new RefundService(
    asker,
    orders,
    stores.refunds,
    (text) => vault.fingerprint(text),
    clock,
    settings.refundService,
  );
  const refundSweep =
    stores.refunds === undefined
      ? undefined
      : new PendingRefundSweep(stores.refunds, entities, clock, logger, settings.refundSweep);

  return {
    system,
    entities,
    orders,
    refunds,
    refundSweep,
    vault,
    waiters,
    projection,
    settings,
    async boot(merchants, timeoutMs) {
      for (const bank of new Set(merchants.map((each) => each.config.bank))) {
        try {
          entities.refFor(executorAddress(bank));
        } catch (error) {
          // In a cluster, the node that owns the Executor's shard starts it when it takes the shard.
          if (!(error instanceof EntityNotOwnedError)) throw error;
        }
      }
      await Promise.all(
        merchants.map((each) =>
          asker.ask<MerchantCommand, unknown>(
            merchantAddress(each.id),
            (replyTo) => ({ type: 'ConfigureMerchant', config: each.config, replyTo }),
            timeoutMs,
          ),
        ),
      );
      refundSweep?.start();
    },
    entitiesOf(merchants) {
      const banks = [...new Set(merchants.map((each) => each.config.bank))];
      return [
        ...banks.map((bank) => executorAddress(bank)),
        ...merchants.map((each) => merchantAddress(each.id)),
      ];
    },
    async close() {
      refundSweep?.stop();
      await system.terminate();
      await projection?.stop();
    },
  };
}
