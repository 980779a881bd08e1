import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SimulatedClock } from '../runtime/clock.js';
import { SeededRandom } from '../runtime/random.js';
import { batchPaymentsMax } from './bank-schemas.js';
import {
  type BankServerSettings,
  buildBankApp,
  defaultBankServerSettings,
  type RunningBankServer,
  startBankServer,
} from './bank-server.js';
import { BankLedger } from './ledger.js';

/**
 * Routing and input validation of the bank simulator. Routing goes through `app.inject` (no port);
 * a few inputs that only a real socket can produce (an oversized body, a raw malformed URL) go
 * over HTTP. Every bad input must get a 4xx problem+json with a stable code, never a 500, and no
 * answer may quote the card number it was sent.
 */

const card = { number: '4242424242424242', expMonth: 12, expYear: 2030 };
const valid = { reference: 'order-1', merchantId: 'merchant-1', amount: 1_250, currency: 'EUR', card };

interface ProblemAnswer {
  readonly statusCode: number;
  readonly contentType: string | undefined;
  readonly body: Record<string, unknown>;
  readonly text: string;
}

function expectProblem(answer: ProblemAnswer, status: number, code: string): void {
  expect(answer.statusCode, answer.text).toBe(status);
  expect(answer.contentType).toMatch(/^application\/problem\+json/);
  expect(answer.body).toMatchObject({ status, code, type: `urn:remit:bank:problem:${code}` });
  expect(typeof answer.body.title).toBe('string');
  expect(typeof answer.body.detail).toBe('string');
  expect(answer.text).not.toContain(card.number);
}

