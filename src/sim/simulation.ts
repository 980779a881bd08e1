import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { classifyBankError } from '../bank/bank-connection.js';
import { BankLedger } from '../bank/ledger.js';
import { MemoryClusterStore } from '../cluster/memory-cluster-store.js';
import { MemoryNetwork, type MemoryNetworkStats, noNetworkFaults } from '../cluster/memory-transport.js';
import type { ShardManager } from '../cluster/shard-manager.js';
import type { Transport } from '../cluster/transport.js';
import { ApiError } from '../node/api-error.js';
import { type AssembledNode, assembleNode } from '../node/assemble-node.js';
import { assembleClusterNode } from '../node/cluster-node.js';
import { demoConfig } from '../node/demo-merchants.js';
import { type CreatedOrder, defaultOrderServiceSettings, orderRequestText } from '../node/order-service.js';
import { CardVault, MemoryVaultStorage, vaultKeyBytes } from '../payments/card-vault.js';
import { defaultExecutorSettings } from '../payments/executor.js';
import { executorEvents, isRefundExecutionEvent } from '../payments/executor-events.js';
import { executorAddress } from '../payments/executor-protocol.js';
import { defaultMerchantSettings } from '../payments/merchant.js';
import {
  evolveMerchant,
  initialMerchantState,
  isOrderEvent,
  type MerchantState,
  orderAfter,
} from '../payments/merchant-decider.js';
import { merchantEvents } from '../payments/merchant-events.js';
import { type GetOrderReply, type MerchantCommand, merchantAddress } from '../payments/merchant-protocol.js';
import { isTerminal, type Order } from '../payments/order.js';
import { paymentTypeName } from '../payments/protocol.js';
import { persistenceIdOf } from '../persistence/entity.js';
import { orderQueries } from '../readmodel/audit-trail.js';
import { OrderProjection } from '../readmodel/order-projection.js';
import { OrderReadModel, type OrderRow } from '../readmodel/order-read-model.js';
import { SupervisedOrderProjection } from '../readmodel/supervised-order-projection.js';
import type { Cancellable } from '../runtime/clock.js';
import { SimulatedClock } from '../runtime/clock.js';
import type { EntityAddress, EntityAsker } from '../runtime/entity-address.js';
import { silentLogger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import type { FenceCheck, PersistedEvent } from '../store/journal.js';
import { MemoryJournal } from '../store/memory/memory-journal.js';
import { MemorySnapshotStore } from '../store/memory/memory-snapshot-store.js';
import {
  type ClusterFaults,
  describeProfile,
  disabledFaults,
  drawClusterFaults,
  drawFaultProfile,
  type FaultKind,
  type FaultProfile,
  withoutFaults,
} from './faults.js';
import {
  checkInvariants,
  type ObservedAnswer,
  type ObservedExecution,
  type ObservedOrder,
  type SeedObservation,
  type Violation,
} from './invariants.js';
import { SimNetwork } from './network.js';
import { OnlineChecks } from './online-checks.js';
import { fenceCheckFor, type Sabotage, sabotagedVariants } from './sabotage.js';
import { SimBank } from './sim-bank.js';
import {
  FrozenTransport,
  frozenBank,
  NodeClusterStore,
  NodeFreeze,
  noClusterFaults,
  simClusterSettings,
  simRolesOf,
} from './sim-cluster.js';
import { DurableLog, NodeJournal, NodeSnapshots } from './sim-journal.js';
import {
  checkSimRefunds,
  type RefundClientCounters,
  RefundSendWatch,
  refundedOrders,
  refundsFromJournal,
  SimRefundClient,
} from './sim-refunds.js';
import { Trace } from './trace.js';
import { traceLogger } from './trace-logger.js';
import { generateRefunds, generateWorkload, simMerchants, type WorkloadRequest } from './workload.js';

/**
 * One seed of the deterministic simulation: a fresh world — simulated clock, seeded randomness,
 * the in-memory journal, nodes assembled as the gateway assembles one (`assembleNode`: the API's
 * OrderService, Merchant and Executor entities, at-least-once delivery, idempotent receiving) with
 * the read model's projection, an in-memory network and the real bank simulator's core behind a
 * simulated wire, and clients sending orders through OrderService — driven through a fault phase
 * and a heal phase, then checked against the invariants.
 *
 * Determinism: every choice comes from `SeededRandom(seed)`, forked once per concern (faults,
 * journal, network, wire, bank, workload, client, node), so adding draws to one concern does not
 * shift another's; time is the SimulatedClock only; the only I/O is synchronous SQLite (the read
 * model and the bank ledger in a temporary directory), which never yields to the event loop. The
 * event loop itself is used only through promise continuations and `setImmediate` (the journal's
 * group commit, `settle()`), whose order is fixed in a single-threaded run.
 */

export interface SimOptions {
  /** Keep the trace's lines (for replaying one seed); the hash is always computed. */
  readonly keepTrace?: boolean;
  /** Run a deliberately broken variant (see sabotage.ts). */
  readonly sabotage?: Sabotage;
  /** The online "persist, then act" checks; switched off to show the end-state invariants alone. */
  readonly onlineChecks?: boolean;
  /** Replace the seed's drawn faults (e.g. none at all). */
  readonly faults?: FaultProfile;
  /** Leave these kinds of fault out of the seed's profile (drawn the same, then switched off). */
  readonly without?: readonly FaultKind[];
  /** Add faults that are off by default (`faultsOffByDefault`). */
  readonly with?: readonly FaultKind[];
  readonly ordersMin?: number;
  readonly ordersMax?: number;
  /** Where the seed's temporary SQLite files go; /dev/shm when it exists (no fsync cost). */
  readonly tempRoot?: string;
  /**
   * Nodes the world runs; 1 by default (the gateway of one node). With more, they are a cluster
   * built as `remit node` builds one (`assembleClusterNode`): a ShardManager each over one shared
   * MemoryClusterStore (the database's clock is the simulated clock; each node's clock is skewed
   * from it), a ShardedMessenger over a faulty MemoryNetwork, the journal and snapshots fenced by
   * the cluster store, each bank's role on two nodes, and the cluster's faults besides the others:
   * pauses past a lease, the database out of reach, a node cut off from the rest.
   */
  readonly nodes?: number;
}

export interface SeedStats {
  orders: number;
  requests: number;
  attempts: number;
  statuses: Record<string, number>;
  nodeCrashes: number;
  entityStops: number;
  entityCrashes: number;
  writeFailureWindows: number;
  journalOutages: number;
  slowWriteWindows: number;
  bootFailures: number;
  failedAppends: number;
  journalEvents: number;
  /** A cluster's pauses of a node longer than a lease. */
  nodePauses: number;
  /** A cluster's windows in which the database could not be reached at all. */
  databaseOutages: number;
  /** Writes the journal or snapshot store refused because their shard's lease had moved on. */
  staleWritesRefused: number;
  network: SimNetwork['stats'];
  /** The node-to-node transport of a cluster (zeros on one node). */
  transport: MemoryNetworkStats;
  bank: SimBank['stats'];
  bankPayments: number;
  bankApproved: number;
  /** The most requests the bank counted for one reference (repeats are deduplicated, not charged). */
  bankRequestCountMax: number;
  bankRequestCountTotal: number;
  /** The most authorizations the gateway sent for one reference. */
  authorizationsPerReferenceMax: number;
  clientRepliesLost: number;
  /** The API's answers by kind: `order` (a new request), `replay` (the key again), or `<status> <code>`. */
  answers: Record<string, number>;
  /** Refund requests of the workload, attempts, answers, and the bank's refund records. */
  refunds: RefundClientCounters & { requests: number; bankRefunds: number };
  simulatedMs: number;
  healMs: number;
}

export interface SeedResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly violations: readonly Violation[];
  readonly traceHash: string;
  readonly traceLines: number;
  /** Empty unless `keepTrace`. */
  readonly trace: readonly string[];
  readonly stats: SeedStats;
  readonly profile: FaultProfile;
  readonly wallMs: number;
}

