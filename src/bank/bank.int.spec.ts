import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Clock, SimulatedClock, systemClock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import { type AuthorizeRequest, BankClient, type RefundRequest } from './bank-client.js';
import {
  BankAnswerWithheldError,
  BankConnectionLostError,
  BankRejectedError,
  BankTimeoutError,
  BankUnavailableError,
} from './bank-errors.js';
import { type BankServerSettings, type RunningBankServer, startBankServer } from './bank-server.js';

/**
 * The bank simulator and its client over real HTTP on 127.0.0.1, with the ledger in a temporary
 * directory. Each test starts its own server (and client) and everything is closed and removed
 * afterwards. The bank's clock is simulated and fixed at 15 June 2026, so card expiry is
 * deterministic; tests that need time to pass (latency) use the system clock instead. Outcomes
 * drawn from the Random use a seed, and fault rates are 0 or 1, so every run is the same.
 */

const bankNow = Date.UTC(2026, 5, 15, 12, 0, 0);

/** The refund totals of a ledger that has none. */
const noRefunds = {
  refunds: 0,
  refundsSucceeded: 0,
  refundsFailed: 0,
  refundRequests: 0,
  duplicateRefundRequests: 0,
  refundedAmountByCurrency: {},
};
const visa = '4242424242424242';
const mastercard = '5555555555554444';

function payment(reference: string, overrides: Partial<AuthorizeRequest> = {}): AuthorizeRequest {
  return {
    reference,
    merchantId: 'merchant-1',
    amount: 1_250n,
    currency: 'EUR',
    card: { number: visa, expMonth: 12, expYear: 2030 },
    ...overrides,
  };
}

function refund(reference: string, overrides: Partial<RefundRequest> = {}): RefundRequest {
  return { reference, paymentReference: 'order-1', amount: 500n, currency: 'EUR', ...overrides };
}

/** Every log line as JSON, to prove no line ever carries a card number. */
function capturingLogger(lines: string[], bindings: object = {}): Logger {
  const write =
    (level: string) =>
    (fields: object, message: string): void => {
      lines.push(JSON.stringify({ level, ...bindings, ...fields, message }));
    };
  return {
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    child: (more) => capturingLogger(lines, { ...bindings, ...more }),
  };
}