describe('bank app routes (inject)', () => {
  let dataDir: string;
  let ledger: BankLedger;
  let app: FastifyInstance;

  const inject = async (options: {
    method: 'GET' | 'POST' | 'PUT' | 'DELETE';
    url: string;
    payload?: string | object;
    headers?: Record<string, string>;
  }): Promise<ProblemAnswer> => {
    const response = await app.inject(options);
    const contentType = response.headers['content-type'];
    return {
      statusCode: response.statusCode,
      contentType: typeof contentType === 'string' ? contentType : undefined,
      body: response.body === '' ? {} : (JSON.parse(response.body) as Record<string, unknown>),
      text: response.body,
    };
  };

  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remit-bank-app-'));
    const clock = new SimulatedClock(Date.UTC(2026, 5, 15));
    ledger = BankLedger.open({ dataDir, clock });
    app = buildBankApp({ ledger, clock, random: new SeededRandom(7) });
  });

  afterEach(async () => {
    await app.close();
    ledger.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers health', async () => {
    const answer = await inject({ method: 'GET', url: '/health' });
    expect(answer.statusCode).toBe(200);
    expect(answer.body).toEqual({ status: 'ok' });
  });

  it('answers an unknown route or method with 404 route_not_found', async () => {
    expectProblem(await inject({ method: 'GET', url: '/v2/payments' }), 404, 'route_not_found');
    expectProblem(await inject({ method: 'DELETE', url: '/v1/faults' }), 404, 'route_not_found');
  });

  it('reads and partially updates the faults, validating them', async () => {
    expect((await inject({ method: 'GET', url: '/v1/faults' })).body).toEqual({
      latencyMs: 0,
      declineRate: 0,
      errorRate: 0,
      timeoutRate: 0,
    });
    const updated = await inject({
      method: 'PUT',
      url: '/v1/faults',
      payload: { latencyMs: 5, errorRate: 0.5 },
    });
    expect(updated.body).toEqual({ latencyMs: 5, declineRate: 0, errorRate: 0.5, timeoutRate: 0 });
    const again = await inject({ method: 'PUT', url: '/v1/faults', payload: { declineRate: 1 } });
    expect(again.body).toEqual({ latencyMs: 5, declineRate: 1, errorRate: 0.5, timeoutRate: 0 });

    for (const payload of [
      { declineRate: 1.5 },
      { latencyMs: -1 },
      { latencyMs: 1.5 },
      { errorRate: '1' },
      { x: 1 },
    ]) {
      expectProblem(await inject({ method: 'PUT', url: '/v1/faults', payload }), 400, 'invalid_request');
    }
    expect((await inject({ method: 'GET', url: '/v1/faults' })).body).toMatchObject({ declineRate: 1 });
  });

  it('refuses bodies that break the schema with 400 invalid_request naming the field', async () => {
    const cases: { payload: object; param: string }[] = [
      { payload: { ...valid, extra: true }, param: '/extra' },
      { payload: { ...valid, card: { ...card, cvv: '123' } }, param: '/card/cvv' },
      { payload: { ...valid, amount: '1250' }, param: '/amount' },
      { payload: { ...valid, amount: 12.5 }, param: '/amount' },
      { payload: { ...valid, amount: 0 }, param: '/amount' },
      { payload: { ...valid, amount: Number.MAX_SAFE_INTEGER + 2 }, param: '/amount' },
      { payload: { ...valid, currency: 'eur' }, param: '/currency' },
      { payload: { ...valid, reference: '' }, param: '/reference' },
      { payload: { ...valid, reference: 'r'.repeat(256) }, param: '/reference' },
      { payload: { ...valid, merchantId: 7 }, param: '/merchantId' },
      { payload: { ...valid, card: { ...card, number: '4242 4242 4242 4242' } }, param: '/card/number' },
      { payload: { ...valid, card: { ...card, number: 4242424242424242 } }, param: '/card/number' },
      { payload: { ...valid, card: { ...card, expMonth: 13 } }, param: '/card/expMonth' },
      { payload: { ...valid, card: { ...card, expYear: 30 } }, param: '/card/expYear' },
      { payload: { reference: 'order-1' }, param: '/merchantId' },
      { payload: { ...valid, card: { number: card.number } }, param: '/card/expMonth' },
    ];
    for (const { payload, param } of cases) {
      const answer = await inject({ method: 'POST', url: '/v1/payments', payload });
      expectProblem(answer, 400, 'invalid_request');
      expect(answer.body.param, JSON.stringify(payload)).toBe(param);
    }
    expect(ledger.list()).toEqual([]);
  });

  it('refuses what is not a JSON object body with a 4xx and a code', async () => {
    const json = { 'content-type': 'application/json' };
    const post = (payload: string, headers: Record<string, string>) =>
      inject({ method: 'POST', url: '/v1/payments', payload, headers });

    expectProblem(
      await post(`{"reference": "order-1", "card": {"number": "${card.number}"`, json),
      400,
      'malformed_json',
    );
    expectProblem(await post('', json), 400, 'malformed_json');
    expectProblem(await post('{"__proto__": {"polluted": true}}', json), 400, 'malformed_json');
    expectProblem(await post('[1, 2]', json), 400, 'invalid_request');
    expectProblem(await post('null', json), 400, 'invalid_request');
    expectProblem(
      await post(JSON.stringify(valid), { 'content-type': 'text/plain' }),
      415,
      'unsupported_media_type',
    );
    expectProblem(await inject({ method: 'POST', url: '/v1/payments' }), 400, 'invalid_request');
  });

  it('never answers arbitrary input with a 5xx', async () => {
    // Arbitrary JSON values, near-valid payments with one field replaced by anything, and raw text
    // declared as JSON: each must be a 200 or a 4xx problem, whatever it is.
    const nearValid = fc
      .record({
        key: fc.constantFrom('reference', 'merchantId', 'amount', 'currency', 'card'),
        value: fc.jsonValue(),
      })
      .map(({ key, value }) => JSON.stringify({ ...valid, reference: `fuzz-${key}`, [key]: value }));
    const payloads = fc.oneof(fc.json(), nearValid, fc.string());
    await fc.assert(
      fc.asyncProperty(payloads, async (payload) => {
        const response = await app.inject({
          method: 'POST',
          url: '/v1/payments',
          payload,
          headers: { 'content-type': 'application/json' },
        });
        expect(response.statusCode === 200 || (response.statusCode >= 400 && response.statusCode < 500)).toBe(
          true,
        );
        if (response.statusCode !== 200)
          expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      }),
      { numRuns: 300, seed: 20_260_615 },
    );
  });

  it('cancels with no body, an empty object or a merchant, and serves the tombstone without card fields', async () => {
    const noBody = await inject({ method: 'POST', url: '/v1/payments/order-1/cancel' });
    expect(noBody.statusCode, noBody.text).toBe(200);
    expect(noBody.body).toEqual({ reference: 'order-1', status: 'cancelled' });
    const empty = await inject({ method: 'POST', url: '/v1/payments/order-2/cancel', payload: {} });
    expect(empty.body).toEqual({ reference: 'order-2', status: 'cancelled' });
    const withMerchant = await inject({
      method: 'POST',
      url: '/v1/payments/order-3/cancel',
      payload: { merchantId: 'merchant-1' },
    });
    expect(withMerchant.body).toEqual({ reference: 'order-3', status: 'cancelled' });

    const record = await inject({ method: 'GET', url: '/v1/payments/order-3' });
    expect(record.statusCode).toBe(200);
    expect(record.body).toEqual({
      reference: 'order-3',
      status: 'cancelled',
      merchantId: 'merchant-1',
      amount: 0,
      createdAt: new Date(Date.UTC(2026, 5, 15)).toISOString(),
      updatedAt: new Date(Date.UTC(2026, 5, 15)).toISOString(),
      requestCount: 1,
    });
    const refused = await inject({
      method: 'POST',
      url: '/v1/payments',
      payload: { ...valid, reference: 'order-1' },
    });
    expect(refused.body).toEqual({
      reference: 'order-1',
      status: 'declined',
      declineReason: 'reference_cancelled',
    });
  });

  it('refuses a cancel with a bad body or reference with 400, recording nothing', async () => {
    const json = { 'content-type': 'application/json' };
    const cancel = (url: string, payload?: string) =>
      inject({ method: 'POST', url, ...(payload === undefined ? {} : { payload, headers: json }) });

    expectProblem(await cancel('/v1/payments/order-1/cancel', '{"merchantId": 7}'), 400, 'invalid_request');
    expectProblem(await cancel('/v1/payments/order-1/cancel', '{"amount": 1}'), 400, 'invalid_request');
    expectProblem(await cancel('/v1/payments/order-1/cancel', '[]'), 400, 'invalid_request');
    expectProblem(await cancel('/v1/payments/order-1/cancel', 'null'), 400, 'invalid_request');
    expectProblem(await cancel('/v1/payments/order-1/cancel', '{"merchantId": ""}'), 400, 'invalid_request');
    expectProblem(await cancel('/v1/payments/order-1/cancel', '{'), 400, 'malformed_json');
    expectProblem(await cancel(`/v1/payments/${'r'.repeat(256)}/cancel`), 400, 'invalid_request');
    expectProblem(
      await inject({ method: 'GET', url: '/v1/payments/order-1/cancel' }),
      404,
      'route_not_found',
    );
    expect(ledger.list()).toEqual([]);
  });

  it('refuses bad path and query parameters', async () => {
    expectProblem(
      await inject({ method: 'GET', url: `/v1/payments/${'r'.repeat(256)}` }),
      400,
      'invalid_request',
    );
    expectProblem(await inject({ method: 'GET', url: '/v1/ledger?merchant=1' }), 400, 'invalid_request');
    expectProblem(await inject({ method: 'GET', url: '/v1/payments/unknown' }), 404, 'payment_not_found');
  });

  describe('refunds', () => {
    const validRefund = { reference: 'refund-1', paymentReference: 'order-1', amount: 250, currency: 'EUR' };

    it('refunds an approved payment and serves the refund back', async () => {
      expect((await inject({ method: 'POST', url: '/v1/payments', payload: valid })).statusCode).toBe(200);

      const answer = await inject({ method: 'POST', url: '/v1/refunds', payload: validRefund });
      expect(answer.statusCode, answer.text).toBe(200);
      expect(answer.body).toEqual({ ...validRefund, status: 'succeeded' });

      const record = await inject({ method: 'GET', url: '/v1/refunds/refund-1' });
      expect(record.body).toEqual({
        ...validRefund,
        status: 'succeeded',
        merchantId: 'merchant-1',
        createdAt: '2026-06-15T00:00:00.000Z',
        updatedAt: '2026-06-15T00:00:00.000Z',
        requestCount: 1,
      });
      const ledger = await inject({ method: 'GET', url: '/v1/ledger' });
      expect(ledger.body).toMatchObject({
        refunds: [record.body],
        totals: { refunds: 1, refundsSucceeded: 1, refundedAmountByCurrency: { EUR: 250 } },
      });
    });

    it('answers each refusal with problem+json and its stable code', async () => {
      await inject({ method: 'POST', url: '/v1/payments', payload: valid });
      await inject({ method: 'POST', url: '/v1/refunds', payload: { ...validRefund, amount: 1_000 } });

      const cases: Array<[object, number, string, string]> = [
        [{ ...validRefund, reference: 'refund-2', amount: 251 }, 422, 'refund_exceeds_payment', '/amount'],
        [{ ...validRefund, reference: 'refund-1', amount: 999 }, 409, 'reference_conflict', '/reference'],
        [
          { ...validRefund, reference: 'refund-3', paymentReference: 'never-paid' },
          422,
          'refund_payment_unknown',
          '/paymentReference',
        ],
        [
          { ...validRefund, reference: 'refund-4', currency: 'USD' },
          422,
          'refund_currency_mismatch',
          '/currency',
        ],
      ];
      for (const [payload, status, code, param] of cases) {
        const answer = await inject({ method: 'POST', url: '/v1/refunds', payload });
        expectProblem(answer, status, code);
        expect(answer.body.param).toBe(param);
      }
      await inject({ method: 'POST', url: '/v1/payments/order-9/cancel' });
      expectProblem(
        await inject({
          method: 'POST',
          url: '/v1/refunds',
          payload: { ...validRefund, reference: 'refund-5', paymentReference: 'order-9' },
        }),
        422,
        'refund_payment_not_approved',
      );
      expectProblem(await inject({ method: 'GET', url: '/v1/refunds/refund-2' }), 404, 'refund_not_found');
      expectProblem(
        await inject({ method: 'GET', url: `/v1/refunds/${'r'.repeat(256)}` }),
        400,
        'invalid_request',
      );
    });

    it('refuses refund bodies that break the schema with 400 invalid_request naming the field, recording nothing', async () => {
      await inject({ method: 'POST', url: '/v1/payments', payload: valid });
      const cases: { payload: object; param: string }[] = [
        { payload: { ...validRefund, extra: true }, param: '/extra' },
        { payload: { ...validRefund, amount: '250' }, param: '/amount' },
        { payload: { ...validRefund, amount: 2.5 }, param: '/amount' },
        { payload: { ...validRefund, amount: 0 }, param: '/amount' },
        { payload: { ...validRefund, amount: Number.MAX_SAFE_INTEGER + 2 }, param: '/amount' },
        { payload: { ...validRefund, currency: 'eur' }, param: '/currency' },
        { payload: { ...validRefund, reference: '' }, param: '/reference' },
        { payload: { reference: 'refund-1', amount: 250, currency: 'EUR' }, param: '/paymentReference' },
      ];
      for (const { payload, param } of cases) {
        const answer = await inject({ method: 'POST', url: '/v1/refunds', payload });
        expectProblem(answer, 400, 'invalid_request');
        expect(answer.body.param, JSON.stringify(payload)).toBe(param);
      }
      expect((await inject({ method: 'GET', url: '/v1/ledger' })).body).toMatchObject({ refunds: [] });
    });
  });
});

