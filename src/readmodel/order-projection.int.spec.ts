/**
 * The order projection against events the real entities write: Merchant and Executor entities on
 * the runtime and the SQLite journal, a simulated acquiring bank and the real card vault, all on a
 * simulated clock (the setup of `payments/order-flow.int.spec.ts`). The projection runs beside
 * them, notified whenever an entity's write becomes durable, as the gateway will wire it.
 *
 * The Merchant's own view of each order is the reference: once every order is terminal, the read
 * model must show the same status, reason, bank, authorization code, amounts and times. Then the
 * read model is restarted part-way and finally rebuilt into a new file from offset 0; every
 * version must hold the same rows, with no duplicated audit entries, and no card number anywhere in
 * its files.
 *
 * It runs with the journal on SQLite and on PostgreSQL (the test run's server, a schema of its own);
 * the read model is SQLite either way.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { classifySimulatedBankError, SimulatedBank } from '../bank/simulated-bank.js';
import { assembleNode } from '../node/assemble-node.js';
import { type CardVault, MemoryVaultStorage } from '../payments/card-vault.js';
import { defaultMerchantSettings } from '../payments/merchant.js';
import {
  type MerchantCommand,
  merchantAddress,
  type ProcessOrderReply,
} from '../payments/merchant-protocol.js';
import type { Currency } from '../payments/money.js';
import { isTerminal, type Order, orderIdFor } from '../payments/order.js';
import type { MerchantConfig } from '../payments/validator.js';
import type { EntityRegistry } from '../persistence/entity-registry.js';
import type { ActorSystem } from '../runtime/actor-system.js';
import { SimulatedClock } from '../runtime/clock.js';
import { silentLogger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import type { Journal, SnapshotStore } from '../store/journal.js';
import { openPostgresStore } from '../store/postgres/open-postgres-store.js';
import { postgresSettings } from '../store/postgres/postgres-settings.js';
import { openSqliteStore } from '../store/sqlite/open-database.js';
import { dropSchema, testSchemaName } from '../testing/postgres-test-schema.js';
import { dumpReadModel, listedEventOffsets } from '../testing/read-model-dump.js';
import { orderAuditTrail, orderQueries } from './audit-trail.js';
import { OrderProjection } from './order-projection.js';
import { OrderReadModel, type OrderRow, readModelPath } from './order-read-model.js';

const approvedCard = '4242424242424242';
const declinedCard = '4000000000000002';
const poorCard = '4000000000009995';
const luhnInvalidCard = '4242424242424241';
const allCards = [approvedCard, declinedCard, poorCard, luhnInvalidCard];

const config: MerchantConfig = {
  bank: 'bank-a',
  currencies: [{ currency: 'EUR', perOrderLimit: 1_000_000n }],
  blockedBins: [],
  velocity: { maxOrdersPerCard: 1_000_000, windowMs: 60_000 },
};

/** The journal and snapshot store the entities write to. */
interface EventStore {
  readonly journal: Journal;
  readonly snapshots: SnapshotStore;
  close(): Promise<void>;
}

type StoreKind = 'sqlite' | 'postgres';

async function openStore(kind: StoreKind, directory: string, clock: SimulatedClock): Promise<EventStore> {
  if (kind === 'sqlite') return openSqliteStore({ path: join(directory, 'journal.db'), clock });
  const url = inject('postgresUrl');
  const schema = testSchemaName('projection');
  const store = await openPostgresStore({
    settings: postgresSettings({ url, schema, poolSizeMax: 4 }),
    clock,
  });
  return {
    journal: store.journal,
    snapshots: store.snapshots,
    close: async () => {
      await store.close();
      await dropSchema(url, schema);
    },
  };
}

interface Gateway {
  readonly directory: string;
  readonly clock: SimulatedClock;
  readonly store: EventStore;
  readonly system: ActorSystem;
  readonly registry: EntityRegistry;
  readonly bank: SimulatedBank;
  readonly vault: CardVault;
  readModel: OrderReadModel;
  projection: OrderProjection;
  done: Promise<void>;
}

