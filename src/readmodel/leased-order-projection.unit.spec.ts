/**
 * A node that does not hold the read model's lease waits for the read model by reading the
 * projection's stored offset: these tests drive that wait with a simulated clock, a journal whose
 * last offset and a read model whose stored offset the test sets, and check that it resolves once
 * the stored offset reaches the journal's, gives up after `offsetWaitMaxMs`, refuses waiters past
 * `waitersMax`, and answers every waiter with one read per poll.
 */
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../runtime/clock.js';
import { SeededRandom } from '../runtime/random.js';
import { LeasedOrderProjection, ReadModelWaitTimeoutError } from './leased-order-projection.js';
import { OrderProjectionBusyError, OrderProjectionStoppedError } from './order-projection.js';

function setup(settings: { offsetWaitMaxMs?: number; waitersMax?: number } = {}) {
  const clock = new SimulatedClock();
  const state = { journalOffset: 0, storedOffset: 0, offsetReads: 0 };
  const projection = new LeasedOrderProjection({
    journal: {
      readAll: async () => [],
      lastOffset: async () => state.journalOffset,
    },
    readModel: {
      offset: async () => {
        state.offsetReads++;
        return state.storedOffset;
      },
      fencedBy: () => {
        throw new Error('a node that does not hold the lease writes no batch');
      },
    },
    clock,
    random: new SeededRandom(1),
    settings: { offsetPollIntervalMs: 50, offsetWaitMaxMs: 1_000, ...settings },
  });
  return { clock, state, projection };
}

/** Lets the waits' promise continuations run without moving time. */
async function settle(): Promise<void> {
  for (let turn = 0; turn < 10; turn++) await Promise.resolve();
}

describe('LeasedOrderProjection on a node without the lease', () => {
  it('resolves once the stored offset reaches the journal offset it read when asked', async () => {
    const { clock, state, projection } = setup();
    state.journalOffset = 12;
    state.storedOffset = 10;
    let done = false;
    const waiting = projection.caughtUp().then(() => {
      done = true;
    });
    await clock.advanceAsync(200);
    expect(done).toBe(false);
    expect(projection.holding()).toBe(false);
    // The journal grows further; the wait is for what it held when asked.
    state.journalOffset = 20;
    state.storedOffset = 12;
    await clock.advanceAsync(50);
    await waiting;
    expect(done).toBe(true);
    expect(projection.status()).toMatchObject({ state: 'stopped', offset: 12 });
  });

  it('answers at once when the stored offset it last read is far enough', async () => {
    const { clock, state, projection } = setup();
    state.journalOffset = 5;
    state.storedOffset = 5;
    await projection.caughtUp();
    const reads = state.offsetReads;
    await clock.advanceAsync(0);
    await projection.caughtUp();
    expect(state.offsetReads).toBe(reads);
  });

  it('serves every waiter with one read of the stored offset per poll', async () => {
    const { clock, state, projection } = setup();
    state.journalOffset = 3;
    const waits = Array.from({ length: 5 }, () => projection.caughtUp());
    await settle();
    await clock.advanceAsync(150);
    expect(state.offsetReads).toBeLessThanOrEqual(4);
    state.storedOffset = 3;
    await clock.advanceAsync(50);
    await Promise.all(waits);
  });

  it('gives up after offsetWaitMaxMs', async () => {
    const { clock, state, projection } = setup({ offsetWaitMaxMs: 300 });
    state.journalOffset = 7;
    const waiting = projection.caughtUp();
    const outcome = waiting.catch((error: unknown) => error);
    await clock.advanceAsync(250);
    await settle();
    await clock.advanceAsync(100);
    expect(await outcome).toBeInstanceOf(ReadModelWaitTimeoutError);
  });

  it('refuses a waiter past waitersMax, and stop rejects the waiters', async () => {
    const { state, projection } = setup({ waitersMax: 2 });
    state.journalOffset = 4;
    const first = projection.caughtUp().catch((error: unknown) => error);
    const second = projection.caughtUp().catch((error: unknown) => error);
    await settle();
    await expect(projection.caughtUp()).rejects.toBeInstanceOf(OrderProjectionBusyError);
    await projection.stop();
    expect(await first).toBeInstanceOf(OrderProjectionStoppedError);
    expect(await second).toBeInstanceOf(OrderProjectionStoppedError);
    await expect(projection.caughtUp()).rejects.toBeInstanceOf(OrderProjectionStoppedError);
  });
});