describe('bank app group commit (inject)', () => {
  // Requests injected together reach their handlers in one turn of the event loop, in the order
  // they were injected, so their ledger writes share one transaction: the counts of transactions
  // below are exact. Each case is one that a transaction per request would get right and a
  // careless batch would not.
  let dataDir: string;
  let ledger: BankLedger;
  let app: FastifyInstance;

  const open = (settings: Partial<BankServerSettings> = {}, faults: Record<string, number> = {}): void => {
    app = buildBankApp({
      ledger,
      clock: new SimulatedClock(Date.UTC(2026, 5, 15)),
      random: new SeededRandom(7),
      settings,
      faults,
    });
  };

  const post = async (url: string, payload: object): Promise<ProblemAnswer> => {
    const response = await app.inject({ method: 'POST', url, payload });
    const contentType = response.headers['content-type'];
    return {
      statusCode: response.statusCode,
      contentType: typeof contentType === 'string' ? contentType : undefined,
      body: JSON.parse(response.body) as Record<string, unknown>,
      text: response.body,
    };
  };
  const pay = (reference: string): Promise<ProblemAnswer> => post('/v1/payments', { ...valid, reference });
  const cancel = (reference: string): Promise<ProblemAnswer> =>
    post(`/v1/payments/${reference}/cancel`, { merchantId: valid.merchantId });
  const batch = (payments: readonly object[]): Promise<ProblemAnswer> =>
    post('/v1/payments/batch', { payments });
  const resultsOf = (answer: ProblemAnswer): Array<Record<string, unknown>> =>
    answer.body.results as Array<Record<string, unknown>>;

  beforeEach(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remit-bank-group-'));
    ledger = BankLedger.open({ dataDir, clock: new SimulatedClock(Date.UTC(2026, 5, 15)) });
  });

  afterEach(async () => {
    vi.restoreAllMocks();
    await app.close();
    ledger.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('never lets two refunds sharing a transaction together exceed their payment', async () => {
    open();
    await app.ready();
    await pay('order-1');
    const before = ledger.transactionsCommitted;
    const refund = (reference: string): Promise<ProblemAnswer> =>
      post('/v1/refunds', { reference, paymentReference: 'order-1', amount: 1_000, currency: 'EUR' });

    const answers = await Promise.all([refund('refund-1'), refund('refund-2')]);

    expect(ledger.transactionsCommitted - before).toBe(1);
    expect(answers.map((answer) => answer.statusCode)).toEqual([200, 422]);
    expect(answers[1]?.body.code).toBe('refund_exceeds_payment');
    expect(ledger.refundedAmount('order-1')).toBe(1_000);
  });

  it('commits many concurrent payments in far fewer transactions than requests', async () => {
    open();
    await app.ready();
    const before = ledger.transactionsCommitted;
    const references = Array.from({ length: 100 }, (_, index) => `order-${index}`);

    const answers = await Promise.all(references.map(pay));

    expect(answers.map((answer) => answer.body.status)).toEqual(references.map(() => 'approved'));
    expect(ledger.transactionsCommitted - before).toBe(1);
    expect(ledger.list().map((record) => record.reference)).toEqual(references);
  });

  it('charges a reference once when two payments of it share a transaction', async () => {
    open();
    await app.ready();
    const before = ledger.transactionsCommitted;

    const [first, second] = await Promise.all([pay('order-1'), pay('order-1')]);

    expect(ledger.transactionsCommitted - before).toBe(1);
    expect(first?.body).toMatchObject({ reference: 'order-1', status: 'approved' });
    expect(second?.body).toEqual(first?.body);
    expect(ledger.list()).toMatchObject([{ reference: 'order-1', status: 'approved', requestCount: 2 }]);
  });

  it('decides a payment and a cancel of one reference in one transaction as if one came after the other', async () => {
    open();
    await app.ready();
    const before = ledger.transactionsCommitted;

    const [paid, tooLate, cancelled, refused] = await Promise.all([
      pay('paid-first'),
      cancel('paid-first'),
      cancel('cancelled-first'),
      pay('cancelled-first'),
    ]);

    expect(ledger.transactionsCommitted - before).toBe(1);
    // Paid first: charged, and the cancel answers the charge.
    expect(paid?.body).toMatchObject({ reference: 'paid-first', status: 'approved' });
    expect(tooLate?.body).toEqual(paid?.body);
    // Cancelled first: the payment is refused and nothing is charged.
    expect(cancelled?.body).toEqual({ reference: 'cancelled-first', status: 'cancelled' });
    expect(refused?.body).toEqual({
      reference: 'cancelled-first',
      status: 'declined',
      declineReason: 'reference_cancelled',
    });
    expect(ledger.list()).toMatchObject([
      { reference: 'paid-first', status: 'approved', requestCount: 2 },
      { reference: 'cancelled-first', status: 'cancelled', requestCount: 2 },
    ]);
  });

  it('answers every request of a batch whose commit fails with 503, and charges none of them', async () => {
    open();
    await app.ready();
    const realTransaction = ledger.transaction.bind(ledger);
    // The batch's work runs, then its COMMIT fails and better-sqlite3 rolls everything back.
    vi.spyOn(ledger, 'transaction').mockImplementationOnce(
      <T>(work: () => T): T =>
        realTransaction(() => {
          work();
          throw new Error('disk I/O error');
        }),
    );

    const answers = await Promise.all([pay('order-1'), pay('order-1'), pay('order-2'), cancel('order-3')]);

    for (const answer of answers) expectProblem(answer, 503, 'ledger_unavailable');
    expect(ledger.list()).toEqual([]);
    expect(ledger.rejectedRequests()).toBe(0);
    // The bank recovers with the next batch, and the same payment is then charged once.
    expect((await pay('order-1')).body).toMatchObject({ reference: 'order-1', status: 'approved' });
    expect(ledger.list()).toMatchObject([{ reference: 'order-1', requestCount: 1 }]);
  });

  it('answers 503 bank_overloaded beyond ledgerPendingWritesMax, recording nothing for those', async () => {
    open({ ledgerPendingWritesMax: 2 });
    await app.ready();

    const answers = await Promise.all([pay('order-1'), pay('order-2'), pay('order-3'), cancel('order-4')]);

    expect(answers.slice(0, 2).map((answer) => answer.body.status)).toEqual(['approved', 'approved']);
    for (const answer of answers.slice(2)) expectProblem(answer, 503, 'bank_overloaded');
    expect(ledger.list().map((record) => record.reference)).toEqual(['order-1', 'order-2']);
    expect(ledger.rejectedRequests()).toBe(0);
  });

  it('keeps transactions to ledgerBatchWritesMax writes each', async () => {
    open({ ledgerBatchWritesMax: 8 });
    await app.ready();
    const before = ledger.transactionsCommitted;

    await Promise.all(Array.from({ length: 20 }, (_, index) => pay(`order-${index}`)));

    expect(ledger.transactionsCommitted - before).toBe(3);
  });

  /**
   * `POST /v1/payments/batch`: each payment is decided as if it had come alone — deduplicated by its
   * reference, faults drawn for it — and answered in the request's order, its own answer or its own
   * problem. A batch the schema refuses is refused whole and records nothing.
   */
  describe('the batch route', () => {
    it('answers each payment in order, as alone, all in one ledger transaction', async () => {
      open();
      await app.ready();
      const before = ledger.transactionsCommitted;

      const answer = await batch([
        { ...valid, reference: 'order-1' },
        { ...valid, reference: 'order-2', card: { ...card, number: '4000000000000002' } },
        // A repeat of the first: the first answer again, charged once.
        { ...valid, reference: 'order-1' },
        // The first reference with another amount: a conflict, for this payment only.
        { ...valid, reference: 'order-1', amount: 99 },
        { ...valid, reference: 'order-3', card: { ...card, number: '4242424242424241' } },
      ]);

      expect(answer.statusCode, answer.text).toBe(200);
      const results = resultsOf(answer);
      expect(results.map((result) => result.reference)).toEqual([
        'order-1',
        'order-2',
        'order-1',
        'order-1',
        'order-3',
      ]);
      expect(results[0]).toMatchObject({ status: 'approved' });
      expect(results[2]).toEqual(results[0]);
      expect(results[1]).toEqual({
        reference: 'order-2',
        status: 'declined',
        declineReason: 'card_declined',
      });
      expect(results[3]).toMatchObject({ problem: { status: 409, code: 'reference_conflict' } });
      expect(results[4]).toMatchObject({
        problem: { status: 422, code: 'invalid_card', param: '/card/number' },
      });
      expect(answer.text).not.toContain(card.number);
      expect(ledger.transactionsCommitted - before).toBe(1);
      expect(ledger.list()).toMatchObject([
        { reference: 'order-1', status: 'approved', requestCount: 3 },
        { reference: 'order-2', status: 'declined', requestCount: 1 },
      ]);
    });

    it('answers a payment the errorRate fault strikes with its own 503, recording nothing for it', async () => {
      open({}, { errorRate: 1 });
      await app.ready();

      const answer = await batch([{ ...valid, reference: 'order-1' }]);

      expect(resultsOf(answer)).toMatchObject([
        { reference: 'order-1', problem: { status: 503, code: 'bank_unavailable' } },
      ]);
      expect(ledger.list()).toEqual([]);
      expect(ledger.rejectedRequests()).toBe(1);
    });

    it('withholds the answer of a payment the timeoutRate fault strikes: committed, and answer_withheld', async () => {
      open({}, { timeoutRate: 1 });
      await app.ready();

      const answer = await batch([{ ...valid, reference: 'order-1' }]);

      expect(resultsOf(answer)).toEqual([
        {
          reference: 'order-1',
          problem: expect.objectContaining({ status: 504, code: 'answer_withheld' }),
        },
      ]);
      expect(ledger.list()).toMatchObject([{ reference: 'order-1', status: 'approved' }]);
    });

    it('answers payments beyond ledgerPendingWritesMax with their own 503, and the rest as usual', async () => {
      open({ ledgerPendingWritesMax: 2 });
      await app.ready();

      const answer = await batch(
        ['order-1', 'order-2', 'order-3'].map((reference) => ({ ...valid, reference })),
      );

      expect(resultsOf(answer)).toMatchObject([
        { reference: 'order-1', status: 'approved' },
        { reference: 'order-2', status: 'approved' },
        { reference: 'order-3', problem: { status: 503, code: 'bank_overloaded' } },
      ]);
    });

    it('refuses a batch the schema refuses, whole, with 400 and records nothing', async () => {
      open();
      await app.ready();
      const tooMany = Array.from({ length: batchPaymentsMax + 1 }, (_, index) => ({
        ...valid,
        reference: `order-${index}`,
      }));

      for (const payments of [[], [{ ...valid, card: { ...card, expMonth: 13 } }], tooMany]) {
        expectProblem(await batch(payments), 400, 'invalid_request');
      }
      expectProblem(await post('/v1/payments/batch', { other: 1 }), 400, 'invalid_request');
      expect(ledger.list()).toEqual([]);
    });
  });
});

describe('bank app over a socket', () => {
  let dataDir: string;
  let server: RunningBankServer;

  beforeEach(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remit-bank-app-'));
    server = await startBankServer({ port: 0, dataDir, random: new SeededRandom(7) });
  });

  afterEach(async () => {
    await server.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  const send = async (
    method: 'GET' | 'POST',
    pathAndQuery: string,
    body?: string,
    headers: Record<string, string> = {},
  ): Promise<ProblemAnswer> => {
    const response = await request(`${server.url}${pathAndQuery}`, { method, body, headers });
    const text = await response.body.text();
    const contentType = response.headers['content-type'];
    return {
      statusCode: response.statusCode,
      contentType: typeof contentType === 'string' ? contentType : undefined,
      body: JSON.parse(text) as Record<string, unknown>,
      text,
    };
  };

  it('refuses a body over the size limit with 413 payload_too_large', async () => {
    const oversized = JSON.stringify({
      ...valid,
      reference: 'r'.repeat(defaultBankServerSettings.bodyLimitBytes),
    });
    const answer = await send('POST', '/v1/payments', oversized, { 'content-type': 'application/json' });
    expectProblem(answer, 413, 'payload_too_large');
  });

  it('refuses a malformed percent-encoding in the path with 400', async () => {
    expectProblem(await send('GET', '/v1/payments/%E0%A4%A'), 400, 'invalid_request');
  });

  it('accepts a valid payment and serves it back', async () => {
    const answer = await send('POST', '/v1/payments', JSON.stringify(valid), {
      'content-type': 'application/json',
    });
    expect(answer.statusCode).toBe(200);
    expect(answer.body).toMatchObject({ reference: 'order-1', status: 'approved' });
    const record = await send('GET', '/v1/payments/order-1');
    expect(record.body).toMatchObject({ reference: 'order-1', cardLast4: '4242', requestCount: 1 });
    expect(record.text).not.toContain(card.number);
  });
});