describe('bank simulator over HTTP', () => {
  let dataDir: string;
  let clock: SimulatedClock;
  let logLines: string[];
  const servers: RunningBankServer[] = [];
  const clients: BankClient[] = [];

  const start = async (
    options: { clock?: Clock; settings?: Partial<BankServerSettings> } = {},
  ): Promise<RunningBankServer> => {
    const server = await startBankServer({
      port: 0,
      dataDir,
      clock: options.clock ?? clock,
      random: new SeededRandom(42),
      logger: capturingLogger(logLines),
      settings: options.settings,
    });
    servers.push(server);
    return server;
  };

  /** `alone`: every authorization its own `POST /v1/payments` instead of a batch. */
  const connect = (server: RunningBankServer, requestTimeoutMs = 5_000, alone = false): BankClient => {
    const client = new BankClient({
      baseUrl: server.url,
      requestTimeoutMs,
      connections: 4,
      ...(alone ? { authorizationBatchMax: 1 } : {}),
    });
    clients.push(client);
    return client;
  };

  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remit-bank-'));
    clock = new SimulatedClock(bankNow);
    logLines = [];
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    await Promise.all(servers.splice(0).map((server) => server.close()));
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('approves a valid card with a six-character authorization code and records it', async () => {
    const server = await start();
    const client = connect(server);

    const answer = await client.authorize(payment('order-1'));

    expect(answer.kind).toBe('approved');
    if (answer.kind !== 'approved') return;
    expect(answer.reference).toBe('order-1');
    expect(answer.authorizationCode).toMatch(/^[A-Z0-9]{6}$/);
    expect(await client.inquire('order-1')).toEqual(answer);
    const ledger = await client.ledger();
    expect(ledger.payments).toEqual([
      {
        reference: 'order-1',
        merchantId: 'merchant-1',
        amount: 1_250n,
        currency: 'EUR',
        status: 'approved',
        authorizationCode: answer.authorizationCode,
        cardBrand: 'visa',
        cardBin: '424242',
        cardLast4: '4242',
        createdAt: new Date(bankNow).toISOString(),
        updatedAt: new Date(bankNow).toISOString(),
        requestCount: 1,
      },
    ]);
  });

  it('declines the test cards with their fixed reasons', async () => {
    const client = connect(await start());

    const declined = await client.authorize(
      payment('order-1', { card: { number: '4000000000000002', expMonth: 1, expYear: 2030 } }),
    );
    const insufficient = await client.authorize(
      payment('order-2', { card: { number: '4000000000009995', expMonth: 1, expYear: 2030 } }),
    );

    expect(declined).toEqual({ kind: 'declined', reference: 'order-1', declineReason: 'card_declined' });
    expect(insufficient).toEqual({
      kind: 'declined',
      reference: 'order-2',
      declineReason: 'insufficient_funds',
    });
    const totals = (await client.ledger()).totals;
    expect(totals).toMatchObject({ payments: 2, approved: 0, declined: 2, approvedAmountByCurrency: {} });
  });

  it('declines a card that expired before the current month and approves one expiring this month', async () => {
    const client = connect(await start());

    const expired = await client.authorize(
      payment('order-1', { card: { number: mastercard, expMonth: 5, expYear: 2026 } }),
    );
    const lastMonth = await client.authorize(
      payment('order-2', { card: { number: mastercard, expMonth: 6, expYear: 2026 } }),
    );

    expect(expired).toEqual({ kind: 'declined', reference: 'order-1', declineReason: 'expired_card' });
    expect(lastMonth.kind).toBe('approved');
  });

  it('refuses a card number failing the Luhn check with 422 invalid_card and records nothing', async () => {
    const client = connect(await start());

    const failure = await client
      .authorize(payment('order-1', { card: { number: '4242424242424241', expMonth: 12, expYear: 2030 } }))
      .catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(BankRejectedError);
    expect(failure).toMatchObject({ status: 422, code: 'invalid_card', retryable: false });
    expect(String(failure)).not.toContain('4242424242424241');
    expect(await client.inquire('order-1')).toEqual({ kind: 'not_found', reference: 'order-1' });
  });

  it('answers a repeated reference with the first answer and charges it once', async () => {
    const client = connect(await start());

    const first = await client.authorize(payment('order-1'));
    clock.advance(1_000);
    const second = await client.authorize(payment('order-1'));

    expect(second).toEqual(first);
    const ledger = await client.ledger();
    expect(ledger.payments).toHaveLength(1);
    expect(ledger.payments[0]).toMatchObject({
      requestCount: 2,
      createdAt: new Date(bankNow).toISOString(),
      updatedAt: new Date(bankNow + 1_000).toISOString(),
    });
    expect(ledger.totals).toEqual({
      ...noRefunds,
      payments: 1,
      approved: 1,
      declined: 0,
      cancelled: 0,
      requests: 2,
      duplicateRequests: 1,
      rejectedRequests: 0,
      approvedAmountByCurrency: { EUR: 1_250n },
    });
  });

  it('refuses a known reference with another merchant, amount, currency or card with 409, charging nothing', async () => {
    const client = connect(await start());
    await client.authorize(payment('order-1'));

    const conflicts = [
      payment('order-1', { merchantId: 'merchant-2' }),
      payment('order-1', { amount: 1_251n }),
      payment('order-1', { currency: 'USD' }),
      payment('order-1', { card: { number: mastercard, expMonth: 12, expYear: 2030 } }),
    ];
    for (const conflict of conflicts) {
      const failure = await client.authorize(conflict).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(BankRejectedError);
      expect(failure).toMatchObject({ status: 409, code: 'reference_conflict' });
    }

    const ledger = await client.ledger();
    expect(ledger.payments).toHaveLength(1);
    expect(ledger.payments[0]).toMatchObject({ merchantId: 'merchant-1', amount: 1_250n, requestCount: 5 });
    expect(ledger.totals).toMatchObject({
      payments: 1,
      approved: 1,
      approvedAmountByCurrency: { EUR: 1_250n },
    });
  });

  it('reports a reference it never saw as not found', async () => {
    const client = connect(await start());
    expect(await client.inquire('never-sent')).toEqual({ kind: 'not_found', reference: 'never-sent' });
  });

  it('inquires references that need percent-encoding', async () => {
    const client = connect(await start());
    const reference = 'order/1 ?#é';
    const answer = await client.authorize(payment(reference));
    expect(await client.inquire(reference)).toEqual(answer);
  });

  it('sums the ledger per currency and filters it by merchant', async () => {
    const client = connect(await start());
    await client.authorize(payment('order-1', { amount: 100n }));
    await client.authorize(payment('order-2', { amount: 250n }));
    await client.authorize(payment('order-3', { amount: 7n, currency: 'USD', merchantId: 'merchant-2' }));
    await client.authorize(
      payment('order-4', { card: { number: '4000000000000002', expMonth: 1, expYear: 2030 } }),
    );

    const all = await client.ledger();
    const merchant2 = await client.ledger('merchant-2');

    expect(all.payments.map((entry) => entry.reference)).toEqual([
      'order-1',
      'order-2',
      'order-3',
      'order-4',
    ]);
    expect(all.totals).toEqual({
      ...noRefunds,
      payments: 4,
      approved: 3,
      declined: 1,
      cancelled: 0,
      requests: 4,
      duplicateRequests: 0,
      rejectedRequests: 0,
      approvedAmountByCurrency: { EUR: 350n, USD: 7n },
    });
    expect(merchant2.payments.map((entry) => entry.reference)).toEqual(['order-3']);
    expect(merchant2.totals.approvedAmountByCurrency).toEqual({ USD: 7n });
  });

  describe('faults', () => {
    it('declineRate 1 declines would-be-approved payments with do_not_honor', async () => {
      const client = connect(await start());
      expect(await client.setFaults({ declineRate: 1 })).toEqual({
        latencyMs: 0,
        declineRate: 1,
        errorRate: 0,
        timeoutRate: 0,
      });

      expect(await client.authorize(payment('order-1'))).toEqual({
        kind: 'declined',
        reference: 'order-1',
        declineReason: 'do_not_honor',
      });
    });

    it('errorRate 1 answers 503 without recording anything', async () => {
      const client = connect(await start());
      await client.setFaults({ errorRate: 1 });

      const failure = await client.authorize(payment('order-1')).catch((error: unknown) => error);

      expect(failure).toBeInstanceOf(BankUnavailableError);
      expect(failure).toMatchObject({
        status: 503,
        code: 'bank_unavailable',
        retryable: true,
        outcomeUnknown: false,
      });
      expect(await client.inquire('order-1')).toEqual({ kind: 'not_found', reference: 'order-1' });
      const ledger = await client.ledger();
      expect(ledger.payments).toEqual([]);
      expect(ledger.totals).toMatchObject({ payments: 0, requests: 0, rejectedRequests: 1 });
    });

    it('faults do not touch a reference the bank already answered', async () => {
      const client = connect(await start());
      const first = await client.authorize(payment('order-1'));
      await client.setFaults({ errorRate: 1, declineRate: 1, timeoutRate: 1 });

      expect(await client.authorize(payment('order-1'))).toEqual(first);
    });

    it('timeoutRate 1 charges a payment sent alone but never answers: the client times out, an inquiry finds it', async () => {
      const server = await start();
      const client = connect(server, 200, true);
      await client.setFaults({ timeoutRate: 1 });

      const failure = await client.authorize(payment('order-1')).catch((error: unknown) => error);

      expect(failure).toBeInstanceOf(BankTimeoutError);
      expect(failure).toMatchObject({ outcomeUnknown: true, retryable: false, timeoutMs: 200 });
      const status = await client.inquire('order-1');
      expect(status.kind).toBe('approved');
      expect((await client.ledger()).totals).toMatchObject({ payments: 1, approved: 1, requests: 1 });
    });

    it('a held answer ends with the connection destroyed when the hold elapses on the bank clock', async () => {
      const server = await start({ settings: { timeoutHoldMs: 60_000 } });
      await connect(server).setFaults({ timeoutRate: 1 });

      const outcome = rawPost(server.url, payment('order-1'));
      await waitFor(() => logLines.some((line) => line.includes('"held":true')));
      clock.advance(60_000);

      await expect(outcome).rejects.toThrow(/socket hang up|ECONNRESET/);
    });

    it('timeoutRate 1 charges each payment of a batch and withholds its answer: an unknown outcome, charged', async () => {
      const client = connect(await start());
      await client.setFaults({ timeoutRate: 1 });

      const failures = await Promise.all(
        ['order-1', 'order-2'].map((reference) =>
          client.authorize(payment(reference)).catch((error: unknown) => error),
        ),
      );

      for (const [index, failure] of failures.entries()) {
        expect(failure).toBeInstanceOf(BankAnswerWithheldError);
        expect(failure).toMatchObject({
          outcomeUnknown: true,
          retryable: false,
          reference: `order-${index + 1}`,
        });
      }
      expect((await client.inquire('order-1')).kind).toBe('approved');
      expect((await client.inquire('order-2')).kind).toBe('approved');
      expect((await client.ledger()).totals).toMatchObject({ payments: 2, approved: 2, requests: 2 });
    });

    it('beyond heldResponsesMax a timed-out answer is cut at once: an unknown outcome, charged', async () => {
      const server = await start({ settings: { heldResponsesMax: 0 } });
      const client = connect(server, 5_000, true);
      await client.setFaults({ timeoutRate: 1 });

      const failure = await client.authorize(payment('order-1')).catch((error: unknown) => error);

      expect(failure).toBeInstanceOf(BankConnectionLostError);
      expect(failure).toMatchObject({ outcomeUnknown: true });
      expect((await client.inquire('order-1')).kind).toBe('approved');
    });

    it('latencyMs delays answers but they still arrive', async () => {
      const server = await start({ clock: systemClock });
      const client = connect(server);
      await client.setFaults({ latencyMs: 30 });

      expect((await client.authorize(payment('order-1'))).kind).toBe('approved');
      expect((await client.authorize(payment('order-1'))).kind).toBe('approved');
    });
  });

  describe('cancel', () => {
    const cancelledRecord = (reference: string, requestCount: number, merchantId = '') => ({
      reference,
      merchantId,
      amount: 0n,
      status: 'cancelled',
      createdAt: new Date(bankNow).toISOString(),
      updatedAt: new Date(bankNow).toISOString(),
      requestCount,
    });

    it('cancels a reference it never saw for good: a later payment of it is declined and charges nothing', async () => {
      const client = connect(await start());

      expect(await client.cancel('order-1')).toEqual({ kind: 'cancelled', reference: 'order-1' });
      const late = await client.authorize(payment('order-1'));

      expect(late).toEqual({ kind: 'declined', reference: 'order-1', declineReason: 'reference_cancelled' });
      expect(await client.inquire('order-1')).toEqual({ kind: 'cancelled', reference: 'order-1' });
      const ledger = await client.ledger();
      expect(ledger.payments).toEqual([cancelledRecord('order-1', 2)]);
      expect(ledger.totals).toEqual({
        ...noRefunds,
        payments: 1,
        approved: 0,
        declined: 0,
        cancelled: 1,
        requests: 2,
        duplicateRequests: 1,
        rejectedRequests: 0,
        approvedAmountByCurrency: {},
      });
    });

    it('refuses every later payment of a cancelled reference, whatever it carries, and faults do not apply', async () => {
      const client = connect(await start());
      await client.cancel('order-1');
      await client.setFaults({ errorRate: 1, timeoutRate: 1 });

      for (const request of [
        payment('order-1'),
        payment('order-1', { merchantId: 'merchant-2', amount: 9n, currency: 'USD' }),
        payment('order-1', { card: { number: '4242424242424241', expMonth: 12, expYear: 2030 } }),
      ]) {
        expect(await client.authorize(request)).toEqual({
          kind: 'declined',
          reference: 'order-1',
          declineReason: 'reference_cancelled',
        });
      }
      expect((await client.ledger()).totals).toMatchObject({ approved: 0, cancelled: 1, requests: 4 });
    });

    it('is too late for an approved payment: it answers the approval and counts the request', async () => {
      const client = connect(await start());
      const approved = await client.authorize(payment('order-1'));
      clock.advance(1_000);

      expect(await client.cancel('order-1')).toEqual(approved);
      expect(await client.inquire('order-1')).toEqual(approved);
      const ledger = await client.ledger();
      expect(ledger.payments[0]).toMatchObject({
        status: 'approved',
        amount: 1_250n,
        requestCount: 2,
        updatedAt: new Date(bankNow + 1_000).toISOString(),
      });
      expect(ledger.totals).toMatchObject({
        approved: 1,
        cancelled: 0,
        approvedAmountByCurrency: { EUR: 1_250n },
      });
    });

    it('answers a declined payment with its decline', async () => {
      const client = connect(await start());
      const declined = await client.authorize(
        payment('order-1', { card: { number: '4000000000000002', expMonth: 1, expYear: 2030 } }),
      );

      expect(await client.cancel('order-1')).toEqual(declined);
      expect((await client.ledger()).totals).toMatchObject({ declined: 1, cancelled: 0, requests: 2 });
    });

    it('is idempotent: cancelling again answers cancelled and counts the request', async () => {
      const client = connect(await start());

      expect(await client.cancel('order-1', 'merchant-1')).toEqual({
        kind: 'cancelled',
        reference: 'order-1',
      });
      expect(await client.cancel('order-1')).toEqual({ kind: 'cancelled', reference: 'order-1' });

      const ledger = await client.ledger('merchant-1');
      expect(ledger.payments).toEqual([cancelledRecord('order-1', 2, 'merchant-1')]);
      expect(ledger.totals).toMatchObject({ payments: 1, cancelled: 1, requests: 2, duplicateRequests: 1 });
    });

    it('cancels references that need percent-encoding', async () => {
      const client = connect(await start());
      const reference = 'order/1 ?#é';
      expect(await client.cancel(reference)).toEqual({ kind: 'cancelled', reference });
      expect(await client.inquire(reference)).toEqual({ kind: 'cancelled', reference });
    });

    it('lists cancelled records beside payments and never counts them as charged', async () => {
      const client = connect(await start());
      await client.authorize(payment('order-1', { amount: 100n }));
      await client.cancel('order-2');
      await client.authorize(
        payment('order-3', { card: { number: '4000000000009995', expMonth: 1, expYear: 2030 } }),
      );
      await client.cancel('order-1');

      const ledger = await client.ledger();
      expect(ledger.payments.map((entry) => [entry.reference, entry.status])).toEqual([
        ['order-1', 'approved'],
        ['order-2', 'cancelled'],
        ['order-3', 'declined'],
      ]);
      expect(ledger.totals).toEqual({
        ...noRefunds,
        payments: 3,
        approved: 1,
        declined: 1,
        cancelled: 1,
        requests: 4,
        duplicateRequests: 1,
        rejectedRequests: 0,
        approvedAmountByCurrency: { EUR: 100n },
      });
    });

    it('errorRate 1 answers 503 before doing anything, even for a known reference', async () => {
      const client = connect(await start());
      await client.authorize(payment('order-1'));
      await client.setFaults({ errorRate: 1 });

      for (const reference of ['order-1', 'order-2']) {
        const failure = await client.cancel(reference).catch((error: unknown) => error);
        expect(failure).toBeInstanceOf(BankUnavailableError);
        expect(failure).toMatchObject({ status: 503, code: 'bank_unavailable', operation: 'cancel' });
      }

      expect(await client.inquire('order-2')).toEqual({ kind: 'not_found', reference: 'order-2' });
      const ledger = await client.ledger();
      expect(ledger.payments.map((entry) => [entry.reference, entry.requestCount])).toEqual([['order-1', 1]]);
      expect(ledger.totals).toMatchObject({ cancelled: 0, requests: 1, rejectedRequests: 2 });
    });

    it('timeoutRate does not apply to a cancel; latencyMs does', async () => {
      const server = await start({ clock: systemClock });
      const client = connect(server, 2_000);
      await client.setFaults({ timeoutRate: 1, latencyMs: 50 });

      const startedAt = performance.now();
      expect(await client.cancel('order-1')).toEqual({ kind: 'cancelled', reference: 'order-1' });
      // Timers may fire a millisecond early against performance.now(); the point is the wait.
      expect(performance.now() - startedAt).toBeGreaterThanOrEqual(45);
    });

    it('whether a payment or a cancel of a reference comes first, the two answers agree', async () => {
      // Sent together over several connections, the two race for each reference; which is sent
      // first alternates, so both orders happen. One ledger transaction each means exactly one of
      // them creates the record, and the other answers it. Each payment goes alone: in a batch,
      // the payments would all go after the cancels sent meanwhile.
      const client = connect(await start(), 5_000, true);
      const references = Array.from({ length: 40 }, (_, index) => `order-${index}`);

      const results = await Promise.all(
        references.map(async (reference, index) => {
          if (index % 2 === 0) {
            const [paid, cancelled] = await Promise.all([
              client.authorize(payment(reference)),
              client.cancel(reference),
            ]);
            return { paid, cancelled };
          }
          const [cancelled, paid] = await Promise.all([
            client.cancel(reference),
            client.authorize(payment(reference)),
          ]);
          return { paid, cancelled };
        }),
      );

      for (const { paid, cancelled } of results) {
        if (cancelled.kind === 'cancelled')
          expect(paid.kind === 'declined' && paid.declineReason).toBe('reference_cancelled');
        else expect(cancelled).toEqual(paid);
      }
      const totals = (await client.ledger()).totals;
      const approvedCount = results.filter(({ paid }) => paid.kind === 'approved').length;
      expect(approvedCount).toBeGreaterThan(0);
      expect(approvedCount).toBeLessThan(40);
      expect(totals).toMatchObject({
        payments: 40,
        approved: approvedCount,
        cancelled: 40 - approvedCount,
        requests: 80,
      });
      expect(totals.approvedAmountByCurrency).toEqual({ EUR: 1_250n * BigInt(approvedCount) });
    });

    it('keeps a cancellation across a restart', async () => {
      const first = await start();
      await connect(first).cancel('order-1');
      await first.close();

      const after = connect(await start());

      expect(await after.inquire('order-1')).toEqual({ kind: 'cancelled', reference: 'order-1' });
      expect(await after.authorize(payment('order-1'))).toEqual({
        kind: 'declined',
        reference: 'order-1',
        declineReason: 'reference_cancelled',
      });
      expect(await after.cancel('order-1')).toEqual({ kind: 'cancelled', reference: 'order-1' });
      expect((await after.ledger()).payments).toEqual([cancelledRecord('order-1', 3)]);
    });
  });

  describe('refunds', () => {
    const rejection = (call: Promise<unknown>): Promise<unknown> => call.catch((error: unknown) => error);

    it('refunds an approved payment in parts; inquiries agree; the ledger lists every refund and sums them', async () => {
      const client = connect(await start());
      await client.authorize(payment('order-1'));
      await client.authorize(payment('order-2', { amount: 70n, currency: 'USD', merchantId: 'merchant-2' }));

      const first = await client.refund(refund('refund-1'));
      const second = await client.refund(refund('refund-2', { amount: 750n }));
      await client.refund(refund('refund-3', { paymentReference: 'order-2', amount: 70n, currency: 'USD' }));

      expect(first).toEqual({
        kind: 'succeeded',
        reference: 'refund-1',
        paymentReference: 'order-1',
        amount: 500n,
        currency: 'EUR',
      });
      expect(second).toMatchObject({ kind: 'succeeded', amount: 750n });
      expect(await client.inquireRefund('refund-1')).toEqual(first);
      expect(await client.inquireRefund('never-sent')).toEqual({
        kind: 'not_found',
        reference: 'never-sent',
      });
      const ledger = await client.ledger();
      expect(ledger.refunds).toEqual([
        {
          reference: 'refund-1',
          paymentReference: 'order-1',
          merchantId: 'merchant-1',
          amount: 500n,
          currency: 'EUR',
          status: 'succeeded',
          createdAt: new Date(bankNow).toISOString(),
          updatedAt: new Date(bankNow).toISOString(),
          requestCount: 1,
        },
        expect.objectContaining({ reference: 'refund-2', amount: 750n, status: 'succeeded' }),
        expect.objectContaining({ reference: 'refund-3', merchantId: 'merchant-2', currency: 'USD' }),
      ]);
      expect(ledger.totals).toMatchObject({
        approvedAmountByCurrency: { EUR: 1_250n, USD: 70n },
        refunds: 3,
        refundsSucceeded: 3,
        refundsFailed: 0,
        refundRequests: 3,
        duplicateRefundRequests: 0,
        refundedAmountByCurrency: { EUR: 1_250n, USD: 70n },
      });
      const merchant2 = await client.ledger('merchant-2');
      expect(merchant2.refunds.map((each) => each.reference)).toEqual(['refund-3']);
      expect(merchant2.totals.refundedAmountByCurrency).toEqual({ USD: 70n });
    });

    it('answers a repeated refund with its first answer and gives the money back once', async () => {
      const client = connect(await start());
      await client.authorize(payment('order-1'));
      const first = await client.refund(refund('refund-1', { amount: 1_250n }));

      expect(await client.refund(refund('refund-1', { amount: 1_250n }))).toEqual(first);
      expect((await client.ledger()).totals).toMatchObject({
        refunds: 1,
        refundRequests: 2,
        duplicateRefundRequests: 1,
        refundedAmountByCurrency: { EUR: 1_250n },
      });
    });

    it('refuses what cannot be refunded with a stable code, and records none of it', async () => {
      const client = connect(await start());
      await client.authorize(payment('order-1'));
      await client.authorize(
        payment('order-declined', { card: { number: '4000000000000002', expMonth: 1, expYear: 2030 } }),
      );
      await client.cancel('order-cancelled');
      await client.refund(refund('refund-1', { amount: 1_000n }));

      const cases: Array<[RefundRequest, number, string]> = [
        [refund('refund-2', { amount: 251n }), 422, 'refund_exceeds_payment'],
        [refund('refund-1', { amount: 250n }), 409, 'reference_conflict'],
        [refund('refund-3', { paymentReference: 'never-paid' }), 422, 'refund_payment_unknown'],
        [refund('refund-4', { paymentReference: 'order-declined' }), 422, 'refund_payment_not_approved'],
        [refund('refund-5', { paymentReference: 'order-cancelled' }), 422, 'refund_payment_not_approved'],
        [refund('refund-6', { amount: 1n, currency: 'USD' }), 422, 'refund_currency_mismatch'],
      ];
      for (const [request, status, code] of cases) {
        const failure = await rejection(client.refund(request));
        expect(failure, code).toBeInstanceOf(BankRejectedError);
        expect(failure).toMatchObject({ status, code, retryable: false, outcomeUnknown: false });
      }
      const ledger = await client.ledger();
      expect(ledger.refunds.map((each) => each.reference)).toEqual(['refund-1']);
      expect(ledger.totals.refundedAmountByCurrency).toEqual({ EUR: 1_000n });
      // What remains is still refundable.
      expect(await client.refund(refund('refund-2', { amount: 250n }))).toMatchObject({ kind: 'succeeded' });
    });

    it('errorRate 1 answers 503 and records nothing; declineRate 1 fails the refund, moving nothing', async () => {
      const client = connect(await start());
      await client.authorize(payment('order-1'));

      await client.setFaults({ errorRate: 1 });
      const unavailable = await rejection(client.refund(refund('refund-1')));
      expect(unavailable).toBeInstanceOf(BankUnavailableError);
      expect(unavailable).toMatchObject({ status: 503, code: 'bank_unavailable', retryable: true });
      expect(await client.inquireRefund('refund-1')).toEqual({ kind: 'not_found', reference: 'refund-1' });

      await client.setFaults({ errorRate: 0, declineRate: 1 });
      expect(await client.refund(refund('refund-1'))).toMatchObject({
        kind: 'failed',
        failureReason: 'refund_declined',
      });
      expect((await client.ledger()).totals).toMatchObject({
        rejectedRequests: 1,
        refunds: 1,
        refundsFailed: 1,
        refundedAmountByCurrency: {},
      });
    });

    it('timeoutRate 1 commits the refund but never answers: the client times out, the inquiry finds it', async () => {
      const server = await start();
      const client = connect(server, 200);
      await client.authorize(payment('order-1'));
      await client.setFaults({ timeoutRate: 1 });

      const failure = await rejection(client.refund(refund('refund-1')));

      expect(failure).toBeInstanceOf(BankTimeoutError);
      expect(failure).toMatchObject({ outcomeUnknown: true, retryable: false, operation: 'refund' });
      expect(await client.inquireRefund('refund-1')).toMatchObject({ kind: 'succeeded', amount: 500n });
      expect((await client.ledger()).totals.refundedAmountByCurrency).toEqual({ EUR: 500n });
    });

    it('latencyMs delays refund answers but they still arrive', async () => {
      const client = connect(await start({ clock: systemClock }));
      await client.authorize(payment('order-1'));
      await client.setFaults({ latencyMs: 30 });

      expect((await client.refund(refund('refund-1'))).kind).toBe('succeeded');
      expect((await client.refund(refund('refund-1'))).kind).toBe('succeeded');
    });

    it('keeps refunds across a restart on the same data directory', async () => {
      const first = await start();
      const before = connect(first);
      await before.authorize(payment('order-1'));
      await before.refund(refund('refund-1', { amount: 1_250n }));
      await first.close();

      const after = connect(await start());
      expect(await after.inquireRefund('refund-1')).toMatchObject({ kind: 'succeeded' });
      const failure = await rejection(after.refund(refund('refund-2', { amount: 1n })));
      expect(failure).toMatchObject({ code: 'refund_exceeds_payment' });
    });
  });

  it('keeps its ledger across a restart on the same data directory', async () => {
    const first = await start();
    const before = connect(first);
    const approved = await before.authorize(payment('order-1'));
    await before.authorize(
      payment('order-2', { card: { number: '4000000000009995', expMonth: 1, expYear: 2030 } }),
    );
    await first.close();

    const second = await start();
    const after = connect(second);

    expect(await after.inquire('order-1')).toEqual(approved);
    expect(await after.authorize(payment('order-1'))).toEqual(approved);
    const ledger = await after.ledger();
    expect(ledger.payments.map((entry) => [entry.reference, entry.status, entry.requestCount])).toEqual([
      ['order-1', 'approved', 2],
      ['order-2', 'declined', 1],
    ]);
  });

  it('never writes a card number to its files or its logs', async () => {
    const server = await start();
    const client = connect(server);
    const cards = [visa, mastercard, '4000000000000002', '4000000000009995'];
    for (const [index, number] of cards.entries()) {
      await client.authorize(payment(`order-${index}`, { card: { number, expMonth: 12, expYear: 2030 } }));
      await client.authorize(payment(`order-${index}`, { card: { number, expMonth: 12, expYear: 2030 } }));
    }
    await client
      .authorize(payment('order-0', { card: { number: '378282246310005', expMonth: 1, expYear: 2030 } }))
      .catch(() => undefined);

    // While the server runs the payments sit in the write-ahead log; after close, in the main file.
    const whileRunning = readEveryFile(dataDir);
    expect(whileRunning.some((file) => file.name.endsWith('-wal'))).toBe(true);
    await server.close();
    const afterClose = readEveryFile(dataDir);

    for (const number of [...cards, '378282246310005']) {
      for (const file of [...whileRunning, ...afterClose]) {
        expect(file.bytes.includes(Buffer.from(number)), `${number} in ${file.name}`).toBe(false);
      }
      expect(logLines.join('\n')).not.toContain(number);
    }
    expect(logLines.some((line) => line.includes('"cardLast4":"4242"'))).toBe(true);
  });
});

function readEveryFile(directory: string): { name: string; bytes: Buffer }[] {
  return fs
    .readdirSync(directory, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => {
      const file = path.join(entry.parentPath, entry.name);
      return { name: file, bytes: fs.readFileSync(file) };
    });
}

/** A POST without the client's deadline, to watch what the server does with the connection. */
function rawPost(baseUrl: string, request: AuthorizeRequest): Promise<number> {
  const body = JSON.stringify({ ...request, amount: Number(request.amount) });
  return new Promise((resolve, reject) => {
    const outgoing = http.request(
      `${baseUrl}/v1/payments`,
      { method: 'POST', headers: { 'content-type': 'application/json', connection: 'close' } },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