/** Bounds: every loop of a seed ends, whatever the system under test does. */
const faultStepsMax = 200_000;
const healStepMs = 250;
/** Simulated time the heal phase may take to settle everything: deadlines, backoffs, redeliveries. */
const healMsMax = 10 * 60_000;
const finalQueryRoundsMax = 200;
/** A client gives up on an attempt after this long and retries (the API's accept timeout). */
const clientAttemptTimeoutMs = 10_000;
/** After a 503 or an answer with an order still in flight, the client asks again this much later. */
const clientRetryAfterMs = 1_000;
/** How long a request may wait for a terminal status: the API's default, as a client that says nothing gets. */
const clientWaitMs = defaultOrderServiceSettings.waitDefaultMs;
const clientAttemptsMax = 500;
/** Share of the orders meant to be approved that the client then refunds. */
const simRefundRate = 0.3;
const startMs = Date.UTC(2026, 10, 24, 12, 0, 0);

/** One incarnation of a node: what a process holds between its start and its crash. */
interface Node {
  /** Unique among every incarnation of every slot. */
  readonly id: number;
  readonly parts: AssembledNode;
  /** How the node asks a Merchant: its registry, or in a cluster the messenger to the shard's owner. */
  readonly asker: EntityAsker;
  /** A cluster node's membership, shards, transport and pause switch; absent on one node. */
  readonly cluster: ClusterParts | undefined;
  readonly projection: SimProjection;
  readonly readModel: OrderReadModel;
  readonly bootedAt: number;
  /** Every Merchant answered its ConfigureMerchant. */
  configured: boolean;
  projectionCaughtUp: boolean;
}

interface ClusterParts {
  readonly nodeId: string;
  readonly shards: ShardManager;
  readonly transport: Transport;
  readonly freeze: NodeFreeze;
  /** While paused: when it continues. */
  pausedUntil: number | undefined;
}

/** The read model's projection of a node: bare on one node, supervised in a cluster. */
type SimProjection = OrderProjection | SupervisedOrderProjection;

/** A place a node runs: down, or one incarnation after another. */
interface NodeSlot {
  readonly index: number;
  readonly readModelPath: string;
  node: Node | undefined;
  downUntil: number;
  /** How far this machine's clock is off the database's (a cluster's nodes only). */
  readonly skewMs: number;
}

/** A seed's cluster: the shared database's membership and leases, and the wire between nodes. */
interface SimCluster {
  readonly store: MemoryClusterStore;
  readonly network: MemoryNetwork;
  readonly faults: ClusterFaults;
  partitionUntil: number;
  databaseDownUntil: number;
  lastFaultAt: number;
}

/** The gateway's boot waits this long for its merchants to be configured, then fails (and exits). */
const bootTimeoutMs = 60_000;

interface ClientRequest {
  readonly index: number;
  readonly workload: WorkloadRequest;
  readonly requestHash: string;
  attempts: number;
  lastSentAt: number;
  /** Not sent again before this (the API's retry-after). */
  retryAt: number;
  inFlight: number | undefined;
  answered: boolean;
  readonly answers: ObservedAnswer[];
}

/** The API's answer to one attempt, as the client sees it. */
type ClientAnswer =
  | { readonly kind: 'order'; readonly created: CreatedOrder }
  | { readonly kind: 'error'; readonly status: number; readonly code: string };

/** The vault key of every node of a seed: tokens and fingerprints are the same in every run. */
const simVaultKey = Buffer.alloc(vaultKeyBytes, 7);

export async function runSeed(seed: number, options: SimOptions = {}): Promise<SeedResult> {
  const world = new World(seed, options);
  try {
    return await world.run();
  } finally {
    world.dispose();
  }
}

class World {
  private readonly wallStart = performance.now();
  private readonly clock = new SimulatedClock(startMs);
  private readonly trace: Trace;
  private readonly profile: FaultProfile;
  private readonly faultRandom: SeededRandom;
  private readonly journalRandom: SeededRandom;
  private readonly clientRandom: SeededRandom;
  private readonly nodeRandom: SeededRandom;
  private readonly memory: MemoryJournal;
  private readonly snapshots: MemorySnapshotStore;
  private readonly log: DurableLog;
  /** Present when the seed runs more than one node. */
  private readonly cluster: SimCluster | undefined;
  private readonly online: OnlineChecks;
  private readonly network: SimNetwork;
  private readonly bank: SimBank;
  /** The client's copy of the vault: it fingerprints requests as the API does, to check the answers. */
  private readonly vault: CardVault;
  private readonly vaultStorage = new MemoryVaultStorage();
  private readonly tempDir: string;
  private readonly slots: NodeSlot[];
  /** The ids of the node incarnations that run; a crashed one's chains can send nothing any more. */
  private readonly live = new Set<number>();
  private readonly requests: ClientRequest[];
  private readonly refunds: SimRefundClient;
  private readonly refundSends = new RefundSendWatch(classifyBankError, () => this.clock.now() - startMs);
  private readonly extraViolations: Violation[] = [];

  private nodeCount = 0;
  private attemptCount = 0;
  private answerCount = 0;
  private readonly answerKinds: Record<string, number> = {};
  private healed = false;
  private writeFailureUntil = Number.NEGATIVE_INFINITY;
  private journalDownUntil = Number.NEGATIVE_INFINITY;
  private slowWritesUntil: number | undefined;
  private readonly crashRules: Cancellable[] = [];
  private readonly counters = {
    nodeCrashes: 0,
    entityStops: 0,
    entityCrashes: 0,
    writeFailureWindows: 0,
    journalOutages: 0,
    slowWriteWindows: 0,
    clientRepliesLost: 0,
    bootFailures: 0,
    nodePauses: 0,
    databaseOutages: 0,
    staleWritesRefused: 0,
  };
  private readonly authorizations = new Map<string, number>();

