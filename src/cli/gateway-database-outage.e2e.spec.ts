/**
 * The node on PostgreSQL losing its database under load, end to end: a real bank process and a
 * real gateway process (`remit start --database-url`) on an embedded PostgreSQL of this test's own,
 * which it SIGKILLs while orders stream in and then starts again.
 *
 * What must hold: the gateway neither crashes nor hangs (every request is answered while the
 * database is gone), `/health/ready` answers 503 while the database does not answer and 200 once
 * it does again; afterwards every order is terminal — those the gateway accepted, and those it
 * refused during the outage once the client retries them with the same key — and the bank's
 * ledger, the ground truth, agrees with Remit: every executed order charged exactly once, and
 * nothing charged that Remit reports as not executed.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BankClient } from '../bank/bank-client.js';
import { type RunningPostgres, startEmbeddedPostgres } from '../store/postgres/embedded-postgres.js';
import { type RemitProcess, startRemit } from '../testing/processes.js';

const cards = ['4111111111111111', '4000000000000002', '5555555555554444'];
/** Every request gets an answer within this, or the gateway hangs. */
const requestTimeoutMs = 20_000;
/** Concurrent clients sending orders. */
const clients = 6;

interface OrderJson {
  readonly id: string;
  readonly status: string;
}

interface SentOrder {
  readonly key: string;
  readonly body: unknown;
  /** The order's id once a request was answered with the order (201 or 202). */
  id: string | undefined;
}

let database: RunningPostgres;
let bank: RemitProcess;
let gateway: RemitProcess;
let auditor: BankClient;
let folder: string;
let apiKey: string;

beforeAll(async () => {
  folder = mkdtempSync(join(tmpdir(), 'remit-e2e-outage-'));
  // Durable (fsync on, synchronous commits), so a commit the node was told of survives the kill.
  database = await startEmbeddedPostgres({ durable: true, connectionsMax: 60 });
  bank = await startRemit(['bank', '--port', '0', '--data', join(folder, 'bank')]);
  auditor = new BankClient({ baseUrl: bank.url, requestTimeoutMs: 10_000, connections: 1 });
  gateway = await startRemit([
    'start',
    '--port',
    '0',
    '--data',
    join(folder, 'data'),
    '--bank-url',
    bank.url,
    '--database-url',
    database.url,
    '--database-statement-timeout-ms',
    '5000',
  ]);
  const credentials = JSON.parse(readFileSync(join(folder, 'data', 'credentials.json'), 'utf8')) as {
    merchants: Array<{ id: string; apiKey: string }>;
  };
  apiKey = credentials.merchants[0]?.apiKey ?? '';
}, 90_000);

afterAll(async () => {
  await gateway?.kill('SIGTERM');
  await auditor?.close();
  await bank?.kill('SIGTERM');
  await database?.stop();
  rmSync(folder, { recursive: true, force: true });
}, 90_000);

async function post(order: SentOrder): Promise<number> {
  const response = await fetch(`${gateway.url}/v1/orders`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${apiKey}`,
      'content-type': 'application/json',
      'idempotency-key': order.key,
      prefer: 'wait=1',
    },
    body: JSON.stringify(order.body),
    signal: AbortSignal.timeout(requestTimeoutMs),
  });
  const json = (await response.json()) as Partial<OrderJson>;
  if ((response.status === 201 || response.status === 202) && typeof json.id === 'string') order.id = json.id;
  return response.status;
}

async function ready(): Promise<number> {
  return (await fetch(`${gateway.url}/health/ready`, { signal: AbortSignal.timeout(requestTimeoutMs) }))
    .status;
}

async function until(condition: () => Promise<boolean>, what: string, attemptsMax = 600): Promise<void> {
  for (let attempt = 0; attempt < attemptsMax; attempt++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${what} did not happen`);
}

