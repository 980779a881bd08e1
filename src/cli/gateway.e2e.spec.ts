/**
 * Remit end to end, as a merchant's system sees it: a real bank-simulator process and a real
 * gateway process (`remit bank`, `remit start`), talked to over HTTP. The bank's ledger is the
 * ground truth. Covers every outcome (executed, rejected, declined, failed), idempotent retries,
 * merchant isolation, bad input, a SIGKILL with orders in flight, the absence of card numbers from
 * disk and logs (the quickstart's test card included), and the quickstart curl as built for the
 * terminal banner and as the README writes it, and the README's refund examples as written.
 *
 * It runs on both stores: in full on SQLite, and on PostgreSQL (the test run's server, a schema per
 * gateway) every test that touches a store — orders, replays, listings and audit trails, the bank
 * outage, the SIGKILL and restart, metrics, logs, the data folder. Merchant isolation, the
 * authentication checks, configuration errors and the quickstart curls do not depend on the store
 * and run on SQLite only, to keep the suite's time down.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BankClient, type BankLedgerReport } from '../bank/bank-client.js';
import { dropSchema, testSchemaName } from '../testing/postgres-test-schema.js';
import { type RemitProcess, startRemit } from '../testing/processes.js';
import { quickstartCommand } from './quickstart.js';

const approved = '4111111111111111';
const declined = '4000000000000002';
const insufficient = '4000000000009995';
/** Cards of the orders this suite sends; none may appear in the logs or on disk. */
const usedCards = [approved, declined, insufficient, '5555555555554444'];
/** The quickstart's card: shown in the banner only at a terminal, never in the log. */
const quickstartCard = '4242424242424242';

interface Credentials {
  merchants: Array<{ id: string; apiKey: string; bank: string }>;
}

interface OrderJson {
  id: string;
  status: string;
  amount: number;
  currency: string;
  card: { brand: string; last4: string };
  bank: string | null;
  reason: string | null;
  amountRefunded: number;
}

/** The full suite on SQLite; on PostgreSQL every test but the few that do not touch a store. */
const stores = ['sqlite', 'postgres'] as const;