  constructor(
    private readonly seed: number,
    private readonly options: SimOptions,
  ) {
    const root = new SeededRandom(seed);
    // One stream per concern, forked in a fixed order.
    this.faultRandom = root.fork();
    this.journalRandom = root.fork();
    const networkRandom = root.fork();
    const wireRandom = root.fork();
    const bankRandom = root.fork();
    const workloadRandom = root.fork();
    this.clientRandom = root.fork();
    this.nodeRandom = root.fork();
    const profileRandom = root.fork();
    // Forked last, so a seed of one node draws exactly what it drew before clusters existed.
    const clusterRandom = root.fork();
    // After the cluster's: refunds perturb none of the streams before them.
    const refundRandom = root.fork();
    const nodes = options.nodes ?? 1;
    if (!Number.isSafeInteger(nodes) || nodes < 1) throw new Error('nodes must be an integer >= 1');
    const drawn = options.faults ?? drawFaultProfile(profileRandom);
    const profile =
      nodes > 1 && drawn.cluster === undefined && options.faults === undefined
        ? { ...drawn, cluster: drawClusterFaults(clusterRandom.fork(), simClusterSettings) }
        : drawn;
    this.profile = withoutFaults(profile, disabledFaults(options));
    this.trace = new Trace(() => this.clock.now() - startMs, options.keepTrace ?? false);
    if (nodes > 1) {
      const store = new MemoryClusterStore(this.clock, simClusterSettings);
      // The journal and snapshots ask the cluster store inside each write, as PostgreSQL checks
      // `shard_leases` in the append's statement; refusals are counted for the stats.
      const checked = fenceCheckFor(options.sabotage, store);
      const fences: FenceCheck = {
        isCurrent: (fence) => {
          const current = checked.isCurrent(fence);
          if (!current) this.counters.staleWritesRefused++;
          return current;
        },
      };
      this.memory = new MemoryJournal({ clock: this.clock, fenceCheck: fences });
      this.snapshots = new MemorySnapshotStore(fences);
      this.log = new DurableLog(this.memory, store, (write) => {
        // Online: a write whose fence no longer held must never have committed.
        if (write.fenceHeld === false || write.fence === undefined) {
          this.extraViolations.push({
            invariant: 'cluster.fenced-writes',
            detail: `${write.persistenceId}#${write.fromSeqNr} by ${write.writer} committed ${write.fence === undefined ? 'without a fence' : `at stale epoch ${write.fence.epoch} of ${write.fence.shardId}`}`,
            at: this.clock.now() - startMs,
          });
        }
      });
      const network = this.profile.network;
      this.cluster = {
        store,
        network: new MemoryNetwork(this.clock, clusterRandom.fork(), {
          dropRate: network.dropRate,
          duplicateRate: network.duplicateRate,
          delayRate: network.delayRate,
          delayMaxMs: network.delayRate > 0 ? network.delayMsMax : 0,
        }),
        faults: this.profile.cluster ?? noClusterFaults,
        partitionUntil: Number.NEGATIVE_INFINITY,
        databaseDownUntil: Number.NEGATIVE_INFINITY,
        lastFaultAt: startMs,
      };
    } else {
      this.memory = new MemoryJournal({ clock: this.clock });
      this.snapshots = new MemorySnapshotStore();
      this.log = new DurableLog(this.memory);
      this.cluster = undefined;
    }
    this.online = new OnlineChecks(
      this.log,
      () => this.clock.now() - startMs,
      options.onlineChecks ?? true,
      (reference) => this.bank.ledger.find(reference)?.status,
    );
    this.network = new SimNetwork(this.clock, networkRandom, this.profile.network, this.trace, {
      onSend: (address, message) => this.online.onMessage(address, message),
      deliver: (node, address, message) => this.deliver(node, address, message),
      isAlive: (node) => this.live.has(node),
    });
    this.tempDir = fs.mkdtempSync(path.join(options.tempRoot ?? defaultTempRoot(), 'remit-sim-'));
    const skewMsMax = this.profile.cluster?.clockSkewMsMax ?? 0;
    this.slots = Array.from({ length: nodes }, (_, index) => ({
      index,
      readModelPath: path.join(this.tempDir, `readmodel-${index}.db`),
      node: undefined,
      downUntil: 0,
      skewMs: nodes > 1 && skewMsMax > 0 ? clusterRandom.int(2 * skewMsMax + 1) - skewMsMax : 0,
    }));
    const ledger = BankLedger.open({ dataDir: this.tempDir, clock: this.clock });
    this.bank = new SimBank(ledger, this.clock, bankRandom, wireRandom, this.profile.bank, this.trace, {
      onSend: (operation, reference) => {
        if (operation === 'authorize') {
          this.authorizations.set(reference, (this.authorizations.get(reference) ?? 0) + 1);
        }
        this.online.onBankCall(operation, reference);
      },
    });
    this.vault = new CardVault(simVaultKey, new MemoryVaultStorage(), () => this.clock.now());
    const workload = generateWorkload(workloadRandom, {
      ordersMin: options.ordersMin ?? 10,
      ordersMax: options.ordersMax ?? 40,
      sendWithinMs: Math.floor(this.profile.faultPhaseMs * 0.8),
    });
    this.refunds = new SimRefundClient(
      generateRefunds(refundRandom, workload, {
        refundRate: simRefundRate,
        sendWithinMs: Math.floor(this.profile.faultPhaseMs * 0.5),
      }),
      {
        attemptTimeoutMs: clientAttemptTimeoutMs,
        attemptsMax: clientAttemptsMax,
        retryAfterMs: clientRetryAfterMs,
      },
      (line) => this.trace.record(line),
    );
    this.requests = workload.map((request, index) => ({
      index,
      workload: request,
      requestHash: this.vault.fingerprint(orderRequestText(request.body)),
      attempts: 0,
      lastSentAt: Number.NEGATIVE_INFINITY,
      retryAt: Number.NEGATIVE_INFINITY,
      inFlight: undefined,
      answered: false,
      answers: [],
    }));
  }

