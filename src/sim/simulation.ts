import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { orderRequestText } from '../api/order-service.js';
import { classifyBankError } from '../bank/bank-connection.js';
import { BankLedger } from '../bank/ledger.js';
import { demoConfig } from '../cli/demo-merchants.js';
import { CardVault, MemoryVaultStorage, vaultKeyBytes } from '../payments/card-vault.js';
import { defaultExecutorSettings, executorDefinition, executorEvents } from '../payments/executor.js';
import {
  defaultMerchantSettings,
  executorAddress,
  isOrderEvent,
  type MerchantCommand,
  type MerchantState,
  merchantAddress,
  merchantDefinition,
  merchantEvents,
  type NewOrder,
  orderAfter,
  type ProcessOrderReply,
} from '../payments/merchant.js';
import { isTerminal, type Order } from '../payments/order.js';
import { OrderWaiters } from '../payments/order-waiters.js';
import { type EntityAddress, persistenceIdOf } from '../persistence/entity.js';
import { EntityRegistry } from '../persistence/entity-registry.js';
import { OrderProjection } from '../readmodel/order-projection.js';
import { OrderReadModel, type OrderRow } from '../readmodel/order-read-model.js';
import type { ActorRef } from '../runtime/actor.js';
import { ActorSystem } from '../runtime/actor-system.js';
import type { Cancellable } from '../runtime/clock.js';
import { SimulatedClock } from '../runtime/clock.js';
import { silentLogger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import { MemoryJournal } from '../store/memory/memory-journal.js';
import { MemorySnapshotStore } from '../store/memory/memory-snapshot-store.js';
import { ObservedJournal } from '../store/observed-journal.js';
import {
  describeProfile,
  disabledFaults,
  drawFaultProfile,
  type FaultKind,
  type FaultProfile,
  withoutFaults,
} from './faults.js';
import {
  checkInvariants,
  type ObservedExecution,
  type ObservedOrder,
  type ObservedReply,
  type SeedObservation,
  type Violation,
} from './invariants.js';
import { SimNetwork } from './network.js';
import { OnlineChecks } from './online-checks.js';
import { executorWithoutDeduplication, merchantConfirmingBeforeDurable, type Sabotage } from './sabotage.js';
import { SimBank } from './sim-bank.js';
import { DurableLog, NodeJournal, NodeSnapshots } from './sim-journal.js';
import { Trace } from './trace.js';
import { traceLogger } from './trace-logger.js';
import { generateWorkload, simMerchants, type WorkloadRequest } from './workload.js';

/**
 * One seed of the deterministic simulation: a fresh world — simulated clock, seeded randomness,
 * the in-memory journal, a node running the real runtime and payments code (Merchant and Executor
 * entities, at-least-once delivery, idempotent receiving, the read model's projection), an
 * in-memory network and the real bank simulator's core behind a simulated wire — driven through a
 * fault phase and a heal phase, then checked against the invariants.
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
  network: SimNetwork['stats'];
  bank: SimBank['stats'];
  bankPayments: number;
  bankApproved: number;
  /** The most requests the bank counted for one reference (repeats are deduplicated, not charged). */
  bankRequestCountMax: number;
  bankRequestCountTotal: number;
  /** The most authorizations the gateway sent for one reference. */
  authorizationsPerReferenceMax: number;
  clientRepliesLost: number;
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
const clientAttemptsMax = 500;
const startMs = Date.UTC(2026, 10, 24, 12, 0, 0);

interface Node {
  readonly id: number;
  readonly system: ActorSystem;
  readonly registry: EntityRegistry;
  readonly projection: OrderProjection;
  readonly readModel: OrderReadModel;
  readonly bootedAt: number;
  /** Merchants whose ConfigureMerchant has not been answered yet. */
  readonly unconfigured: Set<string>;
  projectionCaughtUp: boolean;
}

/** The gateway's boot waits this long for its merchants to be configured, then fails (and exits). */
const bootTimeoutMs = 60_000;

interface ClientRequest {
  readonly index: number;
  readonly workload: WorkloadRequest;
  readonly requestHash: string;
  attempts: number;
  lastSentAt: number;
  inFlight: number | undefined;
  answered: boolean;
  readonly replies: ObservedReply[];
}

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
  private readonly snapshots = new MemorySnapshotStore();
  private readonly log: DurableLog;
  private readonly online: OnlineChecks;
  private readonly network: SimNetwork;
  private readonly bank: SimBank;
  private readonly vault: CardVault;
  private readonly tempDir: string;
  private readonly readModelPath: string;
  private readonly requests: ClientRequest[];
  private readonly extraViolations: Violation[] = [];

  private node: Node | undefined;
  private liveNode: number | undefined;
  private nodeCount = 0;
  private nodeDownUntil = 0;
  private attemptCount = 0;
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
    this.profile = withoutFaults(options.faults ?? drawFaultProfile(profileRandom), disabledFaults(options));
    this.trace = new Trace(() => this.clock.now() - startMs, options.keepTrace ?? false);
    this.memory = new MemoryJournal({ clock: this.clock });
    this.log = new DurableLog(this.memory);
    this.online = new OnlineChecks(
      this.log,
      () => this.clock.now() - startMs,
      options.onlineChecks ?? true,
      (reference) => this.bank.ledger.find(reference)?.status,
    );
    this.network = new SimNetwork(this.clock, networkRandom, this.profile.network, this.trace, {
      onSend: (address, message) => this.online.onMessage(address, message),
      deliver: (node, address, message) => this.deliver(node, address, message),
      isAlive: (node) => this.liveNode === node,
    });
    this.tempDir = fs.mkdtempSync(path.join(options.tempRoot ?? defaultTempRoot(), 'remit-sim-'));
    this.readModelPath = path.join(this.tempDir, 'readmodel.db');
    const ledger = BankLedger.open({ dataDir: this.tempDir, clock: this.clock });
    this.bank = new SimBank(ledger, this.clock, bankRandom, wireRandom, this.profile.bank, this.trace, {
      onSend: (operation, reference) => {
        if (operation === 'authorize') {
          this.authorizations.set(reference, (this.authorizations.get(reference) ?? 0) + 1);
        }
        this.online.onBankCall(operation, reference);
      },
    });
    // A fixed vault key: tokens (HMACs of the card number) are the same in every run of a seed.
    this.vault = new CardVault(Buffer.alloc(vaultKeyBytes, 7), new MemoryVaultStorage(), () =>
      this.clock.now(),
    );
    const workload = generateWorkload(workloadRandom, {
      ordersMin: options.ordersMin ?? 10,
      ordersMax: options.ordersMax ?? 40,
      sendWithinMs: Math.floor(this.profile.faultPhaseMs * 0.8),
    });
    this.requests = workload.map((request, index) => ({
      index,
      workload: request,
      requestHash: this.vault.fingerprint(orderRequestText(request.body)),
      attempts: 0,
      lastSentAt: Number.NEGATIVE_INFINITY,
      inFlight: undefined,
      answered: false,
      replies: [],
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
    this.bootNode();

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
    const node = this.node;
    this.liveNode = undefined;
    this.node = undefined;
    if (node !== undefined) this.stopNode(node);
    this.bank.ledger.close();
    fs.rmSync(this.tempDir, { recursive: true, force: true });
  }

  // ---- the node --------------------------------------------------------------------------------

  /** Wires one node as `startGateway` does, over the seed's journal, network and bank. */
  private bootNode(): void {
    const id = ++this.nodeCount;
    this.liveNode = id;
    const alive = (): boolean => this.liveNode === id;
    this.trace.record(`node ${id} boots`);
    const readModel = OrderReadModel.open(this.readModelPath);
    const projection = new OrderProjection({
      journal: new NodeJournal(this.log, id, alive),
      readModel,
      clock: this.clock,
      logger: silentLogger,
    });
    const journal = new ObservedJournal(new NodeJournal(this.log, id, alive), () => projection.notify());
    const logger = traceLogger(this.trace, { node: id });
    const system = new ActorSystem({
      name: 'remit',
      clock: this.clock,
      random: this.nodeRandom.fork(),
      logger,
    });
    const messenger = this.network.endpoint(id);
    const registry = new EntityRegistry({
      system,
      journal,
      snapshots: new NodeSnapshots(this.snapshots, id, alive),
      clock: this.clock,
      random: this.nodeRandom.fork(),
      logger,
      messenger,
      observer: {
        onRecovered: (persistenceId, _state, seqNr) =>
          this.trace.record(`n${id} ${persistenceId} recovered at seqNr ${seqNr}`),
      },
    });
    const waiters = new OrderWaiters();
    const settings =
      this.profile.passivateAfterMs > 0 ? { passivateAfterMs: this.profile.passivateAfterMs } : {};
    registry.register(
      this.options.sabotage === 'merchant-confirms-before-durable'
        ? merchantConfirmingBeforeDurable(waiters, simMerchantSettings, messenger)
        : merchantDefinition(waiters, simMerchantSettings),
      settings,
    );
    const services = { bank: this.bank.endpoint(id, alive), cards: this.vault, classify: classifyBankError };
    registry.register(
      this.options.sabotage === 'executor-without-deduplication'
        ? executorWithoutDeduplication(services, simExecutorSettings)
        : executorDefinition(services, simExecutorSettings),
      settings,
    );
    const node: Node = {
      id,
      system,
      registry,
      projection,
      readModel,
      bootedAt: this.clock.now(),
      unconfigured: new Set(simMerchants.map((merchant) => merchant.id)),
      projectionCaughtUp: false,
    };
    this.node = node;
    // As the gateway does at boot: every Executor and Merchant starts now, so work in flight before
    // a crash resumes without waiting for new traffic; the API opens once every merchant is
    // configured and the read model has caught up (see `ready`).
    for (const merchant of simMerchants) registry.refFor(executorAddress(merchant.bank));
    for (const merchant of simMerchants) {
      registry.tell(merchantAddress(merchant.id), {
        type: 'ConfigureMerchant',
        config: demoConfig(merchant.bank),
        replyTo: {
          path: `/boot/configure-${id}-${merchant.id}`,
          tell: () => {
            if (alive()) node.unconfigured.delete(merchant.id);
          },
        },
      });
    }
    projection.caughtUp().then(
      () => {
        node.projectionCaughtUp = true;
      },
      () => {},
    );
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
  private crashNode(): void {
    const node = this.node;
    if (node === undefined) return;
    this.counters.nodeCrashes++;
    this.liveNode = undefined;
    this.node = undefined;
    this.nodeDownUntil = this.clock.now() + this.faultRandom.int(this.profile.nodeDowntimeMsMax + 1);
    this.trace.record(`FAULT node ${node.id} crashes; back at +${this.nodeDownUntil - this.clock.now()} ms`);
    this.stopNode(node);
  }

  private stopNode(node: Node): void {
    // Not awaited: a crashed process waits for nothing. Its actors stop, its asks fail, and with the
    // read model closed its projection can apply nothing more.
    void node.system.terminate();
    void node.projection.stop();
    node.readModel.close();
  }

  /** The API listens: boot finished. */
  private ready(node: Node): boolean {
    return node.unconfigured.size === 0 && node.projectionCaughtUp;
  }

  /**
   * A gateway whose merchants are not configured within the boot timeout fails to start and exits
   * (startGateway throws); whatever runs it starts it again. A configure whose write failed is
   * dropped with the crashed incarnation, so without this a node could wait for ever.
   */
  private superviseBoot(): void {
    const node = this.node;
    if (node === undefined || this.ready(node) || this.clock.now() - node.bootedAt < bootTimeoutMs) return;
    this.trace.record(`node ${node.id} failed to start within ${bootTimeoutMs} ms; restarting it`);
    this.counters.bootFailures++;
    this.liveNode = undefined;
    this.node = undefined;
    this.stopNode(node);
    this.bootNode();
  }

  private deliver(node: number, address: EntityAddress<unknown>, message: unknown): void {
    if (node !== this.liveNode || this.node === undefined) return;
    this.node.registry.tell(address, message);
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
    const windowMs = 1 + random.int(profile.journal.windowMsMax + 1);
    const slowMs = 1 + random.int(profile.journal.slowWriteMsMax + 1);
    const partitionMs = 1 + random.int(profile.network.partitionMsMax + 1);
    const outageMs = 1 + random.int(profile.bank.outageMsMax + 1);
    const journalOutageMs = 1 + random.int(profile.journal.outageMsMax + 1);

    if (this.node === undefined) {
      if (now >= this.nodeDownUntil) this.bootNode();
    } else if (nodeCrash) {
      this.crashNode();
    }
    const node = this.node;
    if (entityStop && node !== undefined && entity !== undefined) {
      const live = node.system.lookup(`/${node.system.name}/${persistenceIdOf(entity)}`);
      if (live !== undefined) {
        this.counters.entityStops++;
        this.trace.record(`FAULT stop ${persistenceIdOf(entity)}`);
        node.system.stop(live);
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
    if (partition) {
      this.network.partition(now + partitionMs);
      this.trace.record(`FAULT network partition for ${partitionMs} ms`);
    }
    if (outage) {
      this.bank.outage(now + outageMs);
      this.trace.record(`FAULT bank outage for ${outageMs} ms`);
    }
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
    this.trace.record('HEAL');
    if (this.node === undefined) this.bootNode();
  }

  // ---- the client ------------------------------------------------------------------------------

  /** Sends every request that is due, and again every attempt that went unanswered too long. */
  private clientTick(): void {
    const now = this.clock.now();
    for (const request of this.requests) {
      if (request.answered || startMs + request.workload.at > now) continue;
      const waiting = request.inFlight !== undefined && now - request.lastSentAt < clientAttemptTimeoutMs;
      if (waiting || request.attempts >= clientAttemptsMax) continue;
      this.sendAttempt(request);
    }
  }

  private sendAttempt(request: ClientRequest): void {
    const node = this.node;
    const nodeId = this.liveNode;
    request.lastSentAt = this.clock.now();
    request.attempts++;
    const attempt = ++this.attemptCount;
    const { workload } = request;
    const what = `client #${request.index} attempt ${request.attempts}`;
    if (node === undefined || nodeId === undefined || !this.ready(node)) {
      // Connection refused (down, or still booting): the client will try again after its timeout.
      request.inFlight = attempt;
      this.trace.record(`${what}: node ${node === undefined ? 'down' : 'booting'}`);
      return;
    }
    request.inFlight = attempt;
    const replyTo: ActorRef<ProcessOrderReply> = {
      path: `/client/attempt-${attempt}`,
      tell: (reply) => this.onReply(request, attempt, what, nodeId, reply),
    };
    const order: NewOrder = {
      orderId: workload.orderId,
      idempotencyKey: workload.idempotencyKey,
      requestHash: request.requestHash,
      amount: BigInt(workload.body.amount),
      currency: workload.body.currency,
      card: this.vault.tokenize(workload.body.card),
      description: workload.body.description,
      reference: workload.body.reference,
      receivedAt: this.clock.now(),
    };
    this.trace.record(`${what} -> n${nodeId}`);
    node.registry.tell<MerchantCommand>(merchantAddress(workload.merchantId), {
      type: 'ProcessNewOrder',
      order,
      replyTo,
    });
  }

  private onReply(
    request: ClientRequest,
    attempt: number,
    what: string,
    nodeId: number,
    reply: ProcessOrderReply,
  ): void {
    // The connection died with its node: the reply goes nowhere (and the node emitted nothing real).
    if (nodeId !== this.liveNode) return;
    this.online.onReply(reply);
    const order = 'order' in reply ? reply.order : undefined;
    request.replies.push({
      type: reply.type,
      orderId: order?.id ?? ('orderId' in reply ? reply.orderId : undefined),
      requestHash: order?.requestHash,
      sameRequest: reply.type === 'OrderExists' ? reply.sameRequest : undefined,
    });
    if (request.inFlight === attempt) request.inFlight = undefined;
    if (!this.healed && this.clientRandom.chance(this.profile.clientReplyLossRate)) {
      this.counters.clientRepliesLost++;
      this.trace.record(`${what} <- ${reply.type} LOST`);
      return;
    }
    this.trace.record(`${what} <- ${reply.type}${order === undefined ? '' : ` ${order.status}`}`);
    if (reply.type === 'MerchantBusy' || reply.type === 'MerchantNotConfigured') return;
    request.answered = true;
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
    if (this.memory.pendingAppends() > 0) pending.push(`${this.memory.pendingAppends()} appends pending`);
    const node = this.node;
    if (node === undefined) pending.push('node down');
    else if (!this.ready(node)) pending.push('node booting');
    else if (node.readModel.offset() < this.memory.stats().events) pending.push('read model behind');
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
    const merchant = merchantDefinition(new OrderWaiters(), simMerchantSettings);
    const memoryViolations: Violation[] = [];
    for (const persistenceId of [...this.memory.persistenceIds()].sort()) {
      const rows = this.memory.eventsOf(persistenceId);
      journals.push({ persistenceId, seqNrs: rows.map((row) => row.seqNr) });
      if (persistenceId.startsWith('merchant-')) {
        const merchantId = persistenceId.slice('merchant-'.length);
        // The Merchant's state holds only orders in flight; each order's whole history is folded
        // from its own events with the same transition function the Merchant's evolve uses.
        let state: MerchantState = merchant.initialState(merchantId);
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
          state = merchant.evolve(state, event);
        }
        for (const [id, order] of orders) recovered.set(id, observedOrder(order));
        memoryViolations.push(...merchantMemoryViolations(persistenceId, state, orders));
      } else if (persistenceId.startsWith('executor-')) {
        for (const row of rows) {
          const event = executorEvents.deserialize(row, { persistenceId, seqNr: row.seqNr });
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
    const readModel = new Map<string, ObservedOrder>();
    const node = this.node;
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
        replies: request.replies,
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
      online: [...this.online.violations, ...this.extraViolations, ...memoryViolations],
    };
  }

  /** The live Merchants' view of every order, asked as a client would (GetOrder). */
  private async askLive(
    orders: ReadonlyArray<{ readonly orderId: string; readonly merchantId: string }>,
  ): Promise<Map<string, ObservedOrder | undefined>> {
    const answers = new Map<string, ObservedOrder | undefined>();
    const node = this.node;
    if (node === undefined) return answers;
    const asked = new Set<string>();
    for (const { orderId, merchantId } of orders) {
      if (asked.has(orderId)) continue;
      asked.add(orderId);
      node.registry.tell<MerchantCommand>(merchantAddress(merchantId), {
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
      failedAppends: this.memory.stats().failedAppends,
      journalEvents: this.memory.stats().events,
      network: { ...this.network.stats },
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

function defaultTempRoot(): string {
  return fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
}
