import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { type WebhookEventType, webhookEventIdFor, webhookEventTypes } from '../webhooks/webhook-event.js';
import type { GatewayOrder } from './checker.js';
import type { Merchant } from './load.js';
import { ManagedProcess } from './processes.js';
import type { GatewayRefund } from './refund-check.js';
import type { ExpectedWebhookEvent } from './webhook-check.js';
import type { ReceiverFaults } from './webhook-receiver.js';

/**
 * The chaos run's webhooks: one endpoint per merchant, all pointing at one receiver process that
 * misbehaves on purpose (webhook-receiver.ts) and is started again whenever it crashes; and the
 * events the gateway owes, derived from what it reports once the run is over.
 */

const receiverEntry = fileURLToPath(new URL('./webhook-receiver-main.ts', import.meta.url));

/** The receiver's faults in a chaos run: about one delivery in four fails, one in fifty crashes it. */
export const chaosReceiverFaults: ReceiverFaults = {
  errorRate: 0.1,
  closeRate: 0.05,
  hangRate: 0.03,
  crashRate: 0.02,
};

const createdEndpoint = z.object({ id: z.string(), secret: z.string().startsWith('whsec_') });

/** Registers one endpoint per merchant for every event type; merchant id → signing secret. */
export async function registerEndpoints(
  nodeUrl: string,
  merchants: readonly Merchant[],
  receiverUrl: string,
  timeoutMs: number,
): Promise<Map<string, string>> {
  const secrets = new Map<string, string>();
  for (const merchant of merchants) {
    const response = await fetch(`${nodeUrl}/v1/webhook-endpoints`, {
      method: 'POST',
      headers: { authorization: `Bearer ${merchant.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: `${receiverUrl}/hooks/${merchant.id}`, eventTypes: webhookEventTypes }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    if (response.status !== 201)
      throw new Error(`registering ${merchant.id}'s endpoint answered ${response.status}: ${text}`);
    secrets.set(merchant.id, createdEndpoint.parse(JSON.parse(text)).secret);
  }
  return secrets;
}

/** The receiver as a process of the run, with its log and secrets in the run's folder. */
export function receiverProcess(
  dataDir: string,
  port: number,
  seed: number,
  secrets: ReadonlyMap<string, string>,
  faults: ReceiverFaults,
): { process: ManagedProcess; logPath: string } {
  const secretsPath = join(dataDir, 'receiver-secrets.json');
  writeFileSync(secretsPath, JSON.stringify(Object.fromEntries(secrets)), { mode: 0o600 });
  const logPath = join(dataDir, 'receiver.jsonl');
  const process = new ManagedProcess({
    name: 'receiver',
    entry: receiverEntry,
    args: [
      '--port',
      String(port),
      '--log',
      logPath,
      '--secrets',
      secretsPath,
      '--seed',
      String(seed),
      '--error-rate',
      String(faults.errorRate),
      '--close-rate',
      String(faults.closeRate),
      '--hang-rate',
      String(faults.hangRate),
      '--crash-rate',
      String(faults.crashRate),
    ],
    healthUrl: `http://127.0.0.1:${port}/health`,
    logPath: join(dataDir, 'receiver.log'),
  });
  return { process, logPath };
}

const orderEventTypes: Readonly<Record<string, WebhookEventType>> = {
  executed: 'order.executed',
  declined: 'order.declined',
  failed: 'order.failed',
};

/** One event per order that ended executed, declined or failed, and per refund that finished. */
export function owedWebhookEvents(
  orders: readonly GatewayOrder[],
  refunds: readonly GatewayRefund[],
): ExpectedWebhookEvent[] {
  const events: ExpectedWebhookEvent[] = [];
  for (const order of orders) {
    const type = orderEventTypes[order.status];
    if (type === undefined) continue;
    const source = { merchantId: order.merchantId, type, subjectId: order.id };
    events.push({ id: webhookEventIdFor(source), ...source, status: order.status });
  }
  for (const refund of refunds) {
    if (refund.status === 'pending') continue;
    const type: WebhookEventType = refund.status === 'succeeded' ? 'refund.succeeded' : 'refund.failed';
    const source = { merchantId: refund.merchantId, type, subjectId: refund.id };
    events.push({ id: webhookEventIdFor(source), ...source, status: refund.status });
  }
  return events;
}
