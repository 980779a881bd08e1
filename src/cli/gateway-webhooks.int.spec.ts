import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../runtime/clock.js';
import { generateWebhookSecret } from '../webhooks/signature.js';
import { verifyWebhookSignature } from '../webhooks/verify.js';
import { parseStartConfig } from './config.js';
import { type RunningGateway, startGateway } from './gateway.js';

/**
 * The gateway's webhooks on one node: a gateway started in this process (SQLite in a temporary
 * data folder, its own bank simulator), an endpoint registered in its webhook store pointing at a
 * receiver on 127.0.0.1 (allowed by `--webhooks-allow-insecure`), and orders sent over HTTP. Each
 * order's outcome must reach the receiver as one signed event whose data is the order as the API
 * shows it; a restart of the gateway derives nothing twice.
 */

interface Received {
  readonly verified: boolean;
  readonly body: { id: string; type: string; data: { id: string; status: string } };
}

describe('gateway webhooks', () => {
  let dataDir: string;
  let gateway: RunningGateway | undefined;
  let server: Server;
  let receiverUrl: string;
  const received: Received[] = [];
  const secret = generateWebhookSecret();
  let merchant: { id: string; apiKey: string };

  async function start(): Promise<RunningGateway> {
    const config = parseStartConfig(
      ['--port', '0', '--bank-port', '0', '--data', dataDir, '--webhooks-allow-insecure'],
      {},
    );
    gateway = await startGateway(config, { logger: pino({ level: 'silent' }) });
    return gateway;
  }

  async function order(key: string, card: string): Promise<{ id: string; status: string }> {
    const response = await fetch(`${gateway?.url}/v1/orders`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${merchant.apiKey}`,
        'content-type': 'application/json',
        'idempotency-key': key,
        prefer: 'wait=10',
      },
      body: JSON.stringify({
        amount: 1_250,
        currency: 'EUR',
        card: { number: card, expMonth: 12, expYear: 2030, cvc: '123' },
      }),
    });
    expect(response.status).toBe(201);
    return (await response.json()) as { id: string; status: string };
  }

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'remit-gateway-webhooks-'));
    server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const verification = verifyWebhookSignature({
          header: request.headers['remit-signature'],
          body,
          secret,
        });
        received.push({ verified: verification.ok, body: JSON.parse(body) as Received['body'] });
        response.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
    await start();
    const credentials = JSON.parse(readFileSync(join(dataDir, 'credentials.json'), 'utf8')) as {
      merchants: Array<{ id: string; apiKey: string }>;
    };
    const first = credentials.merchants[0];
    if (first === undefined) throw new Error('credentials.json lists no merchant');
    merchant = first;
    const now = systemClock.now();
    await gateway?.webhooks.createEndpoint({
      id: 'we_test',
      merchantId: merchant.id,
      url: receiverUrl,
      eventTypes: ['order.executed', 'order.declined'],
      status: 'enabled',
      disabledReason: undefined,
      secret,
      expiringSecret: undefined,
      expiringSecretUntil: undefined,
      failingSince: undefined,
      createdAt: now,
      updatedAt: now,
    });
  }, 60_000);

  afterAll(async () => {
    await gateway?.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('pushes each outcome once, signed, with the order as the API shows it, across a restart', async () => {
    const executed = await order('webhook-executed', '4111111111111111');
    const declined = await order('webhook-declined', '4000000000000002');
    expect([executed.status, declined.status]).toEqual(['executed', 'declined']);

    await vi.waitFor(() => expect(received).toHaveLength(2), { timeout: 20_000 });
    expect(received.every((r) => r.verified)).toBe(true);
    const byType = new Map(received.map((r) => [r.body.type, r.body]));
    expect(byType.get('order.executed')?.data).toMatchObject({ id: executed.id, status: 'executed' });
    expect(byType.get('order.declined')?.data).toMatchObject({ id: declined.id, status: 'declined' });
    const api = await fetch(`${gateway?.url}/v1/orders/${executed.id}`, {
      headers: { authorization: `Bearer ${merchant.apiKey}` },
    });
    expect(byType.get('order.executed')?.data).toEqual(await api.json());

    // A restart derives the same journal again from the stored offset: nothing new is sent.
    await gateway?.close();
    gateway = undefined;
    const restarted = await start();
    const third = await order('webhook-after-restart', '4111111111111111');
    await vi.waitFor(() => expect(received).toHaveLength(3), { timeout: 20_000 });
    expect(received.at(-1)?.body.data.id).toBe(third.id);
    expect(new Set(received.map((r) => r.body.id)).size).toBe(3);
    await vi.waitFor(async () => {
      const listed = await restarted.webhooks.listDeliveries({
        merchantId: merchant.id,
        endpointId: 'we_test',
        limit: 10,
        startingAfter: undefined,
      });
      expect(listed.data.map((d) => d.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    });
    const metrics = await (await fetch(`${restarted.url}/metrics`)).text();
    expect(metrics).toMatch(/^remit_webhook_attempts_total 1$/m);
    expect(metrics).toMatch(/^remit_webhook_deliveries_in_flight 0$/m);
  }, 90_000);
});
