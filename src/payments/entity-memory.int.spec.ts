/**
 * Memory that does not grow with history, on the real runtime: Merchant and Executor entities, the
 * in-memory journal and snapshot store, a simulated bank, on a simulated clock. Two thousand orders
 * run to the end; then the live entities must hold nothing of them, their snapshots must be as
 * small after two thousand orders as after one thousand, and a restarted process must recover
 * from a snapshot by replaying at most `snapshotEveryEvents` events — to the same state — and
 * still refuse to create an order twice.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { EntityRegistry } from '../persistence/entity-registry.js';
import type { ActorSystem } from '../runtime/actor-system.js';
import { SimulatedClock } from '../runtime/clock.js';
import { SeededRandom } from '../runtime/random.js';
import type { Journal, PersistedEvent } from '../store/journal.js';
import { MemoryJournal } from '../store/memory/memory-journal.js';
import { MemorySnapshotStore } from '../store/memory/memory-snapshot-store.js';
import { CardActivity } from './card-activity.js';
import '../testing/entity-test-kit.js';
import { SimulatedBank } from '../bank/simulated-bank.js';
import { testNode, testVaultKey } from '../testing/test-node.js';
import { luhnValid } from './card.js';
import { CardVault, MemoryVaultStorage } from './card-vault.js';
import { defaultExecutorSettings } from './executor.js';
import type { ExecutorState } from './executor-decider.js';
import { defaultMerchantSettings } from './merchant.js';
import type { MerchantState } from './merchant-decider.js';
import {
  type MerchantCommand,
  merchantAddress,
  type NewOrder,
  type ProcessOrderReply,
} from './merchant-protocol.js';
import { orderIdFor } from './order.js';
import type { OrderWaiters } from './order-waiters.js';
import type { MerchantConfig } from './validator.js';

const snapshotEveryEvents = 500;
const recentlyFinishedMax = 64;
const velocityWindowMs = 5_000;
const ordersPerSecond = 100;
const config: MerchantConfig = {
  bank: 'bank-a',
  currencies: [{ currency: 'EUR', perOrderLimit: 1_000_000n }],
  blockedBins: [],
  velocity: { maxOrdersPerCard: 5, windowMs: velocityWindowMs },
};
const merchantId = 'merchant-a';
const merchantPid = `merchant-${merchantId}`;
const executorPid = 'executor-bank-a';

/** The journal, counting the rows each persistence id reads (recovery reads; nothing else does). */
class CountingJournal implements Journal {
  readonly rowsRead = new Map<string, number>();
  constructor(readonly inner: MemoryJournal) {}
  append: Journal['append'] = (request) => this.inner.append(request);
  async read(persistenceId: string, from: number, to?: number, max?: number): Promise<PersistedEvent[]> {
    const rows = await this.inner.read(persistenceId, from, to, max);
    this.rowsRead.set(persistenceId, (this.rowsRead.get(persistenceId) ?? 0) + rows.length);
    return rows;
  }
  highestSeqNr: Journal['highestSeqNr'] = (id) => this.inner.highestSeqNr(id);
  readAll: Journal['readAll'] = (after, limit) => this.inner.readAll(after, limit);
  isProcessed: Journal['isProcessed'] = (receiver, id) => this.inner.isProcessed(receiver, id);
  purgeProcessed: Journal['purgeProcessed'] = (receiver, before) =>
    this.inner.purgeProcessed(receiver, before);
  stats: Journal['stats'] = () => this.inner.stats();
  close: Journal['close'] = () => this.inner.close();
}

interface World {
  readonly clock: SimulatedClock;
  readonly memory: MemoryJournal;
  readonly journal: CountingJournal;
  readonly snapshots: MemorySnapshotStore;
  readonly bank: SimulatedBank;
  readonly vaultStorage: MemoryVaultStorage;
  /** The client's side: tokenizes cards into the storage the nodes' vaults read. */
  readonly vault: CardVault;
}

/** One gateway process: its own actor system, registry, waiters; the stores outlive it. */
interface Process {
  readonly system: ActorSystem;
  readonly registry: EntityRegistry;
  readonly waiters: OrderWaiters;
  /** The latest durable (or recovered) state of each entity. */
  readonly states: Map<string, { state: unknown; seqNr: number }>;
}