  async run(): Promise<SeedResult> {
    this.trace.record(`seed ${this.seed} ${this.options.sabotage ?? 'no sabotage'}`);
    this.trace.record(`faults ${describeProfile(this.profile)}`);
    for (const request of this.requests) {
      const { workload } = request;
      this.trace.record(
        `workload #${request.index} at ${workload.at} ${workload.merchantId}/${workload.idempotencyKey} ${workload.variant} ${workload.kind} ${workload.body.amount} ${workload.body.currency} ${workload.orderId}`,
      );
    }
    // Writes fail only inside failure windows (and for entities chosen to crash), drawn per append.
    this.memory.failAppendsWhere(
      () =>
        this.clock.now() < this.journalDownUntil ||
        (this.clock.now() < this.writeFailureUntil &&
          this.journalRandom.chance(this.profile.journal.failureRate)),
    );
    for (const slot of this.slots) this.bootNode(slot);

    const faultEnd = startMs + this.profile.faultPhaseMs;
    for (let step = 0; this.clock.now() < faultEnd; step++) {
      if (step >= faultStepsMax) throw new Error(`fault phase exceeded ${faultStepsMax} steps`);
      this.injectFaults();
      this.superviseBoot();
      this.clientTick();
      await this.clock.advanceAsync(1 + this.faultRandom.int(this.profile.stepMsMax));
    }

    this.heal();
    const healStart = this.clock.now();
    let quiescent = false;
    for (let elapsed = 0; elapsed <= healMsMax; elapsed += healStepMs) {
      this.superviseBoot();
      this.clientTick();
      if (this.pending().length === 0) {
        quiescent = true;
        break;
      }
      await this.clock.advanceAsync(healStepMs);
    }
    const healMs = this.clock.now() - healStart;
    this.trace.record(quiescent ? `quiescent after ${healMs} ms of healing` : 'NOT quiescent');

    const observation = await this.observe(quiescent, quiescent ? [] : this.pending());
    const violations = checkInvariants(observation);
    for (const order of observation.recovered.values()) {
      this.trace.record(
        `final ${order.id} ${order.merchantId}/${order.idempotencyKey} ${order.status} ${order.reason ?? ''}`,
      );
    }
    for (const violation of violations)
      this.trace.record(`VIOLATION ${violation.invariant}: ${violation.detail}`);
    const traceLines = this.trace.lineCount;
    return {
      seed: this.seed,
      ok: violations.length === 0,
      violations,
      traceHash: this.trace.digest(),
      traceLines,
      trace: this.trace.lines(),
      stats: this.stats(observation, healMs),
      profile: this.profile,
      wallMs: performance.now() - this.wallStart,
    };
  }

  dispose(): void {
    for (const slot of this.slots) {
      const node = slot.node;
      slot.node = undefined;
      if (node !== undefined) this.stopNode(node);
    }
    this.bank.ledger.close();
    fs.rmSync(this.tempDir, { recursive: true, force: true });
  }

  // ---- the node --------------------------------------------------------------------------------

  /** Assembles a node as `startGateway` (one node) or `remit node` (a cluster) does, over the seed's stores. */
  private bootNode(slot: NodeSlot): void {
    const id = ++this.nodeCount;
    this.live.add(id);
    const alive = (): boolean => this.live.has(id);
    this.trace.record(`node ${id} boots${this.cluster === undefined ? '' : ` as node-${slot.index}`}`);
    const readModel = OrderReadModel.open(slot.readModelPath);
    const freeze = this.cluster === undefined ? undefined : new NodeFreeze(this.clock);
    const gate = <T>(promise: Promise<T>): Promise<T> => freeze?.gate(promise) ?? promise;
    const clock = freeze?.clock(slot.skewMs) ?? this.clock;
    const journal = new NodeJournal(this.log, id, alive, freeze === undefined ? undefined : gate);
    const snapshots = new NodeSnapshots(this.snapshots, id, alive, freeze === undefined ? undefined : gate);
    // A cluster node runs its projection supervised, as `remit node` does on PostgreSQL: one that
    // stops on an unreachable database is started again. One node runs it bare, so any stop shows.
    const projection: SimProjection =
      this.cluster === undefined
        ? new OrderProjection({ journal, readModel, clock, logger: silentLogger })
        : new SupervisedOrderProjection({
            journal,
            readModel,
            clock,
            random: this.nodeRandom.fork(),
            logger: silentLogger,
          });
    const bank = this.refundSends.watch(this.bank.endpoint(id, alive));
    const nodeOptions = {
      stores: {
        journal,
        snapshots,
        vault: this.vaultStorage,
        queries: orderQueries(readModel, journal),
        refunds: readModel,
      },
      vaultKey: simVaultKey,
      bank: freeze === undefined ? bank : frozenBank(bank, freeze),
      classifyBankError,
      clock,
      random: this.nodeRandom.fork(),
      logger: traceLogger(this.trace, { node: id }),
      projection,
      observer: {
        onRecovered: (persistenceId: string, _state: unknown, seqNr: number) =>
          this.trace.record(`n${id} ${persistenceId} recovered at seqNr ${seqNr}`),
      },
      settings: {
        merchant: simMerchantSettings,
        executor: simExecutorSettings,
        entities:
          this.profile.passivateAfterMs > 0 ? { passivateAfterMs: this.profile.passivateAfterMs } : {},
      },
      variants: sabotagedVariants(this.options.sabotage),
    };
    const merchants = simMerchants.map((merchant) => ({
      id: merchant.id,
      config: demoConfig(merchant.bank),
    }));
    let parts: AssembledNode;
    let asker: EntityAsker;
    let cluster: ClusterParts | undefined;
    if (this.cluster === undefined || freeze === undefined) {
      parts = assembleNode({ ...nodeOptions, messenger: this.network.endpoint(id) });
      asker = parts.entities;
    } else {
      const nodeId = `node-${slot.index}`;
      const transport = new FrozenTransport(this.cluster.network.connect(nodeId), freeze);
      const assembled = assembleClusterNode({
        ...nodeOptions,
        store: new NodeClusterStore(this.cluster.store, id, alive, freeze),
        transport,
        self: { nodeId, address: `${nodeId}:7000`, roles: simRolesOf(slot.index, this.slots.length) },
        cluster: simClusterSettings,
        merchants,
        onSend: (address, message) => {
          if (alive()) this.online.onMessage(address, message);
        },
      });
      parts = assembled.node;
      asker = assembled.messenger;
      cluster = { nodeId, shards: assembled.shards, transport, freeze, pausedUntil: undefined };
    }
    const node: Node = {
      id,
      parts,
      asker,
      cluster,
      projection,
      readModel,
      bootedAt: this.clock.now(),
      configured: false,
      projectionCaughtUp: false,
    };
    slot.node = node;
    // As the gateway does at boot: every Executor and Merchant starts now, so work in flight before
    // a crash resumes without waiting for new traffic; the API opens once every merchant is
    // configured and the read model has caught up (see `ready`). A boot that times out is
    // `superviseBoot`'s to restart.
    // A cluster node joins and takes its shards first, as `remit node` does; a store that does
    // not answer fails the boot, and `superviseBoot` starts the node again.
    (cluster === undefined ? Promise.resolve() : cluster.shards.start())
      .then(() => parts.boot(merchants, bootTimeoutMs))
      .then(
        () => {
          if (alive()) node.configured = true;
        },
        (error: unknown) => {
          if (alive())
            this.trace.record(
              `node ${id} boot failed: ${error instanceof Error ? error.message : String(error)}`,
            );
        },
      );
    // The supervisor answers `caughtUp` only once started (`remit node` starts it first too).
    if (projection instanceof SupervisedOrderProjection) projection.start();
    projection.caughtUp().then(
      () => {
        node.projectionCaughtUp = true;
      },
      (error: unknown) => {
        if (alive())
          this.trace.record(
            `node ${id} read model failed to catch up: ${error instanceof Error ? error.message : String(error)}`,
          );
      },
    );
    if (projection instanceof SupervisedOrderProjection) return;
    projection.start().catch((error: unknown) => {
      // A dead node's projection fails on its closed read model; that is the crash, not a bug.
      if (!alive()) return;
      this.extraViolations.push({
        invariant: 'readmodel.projection-runs',
        detail: `the projection stopped: ${error instanceof Error ? error.message : String(error)}`,
        at: this.clock.now() - startMs,
      });
    });
  }

