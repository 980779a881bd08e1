/**
 * Webhooks end to end, as a merchant tries them from the README: a real gateway process
 * (`remit start --webhooks-allow-insecure`, its own bank simulator) and the README's receiver,
 * run as written in a process of its own beside a copy of verify.ts. The README's Webhooks
 * commands run as written, in one shell, in order (the gateway's port and the receiver's aside):
 * register an endpoint, list its deliveries, resend the newest, show it with its attempts, rotate
 * its secret. Between them this test places an order over HTTP before the receiver listens (its
 * delivery fails and is retried) and a refund after; the receiver must
 * handle `order.executed` and `refund.succeeded` once each, with verified signatures (it handles
 * nothing it cannot verify), answer a resent delivery 200 without handling it twice, and still
 * verify deliveries signed during the rotation. Runs on SQLite and on PostgreSQL (the run's
 * server, a schema of its own).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { dropSchema, testSchemaName } from '../testing/postgres-test-schema.js';
import { type RemitProcess, startRemit } from '../testing/processes.js';
import { webhookEventIdFor } from '../webhooks/webhook-event.js';

const projectRoot = join(import.meta.dirname, '../..');
const waitTimeoutMs = 20_000;

/** The code blocks of one README section: `## title` up to the next `## `. */
function readmeBlocks(title: string, language: string): string[] {
  const readme = readFileSync(join(projectRoot, 'README.md'), 'utf8');
  const section = readme.split(`\n## ${title}\n`)[1]?.split('\n## ')[0] ?? '';
  return [...section.matchAll(new RegExp(`\`\`\`${language}\\n([\\s\\S]*?)\`\`\``, 'g'))].map((match) =>
    String(match[1]),
  );
}

