import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SeededRandom } from '../runtime/random.js';
import { generateWebhookSecret, signWebhook } from '../webhooks/signature.js';
import { serializeWebhookEvent, webhookEvent } from '../webhooks/webhook-event.js';
import { quietReceiverFaults, readReceiverLog, WebhookReceiver } from './webhook-receiver.js';

const secret = generateWebhookSecret();
const body = serializeWebhookEvent(
  webhookEvent({
    merchantId: 'm1',
    type: 'order.executed',
    subjectId: 'ord_1',
    createdAtMs: 0,
    data: { id: 'ord_1', status: 'executed' },
  }),
);

describe('the chaos webhook receiver', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function start(faults = quietReceiverFaults, crash?: () => void) {
    const directory = mkdtempSync(join(tmpdir(), 'remit-receiver-'));
    cleanups.push(() => rmSync(directory, { recursive: true, force: true }));
    const logPath = join(directory, 'receiver.jsonl');
    const open = async () => {
      const receiver = new WebhookReceiver({
        host: '127.0.0.1',
        port: 0,
        logPath,
        secrets: new Map([['m1', secret]]),
        faults,
        random: new SeededRandom(1),
        crash,
      });
      const port = await receiver.listen();
      return { receiver, url: `http://127.0.0.1:${port}/hooks/m1` };
    };
    return { logPath, open };
  }

  function deliver(url: string, signingSecret = secret) {
    const timestamp = Math.floor(Date.now() / 1000);
    return fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'remit-signature': signWebhook({ body, timestampSeconds: timestamp, secret: signingSecret }),
      },
      body,
    });
  }

  it('processes an event once, answers its redelivery 200 without processing, and refuses a bad signature', async () => {
    const { logPath, open } = await start();
    const { receiver, url } = await open();
    cleanups.push(() => receiver.close());
    expect((await deliver(url)).status).toBe(200);
    expect((await deliver(url)).status).toBe(200);
    expect((await deliver(url, generateWebhookSecret())).status).toBe(400);
    expect(readReceiverLog(logPath).map((line) => line.kind)).toEqual(['processed', 'duplicate', 'rejected']);
  });

  it('remembers what it processed across a crash after processing', async () => {
    let crashed = 0;
    const { logPath, open } = await start({ ...quietReceiverFaults, crashRate: 1 }, () => crashed++);
    const first = await open();
    await expect(deliver(first.url)).rejects.toThrow();
    expect(crashed).toBe(1);
    await first.receiver.close();
    const second = await open();
    cleanups.push(() => second.receiver.close());
    expect(second.receiver.processed).toBe(1);
    expect((await deliver(second.url)).status).toBe(200);
    expect(readReceiverLog(logPath).map((line) => line.kind)).toEqual(['processed', 'duplicate']);
  });

  it('answers 500 or drops the connection before processing anything', async () => {
    const erring = await start({ ...quietReceiverFaults, errorRate: 1 });
    const a = await erring.open();
    cleanups.push(() => a.receiver.close());
    expect((await deliver(a.url)).status).toBe(500);
    const closing = await start({ ...quietReceiverFaults, closeRate: 1 });
    const b = await closing.open();
    cleanups.push(() => b.receiver.close());
    await expect(deliver(b.url)).rejects.toThrow();
    expect(readReceiverLog(erring.logPath)).toEqual([]);
    expect(readReceiverLog(closing.logPath)).toEqual([]);
  });
});