  /** Everything the process held is gone; the journal and the read model file stay. */
  private crashNode(slot: NodeSlot): void {
    const node = slot.node;
    if (node === undefined) return;
    this.counters.nodeCrashes++;
    slot.node = undefined;
    slot.downUntil = this.clock.now() + this.faultRandom.int(this.profile.nodeDowntimeMsMax + 1);
    this.trace.record(`FAULT node ${node.id} crashes; back at +${slot.downUntil - this.clock.now()} ms`);
    this.stopNode(node);
  }

  private stopNode(node: Node): void {
    this.live.delete(node.id);
    // A dead process renews nothing and hands nothing over: its leases run out in the store.
    node.cluster?.shards.halt();
    void node.cluster?.transport.close();
    // Not awaited: a crashed process waits for nothing. Its actors stop, its asks fail, and with the
    // read model closed its projection can apply nothing more.
    void node.parts.close();
    void node.projection.stop();
    node.readModel.close();
  }

  /** The API listens: boot finished. */
  private ready(node: Node): boolean {
    return node.configured && node.projectionCaughtUp;
  }

  /** Nodes a client reaches: booted, and not paused (a stopped process accepts no connection in time). */
  private readyNodes(): Node[] {
    return this.slots.flatMap((slot) =>
      slot.node !== undefined && this.ready(slot.node) && slot.node.cluster?.freeze.isFrozen !== true
        ? [slot.node]
        : [],
    );
  }

  /** The slot a node incarnation runs in (a cluster's answers name their node by it). */
  private slotOf(nodeId: number): number | undefined {
    return this.slots.find((slot) => slot.node?.id === nodeId)?.index;
  }

  /** The node the end of the seed is observed through: the first that runs. */
  private observedNode(): Node | undefined {
    return this.slots.find((slot) => slot.node !== undefined)?.node;
  }

  /**
   * A gateway whose merchants are not configured within the boot timeout fails to start and exits
   * (startGateway throws); whatever runs it starts it again. A configure whose write failed is
   * dropped with the crashed incarnation, so without this a node could wait for ever.
   */
  private superviseBoot(): void {
    for (const slot of this.slots) {
      const node = slot.node;
      if (node === undefined || this.ready(node) || this.clock.now() - node.bootedAt < bootTimeoutMs)
        continue;
      this.trace.record(`node ${node.id} failed to start within ${bootTimeoutMs} ms; restarting it`);
      this.counters.bootFailures++;
      slot.node = undefined;
      this.stopNode(node);
      this.bootNode(slot);
    }
  }

  private deliver(nodeId: number, address: EntityAddress<unknown>, message: unknown): void {
    if (!this.live.has(nodeId)) return;
    const node = this.slots.find((slot) => slot.node?.id === nodeId)?.node;
    node?.parts.entities.tell(address, message);
  }

  // ---- faults ----------------------------------------------------------------------------------

  private injectFaults(): void {
    const random = this.faultRandom;
    const now = this.clock.now();
    const profile = this.profile;
    // Every chance is drawn at every step, so how often one fault fires never shifts the others.
    const nodeCrash = random.chance(profile.nodeCrashRate);
    const entityStop = random.chance(profile.entityStopRate);
    const entityCrash = random.chance(profile.entityCrashRate);
    const failureWindow = random.chance(profile.journal.failureWindowRate);
    const slowWindow = random.chance(profile.journal.slowWindowRate);
    const partition = random.chance(profile.network.partitionRate);
    const outage = random.chance(profile.bank.outageRate);
    const journalOutage = random.chance(profile.journal.outageRate);
    const entity = this.entityAddresses()[random.int(this.entityAddresses().length)];
    // The node this step's node faults strike.
    const struck = this.slots[random.int(this.slots.length)];
    const windowMs = 1 + random.int(profile.journal.windowMsMax + 1);
    const slowMs = 1 + random.int(profile.journal.slowWriteMsMax + 1);
    const partitionMs = 1 + random.int(profile.network.partitionMsMax + 1);
    const outageMs = 1 + random.int(profile.bank.outageMsMax + 1);
    const journalOutageMs = 1 + random.int(profile.journal.outageMsMax + 1);

    for (const slot of this.slots) {
      if (slot.node === undefined) {
        if (now >= slot.downUntil) this.bootNode(slot);
      } else if (nodeCrash && slot === struck) {
        this.crashNode(slot);
      }
    }
    const system = struck?.node?.parts.system;
    if (entityStop && system !== undefined && entity !== undefined) {
      const live = system.lookup(`/${system.name}/${persistenceIdOf(entity)}`);
      if (live !== undefined) {
        this.counters.entityStops++;
        this.trace.record(`FAULT stop ${persistenceIdOf(entity)}`);
        system.stop(live);
      }
    }
    if (entityCrash && entity !== undefined) {
      // The entity's next write fails: the real crash path (incarnation ends, supervision restarts it).
      const persistenceId = persistenceIdOf(entity);
      let struck = false;
      this.counters.entityCrashes++;
      this.trace.record(`FAULT next write of ${persistenceId} fails`);
      this.crashRules.push(
        this.memory.failAppendsWhere((request) => {
          if (struck || request.persistenceId !== persistenceId) return false;
          struck = true;
          return true;
        }),
      );
    }
    if (failureWindow) {
      this.counters.writeFailureWindows++;
      this.writeFailureUntil = Math.max(this.writeFailureUntil, now + windowMs);
      this.trace.record(
        `FAULT writes fail (rate ${profile.journal.failureRate.toFixed(3)}) for ${windowMs} ms`,
      );
    }
    if (slowWindow) {
      this.counters.slowWriteWindows++;
      this.slowWritesUntil = now + windowMs;
      this.memory.setWriteDelayMs(slowMs, this.clock);
      this.trace.record(`FAULT writes take ${slowMs} ms for ${windowMs} ms`);
    } else if (this.slowWritesUntil !== undefined && now >= this.slowWritesUntil) {
      this.slowWritesUntil = undefined;
      this.memory.setWriteDelayMs(0, this.clock);
      this.trace.record('writes fast again');
    }
    if (journalOutage) {
      this.counters.journalOutages++;
      this.journalDownUntil = Math.max(this.journalDownUntil, now + journalOutageMs);
      this.trace.record(`FAULT the store is down for ${journalOutageMs} ms`);
    }
    if (partition && this.cluster === undefined) {
      this.network.partition(now + partitionMs);
      this.trace.record(`FAULT network partition for ${partitionMs} ms`);
    }
    if (this.cluster !== undefined) this.injectClusterFaults(this.cluster, struck, partition, partitionMs);
    if (outage) {
      this.bank.outage(now + outageMs);
      this.trace.record(`FAULT bank outage for ${outageMs} ms`);
    }
  }