const systems: ActorSystem[] = [];
afterEach(async () => {
  for (const system of systems.splice(0)) await system.terminate();
});

function world(): World {
  const clock = new SimulatedClock(Date.UTC(2026, 10, 24));
  const memory = new MemoryJournal({ clock });
  const vaultStorage = new MemoryVaultStorage();
  return {
    clock,
    memory,
    journal: new CountingJournal(memory),
    snapshots: new MemorySnapshotStore(),
    bank: new SimulatedBank(new SeededRandom(7)),
    vaultStorage,
    vault: new CardVault(testVaultKey, vaultStorage, () => clock.now()),
  };
}

async function startProcess(w: World): Promise<Process> {
  const states = new Map<string, { state: unknown; seqNr: number }>();
  const node = testNode({
    memory: w.memory,
    journal: w.journal,
    stores: { snapshots: w.snapshots, vault: w.vaultStorage },
    bank: w.bank,
    clock: w.clock,
    random: new SeededRandom(11),
    observer: {
      onRecovered: (id, state, seqNr) => states.set(id, { state, seqNr }),
      onDurable: (id, state, seqNr) => states.set(id, { state, seqNr }),
    },
    settings: {
      merchant: { ...defaultMerchantSettings, snapshotEveryEvents },
      executor: { ...defaultExecutorSettings, snapshotEveryEvents },
      orderWaiters: { waitersPerOrderMax: 4, ordersWaitedOnMax: 1_000, recentlyFinishedMax },
    },
    name: 'gateway',
  });
  systems.push(node.system);
  const configured = node.boot([{ id: merchantId, config }], 10_000);
  await w.clock.advanceAsync(10);
  await configured;
  return { system: node.system, registry: node.entities, waiters: node.waiters, states };
}

function newOrder(w: World, n: number): NewOrder {
  // Each order its own card: the velocity window, not the history, bounds the cards tracked.
  const partial = `42${String(n).padStart(13, '0')}`;
  const number = [...'0123456789'].map((digit) => partial + digit).find(luhnValid) ?? partial;
  const key = `key-${n}`;
  return {
    orderId: orderIdFor(merchantId, key),
    idempotencyKey: key,
    requestHash: `hash-${key}`,
    amount: 1_000n,
    currency: 'EUR',
    card: w.vault.tokenize({ number, expMonth: 12, expYear: 2030 }),
    description: undefined,
    reference: undefined,
    receivedAt: w.clock.now(),
  };
}

function stateOf<S>(p: Process, persistenceId: string): S {
  const entry = p.states.get(persistenceId);
  if (entry === undefined) throw new Error(`${persistenceId} has no state yet`);
  return entry.state as S;
}

/** Sends orders `from` … `to - 1` at `ordersPerSecond`, then lets every one of them finish. */
async function runOrders(w: World, p: Process, from: number, to: number): Promise<void> {
  for (let n = from; n < to; n++) {
    p.registry.tell<MerchantCommand>(merchantAddress(merchantId), {
      type: 'ProcessNewOrder',
      order: newOrder(w, n),
      replyTo: { path: '/client/ignore', tell: () => {} },
    });
    if ((n + 1) % ordersPerSecond === 0) await w.clock.advanceAsync(1_000);
  }
  for (let round = 0; round < 600; round++) {
    await w.clock.advanceAsync(250);
    const merchant = stateOf<MerchantState>(p, merchantPid);
    const executor = stateOf<ExecutorState>(p, executorPid);
    const created = w.memory.eventsOf(merchantPid).filter((row) => row.type === 'OrderCreated').length;
    if (created === to && merchant.inFlight.size === 0 && executor.executions.size === 0) return;
  }
  throw new Error('orders did not finish');
}

function latestSnapshotBytes(w: World, persistenceId: string): Promise<number> {
  return w.snapshots.loadLatest(persistenceId).then((snapshot) => snapshot?.payload.length ?? 0);
}