let cleanup: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

async function gateway(kind: StoreKind): Promise<Gateway> {
  const directory = mkdtempSync(join(tmpdir(), 'remit-projection-'));
  const clock = new SimulatedClock(Date.UTC(2026, 10, 24));
  const random = new SeededRandom(7);
  const store = await openStore(kind, directory, clock);
  const readModel = OrderReadModel.open(readModelPath(directory));
  const projection = new OrderProjection({
    journal: store.journal,
    readModel,
    clock,
    settings: { batchSize: 16 },
  });
  // Filled in below; the observer reads the current projection, which a restart replaces.
  const holder: { g?: Gateway } = {};
  const bank = new SimulatedBank(random.fork());
  const node = assembleNode({
    // The spec reads the read model directly; the order service's queries see the first one.
    stores: {
      journal: store.journal,
      snapshots: store.snapshots,
      vault: new MemoryVaultStorage(),
      queries: orderQueries(readModel, store.journal),
    },
    vaultKey: Buffer.alloc(32, 7),
    bank,
    classifyBankError: classifySimulatedBankError,
    clock,
    random: random.fork(),
    logger: silentLogger,
    observer: { onDurable: () => holder.g?.projection.notify() },
    name: 'gateway',
  });
  const { system, entities: registry, vault } = node;
  const g: Gateway = {
    directory,
    clock,
    store,
    system,
    registry,
    bank,
    vault,
    readModel,
    projection,
    done: projection.start(),
  };
  holder.g = g;
  cleanup.push(
    () => rmSync(directory, { recursive: true, force: true }),
    () => store.close(),
    () => g.readModel.close(),
    async () => {
      await g.projection.stop();
      await g.done;
    },
    () => node.close(),
  );
  await node.boot(
    ['merchant-a', 'merchant-b'].map((id) => ({ id, config })),
    1_000,
  );
  return g;
}

async function submit(
  g: Gateway,
  merchantId: string,
  key: string,
  cardNumber: string,
  amount = 1_000n,
  currency: Currency = 'EUR',
): Promise<string> {
  const orderId = orderIdFor(merchantId, key);
  const order = {
    orderId,
    idempotencyKey: key,
    requestHash: g.vault.fingerprint(`${key}:${amount}`),
    amount,
    currency,
    card: g.vault.tokenize({ number: cardNumber, expMonth: 12, expYear: 2030 }),
    description: `order ${key}`,
    reference: key,
    receivedAt: g.clock.now(),
  };
  const reply = await g.registry.ask<MerchantCommand, ProcessOrderReply>(
    merchantAddress(merchantId),
    (replyTo) => ({ type: 'ProcessNewOrder', order, replyTo }),
    10_000,
  );
  expect(reply.type).toBe('OrderAccepted');
  return orderId;
}

async function merchantView(g: Gateway, merchantId: string, orderId: string): Promise<Order | undefined> {
  const reply = await g.registry.ask<MerchantCommand, { type: 'OrderFound'; order: Order | undefined }>(
    merchantAddress(merchantId),
    (replyTo) => ({ type: 'GetOrder', orderId, replyTo }),
    10_000,
  );
  return reply.order;
}

interface Submitted {
  readonly merchantId: string;
  readonly orderId: string;
}

/** Advances simulated time until the read model shows every order terminal, or fails. */
async function settleInReadModel(g: Gateway, orders: readonly Submitted[], msMax = 600_000): Promise<void> {
  for (let elapsed = 0; ; elapsed += 250) {
    await g.projection.caughtUp();
    const rows = orders.map(({ merchantId, orderId }) => g.readModel.getOrder(merchantId, orderId));
    if (rows.every((row) => row !== undefined && isTerminal(row.status))) return;
    if (elapsed > msMax)
      throw new Error(`orders not terminal: ${JSON.stringify(rows.map((row) => row?.status))}`);
    await g.clock.advanceAsync(250);
  }
}

