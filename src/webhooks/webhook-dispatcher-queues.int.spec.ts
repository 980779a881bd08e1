import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SimulatedClock } from '../runtime/clock.js';
import { SeededRandom } from '../runtime/random.js';
import { SqliteWebhookStore, webhooksPath } from '../store/sqlite/sqlite-webhook-store.js';
import { WebhookDispatcher } from './webhook-dispatcher.js';
import type { WebhookSender, WebhookSendRequest, WebhookSendResult } from './webhook-sender.js';
import type { WebhookEndpoint } from './webhook-store.js';

/**
 * The dispatcher's queues and timers on a simulated clock, with a sender whose requests the test
 * answers one by one (no sockets): the in-flight and queued bounds per endpoint, an endpoint that
 * never answers beside one that does, a retry at the time the schedule gave, the attempt timeout,
 * and `stop()` waiting for attempts in flight, then aborting them unrecorded.
 */

interface PendingSend {
  readonly request: WebhookSendRequest;
  readonly answer: (result: WebhookSendResult) => void;
}

/** Holds every request until the test answers it; an abort answers it as a failure. */
class HeldSender implements WebhookSender {
  readonly pending: PendingSend[] = [];
  sent = 0;

  send(request: WebhookSendRequest): Promise<WebhookSendResult> {
    this.sent++;
    return new Promise((resolve) => {
      const entry: PendingSend = {
        request,
        answer: (result) => {
          const index = this.pending.indexOf(entry);
          if (index >= 0) this.pending.splice(index, 1);
          resolve(result);
        },
      };
      this.pending.push(entry);
      request.signal.addEventListener('abort', () =>
        entry.answer({ kind: 'failed', aborted: true, timedOut: false, detail: 'aborted' }),
      );
    });
  }

  to(path: string): PendingSend[] {
    return this.pending.filter((entry) => entry.request.url.pathname === path);
  }

  async close(): Promise<void> {}
}

const t0 = Date.UTC(2026, 10, 1);

