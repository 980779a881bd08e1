/**
 * Idempotent replays answered from the store. The Merchant forgets an order once it finishes, so a
 * retry with the same Idempotency-Key must get the same answer from the read model: right away,
 * after this process has forgotten the order, while the read model lags, after a restart, and after
 * the store's processed-id record has expired. The read model here is a stand-in folded from the
 * journal with the Merchant's own order transitions (the real one is tested in readmodel/), with a
 * switch to make it lag.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { classifySimulatedBankError, SimulatedBank } from '../bank/simulated-bank.js';
import { MemoryVaultStorage, type VaultStorage } from '../payments/card-vault.js';
import { defaultExecutorSettings } from '../payments/executor.js';
import { defaultMerchantSettings } from '../payments/merchant.js';
import { orderIdFor } from '../payments/order.js';
import type { ActorSystem } from '../runtime/actor-system.js';
import { SimulatedClock } from '../runtime/clock.js';
import { silentLogger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import { MemoryJournal } from '../store/memory/memory-journal.js';
import { MemorySnapshotStore } from '../store/memory/memory-snapshot-store.js';
import { JournalQueries } from '../testing/journal-queries.js';
import { ApiError } from './api-error.js';
import { assembleNode } from './assemble-node.js';
import type { CreatedOrder, OrderRequest, OrderService } from './order-service.js';

const merchantId = 'merchant-a';
const day = 24 * 3_600_000;

interface World {
  readonly clock: SimulatedClock;
  readonly journal: MemoryJournal;
  readonly snapshots: MemorySnapshotStore;
  readonly bank: SimulatedBank;
  readonly vault: VaultStorage;
  readonly queries: JournalQueries;
}

const systems: ActorSystem[] = [];
afterEach(async () => {
  for (const system of systems.splice(0)) await system.terminate();
});

function world(vault: VaultStorage = new MemoryVaultStorage()): World {
  const clock = new SimulatedClock(Date.UTC(2026, 10, 24));
  const journal = new MemoryJournal({ clock });
  return {
    clock,
    journal,
    snapshots: new MemorySnapshotStore(),
    bank: new SimulatedBank(new SeededRandom(3)),
    vault,
    queries: new JournalQueries(journal),
  };
}

/**
 * Vault storage whose puts are asynchronous, as PostgreSQL's: each put waits until released (or
 * failed) by the test, then lands in memory.
 */
class HeldVaultStorage implements VaultStorage {
  readonly stored = new MemoryVaultStorage();
  private held: Array<{ release: () => void; fail: (error: Error) => void }> = [];

  putIfAbsent(token: string, sealed: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.held.push({
        release: () => {
          this.stored.putIfAbsent(token, sealed);
          resolve();
        },
        fail: reject,
      });
    });
  }

  get(token: string): Promise<Buffer | undefined> {
    return Promise.resolve(this.stored.get(token));
  }

  heldCount(): number {
    return this.held.length;
  }

  releaseAll(): void {
    for (const put of this.held.splice(0)) put.release();
  }

  failAll(): void {
    for (const put of this.held.splice(0)) put.fail(new Error('connect ECONNREFUSED'));
  }
}

/** One gateway process: entities and OrderService; the journal, vault and bank outlive it. */
async function startProcess(w: World): Promise<{ service: OrderService; system: ActorSystem }> {
  const node = assembleNode({
    stores: { journal: w.journal, snapshots: w.snapshots, vault: w.vault, queries: w.queries },
    vaultKey: Buffer.alloc(32, 7),
    bank: w.bank,
    classifyBankError: classifySimulatedBankError,
    clock: w.clock,
    random: new SeededRandom(5),
    logger: silentLogger,
    settings: {
      merchant: { ...defaultMerchantSettings, snapshotEveryEvents: 50 },
      executor: { ...defaultExecutorSettings, snapshotEveryEvents: 50 },
      orderWaiters: { waitersPerOrderMax: 4, ordersWaitedOnMax: 100, recentlyFinishedMax: 8 },
    },
    name: 'gateway',
  });
  systems.push(node.system);
  const config = {
    bank: 'bank-a',
    currencies: [{ currency: 'EUR' as const, perOrderLimit: 1_000_000n }],
    blockedBins: [],
    velocity: { maxOrdersPerCard: 1_000, windowMs: 60_000 },
  };
  await settled(w, node.boot([{ id: merchantId, config }], 10_000));
  return { service: node.orders, system: node.system };
}

/** Advances simulated time until the promise settles. */
async function settled<T>(w: World, promise: Promise<T>): Promise<T> {
  let outcome: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
  promise.then(
    (value) => {
      outcome = { ok: true, value };
    },
    (error: unknown) => {
      outcome = { ok: false, error };
    },
  );
  for (let round = 0; round < 2_000 && outcome === undefined; round++) await w.clock.advanceAsync(10);
  if (outcome === undefined) throw new Error('did not settle');
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}