  /**
   * A cluster's own faults: a node paused past its leases (then continued), the database out of
   * reach, and a node cut off from the others. Their chances are per simulated minute, so a seed's
   * step size does not change how often they strike; they are drawn only in a cluster, so a seed of
   * one node runs as it always did.
   */
  private injectClusterFaults(
    cluster: SimCluster,
    struck: NodeSlot | undefined,
    partition: boolean,
    partitionMs: number,
  ): void {
    const random = this.faultRandom;
    const now = this.clock.now();
    const faults = cluster.faults;
    const elapsedMinutes = (now - cluster.lastFaultAt) / 60_000;
    cluster.lastFaultAt = now;
    const pause = random.chance(Math.min(1, faults.pausesPerMinute * elapsedMinutes));
    const databaseOutage = random.chance(Math.min(1, faults.databaseOutagesPerMinute * elapsedMinutes));
    const pauseMs = faults.pauseMsMin + random.int(Math.max(1, faults.pauseMsMax - faults.pauseMsMin + 1));
    const databaseOutageMs = 1 + random.int(Math.max(1, faults.databaseOutageMsMax));

    for (const slot of this.slots) {
      const parts = slot.node?.cluster;
      if (parts?.pausedUntil !== undefined && now >= parts.pausedUntil) {
        parts.pausedUntil = undefined;
        this.trace.record(`node ${slot.node?.id} continues`);
        parts.freeze.thaw();
      }
    }
    const paused = struck?.node?.cluster;
    if (pause && paused !== undefined && paused.pausedUntil === undefined) {
      this.counters.nodePauses++;
      paused.pausedUntil = now + pauseMs;
      paused.freeze.freeze();
      this.trace.record(`FAULT node ${struck?.node?.id} paused for ${pauseMs} ms`);
    }
    if (databaseOutage) {
      this.counters.databaseOutages++;
      cluster.databaseDownUntil = Math.max(cluster.databaseDownUntil, now + databaseOutageMs);
      this.trace.record(`FAULT the database is unreachable for ${databaseOutageMs} ms`);
    }
    this.setDatabaseReachable(cluster, now >= cluster.databaseDownUntil);
    if (partition && struck !== undefined) {
      const cut = `node-${struck.index}`;
      cluster.network.partition(
        [cut],
        this.slots.filter((slot) => slot !== struck).map((slot) => `node-${slot.index}`),
      );
      cluster.partitionUntil = Math.max(cluster.partitionUntil, now + partitionMs);
      this.trace.record(`FAULT ${cut} cut off from the other nodes for ${partitionMs} ms`);
    } else if (now >= cluster.partitionUntil) {
      cluster.network.heal();
    }
  }

  /** The database as one: membership and leases, the journal and the snapshots fail together. */
  private setDatabaseReachable(cluster: SimCluster, reachable: boolean): void {
    cluster.store.unavailable = !reachable;
    this.memory.unavailable = !reachable;
    this.snapshots.unavailable = !reachable;
  }

  private entityAddresses(): EntityAddress<unknown>[] {
    return [
      ...simMerchants.map((merchant) => merchantAddress(merchant.id)),
      ...simMerchants.map((merchant) => executorAddress(merchant.bank)),
    ];
  }

  /** Faults end: the network, the bank and the journal behave; the node runs. */
  private heal(): void {
    this.healed = true;
    this.network.healed = true;
    this.bank.healed = true;
    this.writeFailureUntil = Number.NEGATIVE_INFINITY;
    this.journalDownUntil = Number.NEGATIVE_INFINITY;
    for (const rule of this.crashRules.splice(0)) rule.cancel();
    this.memory.setWriteDelayMs(0, this.clock);
    this.slowWritesUntil = undefined;
    const cluster = this.cluster;
    if (cluster !== undefined) {
      this.setDatabaseReachable(cluster, true);
      cluster.network.setFaults(noNetworkFaults);
      cluster.network.heal();
      for (const slot of this.slots) {
        const parts = slot.node?.cluster;
        if (parts !== undefined && parts.pausedUntil !== undefined) {
          parts.pausedUntil = undefined;
          parts.freeze.thaw();
        }
      }
    }
    this.trace.record('HEAL');
    for (const slot of this.slots) if (slot.node === undefined) this.bootNode(slot);
  }

  // ---- the client ------------------------------------------------------------------------------

  /** Sends every request that is due, and again every attempt that went unanswered too long. */
  private clientTick(): void {
    const now = this.clock.now();
    for (const request of this.requests) {
      if (request.answered || startMs + request.workload.at > now || now < request.retryAt) continue;
      const waiting = request.inFlight !== undefined && now - request.lastSentAt < clientAttemptTimeoutMs;
      if (waiting || request.attempts >= clientAttemptsMax) continue;
      this.sendAttempt(request);
    }
    this.refunds.tick(
      now,
      now - startMs,
      this.readyNodes().map((node) => ({ id: node.id, refunds: node.parts.refunds })),
      (nodeId) => this.live.has(nodeId),
      () => !this.healed && this.clientRandom.chance(this.profile.clientReplyLossRate),
    );
  }

  /** One POST /orders with the request's Idempotency-Key, through the node's OrderService. */
  private sendAttempt(request: ClientRequest): void {
    request.lastSentAt = this.clock.now();
    request.attempts++;
    const attempt = ++this.attemptCount;
    request.inFlight = attempt;
    const { workload } = request;
    const what = `client #${request.index} attempt ${request.attempts}`;
    const ready = this.readyNodes();
    const node = ready[attempt % Math.max(1, ready.length)];
    if (node === undefined) {
      // Connection refused (down, or still booting): the client will try again after its timeout.
      const booting = this.slots.some((slot) => slot.node !== undefined);
      this.trace.record(`${what}: ${booting ? 'node booting' : 'node down'}`);
      return;
    }
    this.trace.record(`${what} -> n${node.id}`);
    node.parts.orders.create(workload.merchantId, workload.idempotencyKey, workload.body, clientWaitMs).then(
      (created) => this.onAnswer(request, attempt, what, node.id, { kind: 'order', created }),
      (error: unknown) => this.onAnswer(request, attempt, what, node.id, errorAnswer(error)),
    );
  }