describe('WebhookDispatcher queues', () => {
  let dir: string;
  let store: SqliteWebhookStore;
  let clock: SimulatedClock;
  let sender: HeldSender;
  let dispatcher: WebhookDispatcher;
  let offset = 0;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'remit-dispatcher-queues-'));
    clock = new SimulatedClock(t0);
    store = SqliteWebhookStore.open(webhooksPath(dir), t0);
    sender = new HeldSender();
    offset = 0;
    dispatcher = new WebhookDispatcher({
      store,
      sender,
      clock,
      random: new SeededRandom(3),
      policy: { allowInsecure: true },
      merchantIds: () => undefined,
      delivery: {
        firstRetryDelayMs: 1_000,
        retryDelayMaxMs: 10_000,
        retryWindowMs: 60_000,
        attemptTimeoutMs: 5_000,
        deliveriesInFlightPerEndpointMax: 2,
        endpointDisableAfterFailingMs: 60_000,
      },
      settings: { pollIntervalMs: 100, deliveriesQueuedPerEndpointMax: 3, stopTimeoutMs: 1_000 },
    });
  });

  afterEach(async () => {
    for (const entry of [...sender.pending]) entry.answer({ kind: 'answered', status: 200 });
    await dispatcher.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function endpoint(name: string): Promise<void> {
    const made: WebhookEndpoint = {
      id: `we_${name}`,
      merchantId: 'm1',
      url: `http://127.0.0.1:9/${name}`,
      eventTypes: [name === 'slow' ? 'order.failed' : 'order.executed'],
      status: 'enabled',
      disabledReason: undefined,
      secret: 'whsec_test',
      expiringSecret: undefined,
      expiringSecretUntil: undefined,
      failingSince: undefined,
      createdAt: t0,
      updatedAt: t0,
    };
    await store.createEndpoint(made);
  }

  async function events(count: number, type: 'order.executed' | 'order.failed'): Promise<void> {
    const stored = Array.from({ length: count }, (_, i) => ({
      id: `evt_${type}_${offset + i}`,
      merchantId: 'm1',
      type,
      subjectId: `ord_${offset + i}`,
      body: `{"n":${offset + i}}`,
      createdAt: t0,
    }));
    offset += count;
    await store.appendEvents(stored, offset, clock.now());
  }

  async function statuses(endpointId: string): Promise<string[]> {
    const listed = await store.listDeliveries({
      merchantId: 'm1',
      endpointId,
      limit: 100,
      startingAfter: undefined,
    });
    return listed.data.map((d) => d.status);
  }

  it('sends at most the in-flight bound per endpoint, holds at most its queue, and lets others pass', async () => {
    await endpoint('slow');
    await endpoint('fast');
    await events(6, 'order.failed');
    await events(5, 'order.executed');
    dispatcher.start();

    await vi.waitFor(() => expect(sender.to('/fast')).toHaveLength(2));
    expect(sender.to('/slow')).toHaveLength(2);
    // Three held per endpoint: two in flight, one waiting.
    expect(dispatcher.stats()).toMatchObject({ inFlight: 4, queued: 6 });

    // The fast endpoint answers; its remaining deliveries go out while the slow one still hangs.
    await vi.waitFor(async () => {
      for (const entry of sender.to('/fast')) entry.answer({ kind: 'answered', status: 204 });
      clock.advance(100);
      expect(await statuses('we_fast')).toEqual(Array(5).fill('succeeded'));
    });
    expect(sender.to('/slow')).toHaveLength(2);
    expect(await statuses('we_slow')).toEqual(Array(6).fill('pending'));
    expect(
      sender.to('/slow').every((entry) => entry.request.headers['remit-signature']?.startsWith('t=')),
    ).toBe(true);
  });

  it('retries at the time the schedule gave, and times an attempt out on the clock', async () => {
    await endpoint('fast');
    await events(1, 'order.executed');
    dispatcher.start();
    await vi.waitFor(() => expect(sender.to('/fast')).toHaveLength(1));
    sender.to('/fast')[0]?.answer({ kind: 'answered', status: 503 });
    await vi.waitFor(async () => {
      const [delivery] = (
        await store.listDeliveries({
          merchantId: 'm1',
          endpointId: 'we_fast',
          limit: 1,
          startingAfter: undefined,
        })
      ).data;
      expect(delivery?.attempts).toBe(1);
    });
    const [delivery] = (
      await store.listDeliveries({
        merchantId: 'm1',
        endpointId: 'we_fast',
        limit: 1,
        startingAfter: undefined,
      })
    ).data;
    const due = delivery?.nextAttemptAt ?? 0;
    // The first retry's ceiling is 1 s; equal jitter draws from its upper half.
    expect(due - t0).toBeGreaterThanOrEqual(500);
    expect(due - t0).toBeLessThanOrEqual(1_000);

    // Time moves in steps of 50 ms: nothing is sent again before the delivery is due.
    while (clock.now() + 50 < due) {
      clock.advance(50);
      await new Promise((resolve) => setImmediate(resolve));
      expect(sender.sent).toBe(1);
    }
    await vi.waitFor(() => {
      clock.advance(50);
      expect(sender.to('/fast')).toHaveLength(1);
    });
    expect(sender.sent).toBe(2);

    // Nobody answers: the attempt's timeout ends it on the clock.
    await vi.waitFor(async () => {
      clock.advance(1_000);
      const attempts = await store.listAttempts(delivery?.id ?? '');
      expect(attempts.map((a) => a.outcome)).toEqual(['http_error', 'timeout']);
      expect(attempts[1]?.startedAt).toBeGreaterThanOrEqual(due);
      expect(attempts[1]?.durationMs).toBeGreaterThanOrEqual(5_000);
    });
  });

  it('holds a delivery whose attempt could not be recorded until its next attempt would be due', async () => {
    await dispatcher.stop();
    let failRecords = true;
    const failing: SqliteWebhookStore = Object.create(store);
    failing.recordAttempt = (attempt, next) =>
      failRecords ? Promise.reject(new Error('disk full')) : store.recordAttempt(attempt, next);
    dispatcher = new WebhookDispatcher({
      store: failing,
      sender,
      clock,
      random: new SeededRandom(3),
      policy: { allowInsecure: true },
      merchantIds: () => undefined,
      delivery: { firstRetryDelayMs: 1_000, retryDelayMaxMs: 10_000, retryWindowMs: 60_000 },
      settings: { pollIntervalMs: 100 },
    });
    await endpoint('fast');
    await events(1, 'order.executed');
    dispatcher.start();
    await vi.waitFor(() => expect(sender.to('/fast')).toHaveLength(1));
    sender.to('/fast')[0]?.answer({ kind: 'answered', status: 500 });
    await vi.waitFor(() => expect(dispatcher.stats().inFlight).toBe(0));
    failRecords = false;

    // Still due in the store, but not sent again before the retry's earliest time (half of 1 s).
    while (clock.now() < t0 + 450) {
      clock.advance(50);
      await new Promise((resolve) => setImmediate(resolve));
      expect(sender.sent).toBe(1);
    }
    await vi.waitFor(() => {
      clock.advance(50);
      expect(sender.to('/fast')).toHaveLength(1);
    });
    expect(sender.sent).toBe(2);
    expect(clock.now()).toBeLessThanOrEqual(t0 + 1_200);
  });

  it('stops after the attempts in flight, aborting those still running past stopTimeoutMs', async () => {
    await endpoint('fast');
    await events(2, 'order.executed');
    dispatcher.start();
    await vi.waitFor(() => expect(sender.to('/fast')).toHaveLength(2));
    sender.to('/fast')[0]?.answer({ kind: 'answered', status: 200 });
    const stopped = dispatcher.stop();
    await vi.waitFor(async () =>
      expect((await statuses('we_fast')).sort()).toEqual(['pending', 'succeeded']),
    );
    clock.advance(1_000);
    await stopped;
    // The aborted attempt is not recorded: the delivery stays pending, with no attempt.
    const listed = await store.listDeliveries({
      merchantId: 'm1',
      endpointId: 'we_fast',
      limit: 5,
      startingAfter: undefined,
    });
    const pending = listed.data.find((d) => d.status === 'pending');
    expect(pending?.attempts).toBe(0);
    expect(await store.listAttempts(pending?.id ?? '')).toEqual([]);
  });
});