describe('entity memory after thousands of finished orders', () => {
  it('the live Merchant and Executor hold nothing of finished orders, and their snapshots stay small', async () => {
    const w = world();
    const p = await startProcess(w);
    await runOrders(w, p, 0, 1_000);
    const after1k = {
      merchant: await latestSnapshotBytes(w, merchantPid),
      executor: await latestSnapshotBytes(w, executorPid),
    };
    await runOrders(w, p, 1_000, 2_000);
    expect(w.bank.payments.size).toBe(2_000);

    const merchant = stateOf<MerchantState>(p, merchantPid);
    const executor = stateOf<ExecutorState>(p, executorPid);
    expect(merchant.inFlight.size).toBe(0);
    expect(merchant.outbox.size).toBe(0);
    expect(executor.executions.size).toBe(0);
    expect(executor.outbox.size).toBe(0);
    // The cards of the last velocity window at most, never those of all 2,000 orders.
    expect(merchant.cardActivity.size).toBeLessThanOrEqual((velocityWindowMs / 1_000 + 1) * ordersPerSecond);
    expect(p.waiters.recentlyFinishedCount).toBe(recentlyFinishedMax);

    // Snapshots hold what the state holds: no larger after 2,000 orders than after 1,000, and a
    // small fraction of the journal they stand for.
    const after2k = {
      merchant: await latestSnapshotBytes(w, merchantPid),
      executor: await latestSnapshotBytes(w, executorPid),
    };
    expect(after1k.merchant).toBeGreaterThan(0);
    expect(after2k.merchant).toBeLessThanOrEqual(after1k.merchant * 1.25);
    expect(after2k.executor).toBeLessThanOrEqual(Math.max(after1k.executor * 1.25, 4_096));
    const journalBytes = w.memory.eventsOf(merchantPid).reduce((sum, row) => sum + row.payload.length, 0);
    expect(after2k.merchant).toBeLessThan(journalBytes / 20);
  });

  it('a restarted process recovers each entity from a snapshot, replaying at most snapshotEveryEvents events', async () => {
    const w = world();
    const first = await startProcess(w);
    await runOrders(w, first, 0, 1_500);
    const before = {
      merchant: first.states.get(merchantPid),
      executor: first.states.get(executorPid),
    };
    await first.system.terminate();

    w.journal.rowsRead.clear();
    const second = await startProcess(w);
    second.registry.refFor({ typeName: 'executor', entityId: 'bank-a' });
    await w.clock.advanceAsync(10);
    for (const [id, was] of [
      [merchantPid, before.merchant],
      [executorPid, before.executor],
    ] as const) {
      const recovered = second.states.get(id);
      expect(recovered?.seqNr).toBe(was?.seqNr);
      expect(comparable(recovered?.state)).toEqual(comparable(was?.state));
      expect(w.memory.eventsOf(id).length).toBeGreaterThan(4 * snapshotEveryEvents);
      expect(w.journal.rowsRead.get(id) ?? 0).toBeLessThanOrEqual(snapshotEveryEvents);
    }
  });

  it('after a restart, an order finished long before is answered as processed, never created again', async () => {
    const w = world();
    const first = await startProcess(w);
    await runOrders(w, first, 0, 300);
    await first.system.terminate();
    const second = await startProcess(w);
    const order = newOrder(w, 0);
    const reply = second.registry.ask<MerchantCommand, ProcessOrderReply>(
      merchantAddress(merchantId),
      (replyTo) => ({ type: 'ProcessNewOrder', order, replyTo }),
      10_000,
    );
    await w.clock.advanceAsync(100);
    expect(await reply).toEqual({ type: 'OrderProcessedEarlier', orderId: order.orderId });
    const created = w.memory.eventsOf(merchantPid).filter((row) => row.payload.includes(order.orderId));
    expect(created.map((row) => row.type)).toEqual([
      'OrderCreated',
      'OrderValidated',
      'ExecuteOrderConfirmed',
      'OrderExecuted',
    ]);
    expect(w.bank.payments.get(order.orderId)?.requestCount).toBe(1);
  });
});

/** A state with its card activity as entries: two equal activities may differ in stale queue entries. */
function comparable(state: unknown): unknown {
  if (typeof state !== 'object' || state === null || !('cardActivity' in state)) return state;
  const activity = state.cardActivity;
  return { ...state, cardActivity: activity instanceof CardActivity ? [...activity.entries()] : activity };
}