  private onAnswer(
    request: ClientRequest,
    attempt: number,
    what: string,
    nodeId: number,
    answer: ClientAnswer,
  ): void {
    // The connection died with its node: the answer goes nowhere (and the node emitted nothing real).
    if (!this.live.has(nodeId)) return;
    const order = answer.kind === 'order' ? answer.created.order : undefined;
    if (order !== undefined) this.online.onReply({ type: 'OrderService answer', order });
    if (request.inFlight === attempt) request.inFlight = undefined;
    const lost = !this.healed && this.clientRandom.chance(this.profile.clientReplyLossRate);
    const kind =
      answer.kind === 'error'
        ? `${answer.status} ${answer.code}`
        : answer.created.replayed
          ? 'replay'
          : 'order';
    this.answerKinds[kind] = (this.answerKinds[kind] ?? 0) + 1;
    request.answers.push({
      seq: ++this.answerCount,
      order:
        order === undefined
          ? undefined
          : { id: order.id, requestHash: order.requestHash, status: order.status, amount: order.amount },
      error: answer.kind === 'error' ? { status: answer.status, code: answer.code } : undefined,
      received: !lost,
      ...(this.cluster === undefined ? {} : { node: this.slotOf(nodeId) }),
    });
    const shown =
      answer.kind === 'order'
        ? `${order?.status}${answer.created.replayed ? ' (replay)' : ''}`
        : `${answer.status} ${answer.code}`;
    if (lost) {
      this.counters.clientRepliesLost++;
      this.trace.record(`${what} <- ${shown} LOST`);
      return;
    }
    this.trace.record(`${what} <- ${shown}`);
    // Final: a terminal order, or the key-reuse error. Anything else the client asks again, after a
    // pause: a 503 says so, and an order still in flight is polled with the same key.
    const final =
      answer.kind === 'order'
        ? isTerminal(answer.created.order.status)
        : answer.code === 'idempotency_key_reused';
    if (final) request.answered = true;
    else request.retryAt = this.clock.now() + clientRetryAfterMs;
  }

  // ---- the end -----------------------------------------------------------------------------------

  /** What is still in motion; empty when the seed has settled. */
  private pending(): string[] {
    const pending: string[] = [];
    for (const request of this.requests) {
      if (!request.answered) pending.push(`request #${request.index} unanswered`);
    }
    for (const orderId of this.log.orderIds()) {
      const facts = this.log.factsOf(orderId);
      const created = facts.some((fact) => fact.type === 'OrderCreated');
      const finished = facts.some((fact) =>
        ['OrderRejected', 'OrderExecuted', 'OrderDeclined', 'OrderFailed'].includes(fact.type),
      );
      if (created && !finished) pending.push(`order ${orderId} not terminal`);
      const settled = facts.filter((fact) => fact.type === 'ExecutionSettled').length;
      const confirmed = facts.filter((fact) => fact.type === 'ResultConfirmed').length;
      if (confirmed < settled) pending.push(`order ${orderId} result unconfirmed`);
    }
    pending.push(...this.refunds.pending());
    for (const refund of refundsFromJournal(this.paymentJournals())) {
      if (refund.status === 'pending') pending.push(`refund ${refund.id} pending`);
    }
    if (this.memory.pendingAppends() > 0) pending.push(`${this.memory.pendingAppends()} appends pending`);
    for (const { node, index } of this.slots) {
      if (node === undefined) pending.push(`node ${index} down`);
      else if (!this.ready(node)) pending.push(`node ${index} booting`);
      else if (node.readModel.offset() < this.memory.stats().events)
        pending.push(`node ${index}'s read model behind`);
    }
    return pending;
  }

  private async observe(quiescent: boolean, pending: readonly string[]): Promise<SeedObservation> {
    // Ask the live Merchants first: asking moves simulated time, and the journal and the read model
    // are read after it, so all three describe the same moment when the seed is quiescent.
    const live = await this.askLive(this.requests.map((request) => request.workload));
    const journals: Array<{ persistenceId: string; seqNrs: number[] }> = [];
    const creations: SeedObservation['creations'][number][] = [];
    const recovered = new Map<string, ObservedOrder>();
    const executions = new Map<string, { requested: number; settled: string[]; confirmed: number }>();
    const memoryViolations: Violation[] = [];
    for (const persistenceId of [...this.memory.persistenceIds()].sort()) {
      const rows = this.memory.eventsOf(persistenceId);
      journals.push({ persistenceId, seqNrs: rows.map((row) => row.seqNr) });
      if (persistenceId.startsWith('merchant-')) {
        const merchantId = persistenceId.slice('merchant-'.length);
        // The Merchant's state holds only orders in flight; each order's whole history is folded
        // from its own events with the same transition function the Merchant's evolve uses.
        let state: MerchantState = initialMerchantState(merchantId);
        const orders = new Map<string, Order>();
        for (const row of rows) {
          const event = merchantEvents.deserialize(row, { persistenceId, seqNr: row.seqNr });
          if (event.type === 'OrderCreated') {
            creations.push({
              merchantId,
              orderId: event.orderId,
              idempotencyKey: event.idempotencyKey,
              requestHash: event.requestHash,
            });
          }
          if (isOrderEvent(event))
            orders.set(event.orderId, orderAfter(orders.get(event.orderId), event, merchantId));
          state = evolveMerchant(state, event, simMerchantSettings);
        }
        for (const [id, order] of orders) recovered.set(id, observedOrder(order));
        memoryViolations.push(...merchantMemoryViolations(persistenceId, state, orders));
      } else if (persistenceId.startsWith('executor-')) {
        for (const row of rows) {
          const event = executorEvents.deserialize(row, { persistenceId, seqNr: row.seqNr });
          // Refunds are the bank's other traffic: they count no execution of their order.
          if (isRefundExecutionEvent(event)) continue;
          let execution = executions.get(event.orderId);
          if (execution === undefined) {
            execution = { requested: 0, settled: [], confirmed: 0 };
            executions.set(event.orderId, execution);
          }
          if (event.type === 'ExecutionRequested') execution.requested++;
          else if (event.type === 'ExecutionSettled') execution.settled.push(event.outcome.kind);
          else execution.confirmed++;
        }
      }
    }
    const refunds = refundsFromJournal(this.paymentJournals());
    const readModel = new Map<string, ObservedOrder>();
    const node = this.observedNode();
    if (node !== undefined) {
      for (const id of new Set([
        ...recovered.keys(),
        ...this.requests.map((request) => request.workload.orderId),
      ])) {
        const row = node.readModel.getOrderById(id);
        if (row !== undefined) readModel.set(id, rowOrder(row));
      }
    }
    return {
      quiescent,
      pending,
      requests: this.requests.map((request) => ({
        merchantId: request.workload.merchantId,
        idempotencyKey: request.workload.idempotencyKey,
        orderId: request.workload.orderId,
        requestHash: request.requestHash,
        variant: request.workload.variant,
        answered: request.answered,
        answers: request.answers,
      })),
      journals,
      creations,
      recovered,
      live,
      readModel,
      executions: executions as ReadonlyMap<string, ObservedExecution>,
      payments: this.bank.ledger.list().map((record) => ({
        reference: record.reference,
        merchantId: record.merchantId,
        status: record.status,
        amount: record.status === 'cancelled' ? 0 : record.amount,
        currency: record.status === 'cancelled' ? undefined : record.currency,
        authorizationCode: record.status === 'approved' ? record.authorizationCode : undefined,
        declineReason: record.status === 'declined' ? record.declineReason : undefined,
        requestCount: record.requestCount,
      })),
      online: [
        ...this.online.violations,
        ...this.extraViolations,
        ...memoryViolations,
        ...this.refundSends.violations,
        ...checkSimRefunds({
          sent: this.refunds.sent(),
          remit: refunds,
          orders: refundedOrders(
            refunds,
            node === undefined
              ? undefined
              : (orderId) => readAmountRefunded(node.readModel.getOrderById(orderId)),
          ),
          bank: this.bank.ledger.listRefunds(),
          payments: this.bank.ledger.list().map((record) => ({
            reference: record.reference,
            status: record.status,
            amount: record.status === 'cancelled' ? 0 : record.amount,
          })),
        }),
      ],
    };
  }