/** Resolves once `read()` matches `pattern`, or fails (bounded) with what it held. */
async function until(read: () => string, pattern: RegExp, what: string): Promise<RegExpMatchArray> {
  const deadline = Date.now() + waitTimeoutMs;
  for (;;) {
    const match = read().match(pattern);
    if (match !== null) return match;
    if (Date.now() > deadline) throw new Error(`${what} never matched ${pattern}:\n${read()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * One bash, kept open: each block is written to its standard input and followed by a marker, so
 * the variables of a block reach the next ones, as in the user's one shell. `set -e`: a failing
 * command ends the shell, and the block's promise rejects with its output.
 */
class Shell {
  private readonly child: ChildProcess;
  private output = '';
  private readonly marker = '<<<readme block done>>>';

  constructor(cwd: string) {
    this.child = spawn('bash', [], { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const collect = (chunk: Buffer): void => {
      this.output += chunk.toString('utf8');
    };
    this.child.stdout?.on('data', collect);
    this.child.stderr?.on('data', collect);
    this.child.stdin?.write('set -e\n');
  }

  /** Runs one block; answers what it printed. */
  async run(block: string): Promise<string> {
    const start = this.output.length;
    this.child.stdin?.write(`${block}\nprintf '\\n%s\\n' '${this.marker}'\n`);
    const done = `\n${this.marker}\n`;
    const deadline = Date.now() + waitTimeoutMs;
    while (!this.output.includes(done, start)) {
      if (this.child.exitCode !== null) throw new Error(`the shell exited:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`the block never finished:\n${this.output}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.output.slice(start, this.output.indexOf(done, start));
  }

  close(): void {
    this.child.stdin?.end();
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
  }
}

/** A port free now on 127.0.0.1: the README's receiver URL must be known before it can start. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

const stores = ['sqlite', 'postgres'] as const;

describe.each(stores)('webhooks end to end on %s', (store) => {
  const schema = testSchemaName('webhooks_e2e');
  let gateway: RemitProcess;
  let dataDir: string;
  let receiverDir: string;
  let receiver: ChildProcess | undefined;
  let receiverOutput = '';
  let shell: Shell;
  let apiKey: string;
  let merchantId: string;

  beforeAll(async () => {
    // Named `data` so the README's commands (which read ./data/credentials.json) run beside it.
    dataDir = join(mkdtempSync(join(tmpdir(), 'remit-webhooks-e2e-')), 'data');
    receiverDir = mkdtempSync(join(tmpdir(), 'remit-webhooks-e2e-receiver-'));
    gateway = await startRemit([
      'start',
      ...(store === 'postgres' ? ['--database-url', inject('postgresUrl'), '--database-schema', schema] : []),
      '--port',
      '0',
      '--bank-port',
      '0',
      '--data',
      dataDir,
      '--webhooks-allow-insecure',
      '--webhook-retry-delay-max-ms',
      '200',
      '--webhook-attempt-timeout-ms',
      '5000',
    ]);
    const credentials = JSON.parse(readFileSync(join(dataDir, 'credentials.json'), 'utf8')) as {
      merchants: Array<{ id: string; apiKey: string }>;
    };
    const first = credentials.merchants[0];
    if (first === undefined) throw new Error('credentials.json lists no merchant');
    ({ apiKey, id: merchantId } = first);
    shell = new Shell(dirname(dataDir));
  }, 60_000);

  afterAll(async () => {
    shell?.close();
    if (receiver !== undefined && receiver.exitCode === null && receiver.signalCode === null) {
      const exited = new Promise((resolve) => receiver?.once('exit', resolve));
      receiver.kill('SIGTERM');
      await exited;
    }
    await gateway?.kill('SIGTERM');
    if (store === 'postgres') await dropSchema(inject('postgresUrl'), schema);
    rmSync(dirname(dataDir), { recursive: true, force: true });
    rmSync(receiverDir, { recursive: true, force: true });
  }, 60_000);

  async function api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
    const response = await fetch(`${gateway.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${apiKey}`,
        ...(body === undefined
          ? {}
          : {
              'content-type': 'application/json',
              'idempotency-key': crypto.randomUUID(),
              prefer: 'wait=10',
            }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, json: (await response.json()) as T };
  }

  async function executedOrder(card: string): Promise<string> {
    const order = await api<{ id: string; status: string }>('POST', '/v1/orders', {
      amount: 1250,
      currency: 'EUR',
      card: { number: card, expMonth: 12, expYear: 2030, cvc: '123' },
    });
    expect(order).toMatchObject({ status: 201, json: { status: 'executed' } });
    return order.json.id;
  }

  interface DeliveryJson {
    id: string;
    eventId: string;
    eventType: string;
    status: string;
    attemptCount: number;
    attempts?: Array<{ httpStatus: number | null; outcome: string }>;
  }

  /** Lines the receiver printed for one event. */
  const handledLines = (type: string, eventId: string): number =>
    receiverOutput.split('\n').filter((line) => line === `handled ${type} ${eventId}`).length;

  it("runs the README's Webhooks commands as written, with its receiver, on the real gateway", async () => {
    const blocks = readmeBlocks('Webhooks', 'sh');
    expect(blocks).toHaveLength(5);
    const receiverPort = await freePort();
    const [register, list, resend, show, rotate] = blocks.map((block) =>
      block
        .replaceAll('http://127.0.0.1:8080', gateway.url)
        .replaceAll('http://127.0.0.1:4242', `http://127.0.0.1:${receiverPort}`),
    ) as [string, string, string, string, string];

    // Register: the answer carries the secret the receiver is started with.
    const endpoint = JSON.parse(await shell.run(register)) as Record<string, unknown>;
    expect(endpoint).toMatchObject({
      id: expect.stringMatching(/^we_/),
      url: `http://127.0.0.1:${receiverPort}/webhooks`,
      status: 'enabled',
      secret: expect.stringMatching(/^whsec_/),
    });
    const secret = String(endpoint.secret);

    const endpointId = String(endpoint.id);
    const deliveries = async (): Promise<DeliveryJson[]> =>
      (await api<{ data: DeliveryJson[] }>('GET', `/v1/webhook-endpoints/${endpointId}/deliveries`)).json
        .data;

    // An order before the receiver listens: its delivery fails, and is retried.
    const orderId = await executedOrder('4111111111111111');
    await expect
      .poll(async () => (await deliveries())[0]?.attemptCount ?? 0, { timeout: waitTimeoutMs })
      .toBeGreaterThanOrEqual(1);
    expect(await deliveries()).toEqual([
      expect.objectContaining({ eventType: 'order.executed', status: 'pending' }),
    ]);

    // The README's receiver, as a merchant runs it: its code beside a copy of verify.ts.
    const receiverCode = readmeBlocks('Verifying webhook signatures', 'ts')[0];
    expect(receiverCode).toBeDefined();
    copyFileSync(join(projectRoot, 'src/webhooks/verify.ts'), join(receiverDir, 'verify.ts'));
    writeFileSync(join(receiverDir, 'receiver.ts'), String(receiverCode));
    receiver = spawn(process.execPath, ['--import', 'tsx', join(receiverDir, 'receiver.ts')], {
      cwd: projectRoot,
      env: { ...process.env, REMIT_WEBHOOK_SECRET: secret, PORT: String(receiverPort) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const collect = (chunk: Buffer): void => {
      receiverOutput += chunk.toString('utf8');
    };
    receiver.stdout?.on('data', collect);
    receiver.stderr?.on('data', collect);
    await until(() => receiverOutput, /listening .*port: \d+/, 'the receiver');

    // The order's delivery retried, and a refund of part of it: each reaches the receiver, verified.
    const refund = await api<{ id: string }>('POST', `/v1/orders/${orderId}/refunds`, { amount: 500 });
    expect(refund.status).toBe(201);
    const orderEvent = webhookEventIdFor({ merchantId, type: 'order.executed', subjectId: orderId });
    const refundEvent = webhookEventIdFor({
      merchantId,
      type: 'refund.succeeded',
      subjectId: refund.json.id,
    });
    await until(() => receiverOutput, new RegExp(`handled order\\.executed ${orderEvent}`), 'the receiver');
    await until(
      () => receiverOutput,
      new RegExp(`handled refund\\.succeeded ${refundEvent}`),
      'the receiver',
    );

    // The gateway records both as succeeded, a moment after the receiver's answer. Deliveries are
    // newest first by creation time, then id: two made in one batch of the projection may come
    // either way.
    const bothSucceeded = [
      expect.objectContaining({ eventId: refundEvent, eventType: 'refund.succeeded', status: 'succeeded' }),
      expect.objectContaining({ eventId: orderEvent, eventType: 'order.executed', status: 'succeeded' }),
    ];
    await expect.poll(deliveries, { timeout: waitTimeoutMs }).toEqual(expect.arrayContaining(bothSucceeded));
    const listed = JSON.parse(await shell.run(list)) as { data: DeliveryJson[]; hasMore: boolean };
    expect(listed.hasMore).toBe(false);
    expect(listed.data).toHaveLength(2);
    expect(listed.data).toEqual(expect.arrayContaining(bothSucceeded));
    const newest = listed.data[0];
    const attemptsBefore = newest?.attemptCount ?? 0;
    expect(attemptsBefore).toBeGreaterThanOrEqual(1);

    // Resend the newest: it goes out again and the receiver answers it 200.
    const resent = JSON.parse(await shell.run(resend)) as DeliveryJson;
    expect(resent).toMatchObject({ id: newest?.id, eventId: newest?.eventId });
    const delivery = async (): Promise<DeliveryJson> =>
      (await api<DeliveryJson>('GET', `/v1/webhook-deliveries/${newest?.id}`)).json;
    await expect
      .poll(async () => delivery(), { timeout: waitTimeoutMs })
      .toMatchObject({ status: 'succeeded', attemptCount: attemptsBefore + 1 });
    const shown = JSON.parse(await shell.run(show)) as DeliveryJson;
    expect(shown).toMatchObject({ id: newest?.id, attemptCount: attemptsBefore + 1 });
    expect(shown.attempts).toHaveLength(attemptsBefore + 1);
    expect(shown.attempts?.at(-1)).toMatchObject({ httpStatus: 200, outcome: 'ok' });

    // Rotate: a new secret, the old one signing for an hour; the receiver, still on the old one,
    // verifies the next event. The receiver handles requests one after another, so once that
    // event's line is out, any line the resent duplicate could have caused is out too.
    const rotated = JSON.parse(await shell.run(rotate)) as Record<string, unknown>;
    expect(rotated).toMatchObject({ id: endpointId, secret: expect.stringMatching(/^whsec_/) });
    expect(rotated.secret).not.toBe(secret);
    expect(rotated.expiringSecretUntil).not.toBeNull();
    const nextOrderId = await executedOrder('5555555555554444');
    const nextEvent = webhookEventIdFor({ merchantId, type: 'order.executed', subjectId: nextOrderId });
    await until(() => receiverOutput, new RegExp(`handled order\\.executed ${nextEvent}`), 'the receiver');
    expect(handledLines('refund.succeeded', refundEvent)).toBe(1);
    expect(handledLines('order.executed', orderEvent)).toBe(1);
    // The secrets were shown in the two answers only, never in the gateway's log.
    for (const shownSecret of [secret, String(rotated.secret)])
      expect(gateway.output()).not.toContain(shownSecret);
    // No attempt was refused by the receiver's check (a 400): every signature verified.
    for (const { id } of await deliveries()) {
      const { attempts } = (await api<DeliveryJson>('GET', `/v1/webhook-deliveries/${id}`)).json;
      expect(attempts?.some((attempt) => attempt.httpStatus === 400)).toBe(false);
    }
  }, 90_000);

  it('stops cleanly on SIGTERM with its dispatcher and projection running, and says so last', async () => {
    expect(await gateway.kill('SIGTERM')).toBe(0);
    const lines = gateway.output().trimEnd().split('\n');
    expect(JSON.parse(lines.at(-1) ?? '')).toMatchObject({ msg: 'gateway stopped' });
    expect(gateway.output()).not.toContain('"level":50');
  });
});
