/**
 * CPU per order of the gateway's order path on its main thread, without HTTP, the bank's HTTP or
 * the read model's projection: `OrderService.create` → Merchant → Executor → an in-process bank →
 * Merchant → answer, on the real entities, the real SQLite journal with its writer thread, and the
 * real card vault. In one process, with two threads busy instead of a dozen across three
 * processes, its figures vary far less from run to run than the end-to-end benchmark's, so it
 * can tell apart changes to the entity runtime or the domain a few percent apart. What it leaves
 * out (Fastify, undici, the bank simulator, the projection) the end-to-end benchmark measures.
 *
 * Run: `npm run bench:order-path -- --orders 40000 --concurrency 64 --json out.json`.
 * Prints JSON: orders/s, main-thread and writer-thread CPU per order (µs, from /proc), the main
 * thread's allocation per order, and the count and time of its garbage collections.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import { classifySimulatedBankError, SimulatedBank } from '../src/bank/simulated-bank.js';
import { assembleNode } from '../src/node/assemble-node.js';
import { demoConfig } from '../src/node/demo-merchants.js';
import type { OrderQueries } from '../src/node/order-service.js';
import { systemClock } from '../src/runtime/clock.js';
import { silentLogger } from '../src/runtime/logger.js';
import { SeededRandom, systemRandom } from '../src/runtime/random.js';
import { openSqliteStore } from '../src/store/sqlite/open-database.js';
import { SqliteVaultStorage } from '../src/store/sqlite/sqlite-vault-storage.js';
import { approvedCard } from './gateway/cards.js';

const usage = `Usage: npm run bench:order-path -- [--orders N] [--warmup N] [--concurrency C] [--merchants K] [--json FILE]`;

const merchantIds = ['merchant-a', 'merchant-b', 'merchant-c'] as const;
const banks = ['bank-a', 'bank-b', 'bank-c'] as const;

/** The read model is left out: every order is new, so the API's replay check finds nothing. */
const noOrders: OrderQueries = {
  getOrder: async () => undefined,
  listOrders: async () => ({ data: [], hasMore: false }),
  orderEvents: async () => undefined,
};

interface ThreadTimes {
  readonly main: number;
  readonly others: number;
}

/** CPU seconds of this process's main thread and of all its other threads, from /proc. */
function threadTimes(): ThreadTimes {
  const ticks = 100;
  let main = 0;
  let others = 0;
  for (const tid of readdirSync('/proc/self/task')) {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const seconds = (Number(fields[11]) + Number(fields[12])) / ticks;
    if (Number(tid) === process.pid) main += seconds;
    else others += seconds;
  }
  return { main, others };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      orders: { type: 'string' },
      warmup: { type: 'string' },
      concurrency: { type: 'string' },
      merchants: { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${usage}\n`);
    return;
  }
  const orders = Number(values.orders ?? 40_000);
  const warmup = Number(values.warmup ?? 10_000);
  const concurrency = Number(values.concurrency ?? 64);
  const merchantCount = Number(values.merchants ?? 3);
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'remit-order-path-'));
  const store = openSqliteStore({ path: path.join(dataDir, 'journal.db'), writer: 'thread' });
  const vaultStorage = new SqliteVaultStorage(path.join(dataDir, 'vault.db'), store.writer);
  const node = assembleNode({
    stores: { journal: store.journal, snapshots: store.snapshots, vault: vaultStorage, queries: noOrders },
    vaultKey: Buffer.alloc(32, 7),
    bank: new SimulatedBank(new SeededRandom(1)),
    classifyBankError: classifySimulatedBankError,
    clock: systemClock,
    random: systemRandom,
    logger: silentLogger,
    name: 'bench',
  });
  await node.boot(
    merchantIds.map((merchantId, index) => ({
      id: merchantId,
      config: demoConfig(banks[index] ?? 'bank-a'),
    })),
    10_000,
  );
  const service = node.orders;
  const runId = `run-${process.pid}`;
  let failures = 0;
  let next = 0;
  const drive = async (count: number): Promise<void> => {
    const end = next + count;
    const worker = async (): Promise<void> => {
      while (next < end) {
        const sequence = next++;
        const merchantId = merchantIds[sequence % merchantCount] ?? 'merchant-a';
        const { order } = await service.create(
          merchantId,
          `${runId}-${sequence}`,
          {
            amount: 1_250,
            currency: 'EUR',
            card: { number: approvedCard(sequence), expMonth: 12, expYear: 2030, cvc: '123' },
          },
          10_000,
        );
        if (order.status !== 'executed') failures++;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  };

  await drive(warmup);
  let gcCount = 0;
  let gcMs = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gcCount++;
      gcMs += entry.duration;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  const heapBefore = v8.getHeapStatistics();
  const before = threadTimes();
  const startedAt = performance.now();
  await drive(orders);
  const elapsedMs = performance.now() - startedAt;
  const after = threadTimes();
  const heapAfter = v8.getHeapStatistics();
  observer.disconnect();

  await node.close();
  await store.close();
  vaultStorage.close();
  rmSync(dataDir, { recursive: true, force: true });

  const perOrder = (seconds: number): number => Math.round((seconds * 1e6) / orders);
  const result = {
    benchmark: 'order path on the main thread: OrderService → Merchant → Executor → in-process bank',
    leftOut: 'HTTP (Fastify), the bank client and simulator over HTTP, the read model and its projection',
    settings: { orders, warmup, concurrency, merchants: merchantCount },
    node: process.version,
    ordersPerSecond: Math.round((orders * 1_000) / elapsedMs),
    failures,
    mainThreadCpuUsPerOrder: perOrder(after.main - before.main),
    otherThreadsCpuUsPerOrder: perOrder(after.others - before.others),
    // Allocation: what the heap grew by plus what the collectors freed meanwhile is not visible
    // here; total_heap_size moves in pages. GC count and time are the main thread's.
    gc: { count: gcCount, ms: Math.round(gcMs), msPerThousandOrders: Math.round((gcMs * 1_000) / orders) },
    heapUsedMbAtEnd: Math.round(heapAfter.used_heap_size / 2 ** 20),
    heapUsedMbAtStart: Math.round(heapBefore.used_heap_size / 2 ** 20),
    loadAverage: os.loadavg(),
  };
  const text = `${JSON.stringify(result, null, 2)}\n`;
  process.stdout.write(text);
  if (values.json !== undefined) writeFileSync(values.json, text);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `order-path bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