describe.each(stores)('on %s', (store) => {
  /** On PostgreSQL each gateway of this suite keeps its stores in a schema of its own. */
  const schema = testSchemaName('gateway_e2e');

  let bank: RemitProcess;
  /** The ledger is read through the bank's own client, as every caller of the bank does. */
  let auditor: BankClient;
  let gateway: RemitProcess;
  let bankDir: string;
  let dataDir: string;
  let keyA: string;
  let keyB: string;
  const gatewayOutputs: string[] = [];

  function gatewayArgs(bankUrl: string): string[] {
    return [
      'start',
      ...(store === 'postgres' ? ['--database-url', inject('postgresUrl'), '--database-schema', schema] : []),
      '--port',
      '0',
      '--data',
      dataDir,
      '--bank-url',
      bankUrl,
      '--execution-deadline-ms',
      '3000',
      '--bank-timeout-ms',
      '1000',
    ];
  }

  beforeAll(async () => {
    bankDir = mkdtempSync(join(tmpdir(), 'remit-e2e-bank-'));
    // Named `data` so the README's quickstart (which reads ./data/credentials.json) runs beside it.
    dataDir = join(mkdtempSync(join(tmpdir(), 'remit-e2e-')), 'data');
    bank = await startRemit(['bank', '--port', '0', '--data', bankDir]);
    auditor = new BankClient({ baseUrl: bank.url, requestTimeoutMs: 10_000, connections: 1 });
    gateway = await startRemit(gatewayArgs(bank.url));
    const credentials = JSON.parse(readFileSync(join(dataDir, 'credentials.json'), 'utf8')) as Credentials;
    keyA = credentials.merchants.find((merchant) => merchant.id === 'merchant-a')?.apiKey ?? '';
    keyB = credentials.merchants.find((merchant) => merchant.id === 'merchant-b')?.apiKey ?? '';
  }, 60_000);

  afterAll(async () => {
    gatewayOutputs.push(gateway?.output() ?? '');
    await gateway?.kill('SIGTERM');
    if (store === 'postgres') await dropSchema(inject('postgresUrl'), schema);
    await auditor?.close();
    await bank?.kill('SIGTERM');
    rmSync(bankDir, { recursive: true, force: true });
    rmSync(dirname(dataDir), { recursive: true, force: true });
  }, 60_000);

  let keyCounter = 0;
  const newKey = (): string => `e2e-${Date.now()}-${keyCounter++}`;

  function orderBody(card = approved, amount = 1250, currency = 'EUR') {
    return { amount, currency, card: { number: card, expMonth: 12, expYear: 2030, cvc: '123' } };
  }

  async function post(
    apiKey: string,
    idempotencyKey: string | undefined,
    body: unknown,
    headers: Record<string, string> = {},
  ) {
    const response = await fetch(`${gateway.url}/v1/orders`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${apiKey}`,
        'content-type': 'application/json',
        ...(idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey }),
        ...headers,
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return {
      status: response.status,
      headers: response.headers,
      json: (await response.json()) as Record<string, unknown>,
    };
  }

  async function getOrder(apiKey: string, id: string) {
    const response = await fetch(`${gateway.url}/v1/orders/${id}`, {
      headers: { authorization: `Bearer ${apiKey}` },
    });
    return { status: response.status, json: (await response.json()) as OrderJson };
  }

  function ledger(): Promise<BankLedgerReport> {
    return auditor.ledger();
  }

  /** Polls until the order is terminal (bounded). */
  async function untilTerminal(apiKey: string, id: string, attemptsMax = 300): Promise<OrderJson> {
    for (let attempt = 0; attempt < attemptsMax; attempt++) {
      const { status, json } = await getOrder(apiKey, id);
      if (status === 200 && ['executed', 'declined', 'rejected', 'failed'].includes(json.status)) return json;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`order ${id} did not finish`);
  }

  describe.sequential(`remit end to end on ${store}`, () => {
    it('executes a valid order and the bank charged it once', async () => {
      const { status, json } = await post(keyA, newKey(), orderBody());
      expect(status).toBe(201);
      expect(json).toMatchObject({
        status: 'executed',
        amount: 1250,
        currency: 'EUR',
        card: { brand: 'visa', last4: '1111' },
        bank: 'bank-a',
      });
      const payment = (await ledger()).payments.find((entry) => entry.reference === json.id);
      expect(payment).toMatchObject({ status: 'approved', amount: 1250n, currency: 'EUR', requestCount: 1 });
    });

    it.each([
      ['a card failing Luhn', orderBody('4111111111111112'), 'card_number_invalid'],
      ['an amount over the limit', orderBody(approved, 1_000_001), 'amount_over_limit'],
      ['an unsupported currency', orderBody(approved, 100, 'GBP'), 'currency_not_supported'],
    ])('rejects %s without calling the bank', async (_name, body, reason) => {
      const { status, json } = await post(keyA, newKey(), body);
      expect(status).toBe(201);
      expect(json).toMatchObject({ status: 'rejected', reason });
      expect((await ledger()).payments.some((entry) => entry.reference === json.id)).toBe(false);
    });

    it.each([
      [declined, 'card_declined'],
      [insufficient, 'insufficient_funds'],
    ])('declines test card %s with the bank reason %s', async (card, reason) => {
      const { status, json } = await post(keyA, newKey(), orderBody(card));
      expect(status).toBe(201);
      expect(json).toMatchObject({ status: 'declined', reason });
    });

    it('replays the same order for the same key and body, and refuses the key with another body', async () => {
      const key = newKey();
      const first = await post(keyA, key, orderBody());
      const again = await post(keyA, key, orderBody());
      expect(again.status).toBe(201);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(again.json.id).toBe(first.json.id);
      const reused = await post(keyA, key, orderBody(approved, 999));
      expect(reused.status).toBe(422);
      expect(reused.headers.get('content-type')).toContain('application/problem+json');
      expect(reused.json.code).toBe('idempotency_key_reused');
      expect((await ledger()).payments.find((entry) => entry.reference === first.json.id)?.requestCount).toBe(
        1,
      );
    });

    it('replays an order while the first request is still in flight', async () => {
      await fetch(`${bank.url}/v1/faults`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: '{"latencyMs":800}',
      });
      try {
        const key = newKey();
        const [first, second] = await Promise.all([
          post(keyA, key, orderBody(), { prefer: 'wait=0' }),
          post(keyA, key, orderBody(), { prefer: 'wait=0' }),
        ]);
        expect(first.json.id).toBe(second.json.id);
        expect([first.status, second.status]).toEqual([202, 202]);
        expect(await untilTerminal(keyA, String(first.json.id))).toMatchObject({ status: 'executed' });
      } finally {
        await fetch(`${bank.url}/v1/faults`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: '{"latencyMs":0}',
        });
      }
    });

    it.skipIf(store === 'postgres')(
      'keeps merchants apart: another merchant cannot see an order',
      async () => {
        const { json } = await post(keyA, newKey(), orderBody());
        expect((await getOrder(keyA, String(json.id))).status).toBe(200);
        const other = await getOrder(keyB, String(json.id));
        expect(other.status).toBe(404);
        const list = (await (
          await fetch(`${gateway.url}/v1/orders?limit=100`, { headers: { authorization: `Bearer ${keyB}` } })
        ).json()) as {
          data: OrderJson[];
        };
        expect(list.data.some((order) => order.id === json.id)).toBe(false);
        const events = await fetch(`${gateway.url}/v1/orders/${json.id}/events`, {
          headers: { authorization: `Bearer ${keyB}` },
        });
        expect(events.status).toBe(404);
      },
    );

    it('lists orders newest first with a cursor, and shows each order its audit trail', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push(String((await post(keyA, newKey(), orderBody())).json.id));
      const headers = { authorization: `Bearer ${keyA}` };
      const firstPage = (await (await fetch(`${gateway.url}/v1/orders?limit=2`, { headers })).json()) as {
        data: OrderJson[];
        hasMore: boolean;
      };
      expect(firstPage.data.map((order) => order.id)).toEqual([ids[2], ids[1]]);
      expect(firstPage.hasMore).toBe(true);
      const next = await fetch(`${gateway.url}/v1/orders?limit=1&startingAfter=${ids[1]}`, { headers });
      const badCursor = await fetch(`${gateway.url}/v1/orders?startingAfter=ord_unknown`, { headers });
      expect(badCursor.status).toBe(400);
      expect(((await badCursor.json()) as { code: string }).code).toBe('invalid_cursor');
      expect(((await next.json()) as { data: OrderJson[] }).data[0]?.id).toBe(ids[0]);
      const trail = (await (
        await fetch(`${gateway.url}/v1/orders/${ids[0]}/events`, { headers })
      ).json()) as {
        data: Array<{ type: string }>;
      };
      expect(trail.data.map((entry) => entry.type)).toEqual(
        expect.arrayContaining([
          'OrderCreated',
          'OrderValidated',
          'ExecutionRequested',
          'ExecutionSettled',
          'OrderExecuted',
        ]),
      );
    });

    it.each([
      ['malformed JSON', '{"amount": 12', 400, 'malformed_json', undefined],
      ['a wrong type', { ...orderBody(), amount: '12' }, 400, 'invalid_field', 'amount'],
      ['a non-integer amount', { ...orderBody(), amount: 12.5 }, 400, 'invalid_field', 'amount'],
      ['a negative amount', { ...orderBody(), amount: -5 }, 400, 'invalid_field', 'amount'],
      ['an unknown field', { ...orderBody(), tip: 1 }, 400, 'unknown_field', 'tip'],
      ['a missing card', { amount: 10, currency: 'EUR' }, 400, 'missing_field', 'card'],
      ['a malformed currency', { ...orderBody(), currency: 'eur' }, 400, 'invalid_field', 'currency'],
      ['an unknown currency', { ...orderBody(), currency: 'XYZ' }, 400, 'currency_invalid', 'currency'],
      [
        'a bad card number',
        { ...orderBody(), card: { ...orderBody().card, number: '42' } },
        400,
        'invalid_field',
        'card.number',
      ],
      [
        'an oversized body',
        { ...orderBody(), description: 'x'.repeat(20_000) },
        413,
        'payload_too_large',
        undefined,
      ],
      [
        'a card number in the description',
        { ...orderBody(), description: `for ${approved}` },
        400,
        'card_number_in_text',
        'description',
      ],
    ])('answers %s with problem+json', async (_name, body, status, code, param) => {
      const response = await post(keyA, newKey(), body);
      expect(response.status).toBe(status);
      expect(response.headers.get('content-type')).toContain('application/problem+json');
      expect(response.json).toMatchObject({ status, code });
      if (param !== undefined) expect(response.json.param).toBe(param);
    });

    it.skipIf(store === 'postgres')('requires an Idempotency-Key and a valid API key', async () => {
      expect((await post(keyA, undefined, orderBody())).json.code).toBe('idempotency_key_missing');
      const unauthorized = await post('sk_wrong', newKey(), orderBody());
      expect(unauthorized.status).toBe(401);
      expect(unauthorized.json.code).toBe('unauthorized');
    });

    it('fails an order the bank cannot take before its deadline, and the ledger shows no charge', async () => {
      const port = new URL(bank.url).port;
      await bank.kill('SIGTERM');
      const { status, json } = await post(keyA, newKey(), orderBody(), { prefer: 'wait=1' });
      expect(status).toBe(202);
      expect(json.status).toBe('validated');
      // Past the 3 s deadline the gateway must still not say "failed": the bank has confirmed nothing yet.
      await new Promise((resolve) => setTimeout(resolve, 3_500));
      expect((await getOrder(keyA, String(json.id))).json.status).toBe('validated');
      bank = await startRemit(['bank', '--port', port, '--data', bankDir]);
      const failed = await untilTerminal(keyA, String(json.id));
      expect(failed).toMatchObject({ status: 'failed', reason: 'deadline_exceeded' });
      const payment = (await ledger()).payments.find((entry) => entry.reference === json.id);
      expect(payment?.status).toBe('cancelled');
    }, 60_000);

    it('after a SIGKILL with orders in flight, a restart finishes every order and nothing is charged twice', async () => {
      await fetch(`${bank.url}/v1/faults`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: '{"latencyMs":300}',
      });
      const cards = [approved, declined, '5555555555554444'];
      const keys = Array.from({ length: 24 }, () => newKey());
      const bodies = keys.map((_, i) => orderBody(cards[i % cards.length], 100 + i));
      const accepted = await Promise.all(
        keys.map((key, i) => post(keyA, key, bodies[i], { prefer: 'wait=0' })),
      );
      const ids = accepted.map((response) => String(response.json.id));
      expect(accepted.every((response) => response.status === 202 || response.status === 201)).toBe(true);
      gatewayOutputs.push(gateway.output());
      await gateway.kill('SIGKILL');
      await fetch(`${bank.url}/v1/faults`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: '{"latencyMs":0}',
      });
      auditor = new BankClient({ baseUrl: bank.url, requestTimeoutMs: 10_000, connections: 1 });
      gateway = await startRemit(gatewayArgs(bank.url));
      const finished = await Promise.all(ids.map((id) => untilTerminal(keyA, id)));
      const payments = new Map((await ledger()).payments.map((entry) => [entry.reference, entry]));
      for (const order of finished) {
        const payment = payments.get(order.id);
        if (order.status === 'executed') expect(payment?.status).toBe('approved');
        else expect(payment?.status).not.toBe('approved');
      }
      expect(finished.filter((order) => order.status === 'executed').length).toBeGreaterThan(0);
      // A client retrying after the crash gets the same order back, marked as a replay.
      const retried = await post(keyA, keys[0], bodies[0]);
      expect(retried.json.id).toBe(ids[0]);
      expect(retried.headers.get('idempotent-replayed')).toBe('true');
    }, 90_000);

    it.skipIf(store === 'postgres')(
      "runs the terminal banner's quickstart curl as built, and keeps it out of the log",
      async () => {
        // Standard output here is a pipe, not a terminal: the banner (and its test card) is not shown.
        expect(gateway.output()).not.toContain('curl ');
        const command = quickstartCommand(gateway.url, dataDir);
        const { stdout } = await promisify(execFile)('bash', ['-c', command]);
        expect(JSON.parse(stdout)).toMatchObject({ status: 'executed', amount: 1250 });
      },
    );

    it.skipIf(store === 'postgres')("runs the README's quickstart curl as written (port aside)", async () => {
      const readme = readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8');
      const block = readme.match(/```sh\n(curl -s -X POST [\s\S]*?)```/)?.[1];
      expect(block).toBeDefined();
      const command = String(block).replaceAll('http://127.0.0.1:8080', gateway.url);
      const { stdout } = await promisify(execFile)('bash', ['-c', command], { cwd: dirname(dataDir) });
      expect(JSON.parse(stdout)).toMatchObject({ status: 'executed', amount: 1250, currency: 'EUR' });
    });

    it.skipIf(store === 'postgres')(
      "runs the README's refund examples as written, in one shell (port aside), and the bank refunds once",
      async () => {
        const readme = readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8');
        const section = readme.match(/\n### Refunds\n([\s\S]*?)\n##/)?.[1] ?? '';
        const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => String(match[1]));
        expect(blocks).toHaveLength(4);
        // The blocks run as one script, so the variables of the first reach the others; a marker
        // between them splits the output into each block's answer.
        const marker = '<<<readme block>>>';
        const script = blocks
          .map((block) => block.replaceAll('http://127.0.0.1:8080', gateway.url))
          .join(`printf '\\n%s\\n' '${marker}'\n`);
        const { stdout } = await promisify(execFile)('bash', ['-e', '-c', script], { cwd: dirname(dataDir) });
        const answers = stdout
          .split(`\n${marker}\n`)
          .map((part) => JSON.parse(part) as Record<string, unknown>);
        expect(answers).toHaveLength(4);
        const [created, listed, got, exceeding] = answers;
        expect(created).toMatchObject({
          id: expect.stringMatching(/^re_/),
          orderId: expect.stringMatching(/^ord_/),
          status: expect.stringMatching(/^(pending|succeeded)$/),
          amount: 500,
          currency: 'EUR',
          reason: 'one of two mugs returned',
          failureReason: null,
        });
        const refundId = String(created?.id);
        const orderId = String(created?.orderId);
        expect(listed).toEqual({ data: [expect.objectContaining({ id: refundId, amount: 500 })] });
        expect(got).toMatchObject({ id: refundId, orderId, amount: 500 });
        expect(exceeding).toMatchObject({ status: 422, code: 'refund_exceeds_payment' });
        expect(String(exceeding?.detail)).toContain('750');

        // The refund reaches the bank once and succeeds; the order then shows it.
        await expect
          .poll(async () => (await getOrder(keyA, orderId)).json.amountRefunded, { timeout: 15_000 })
          .toBe(500);
        const refund = await fetch(`${gateway.url}/v1/refunds/${refundId}`, {
          headers: { authorization: `Bearer ${keyA}` },
        });
        expect(await refund.json()).toMatchObject({ status: 'succeeded', failureReason: null });
        const atBank = (await auditor.ledger('merchant-a')).refunds.filter(
          (entry) => entry.reference === refundId,
        );
        expect(atBank).toEqual([
          expect.objectContaining({ paymentReference: orderId, amount: 500n, status: 'succeeded' }),
        ]);
        const events = await fetch(`${gateway.url}/v1/orders/${orderId}/events`, {
          headers: { authorization: `Bearer ${keyA}` },
        });
        const types = ((await events.json()) as { data: Array<{ type: string }> }).data.map(
          (entry) => entry.type,
        );
        expect(types).toEqual(
          expect.arrayContaining(['OrderExecuted', 'RefundRequested', 'RefundSucceeded']),
        );
      },
      60_000,
    );

    it('answers metrics, readiness and the OpenAPI document', async () => {
      expect((await fetch(`${gateway.url}/health/ready`)).status).toBe(200);
      const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
      expect(metrics).toContain('remit_journal_transactions_total');
      expect(metrics).toContain('remit_http_request_duration_seconds');
      // The orders of the tests before this one were committed, each batch timed.
      const commits = metrics.match(/^remit_journal_commit_duration_seconds_count (\d+)$/m)?.[1];
      expect(Number(commits)).toBeGreaterThan(0);
      const openapi = (await (await fetch(`${gateway.url}/openapi.json`)).json()) as {
        paths: Record<string, unknown>;
      };
      expect(Object.keys(openapi.paths)).toEqual(
        expect.arrayContaining([
          '/v1/orders',
          '/v1/orders/{id}',
          '/v1/orders/{id}/refunds',
          '/v1/refunds/{id}',
          '/v1/webhook-endpoints',
          '/v1/webhook-endpoints/{id}',
          '/v1/webhook-endpoints/{id}/disable',
          '/v1/webhook-endpoints/{id}/enable',
          '/v1/webhook-endpoints/{id}/rotate-secret',
          '/v1/webhook-endpoints/{id}/deliveries',
          '/v1/webhook-deliveries/{id}',
          '/v1/webhook-deliveries/{id}/resend',
        ]),
      );
      expect((await fetch(`${gateway.url}/docs/`)).status).toBe(200);
      // One access-log line per request, naming the route.
      expect(gateway.output()).not.toContain('"incoming request"');
      // The child's log reaches this process through a pipe, a moment after the answer.
      await expect.poll(() => gateway.output(), { timeout: 5_000 }).toContain('"route":"/metrics"');
    });

    it.skipIf(store === 'postgres')(
      'refuses bad configuration with a clear message and exit code 2',
      async () => {
        const run = promisify(execFile);
        const mainPath = join(import.meta.dirname, 'main.ts');
        const failure = await run(
          process.execPath,
          ['--import', 'tsx', mainPath, 'start', '--port', 'eighty'],
          {
            env: { ...process.env },
          },
        ).catch((error: { code: number; stderr: string }) => error);
        expect(failure).toMatchObject({ code: 2 });
        expect((failure as { stderr: string }).stderr).toContain('invalid --port');
      },
    );

    it('stops cleanly on SIGTERM, and says so in its last line', async () => {
      expect(await gateway.kill('SIGTERM')).toBe(0);
      const lines = gateway.output().trimEnd().split('\n');
      expect(JSON.parse(lines.at(-1) ?? '')).toMatchObject({ msg: 'gateway stopped' });
      gatewayOutputs.push(gateway.output());
    });

    it('writes every log line as JSON with each key once', () => {
      const lines = [...gatewayOutputs, gateway.output(), bank.output()]
        .join('\n')
        .split('\n')
        .filter((line) => line.startsWith('{'));
      expect(lines.length).toBeGreaterThan(0);
      // JSON.parse keeps one of a repeated key, so the line written again from it has fewer keys.
      const keysIn = (text: string): number => text.match(/"[^"]*":/g)?.length ?? 0;
      for (const line of lines) expect(keysIn(line), line).toBe(keysIn(JSON.stringify(JSON.parse(line))));
    });

    it('leaves no card number in the data folder or the logs', async () => {
      const logs = [...gatewayOutputs, gateway.output()].join('\n');
      for (const card of [...usedCards, quickstartCard]) expect(logs).not.toContain(card);
      for (const file of filesUnder(dataDir)) {
        const bytes = readFileSync(file);
        for (const card of [...usedCards, quickstartCard, '4111111111111112'])
          expect(bytes.includes(Buffer.from(card)), `${card} found in ${file}`).toBe(false);
      }
      // On PostgreSQL the stores are the schema's tables: every row of every one, as text.
      if (store === 'postgres') {
        const text = await schemaText(inject('postgresUrl'), schema);
        expect(text.length).toBeGreaterThan(0);
        for (const card of [...usedCards, quickstartCard, '4111111111111112'])
          expect(text.includes(card), `${card} found in schema ${schema}`).toBe(false);
      }
    });
  });
});

/** Every row of every table in the schema, as PostgreSQL writes a row as text. */
async function schemaText(url: string, schema: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const tables = await client.query<{ table_name: string }>(
      'SELECT table_name FROM information_schema.tables WHERE table_schema = $1',
      [schema],
    );
    const texts: string[] = [];
    for (const { table_name } of tables.rows) {
      const rows = await client.query<{ row: string }>(
        `SELECT t::text AS row FROM ${client.escapeIdentifier(schema)}.${client.escapeIdentifier(table_name)} t`,
      );
      texts.push(...rows.rows.map((row) => row.row));
    }
    return texts.join('\n');
  } finally {
    await client.end();
  }
}

function filesUnder(directory: string): string[] {
  return readdirSync(directory).flatMap((name) => {
    const path = join(directory, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}