/** The read model row agrees with the Merchant's own state of the order. */
async function expectAgreesWithMerchant(g: Gateway, { merchantId, orderId }: Submitted): Promise<OrderRow> {
  const order = await merchantView(g, merchantId, orderId);
  const row = g.readModel.getOrder(merchantId, orderId);
  expect(order).toBeDefined();
  expect(row).toEqual({
    id: order?.id,
    merchantId: order?.merchantId,
    status: order?.status,
    amount: order?.amount,
    currency: order?.currency,
    card: { brand: order?.card.brand, last4: order?.card.last4 },
    bank: order?.bank,
    reference: order?.reference,
    description: order?.description,
    reason: order?.reason,
    authorizationCode: order?.authorizationCode,
    idempotencyKey: order?.idempotencyKey,
    requestHash: order?.requestHash,
    // No refunds in this flow: the Merchant knows nothing of them.
    amountRefunded: 0n,
    createdAt: order?.createdAt,
    updatedAt: order?.updatedAt,
  });
  return row as OrderRow;
}

/** Journal events that concern an order (every Merchant and Executor event but MerchantConfigured). */
async function orderEventsInJournal(g: Gateway): Promise<number> {
  const rows = await g.store.journal.readAll(0, 1_000_000);
  return rows.filter(
    (row) =>
      (row.persistenceId.startsWith('merchant-') || row.persistenceId.startsWith('executor-')) &&
      row.type !== 'MerchantConfigured',
  ).length;
}