async function untilTerminal(id: string): Promise<OrderJson> {
  let last: OrderJson | undefined;
  await until(async () => {
    const response = await fetch(`${gateway.url}/v1/orders/${id}`, {
      headers: { authorization: `Bearer ${apiKey}` },
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
    if (response.status !== 200) return false;
    last = (await response.json()) as OrderJson;
    return ['executed', 'declined', 'rejected', 'failed'].includes(last.status);
  }, `order ${id} finishing`);
  if (last === undefined) throw new Error(`order ${id} not read`);
  return last;
}

/** The gateway's log lines of requests that failed as a bug, for the assertion's message. */
function failedRequests(output: string): string {
  return output
    .split('\n')
    .filter((line) => line.includes('"request failed"'))
    .slice(0, 5)
    .join('\n');
}

describe('remit on PostgreSQL, the database lost under load', () => {
  it('refuses to start without its database: one sentence, no password, exit code 2', async () => {
    const mainPath = join(import.meta.dirname, 'main.ts');
    const args = ['--import', 'tsx', mainPath, 'start', '--port', '0', '--bank-port', '0'];
    const failure = await promisify(execFile)(
      process.execPath,
      [
        ...args,
        '--data',
        join(folder, 'unreachable'),
        '--database-url',
        'postgresql://remit:hunter2@127.0.0.1:1/remit',
      ],
      { env: { ...process.env } },
    ).catch((error: { code: number; stderr: string }) => error);
    expect(failure).toMatchObject({ code: 2 });
    const stderr = (failure as { stderr: string }).stderr;
    expect(stderr.trim()).toMatch(/^remit: cannot reach PostgreSQL at 127\.0\.0\.1:1\/remit: [^\n]+$/);
    expect(stderr).not.toContain('hunter2');
  });

  it('turns unready, recovers, and leaves every order terminal and charged at most once', async () => {
    const sent: SentOrder[] = [];
    const statuses = new Map<number, number>();
    let sending = true;
    const client = async (index: number): Promise<void> => {
      for (let i = 0; sending; i++) {
        const order: SentOrder = {
          key: `outage-${index}-${i}`,
          body: {
            amount: 100 + sent.length,
            currency: 'EUR',
            card: { number: cards[sent.length % cards.length], expMonth: 12, expYear: 2030, cvc: '123' },
          },
          id: undefined,
        };
        sent.push(order);
        // A request that is not answered in time rejects, and fails the test: the gateway hangs.
        const status = await post(order);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
    };
    const load = Array.from({ length: clients }, (_, index) => client(index));

    await until(async () => sent.filter((order) => order.id !== undefined).length >= 30, 'orders accepted');
    await database.kill();
    await until(async () => (await ready()) === 503, 'readiness turning 503');
    // The load goes on against a gateway without its database for a while: answered, never hung.
    const sentBefore = sent.length;
    await until(async () => sent.length >= sentBefore + 2 * clients, 'requests answered during the outage');
    // The read routes too: orders and webhook endpoints, whose store is the same database.
    for (const path of ['/v1/orders?limit=1', '/v1/webhook-endpoints']) {
      const response = await fetch(`${gateway.url}${path}`, {
        headers: { authorization: `Bearer ${apiKey}` },
        signal: AbortSignal.timeout(requestTimeoutMs),
      });
      expect([path, response.status, ((await response.json()) as { code?: string }).code]).toEqual([
        path,
        503,
        'store_unavailable',
      ]);
      expect(response.headers.get('retry-after')).toBe('1');
    }
    await database.restart();
    await until(async () => (await ready()) === 200, 'readiness turning 200 again');
    const acceptedAfter = sent.filter((order) => order.id !== undefined).length;
    await until(
      async () => sent.filter((order) => order.id !== undefined).length >= acceptedAfter + 10,
      'orders accepted after the database came back',
    );
    sending = false;
    await Promise.all(load);

    // The client retries every order it got no order for, with the same key, until it gets one.
    for (const order of sent.filter((each) => each.id === undefined)) {
      await until(async () => {
        await post(order);
        return order.id !== undefined;
      }, `retry of ${order.key} answered with its order`);
    }
    const finished = await Promise.all(sent.map((order) => untilTerminal(order.id ?? '')));
    expect(gateway.child.exitCode).toBeNull();
    // An outage is answered as one (503, retry), never as a bug.
    expect(statuses.get(500) ?? 0, failedRequests(gateway.output())).toBe(0);

    const ledger = await auditor.ledger();
    const byReference = new Map<string, number>();
    for (const payment of ledger.payments)
      byReference.set(payment.reference, (byReference.get(payment.reference) ?? 0) + 1);
    const approved = new Set(
      ledger.payments.filter((payment) => payment.status === 'approved').map((payment) => payment.reference),
    );
    for (const order of finished) {
      expect(byReference.get(order.id) ?? 0, `ledger records of ${order.id}`).toBeLessThanOrEqual(1);
      expect(approved.has(order.id), `${order.id} is ${order.status}`).toBe(order.status === 'executed');
    }
    const ids = new Set(finished.map((order) => order.id));
    for (const reference of approved)
      expect(ids.has(reference), `charged ${reference} unknown to Remit`).toBe(true);
    expect(finished.filter((order) => order.status === 'executed').length).toBeGreaterThan(0);
  }, 240_000);
});
