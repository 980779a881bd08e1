import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../runtime/clock.js';
import { SeededRandom } from '../runtime/random.js';
import { SqliteWebhookStore, webhooksPath } from '../store/sqlite/sqlite-webhook-store.js';
import type { WebhookDeliverySettings } from './retry-schedule.js';
import { generateWebhookSecret } from './signature.js';
import { verifyWebhookSignature } from './verify.js';
import { WebhookDispatcher } from './webhook-dispatcher.js';
import { serializeWebhookEvent, webhookEvent } from './webhook-event.js';
import { UndiciWebhookSender } from './webhook-sender.js';
import type { WebhookEndpoint } from './webhook-store.js';

/**
 * The dispatcher against a real HTTP receiver on 127.0.0.1, over the SQLite store. The receiver
 * answers each path from a script — 500, hang (never answers), close the connection, 200 — and
 * verifies every request's signature with the merchants' `verify.ts`. Retry delays are a few
 * milliseconds so the schedule runs through in moments; the tests wait for conditions in the
 * store and at the receiver, never for a time.
 */

type Behaviour = 'ok' | 'error' | 'hang' | 'close';

interface Received {
  readonly path: string;
  readonly eventId: string;
  readonly verified: boolean;
  readonly contentType: string | undefined;
  readonly behaviour: Behaviour;
}