describe.each<StoreKind>(['sqlite', 'postgres'])('order projection, journal on %s', (kind) => {
  it('projects real Merchant and Executor events; survives a restart; a rebuild is identical; no card numbers', async () => {
    const g = await gateway(kind);

    // An order the bank cannot take before its deadline fails (nothing charged).
    g.bank.faults.errorRate = 1;
    const failing = {
      merchantId: 'merchant-a',
      orderId: await submit(g, 'merchant-a', 'down-1', approvedCard),
    };
    await g.clock.advanceAsync(defaultMerchantSettings.executionDeadlineMs + 5_000);
    await g.projection.caughtUp();
    expect(g.readModel.getOrder(failing.merchantId, failing.orderId)?.status).toBe('validated');
    g.bank.faults.errorRate = 0;

    const firstWave: Submitted[] = [failing];
    for (let i = 0; i < 12; i++) {
      const merchantId = i % 3 === 2 ? 'merchant-b' : 'merchant-a';
      const cardNumber = allCards[i % allCards.length] ?? approvedCard;
      const amount = i === 5 ? 2_000_000n : BigInt(100 + i);
      firstWave.push({ merchantId, orderId: await submit(g, merchantId, `first-${i}`, cardNumber, amount) });
      await g.clock.advanceAsync(20);
    }
    await settleInReadModel(g, firstWave);
    const statuses = new Set<string>();
    for (const order of firstWave) statuses.add((await expectAgreesWithMerchant(g, order)).status);
    expect([...statuses].sort()).toEqual(['declined', 'executed', 'failed', 'rejected']);
    expect(g.readModel.getOrder(failing.merchantId, failing.orderId)?.reason).toBe('deadline_exceeded');

    // The audit trail of an executed order: the Merchant's and the Executor's events, in causal order.
    const executed = firstWave.find(
      (order) => g.readModel.getOrder(order.merchantId, order.orderId)?.status === 'executed',
    );
    if (executed === undefined) throw new Error('no order was executed');
    const trail = (
      (await orderAuditTrail(g.readModel, g.store.journal, executed.merchantId, executed.orderId)) ?? []
    ).map((entry) => entry.type);
    expect(trail.slice(0, 2)).toEqual(['OrderCreated', 'OrderValidated']);
    expect([...trail].sort()).toEqual(
      [
        'ExecuteOrderConfirmed',
        'ExecutionRequested',
        'ExecutionSettled',
        'OrderCreated',
        'OrderExecuted',
        'OrderValidated',
        'ResultConfirmed',
      ].sort(),
    );
    const comesBefore = (a: string, b: string) => expect(trail.indexOf(a)).toBeLessThan(trail.indexOf(b));
    comesBefore('ExecutionRequested', 'ExecutionSettled');
    comesBefore('ExecutionRequested', 'ExecuteOrderConfirmed');
    // The Merchant hears the bank's answer while the Executor records it: either may be first.
    comesBefore('ExecutionRequested', 'OrderExecuted');
    comesBefore('ExecutionSettled', 'ResultConfirmed');
    comesBefore('OrderExecuted', 'ResultConfirmed');
    const rejectedOrder = firstWave.find(
      (order) => g.readModel.getOrder(order.merchantId, order.orderId)?.status === 'rejected',
    );
    const rejectedTrail = await orderAuditTrail(
      g.readModel,
      g.store.journal,
      rejectedOrder?.merchantId ?? '',
      rejectedOrder?.orderId ?? '',
    );
    expect(rejectedTrail?.map((e) => e.type)).toEqual(['OrderCreated', 'OrderRejected']);

    // Listing across merchants stays isolated.
    const listedA = g.readModel.listOrders({ merchantId: 'merchant-a', limit: 100 }).data;
    expect(listedA.map((row) => row.id).sort()).toEqual(
      firstWave
        .filter((order) => order.merchantId === 'merchant-a')
        .map((order) => order.orderId)
        .sort(),
    );

    // Restart: the read model closes; orders go on meanwhile; a new projection resumes where it was.
    await g.projection.stop();
    await g.done;
    g.readModel.close();
    const secondWave: Submitted[] = [];
    for (let i = 0; i < 8; i++) {
      const merchantId = i % 2 === 0 ? 'merchant-a' : 'merchant-b';
      const cardNumber = allCards[i % allCards.length] ?? approvedCard;
      secondWave.push({ merchantId, orderId: await submit(g, merchantId, `second-${i}`, cardNumber) });
    }
    await g.clock.advanceAsync(5_000);
    g.readModel = OrderReadModel.open(readModelPath(g.directory));
    const offsetAtRestart = g.readModel.offset();
    g.projection = new OrderProjection({ journal: g.store.journal, readModel: g.readModel, clock: g.clock });
    g.done = g.projection.start();
    await settleInReadModel(g, secondWave);
    expect(g.projection.stats().events).toBeLessThan(g.readModel.offset());
    expect(g.projection.stats().events).toBe(g.readModel.offset() - offsetAtRestart);
    for (const order of [...firstWave, ...secondWave]) await expectAgreesWithMerchant(g, order);

    // No audit entry twice: one per order-related event in the journal.
    await g.projection.caughtUp();
    const path = readModelPath(g.directory);
    const resumed = dumpReadModel(path);
    const listed = listedEventOffsets(resumed);
    expect(listed).toHaveLength(await orderEventsInJournal(g));
    expect(new Set(listed).size).toBe(listed.length);

    // A rebuild into a new file from offset 0 gives the same rows.
    const rebuiltPath = join(g.directory, 'rebuilt.db');
    const rebuilt = OrderReadModel.open(rebuiltPath);
    const rebuilder = new OrderProjection({
      journal: g.store.journal,
      readModel: rebuilt,
      clock: g.clock,
      settings: { batchSize: 5 },
    });
    const rebuilding = rebuilder.start();
    await rebuilder.caughtUp();
    await rebuilder.stop();
    await rebuilding;
    rebuilt.close();
    expect(dumpReadModel(rebuiltPath)).toEqual(resumed);

    // No card number in any file of the read model; an order id is there, so the search can see data.
    await g.projection.stop();
    await g.done;
    g.readModel.close();
    const files = readdirSync(g.directory).filter(
      (name) => name.startsWith('readmodel') || name.startsWith('rebuilt'),
    );
    const bytes = Buffer.concat(files.map((name) => readFileSync(join(g.directory, name))));
    expect(bytes.includes(executed.orderId)).toBe(true);
    const approvedToken = g.vault.tokenize({ number: approvedCard, expMonth: 12, expYear: 2030 }).token;
    expect(await g.vault.reveal(approvedToken)).toBe(approvedCard);
    for (const number of allCards) expect(bytes.includes(number)).toBe(false);
  });
});
