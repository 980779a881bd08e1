/**
 * The main side of the worker-thread projection (`OrderProjectionWorker`) against fake threads on
 * a simulated clock: what it posts, how it answers what a thread reports, and its supervision —
 * restarts after exactly the backoff, the failure declared after `restartsMax` crashes in a row,
 * revival, drain on stop, termination of a thread that does not end. The real thread is covered by
 * `order-projection-worker.int.spec.ts`; here every step is chosen by the test, so each case runs
 * the same way every time.
 */
import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from '../runtime/backoff.js';
import { SimulatedClock, settle } from '../runtime/clock.js';
import { SeededRandom } from '../runtime/random.js';
import { OrderProjectionError, OrderProjectionStoppedError } from './order-projection.js';
import {
  defaultOrderProjectionWorkerSettings,
  OrderProjectionWorker,
  type OrderProjectionWorkerSettings,
  type ProjectionThread,
} from './order-projection-worker.js';
import type {
  FromProjectionThread,
  ProjectionThreadSettings,
  ToProjectionThread,
} from './projection-protocol.js';

class FakeThread implements ProjectionThread {
  readonly received: ToProjectionThread[] = [];
  private listeners: Parameters<ProjectionThread['listen']>[0] | undefined;
  private exited = false;

  constructor(readonly settings: ProjectionThreadSettings) {}

  post(message: ToProjectionThread): void {
    if (!this.exited) this.received.push(message);
  }

  terminate(): Promise<unknown> {
    this.exit(1);
    return Promise.resolve(1);
  }

  listen(listeners: Parameters<ProjectionThread['listen']>[0]): void {
    this.listeners = listeners;
  }

  send(message: FromProjectionThread): void {
    this.listeners?.message(message);
  }

  /** The projection in the thread stopped on an error and the thread ended. */
  fail(reason: string): void {
    this.send({ type: 'failed', message: reason });
    this.listeners?.error(new Error(reason));
    this.exit(1);
  }

  exit(code: number): void {
    if (this.exited) return;
    this.exited = true;
    this.listeners?.exit(code);
  }

  typesReceived(): string[] {
    return this.received.map((message) => message.type);
  }
}

const restart = { minBackoffMs: 100, maxBackoffMs: 1_000, randomFactor: 0.5 };

function setup(settings: Partial<OrderProjectionWorkerSettings> = {}) {
  const clock = new SimulatedClock();
  const threads: FakeThread[] = [];
  const projection = new OrderProjectionWorker({
    journalPath: '/data/journal.db',
    readModelPath: '/data/readmodel.db',
    clock,
    random: new SeededRandom(5),
    settings: { restart, ...settings },
    startThread: (threadSettings) => {
      const thread = new FakeThread(threadSettings);
      threads.push(thread);
      return thread;
    },
  });
  const current = (): FakeThread => {
    const thread = threads.at(-1);
    if (thread === undefined) throw new Error('no thread started');
    return thread;
  };
  return { clock, threads, projection, current };
}

/** The delays the supervisor draws, in order, from the same seed it uses. */
function delays(count: number): number[] {
  const random = new SeededRandom(5);
  return Array.from({ length: count }, (_, attempt) =>
    backoffDelayMs(attempt, { ...defaultOrderProjectionWorkerSettings.restart, ...restart }, random),
  );
}