function request(amount = 1_250): OrderRequest {
  return {
    amount,
    currency: 'EUR',
    card: { number: '4242424242424242', expMonth: 12, expYear: 2030, cvc: '123' },
  };
}

function create(w: World, service: OrderService, key: string, body = request()): Promise<CreatedOrder> {
  return settled(w, service.create(merchantId, key, body, 5_000));
}

describe('OrderService: replays of finished orders are answered from the store', () => {
  it('the same answer right away, once forgotten, while the read model lags, after a restart, and after the record expired', async () => {
    const w = world();
    let process = await startProcess(w);
    const first = await create(w, process.service, 'key-first');
    expect(first).toMatchObject({ replayed: false, order: { status: 'executed' } });
    const expected = { replayed: true, order: first.order };
    expect(await create(w, process.service, 'key-first')).toEqual(expected);

    // Twenty more orders: this process no longer remembers the first among its recently finished.
    for (let n = 0; n < 20; n++) await create(w, process.service, `key-${n}`);
    w.queries.lag();
    const whileLagging = process.service.create(merchantId, 'key-first', request(), 5_000);
    await w.clock.advanceAsync(200);
    w.queries.lagging = false;
    expect(await settled(w, whileLagging)).toEqual(expected);

    await process.system.terminate();
    process = await startProcess(w);
    expect(await create(w, process.service, 'key-first')).toEqual(expected);
    await expect(create(w, process.service, 'key-first', request(999))).rejects.toMatchObject({
      code: 'idempotency_key_reused',
    });

    // Past the idempotency retention: the store's processed-id records are purged; the read model
    // still answers, and no second order is ever created under the key.
    await w.clock.advanceAsync(defaultMerchantSettings.idempotencyRetentionMs + day);
    expect(await create(w, process.service, 'key-first')).toEqual(expected);
    const orderId = orderIdFor(merchantId, 'key-first');
    expect(await w.journal.isProcessed(`merchant-${merchantId}`, { id: orderId, time: 0 })).toBe(false);
    const created = w.journal
      .eventsOf(`merchant-${merchantId}`)
      .filter((row) => row.type === 'OrderCreated' && row.payload.includes(orderId));
    expect(created).toHaveLength(1);
    expect(w.bank.payments.get(orderId)?.requestCount).toBe(1);
  });

  it('an order looked up right after it finished, before the read model shows it, is found', async () => {
    const w = world();
    const { service } = await startProcess(w);
    w.queries.lag();
    const created = await create(w, service, 'key-lookup');
    expect(created.order.status).toBe('executed');
    expect(await w.queries.getOrder(merchantId, created.order.id)).toBeUndefined();
    expect(await settled(w, service.get(merchantId, created.order.id))).toEqual(created.order);
  });

  it('a key reused with another body is refused, whether the first order is in flight or finished', async () => {
    const w = world();
    const { service } = await startProcess(w);
    await create(w, service, 'key-reused');
    const refused = await create(w, service, 'key-reused', request(1)).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ApiError);
  });
});

describe('OrderService: a vault that stores asynchronously (PostgreSQL)', () => {
  const createdEvents = (w: World) =>
    w.journal.eventsOf(`merchant-${merchantId}`).filter((row) => row.type === 'OrderCreated');

  it("asks the Merchant only once the order's card is durable", async () => {
    const vault = new HeldVaultStorage();
    const w = world(vault);
    const { service } = await startProcess(w);
    const pending = service.create(merchantId, 'key-held', request(), 5_000);
    await w.clock.advanceAsync(100);
    expect(vault.heldCount()).toBe(1);
    expect(createdEvents(w)).toHaveLength(0);
    vault.releaseAll();
    const created = await settled(w, pending);
    expect(created.order.status).toBe('executed');
    expect(createdEvents(w)).toHaveLength(1);
  });

  it('answers 503 with a Retry-After to an order for a merchant not configured yet', async () => {
    const w = world();
    const { service } = await startProcess(w);
    const refused = await settled(
      w,
      service.create('merchant-unconfigured', 'key-early', request(), 5_000).catch((error: unknown) => error),
    );
    expect(refused).toBeInstanceOf(ApiError);
    expect(refused).toMatchObject({
      status: 503,
      code: 'merchant_unavailable',
      headers: { 'retry-after': '1' },
    });
  });

  it('answers 503, and submits nothing, when the card cannot be stored', async () => {
    const vault = new HeldVaultStorage();
    const w = world(vault);
    const { service } = await startProcess(w);
    const pending = service
      .create(merchantId, 'key-failed', request(), 5_000)
      .catch((error: unknown) => error);
    await w.clock.advanceAsync(100);
    vault.failAll();
    expect(await settled(w, pending)).toMatchObject({ status: 503, code: 'store_unavailable' });
    await w.clock.advanceAsync(1_000);
    expect(createdEvents(w)).toHaveLength(0);
  });
});