  /** The Payments' journals (`payment-<order id>`), as stored. */
  private paymentJournals(): Array<{ persistenceId: string; rows: PersistedEvent[] }> {
    return [...this.memory.persistenceIds()]
      .filter((persistenceId) => persistenceId.startsWith(`${paymentTypeName}-`))
      .sort()
      .map((persistenceId) => ({ persistenceId, rows: this.memory.eventsOf(persistenceId) }));
  }

  /** The live Merchants' view of every order, asked as a client would (GetOrder). */
  private async askLive(
    orders: ReadonlyArray<{ readonly orderId: string; readonly merchantId: string }>,
  ): Promise<Map<string, ObservedOrder | undefined>> {
    const answers = new Map<string, ObservedOrder | undefined>();
    const node = this.observedNode();
    if (node === undefined) return answers;
    const asked = new Set<string>();
    for (const { orderId, merchantId } of orders) {
      if (asked.has(orderId)) continue;
      asked.add(orderId);
      if (node.cluster !== undefined) {
        // The Merchant may live on another node: ask through the messenger, as the API does.
        node.asker
          .ask<MerchantCommand, GetOrderReply>(
            merchantAddress(merchantId),
            (replyTo) => ({ type: 'GetOrder', orderId, replyTo }),
            finalQueryRoundsMax * 10,
          )
          .then(
            (reply) =>
              answers.set(orderId, reply.order === undefined ? undefined : observedOrder(reply.order)),
            () => {},
          );
        continue;
      }
      node.parts.entities.tell<MerchantCommand>(merchantAddress(merchantId), {
        type: 'GetOrder',
        orderId,
        replyTo: {
          path: `/client/get-${orderId}`,
          tell: (reply) => {
            answers.set(orderId, reply.order === undefined ? undefined : observedOrder(reply.order));
          },
        },
      });
    }
    for (let round = 0; round < finalQueryRoundsMax && answers.size < asked.size; round++) {
      await this.clock.advanceAsync(10);
    }
    return answers;
  }

  private stats(observation: SeedObservation, healMs: number): SeedStats {
    const statuses: Record<string, number> = {};
    for (const order of observation.recovered.values())
      statuses[order.status] = (statuses[order.status] ?? 0) + 1;
    const payments = observation.payments;
    return {
      orders: new Set(this.requests.map((request) => request.workload.orderId)).size,
      requests: this.requests.length,
      attempts: this.attemptCount,
      statuses,
      ...this.counters,
      answers: { ...this.answerKinds },
      refunds: {
        requests: this.refunds.size,
        ...this.refunds.counters,
        bankRefunds: this.bank.ledger.listRefunds().length,
      },
      failedAppends: this.memory.stats().failedAppends,
      journalEvents: this.memory.stats().events,
      network: { ...this.network.stats },
      transport: this.cluster?.network.stats() ?? { sent: 0, delivered: 0, dropped: 0 },
      bank: { ...this.bank.stats },
      bankPayments: payments.length,
      bankApproved: payments.filter((payment) => payment.status === 'approved').length,
      bankRequestCountMax: Math.max(0, ...payments.map((payment) => payment.requestCount)),
      bankRequestCountTotal: payments.reduce((sum, payment) => sum + payment.requestCount, 0),
      authorizationsPerReferenceMax: Math.max(0, ...this.authorizations.values()),
      simulatedMs: this.clock.now() - startMs,
      healMs,
    };
  }
}

/**
 * Memory that does not grow with history: the recovered Merchant holds exactly its orders not yet
 * finished (and deliveries only for those), never a finished one.
 */
function merchantMemoryViolations(
  persistenceId: string,
  state: MerchantState,
  orders: ReadonlyMap<string, Order>,
): Violation[] {
  const unfinished = new Set(
    [...orders.values()].filter((order) => !isTerminal(order.status)).map((order) => order.id),
  );
  const held = [...state.inFlight.keys()];
  const outboxOutsideInFlight = [...state.outbox.keys()].filter((id) => !state.inFlight.has(id));
  const heldUnfinished = held.length === unfinished.size && held.every((id) => unfinished.has(id));
  if (heldUnfinished && outboxOutsideInFlight.length === 0) return [];
  return [
    {
      invariant: 'merchant.holds-only-orders-in-flight',
      detail: `${persistenceId} holds ${held.length} orders (${unfinished.size} unfinished) and ${outboxOutsideInFlight.length} deliveries of orders not in flight`,
    },
  ];
}

/**
 * The production settings, except that snapshots are taken every few events, so that recoveries
 * under the seed's crashes start from snapshots (and their codecs) as well as from the journal.
 */
const snapshotEveryEventsInSimulation = 7;
const simMerchantSettings = {
  ...defaultMerchantSettings,
  snapshotEveryEvents: snapshotEveryEventsInSimulation,
};
const simExecutorSettings = {
  ...defaultExecutorSettings,
  snapshotEveryEvents: snapshotEveryEventsInSimulation,
};

function observedOrder(order: Order): ObservedOrder {
  return {
    id: order.id,
    merchantId: order.merchantId,
    idempotencyKey: order.idempotencyKey,
    requestHash: order.requestHash,
    status: order.status,
    amount: order.amount,
    currency: order.currency,
    reason: order.reason,
    authorizationCode: order.authorizationCode,
  };
}

function rowOrder(row: OrderRow): ObservedOrder {
  return {
    id: row.id,
    merchantId: row.merchantId,
    idempotencyKey: row.idempotencyKey,
    requestHash: row.requestHash,
    status: row.status,
    amount: row.amount,
    currency: row.currency,
    reason: row.reason,
    authorizationCode: row.authorizationCode,
  };
}

/** What the read model shows as refunded of an order, in minor units; undefined for no row. */
function readAmountRefunded(row: OrderRow | undefined): number | undefined {
  return row === undefined ? undefined : Number(row.amountRefunded);
}

/** An error as the API would answer it: its status and code, or a 500 for anything else. */
function errorAnswer(error: unknown): ClientAnswer {
  if (error instanceof ApiError) return { kind: 'error', status: error.status, code: error.code };
  return { kind: 'error', status: 500, code: error instanceof Error ? error.name : 'internal' };
}

function defaultTempRoot(): string {
  return fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
}
