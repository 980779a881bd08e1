/**
 * The assembled node on its own: in-memory stores, the simulated bank, a simulated clock. Booted, it
 * takes an order through its OrderService to the bank and back, answers a replay with the same
 * order and a reused key with the key-reuse error, tells the projection of every durable append,
 * and runs the variants it is given instead of the real parts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedBank } from '../bank/simulated-bank.js';
import { SimulatedClock } from '../runtime/clock.js';
import { SeededRandom } from '../runtime/random.js';
import { MemoryJournal } from '../store/memory/memory-journal.js';
import { testNode } from '../testing/test-node.js';
import type { AssembledNode } from './assemble-node.js';
import { demoConfig } from './demo-merchants.js';
import type { OrderRequest } from './order-service.js';

const nodes: AssembledNode[] = [];
afterEach(async () => {
  for (const node of nodes.splice(0)) await node.close();
});

const request: OrderRequest = {
  amount: 1_250,
  currency: 'EUR',
  card: { number: '4242424242424242', expMonth: 12, expYear: 2030, cvc: '123' },
};

/** Advances simulated time until the promise settles. */
async function settled<T>(clock: SimulatedClock, promise: Promise<T>): Promise<T> {
  let done = false;
  const finish = (): void => {
    done = true;
  };
  promise.then(finish, finish);
  for (let round = 0; round < 1_000 && !done; round++) await clock.advanceAsync(10);
  return promise;
}

function world(variants: Parameters<typeof testNode>[0]['variants'] = {}) {
  const clock = new SimulatedClock(Date.UTC(2026, 10, 24));
  const memory = new MemoryJournal({ clock });
  const bank = new SimulatedBank(new SeededRandom(3));
  let notified = 0;
  const node = testNode({
    memory,
    bank,
    clock,
    random: new SeededRandom(1),
    projection: {
      notify: () => {
        notified++;
      },
      stop: async () => {},
    },
    variants,
  });
  nodes.push(node);
  return { clock, memory, bank, node, notified: () => notified };
}

describe('assembleNode', () => {
  it('boots, executes an order through its OrderService, replays it, and refuses a reused key', async () => {
    const { clock, memory, bank, node, notified } = world();
    await settled(clock, node.boot([{ id: 'merchant-a', config: demoConfig('bank-a') }], 10_000));
    const first = await settled(clock, node.orders.create('merchant-a', 'key-1', request, 5_000));
    expect(first).toMatchObject({ replayed: false, order: { status: 'executed', amount: 1_250n } });
    expect(bank.payments.get(first.order.id)?.requestCount).toBe(1);

    const again = await settled(clock, node.orders.create('merchant-a', 'key-1', request, 5_000));
    expect(again).toEqual({ replayed: true, order: first.order });
    await expect(
      settled(clock, node.orders.create('merchant-a', 'key-1', { ...request, amount: 1_251 }, 5_000)),
    ).rejects.toMatchObject({ code: 'idempotency_key_reused' });
    expect(notified()).toBeGreaterThanOrEqual(memory.stats().appends);
  });

  it('runs the variants it is given in place of the real parts', async () => {
    const seen: string[] = [];
    const { clock, node } = world({
      merchant: (definition) => {
        seen.push('merchant');
        return definition;
      },
      executor: (definition) => {
        seen.push('executor');
        return { ...definition, deduplication: undefined };
      },
    });
    expect(seen).toEqual(['merchant', 'executor']);
    await settled(clock, node.boot([{ id: 'merchant-a', config: demoConfig('bank-a') }], 10_000));
    const created = await settled(clock, node.orders.create('merchant-a', 'key-1', request, 5_000));
    expect(created.order.status).toBe('executed');
  });
});
