/**
 * Supervision of the in-process order projection (the node on PostgreSQL): a read model that fails
 * — as one whose database is gone — stops the projection, which is started again with a backoff
 * on the clock; past `restartsMax` failures in a row it is declared failed (waiters rejected,
 * status `failed`); once the read model works again the next restart catches up, from the committed
 * offset, and the failure clears. The journal is the memory journal; the read model keeps its
 * offset in memory and can be told to fail, standing for a database that answers or not.
 */
import { describe, expect, it } from 'vitest';
import { SimulatedClock, settle } from '../runtime/clock.js';
import { SeededRandom } from '../runtime/random.js';
import { MemoryJournal } from '../store/memory/memory-journal.js';
import type { ProjectedReadModel } from './order-projection.js';
import type { OrderBatch } from './order-read-model.js';
import { SupervisedOrderProjection } from './supervised-order-projection.js';

class SwitchableReadModel implements ProjectedReadModel {
  available = true;
  stored = 0;

  async offset(): Promise<number> {
    if (!this.available) throw new Error('connect ECONNREFUSED');
    return this.stored;
  }

  async applyBatch(batch: OrderBatch): Promise<void> {
    if (!this.available) throw new Error('connect ECONNREFUSED');
    expect(batch.afterOffset).toBe(this.stored);
    this.stored = batch.toOffset;
  }
}

async function appendOthers(journal: MemoryJournal, count: number, from: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await journal.append({
      persistenceId: 'other-1',
      fromSeqNr: from + i,
      events: [{ type: 'Happened', version: 1, payload: '{}' }],
      timestamp: 0,
    });
  }
}

describe('SupervisedOrderProjection', () => {
  it('restarts a failing projection with backoff, declares it failed, and heals when the store is back', async () => {
    const clock = new SimulatedClock();
    const journal = new MemoryJournal({ clock });
    const readModel = new SwitchableReadModel();
    const projection = new SupervisedOrderProjection({
      journal,
      readModel,
      clock,
      random: new SeededRandom(1),
      settings: { restartsMax: 2, restart: { minBackoffMs: 100, maxBackoffMs: 1_000, randomFactor: 0 } },
    });
    await appendOthers(journal, 3, 1);
    projection.start();
    await projection.caughtUp();
    expect(readModel.stored).toBe(3);
    expect(projection.status()).toMatchObject({ state: 'running', restarts: 0 });

    readModel.available = false;
    await appendOthers(journal, 2, 4);
    projection.notify();
    await settle();
    expect(projection.status()).toMatchObject({ state: 'restarting', consecutiveFailures: 1 });
    // A caller waiting now is answered by a later projection, or rejected once declared failed.
    const waiting = projection.caughtUp();
    const outcome = waiting.then(
      () => 'caught up',
      (error: Error) => error.name,
    );
    for (let restart = 0; restart < 3; restart++) {
      await clock.advanceAsync(1_000);
      await settle();
    }
    expect(projection.status().state).toBe('failed');
    expect(projection.status().restarts).toBeGreaterThanOrEqual(2);
    expect(await outcome).toBe('OrderProjectionError');
    await expect(projection.caughtUp()).rejects.toThrow(/order projection stopped/);

    readModel.available = true;
    await clock.advanceAsync(1_000);
    await settle();
    expect(projection.status()).toMatchObject({ state: 'running', consecutiveFailures: 0 });
    await projection.caughtUp();
    expect(readModel.stored).toBe(5);
    expect(projection.stats().events).toBe(5);

    await projection.stop();
    expect(projection.status().state).toBe('stopped');
    await expect(projection.caughtUp()).rejects.toThrow('order projection stopped');
  });
});