class Receiver {
  readonly received: Received[] = [];
  /** Per path, what the next requests get; `fallback` once the script is used up. */
  readonly scripts = new Map<string, Behaviour[]>();
  readonly fallback = new Map<string, Behaviour>();
  readonly secrets = new Map<string, string>();
  hanging = 0;
  private readonly hung: ServerResponse[] = [];
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((request, response) => void this.handle(request, response));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}`;
  }

  async stop(): Promise<void> {
    for (const response of this.hung) response.socket?.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  delivered(path: string): Set<string> {
    return new Set(
      this.received.filter((r) => r.path === path && r.behaviour === 'ok').map((r) => r.eventId),
    );
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const path = request.url ?? '';
    const behaviour = this.scripts.get(path)?.shift() ?? this.fallback.get(path) ?? 'ok';
    const verification = verifyWebhookSignature({
      header: request.headers['remit-signature'],
      body,
      secret: this.secrets.get(path) ?? '',
    });
    this.received.push({
      path,
      eventId: (JSON.parse(body) as { id: string }).id,
      verified: verification.ok,
      contentType: request.headers['content-type'],
      behaviour,
    });
    switch (behaviour) {
      case 'ok':
        response.writeHead(200).end('ok');
        return;
      case 'error':
        response.writeHead(500).end('boom');
        return;
      case 'close':
        request.socket.destroy();
        return;
      case 'hang':
        this.hanging++;
        this.hung.push(response);
        response.on('close', () => this.hanging--);
        return;
    }
  }
}

const fastRetries: Partial<WebhookDeliverySettings> = {
  firstRetryDelayMs: 10,
  retryDelayMaxMs: 40,
  retryWindowMs: 120_000,
  attemptTimeoutMs: 500,
  deliveriesInFlightPerEndpointMax: 2,
  endpointDisableAfterFailingMs: 120_000,
};

describe('WebhookDispatcher over HTTP', () => {
  let dir: string;
  let store: SqliteWebhookStore;
  let receiver: Receiver;
  let sender: UndiciWebhookSender;
  let dispatcher: WebhookDispatcher | undefined;
  let offset = 0;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'remit-dispatcher-'));
    store = SqliteWebhookStore.open(webhooksPath(dir), systemClock.now());
    receiver = new Receiver();
    await receiver.start();
    sender = new UndiciWebhookSender();
    offset = 0;
  });

  afterEach(async () => {
    await dispatcher?.stop();
    dispatcher = undefined;
    await receiver.stop();
    await sender.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function endpoint(path: string, eventTypes: WebhookEndpoint['eventTypes'] = ['order.executed']) {
    const secret = generateWebhookSecret();
    receiver.secrets.set(path, secret);
    const now = systemClock.now();
    const made: WebhookEndpoint = {
      id: `we_${path.slice(1)}`,
      merchantId: 'm1',
      url: `${receiver.url}${path}`,
      eventTypes,
      status: 'enabled',
      disabledReason: undefined,
      secret,
      expiringSecret: undefined,
      expiringSecretUntil: undefined,
      failingSince: undefined,
      createdAt: now,
      updatedAt: now,
    };
    await store.createEndpoint(made);
    return made;
  }

  async function events(count: number, type: 'order.executed' | 'order.failed' = 'order.executed') {
    const stored = Array.from({ length: count }, (_, i) => {
      const subjectId = `ord_${type}_${offset + i}`;
      const event = webhookEvent({
        merchantId: 'm1',
        type,
        subjectId,
        createdAtMs: 0,
        data: { id: subjectId },
      });
      return {
        id: event.id,
        merchantId: 'm1',
        type,
        subjectId,
        body: serializeWebhookEvent(event),
        createdAt: 0,
      };
    });
    offset += count;
    await store.appendEvents(stored, offset, systemClock.now());
    return stored.map((event) => event.id);
  }

  function start(delivery: Partial<WebhookDeliverySettings> = fastRetries) {
    dispatcher = new WebhookDispatcher({
      store,
      sender,
      clock: systemClock,
      random: new SeededRandom(7),
      policy: { allowInsecure: true },
      merchantIds: () => undefined,
      delivery,
      // Hanging attempts are aborted at stop after moments.
      settings: { pollIntervalMs: 10, deliveriesQueuedPerEndpointMax: 4, stopTimeoutMs: 200 },
    });
    dispatcher.start();
    return dispatcher;
  }

  async function deliveriesOf(endpointId: string) {
    return (
      await store.listDeliveries({ merchantId: 'm1', endpointId, limit: 100, startingAfter: undefined })
    ).data;
  }

  it('retries through a 500, a hang and a closed connection until a 200, each attempt recorded and signed', async () => {
    await endpoint('/flaky');
    receiver.scripts.set('/flaky', ['error', 'hang', 'close']);
    const [eventId] = await events(1);
    // Long enough that only the hanging request times out, even on a busy machine.
    start({ ...fastRetries, attemptTimeoutMs: 2_000 });

    await vi.waitFor(() => expect(receiver.delivered('/flaky')).toEqual(new Set([eventId])), {
      timeout: 20_000,
    });
    await vi.waitFor(async () => expect((await deliveriesOf('we_flaky'))[0]?.status).toBe('succeeded'), {
      timeout: 10_000,
    });
    const [delivery] = await deliveriesOf('we_flaky');
    const attempts = await store.listAttempts(delivery?.id ?? '');
    expect(attempts.map((a) => [a.number, a.outcome, a.httpStatus])).toEqual([
      [1, 'http_error', 500],
      [2, 'timeout', undefined],
      [3, 'connection_failed', undefined],
      [4, 'ok', 200],
    ]);
    expect(delivery).toMatchObject({
      attempts: 4,
      nextAttemptAt: undefined,
      firstAttemptAt: attempts[0]?.startedAt,
    });
    expect(receiver.received.every((r) => r.verified && r.contentType === 'application/json')).toBe(true);
    // The endpoint was failing after the 500 and healthy again after the 200.
    await vi.waitFor(async () =>
      expect((await store.getEndpoint('m1', 'we_flaky'))?.failingSince).toBeUndefined(),
    );
  });

  it('delivers every event, signed with both secrets during a rotation', async () => {
    const made = await endpoint('/many');
    const oldSecret = made.secret;
    const newSecret = generateWebhookSecret();
    await store.updateEndpoint('m1', made.id, {
      secret: newSecret,
      expiringSecret: oldSecret,
      expiringSecretUntil: systemClock.now() + 3_600_000,
      updatedAt: systemClock.now(),
    });
    receiver.scripts.set('/many', ['error', 'close', 'error']);
    const ids = await events(12);
    start();

    await vi.waitFor(() => expect(receiver.delivered('/many')).toEqual(new Set(ids)), { timeout: 20_000 });
    // Verified with the old secret the receiver still holds; the new one signs too.
    expect(receiver.received.every((r) => r.verified)).toBe(true);
    await vi.waitFor(async () => {
      const deliveries = await deliveriesOf(made.id);
      expect(deliveries.map((d) => d.status)).toEqual(ids.map(() => 'succeeded'));
    });
    receiver.secrets.set('/many', newSecret);
    const [late] = await events(1);
    await vi.waitFor(() => expect(receiver.delivered('/many').has(late ?? '')).toBe(true), {
      timeout: 10_000,
    });
    expect(receiver.received.at(-1)?.verified).toBe(true);
  });

  it('keeps a hanging endpoint from delaying another endpoint’s deliveries', async () => {
    await endpoint('/slow', ['order.failed']);
    await endpoint('/fast', ['order.executed']);
    receiver.fallback.set('/slow', 'hang');
    const slowIds = await events(10, 'order.failed');
    // The slow endpoint never answers within the test: an attempt's timeout is far away.
    start({ ...fastRetries, attemptTimeoutMs: 100_000 });
    await vi.waitFor(() => expect(receiver.hanging).toBe(2), { timeout: 10_000 });
    const fastIds = await events(20, 'order.executed');
    dispatcher?.poke();

    await vi.waitFor(() => expect(receiver.delivered('/fast')).toEqual(new Set(fastIds)), {
      timeout: 20_000,
    });
    // Meanwhile the slow one holds only its own slots: two requests hanging, none answered.
    expect(receiver.hanging).toBe(2);
    expect(receiver.received.filter((r) => r.path === '/slow')).toHaveLength(2);
    expect(slowIds.some((id) => receiver.delivered('/slow').has(id))).toBe(false);
    expect(dispatcher?.stats().inFlight).toBe(2);
  });

  it('fails a delivery past the retry window', async () => {
    await endpoint('/down');
    receiver.fallback.set('/down', 'error');
    await events(1);
    start({ ...fastRetries, retryWindowMs: 1_000 });

    await vi.waitFor(async () => expect((await deliveriesOf('we_down'))[0]?.status).toBe('failed'), {
      timeout: 10_000,
    });
    const [delivery] = await deliveriesOf('we_down');
    const attempts = await store.listAttempts(delivery?.id ?? '');
    expect(attempts.length).toBeGreaterThan(1);
    expect(attempts.every((a) => a.outcome === 'http_error')).toBe(true);
    expect(delivery?.attempts).toBe(attempts.length);
    expect(await store.getEndpoint('m1', 'we_down')).toMatchObject({ status: 'enabled' });
  });

  it('disables an endpoint failing too long; its deliveries wait, pending', async () => {
    await endpoint('/dead');
    receiver.fallback.set('/dead', 'close');
    await events(1);
    start({ ...fastRetries, endpointDisableAfterFailingMs: 200 });

    await vi.waitFor(
      async () =>
        expect(await store.getEndpoint('m1', 'we_dead')).toMatchObject({
          status: 'disabled',
          disabledReason: 'failing',
        }),
      { timeout: 10_000 },
    );
    const [delivery] = await deliveriesOf('we_dead');
    expect(delivery?.status).toBe('pending');
    const attempts = await store.listAttempts(delivery?.id ?? '');
    expect(attempts.every((a) => a.outcome === 'connection_failed')).toBe(true);
  });

  it('refuses an address the URL policy forbids, and records it', async () => {
    await endpoint('/private');
    await events(1);
    dispatcher = new WebhookDispatcher({
      store,
      sender,
      clock: systemClock,
      random: new SeededRandom(7),
      policy: { allowInsecure: false },
      merchantIds: () => undefined,
      delivery: fastRetries,
      settings: { pollIntervalMs: 10 },
    });
    dispatcher.start();
    await vi.waitFor(
      async () => {
        const [delivery] = await deliveriesOf('we_private');
        const attempts = await store.listAttempts(delivery?.id ?? '');
        expect(attempts[0]?.outcome).toBe('address_refused');
      },
      { timeout: 10_000 },
    );
    expect(receiver.received).toEqual([]);
  });
});