describe('OrderProjectionWorker (main side)', () => {
  it('counts commits in shared memory; posts a nudge only to wake a sleeping worker, once', () => {
    const { projection, current } = setup();
    projection.start();
    const cells = new Int32Array(current().settings.commitSignal);
    projection.notify();
    projection.notify();
    // A busy worker reads the count itself: no message.
    expect(Atomics.load(cells, 0)).toBe(2);
    expect(current().received).toEqual([]);

    // The worker goes to sleep: the next commit wakes it with one message, later ones need none.
    Atomics.store(cells, 1, 1);
    expect(projection.status().workerAsleep).toBe(true);
    projection.notify();
    projection.notify();
    expect(current().typesReceived()).toEqual(['nudge']);
    expect(Atomics.load(cells, 0)).toBe(4);
    expect(projection.status()).toMatchObject({ nudges: 1, workerAsleep: false });
  });

  it('answers waiters from the thread’s reports, and asks a restarted thread again', async () => {
    const { clock, projection, current, threads } = setup();
    projection.start();
    current().send({ type: 'started', offset: 3 });
    await projection.waitForOffset(3);
    const caughtUp = projection.caughtUp();
    const atTen = projection.waitForOffset(10);
    expect(current().received).toEqual([{ type: 'caughtUp', id: 1 }]);

    current().send({ type: 'applied', offset: 8, batches: 1, events: 5 });
    // It dies asleep; its successor starts busy.
    Atomics.store(new Int32Array(current().settings.commitSignal), 1, 1);
    current().exit(1);
    await settle();
    expect(projection.status()).toMatchObject({ state: 'restarting', consecutiveFailures: 1 });
    await clock.advanceAsync(delays(1)[0] ?? 0);
    expect(threads).toHaveLength(2);
    // The new thread is asked on behalf of the waiter that the dead one never answered.
    expect(current().received).toEqual([{ type: 'caughtUp', id: 1 }]);
    expect(projection.status().workerAsleep).toBe(false);
    current().send({ type: 'started', offset: 8 });
    current().send({ type: 'applied', offset: 10, batches: 1, events: 2 });
    await atTen;
    current().send({ type: 'caughtUp', ids: [1], offset: 10 });
    await caughtUp;
    expect(projection.stats()).toEqual({ batches: 2, events: 7 });
    expect(projection.status()).toMatchObject({ state: 'running', restarts: 1, consecutiveFailures: 0 });
  });

  it('restarts after the backoff; declares failure after restartsMax crashes; revives; recovers', async () => {
    const { clock, projection, current, threads } = setup({ restartsMax: 2 });
    projection.start();
    // Settled into a value at once: it rejects during the loop below.
    const waiting = projection.caughtUp().then(
      () => undefined,
      (error: unknown) => error,
    );
    const expected = delays(4);
    for (let crash = 0; crash < 3; crash++) {
      current().fail(`bad row ${crash}`);
      await settle();
      const delayMs = expected[crash] ?? 0;
      await clock.advanceAsync(delayMs - 1);
      expect(threads).toHaveLength(crash + 1);
      await clock.advanceAsync(1);
      expect(threads).toHaveLength(crash + 2);
    }
    // The third crash in a row (restartsMax = 2) declared it failed; it is still retried.
    const failure = await waiting;
    expect(failure).toBeInstanceOf(OrderProjectionError);
    expect(String(failure)).toMatch(/after offset 0: bad row 2/);
    expect(projection.status()).toMatchObject({
      state: 'failed',
      consecutiveFailures: 3,
      lastError: 'bad row 2',
    });
    await expect(projection.caughtUp()).rejects.toThrow(/bad row 2/);

    // The fourth thread gets through: progress clears the failure.
    current().send({ type: 'started', offset: 0 });
    expect(projection.status().state).toBe('failed');
    current().send({ type: 'caughtUp', ids: [], offset: 0 });
    expect(projection.status()).toMatchObject({ state: 'running', consecutiveFailures: 0, restarts: 3 });
    const again = projection.caughtUp();
    current().send({ type: 'caughtUp', ids: [2], offset: 0 });
    await again;
  });

  it('stop() asks the thread to drain, waits for it to end, then rejects waiters', async () => {
    const { projection, current } = setup({ drainTimeoutMs: 2_000 });
    projection.start();
    const waiting = projection.waitForOffset(50);
    const stopping = projection.stop();
    expect(current().received).toEqual([{ type: 'stop', drainMs: 2_000 }]);
    current().send({ type: 'stopped', offset: 40 });
    current().exit(0);
    await stopping;
    await expect(waiting).rejects.toBeInstanceOf(OrderProjectionStoppedError);
    expect(projection.status()).toMatchObject({ state: 'stopped', offset: 40, restarts: 0 });
    await expect(projection.caughtUp()).rejects.toBeInstanceOf(OrderProjectionStoppedError);
  });

  it('terminates a thread that does not end within drainTimeoutMs + stopTimeoutMs, and does not restart it', async () => {
    const { clock, projection, threads } = setup({ drainTimeoutMs: 1_000, stopTimeoutMs: 500 });
    projection.start();
    let stopped = false;
    const stopping = projection.stop().then(() => {
      stopped = true;
    });
    await clock.advanceAsync(1_499);
    expect(stopped).toBe(false);
    await clock.advanceAsync(1);
    await stopping;
    await clock.advanceAsync(60_000);
    expect(threads).toHaveLength(1);
    expect(projection.status().state).toBe('stopped');
  });

  it('rebuild() ends the thread without drain and starts one that empties the read model first', async () => {
    const { clock, projection, current, threads } = setup();
    projection.start();
    current().send({ type: 'started', offset: 12 });
    const rebuilding = projection.rebuild();
    expect(threads[0]?.received).toEqual([{ type: 'stop', drainMs: 0 }]);
    threads[0]?.exit(0);
    await settle();
    expect(threads).toHaveLength(2);
    expect(current().settings.reset).toBe(true);
    expect(projection.status().offset).toBe(0);
    current().send({ type: 'started', offset: 0 });
    current().send({ type: 'caughtUp', ids: [1], offset: 12 });
    await rebuilding;
    // A crash after the reset restarts without emptying the read model again.
    current().exit(1);
    await settle();
    await clock.advanceAsync(delays(1)[0] ?? 0);
    expect(threads).toHaveLength(3);
    expect(current().settings.reset).toBe(false);
    const stopping = projection.stop();
    current().exit(0);
    await stopping;
    expect(projection.status()).toMatchObject({ state: 'stopped', offset: 12 });
  });
});
