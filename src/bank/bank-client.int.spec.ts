import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type AuthorizeRequest, BankClient, type RefundRequest } from './bank-client.js';
import {
  BankAnswerWithheldError,
  BankConnectionLostError,
  BankMalformedResponseError,
  BankRejectedError,
  BankTimeoutError,
  BankUnavailableError,
} from './bank-errors.js';

/**
 * The client against fake banks that misbehave in ways the simulator never does: garbage bodies,
 * foreign 404s, resets, echoed card numbers. Each failure must come out as the error that tells the
 * caller what to do next — above all, anything that might have been charged is an unknown outcome,
 * never "unavailable" or "not found".
 */

const cardNumber = '4242424242424242';
const order: AuthorizeRequest = {
  reference: 'order-1',
  merchantId: 'merchant-1',
  amount: 500n,
  currency: 'EUR',
  card: { number: cardNumber, expMonth: 12, expYear: 2030 },
};

const refund: RefundRequest = {
  reference: 'refund-1',
  paymentReference: 'order-1',
  amount: 200n,
  currency: 'EUR',
};

type Handler = (request: http.IncomingMessage, response: http.ServerResponse) => void;

/** Every fake bank and client a test starts, stopped after it (both describes below). */
const servers: http.Server[] = [];
const clients: BankClient[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  await Promise.all(clients.splice(0).map((client) => client.close()));
});

describe('BankClient against misbehaving banks', () => {
  const fakeBank = async (handler: Handler): Promise<string> => {
    const server = http.createServer((request, response) => {
      // Read the whole request first, as a real bank would before acting on it.
      request.resume();
      request.on('end', () => handler(request, response));
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };

  // Each authorization alone (`POST /v1/payments`): batches have a describe of their own below.
  const connect = (
    baseUrl: string,
    options: { requestTimeoutMs?: number; inFlightRequestsMax?: number; deadlineSharingMs?: number } = {},
  ) => {
    const client = new BankClient({
      baseUrl,
      requestTimeoutMs: options.requestTimeoutMs ?? 2_000,
      authorizationBatchMax: 1,
      ...options,
    });
    clients.push(client);
    return client;
  };

  const reply =
    (status: number, body: string, contentType = 'application/json'): Handler =>
    (_request, response) => {
      response.writeHead(status, { 'content-type': contentType });
      response.end(body);
    };

  it('a refused connection is BankUnavailableError: nothing can have been charged', async () => {
    const url = await fakeBank(reply(200, '{}'));
    const server = servers.pop();
    await new Promise((resolve) => server?.close(resolve));

    const failure = await connect(url)
      .authorize(order)
      .catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(BankUnavailableError);
    expect(failure).toMatchObject({ retryable: true, outcomeUnknown: false, status: undefined });
  });

  it('a 5xx of any shape is BankUnavailableError', async () => {
    const url = await fakeBank(reply(502, '<html>bad gateway</html>', 'text/html'));
    const failure = await connect(url)
      .authorize(order)
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BankUnavailableError);
    expect(failure).toMatchObject({ status: 502, code: undefined });
  });

  it('a 200 with garbage is an unknown outcome, not unavailable', async () => {
    const url = await fakeBank(reply(200, 'not json at all'));
    const failure = await connect(url)
      .authorize(order)
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BankMalformedResponseError);
    expect(failure).toMatchObject({ outcomeUnknown: true, retryable: false, status: 200 });
  });

  it('a 200 answering another reference is an unknown outcome', async () => {
    const url = await fakeBank(
      reply(200, JSON.stringify({ reference: 'order-2', status: 'approved', authorizationCode: 'ABC123' })),
    );
    const failure = await connect(url)
      .authorize(order)
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BankMalformedResponseError);
  });

  it('accepts a decline reason it does not know: a decline is a decline', async () => {
    const url = await fakeBank(
      reply(200, JSON.stringify({ reference: 'order-1', status: 'declined', declineReason: 'stolen_card' })),
    );
    expect(await connect(url).authorize(order)).toEqual({
      kind: 'declined',
      reference: 'order-1',
      declineReason: 'stolen_card',
    });
  });

  it('a 404 that is not the bank saying payment_not_found is never read as "not charged"', async () => {
    const url = await fakeBank(reply(404, 'Not Found', 'text/plain'));
    const failure = await connect(url)
      .inquire('order-1')
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BankRejectedError);
    expect(failure).toMatchObject({ status: 404, code: 'http_404' });
  });

  it('a reset after the request was sent is an unknown outcome', async () => {
    const url = await fakeBank((request) => request.socket.destroy());
    const failure = await connect(url)
      .authorize(order)
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BankConnectionLostError);
    expect(failure).toMatchObject({ outcomeUnknown: true, retryable: false });
  });

  it('a timed-out inquiry may simply be asked again', async () => {
    const url = await fakeBank(() => undefined);
    const failure = await connect(url, { requestTimeoutMs: 100 })
      .inquire('order-1')
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BankTimeoutError);
    expect(failure).toMatchObject({ outcomeUnknown: true, retryable: true, operation: 'inquire' });
  });

  it('a timed-out cancel may simply be sent again: cancel is idempotent', async () => {
    const url = await fakeBank(() => undefined);
    const failure = await connect(url, { requestTimeoutMs: 100 })
      .cancel('order-1')
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BankTimeoutError);
    expect(failure).toMatchObject({ outcomeUnknown: true, retryable: true, operation: 'cancel' });
  });

  it('sends a cancel as a POST to the reference, percent-encoded, with the merchant when given', async () => {
    const seen: { method?: string; url?: string; body: string }[] = [];
    const server = http.createServer((request, response) => {
      let body = '';
      request.setEncoding('utf8');
      request.on('data', (chunk: string) => {
        body += chunk;
      });
      request.on('end', () => {
        seen.push({ method: request.method, url: request.url, body });
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ reference: 'order/1', status: 'cancelled' }));
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);

    expect(await client.cancel('order/1')).toEqual({ kind: 'cancelled', reference: 'order/1' });
    await client.cancel('order/1', 'merchant-1');

    expect(seen).toEqual([
      { method: 'POST', url: '/v1/payments/order%2F1/cancel', body: '{}' },
      { method: 'POST', url: '/v1/payments/order%2F1/cancel', body: '{"merchantId":"merchant-1"}' },
    ]);
  });

  it('a payment answered as cancelled is an unknown outcome: the bank never answers a payment so', async () => {
    const url = await fakeBank(reply(200, JSON.stringify({ reference: 'order-1', status: 'cancelled' })));
    const failure = await connect(url)
      .authorize(order)
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BankMalformedResponseError);
    expect(failure).toMatchObject({ outcomeUnknown: true, retryable: false });
  });

  describe('refunds', () => {
    const refundAnswer = { reference: 'refund-1', paymentReference: 'order-1', amount: 200, currency: 'EUR' };

    it('sends a refund as a POST to /v1/refunds and reads its answer, the amount as bigint', async () => {
      const seen: Array<{ method?: string; url?: string; body: string }> = [];
      const server = http.createServer((request, response) => {
        let body = '';
        request.on('data', (chunk: Buffer) => {
          body += chunk.toString('utf8');
        });
        request.on('end', () => {
          seen.push({ method: request.method, url: request.url, body });
          response.writeHead(200, { 'content-type': 'application/json' });
          response.end(JSON.stringify({ ...refundAnswer, status: 'succeeded' }));
        });
      });
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);

      expect(await client.refund(refund)).toEqual({
        kind: 'succeeded',
        reference: 'refund-1',
        paymentReference: 'order-1',
        amount: 200n,
        currency: 'EUR',
      });
      expect(seen).toEqual([
        {
          method: 'POST',
          url: '/v1/refunds',
          body: JSON.stringify({
            reference: 'refund-1',
            paymentReference: 'order-1',
            amount: 200,
            currency: 'EUR',
          }),
        },
      ]);
    });

    it('reads a failed refund with its reason, even one it does not know', async () => {
      const url = await fakeBank(
        reply(200, JSON.stringify({ ...refundAnswer, status: 'failed', failureReason: 'account_closed' })),
      );
      expect(await connect(url).refund(refund)).toMatchObject({
        kind: 'failed',
        failureReason: 'account_closed',
      });
    });

    it('a refused connection or a 5xx is unavailable: nothing was given back, the same refund may be sent again', async () => {
      const down = await fakeBank(reply(200, '{}'));
      const server = servers.pop();
      await new Promise((resolve) => server?.close(resolve));
      const unreachable = await connect(down)
        .refund(refund)
        .catch((error: unknown) => error);
      expect(unreachable).toBeInstanceOf(BankUnavailableError);
      expect(unreachable).toMatchObject({ retryable: true, outcomeUnknown: false, operation: 'refund' });

      const failing = await fakeBank(
        reply(503, JSON.stringify({ code: 'bank_unavailable', detail: 'down' })),
      );
      const refused = await connect(failing)
        .refund(refund)
        .catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(BankUnavailableError);
      expect(refused).toMatchObject({ status: 503, code: 'bank_unavailable', retryable: true });
    });

    it('a 4xx problem is refused, with its code', async () => {
      const url = await fakeBank(
        reply(
          422,
          JSON.stringify({ code: 'refund_exceeds_payment', detail: 'too much' }),
          'application/problem+json',
        ),
      );
      const failure = await connect(url)
        .refund(refund)
        .catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(BankRejectedError);
      expect(failure).toMatchObject({ status: 422, code: 'refund_exceeds_payment', retryable: false });
    });

    it('a timeout, a reset after sending, or an unreadable 200 is an unknown outcome: inquire, never resend', async () => {
      const silent = await fakeBank(() => undefined);
      const timedOut = await connect(silent, { requestTimeoutMs: 100 })
        .refund(refund)
        .catch((error: unknown) => error);
      expect(timedOut).toBeInstanceOf(BankTimeoutError);
      expect(timedOut).toMatchObject({ outcomeUnknown: true, retryable: false, operation: 'refund' });

      const resetting = await fakeBank((request) => request.socket.destroy());
      const lost = await connect(resetting)
        .refund(refund)
        .catch((error: unknown) => error);
      expect(lost).toBeInstanceOf(BankConnectionLostError);
      expect(lost).toMatchObject({ outcomeUnknown: true, retryable: false });

      for (const body of [
        'not json at all',
        JSON.stringify({ ...refundAnswer, status: 'failed' }),
        JSON.stringify({ ...refundAnswer, reference: 'refund-2', status: 'succeeded' }),
        JSON.stringify({ ...refundAnswer, amount: 199, status: 'succeeded' }),
      ]) {
        const garbled = await fakeBank(reply(200, body));
        const malformed = await connect(garbled)
          .refund(refund)
          .catch((error: unknown) => error);
        expect(malformed, body).toBeInstanceOf(BankMalformedResponseError);
        expect(malformed).toMatchObject({ outcomeUnknown: true, retryable: false, operation: 'refund' });
      }
    });

    it('an inquiry reads not_found only from the bank saying refund_not_found', async () => {
      const never = await fakeBank(
        reply(
          404,
          JSON.stringify({ code: 'refund_not_found', detail: 'never seen' }),
          'application/problem+json',
        ),
      );
      expect(await connect(never).inquireRefund('refund-1')).toEqual({
        kind: 'not_found',
        reference: 'refund-1',
      });

      for (const [body, contentType] of [
        ['Not Found', 'text/plain'],
        [JSON.stringify({ code: 'payment_not_found' }), 'application/problem+json'],
      ] as const) {
        const foreign = await fakeBank(reply(404, body, contentType));
        const failure = await connect(foreign)
          .inquireRefund('refund-1')
          .catch((error: unknown) => error);
        expect(failure, body).toBeInstanceOf(BankRejectedError);
      }
    });

    it('an inquiry reads a refund record, percent-encoded, and a timed-out one may simply be asked again', async () => {
      let path: string | undefined;
      const url = await fakeBank((request, response) => {
        path = request.url;
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(
          JSON.stringify({
            ...refundAnswer,
            reference: 'refund/1',
            status: 'succeeded',
            merchantId: 'merchant-1',
            createdAt: '2026-06-15T12:00:00.000Z',
            updatedAt: '2026-06-15T12:00:00.000Z',
            requestCount: 1,
          }),
        );
      });
      expect(await connect(url).inquireRefund('refund/1')).toMatchObject({ kind: 'succeeded', amount: 200n });
      expect(path).toBe('/v1/refunds/refund%2F1');

      const silent = await fakeBank(() => undefined);
      const failure = await connect(silent, { requestTimeoutMs: 100 })
        .inquireRefund('refund-1')
        .catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(BankTimeoutError);
      expect(failure).toMatchObject({ outcomeUnknown: true, retryable: true, operation: 'inquireRefund' });
    });

    it('refuses an amount that cannot travel as a JSON integer, before sending anything', async () => {
      let requests = 0;
      const url = await fakeBank((_request, response) => {
        requests++;
        response.end();
      });
      const client = connect(url);
      await expect(client.refund({ ...refund, amount: 0n })).rejects.toThrow(/1\.\.MAX_SAFE_INTEGER/);
      await expect(
        client.refund({ ...refund, amount: BigInt(Number.MAX_SAFE_INTEGER) + 1n }),
      ).rejects.toThrow(/1\.\.MAX_SAFE_INTEGER/);
      expect(requests).toBe(0);
    });
  });

  it('never puts a card number in an error message, even when the bank echoes it', async () => {
    const url = await fakeBank(
      reply(
        422,
        JSON.stringify({ code: 'invalid_card', detail: `card ${cardNumber} is no good` }),
        'application/problem+json',
      ),
    );
    const failure = await connect(url)
      .authorize(order)
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BankRejectedError);
    expect(failure).toMatchObject({ code: 'invalid_card' });
    expect(String(failure)).not.toContain(cardNumber);
    expect(String(failure)).toContain('[digits removed]');
  });

  it('refuses an amount that cannot travel as a JSON integer, before sending anything', async () => {
    let requests = 0;
    const url = await fakeBank((request, response) => {
      requests++;
      reply(200, '{}')(request, response);
    });
    const client = connect(url);
    await expect(client.authorize({ ...order, amount: 2n ** 53n })).rejects.toThrow(/MAX_SAFE_INTEGER/);
    await expect(client.authorize({ ...order, amount: 0n })).rejects.toThrow(/MAX_SAFE_INTEGER/);
    expect(requests).toBe(0);
  });

  it('fails at once, unsent, beyond inFlightRequestsMax', async () => {
    const url = await fakeBank(() => undefined);
    const client = connect(url, { inFlightRequestsMax: 1, requestTimeoutMs: 300 });
    const first = client.authorize(order).catch((error: unknown) => error);

    const second = await client
      .authorize({ ...order, reference: 'order-2' })
      .catch((error: unknown) => error);

    expect(second).toBeInstanceOf(BankUnavailableError);
    expect(await first).toBeInstanceOf(BankTimeoutError);
  });

  it('calls started together share a deadline: it aborts only the calls still waiting, then a new one starts', async () => {
    // Answers inquiries of order-fast and order-later at once and holds the others.
    const url = await fakeBank((request, response) => {
      if (request.url?.includes('later') || request.url?.includes('fast')) {
        const reference = request.url.includes('fast') ? 'order-fast' : 'order-later';
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ reference, status: 'approved', authorizationCode: 'ABC123' }));
      }
    });
    const client = connect(url, { requestTimeoutMs: 150, deadlineSharingMs: 50 });
    const started = Date.now();
    const slow = client.inquire('order-slow').catch((error: unknown) => error);
    const fast = client.inquire('order-fast');
    expect(await fast).toMatchObject({ reference: 'order-fast' });
    const failure = await slow;
    expect(failure).toBeInstanceOf(BankTimeoutError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    // The deadline that fired is not joined again.
    expect(await client.inquire('order-later')).toMatchObject({ reference: 'order-later' });
  });
});

/**
 * Authorizations in batches, against fake banks that answer `POST /v1/payments/batch` as told.
 * Whatever happens to a batch, each payment must settle with its own answer or with the error a
 * payment sent alone would get for the same failure, named by its own reference.
 */
describe('BankClient batches against fake banks', () => {
  interface Seen {
    readonly url: string | undefined;
    readonly body: unknown;
  }

  type BatchHandler = (seen: Seen, response: http.ServerResponse) => void;

  const fakeBank = async (handler: BatchHandler): Promise<{ url: string; seen: Seen[] }> => {
    const seen: Seen[] = [];
    const server = http.createServer((request, response) => {
      let text = '';
      request.setEncoding('utf8');
      request.on('data', (chunk: string) => {
        text += chunk;
      });
      request.on('end', () => {
        const entry = { url: request.url, body: JSON.parse(text) as unknown };
        seen.push(entry);
        handler(entry, response);
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
  };

  const connect = (baseUrl: string, options: { requestTimeoutMs?: number; batchMax?: number } = {}) => {
    const client = new BankClient({
      baseUrl,
      requestTimeoutMs: options.requestTimeoutMs ?? 2_000,
      authorizationBatchMax: options.batchMax ?? 64,
      authorizationBatchesInFlightMax: 2,
    });
    clients.push(client);
    return client;
  };

  const json = (response: http.ServerResponse, status: number, body: unknown): void => {
    response.writeHead(status, { 'content-type': 'application/json' });
    response.end(JSON.stringify(body));
  };

  const paymentsOf = (seen: Seen): Array<{ reference: string }> =>
    (seen.body as { payments: Array<{ reference: string }> }).payments;

  const approvedAll = (seen: Seen, response: http.ServerResponse): void =>
    json(response, 200, {
      results: paymentsOf(seen).map(({ reference }) => ({
        reference,
        status: 'approved',
        authorizationCode: 'ABC123',
      })),
    });

  const problemOf = (status: number, code: string, detail = 'told so') => ({
    type: `urn:remit:bank:problem:${code}`,
    title: code,
    status,
    code,
    detail,
  });

  const orders = (count: number): AuthorizeRequest[] =>
    Array.from({ length: count }, (_, index) => ({ ...order, reference: `order-${index + 1}` }));

  it('sends the authorizations of one turn in one request, in order, and answers each its own', async () => {
    const bank = await fakeBank(approvedAll);
    const client = connect(bank.url);

    const answers = await Promise.all(orders(3).map((request) => client.authorize(request)));

    expect(bank.seen.map((seen) => seen.url)).toEqual(['/v1/payments/batch']);
    expect(paymentsOf(bank.seen[0] as Seen).map(({ reference }) => reference)).toEqual([
      'order-1',
      'order-2',
      'order-3',
    ]);
    expect(paymentsOf(bank.seen[0] as Seen)[0]).toEqual({
      reference: 'order-1',
      merchantId: 'merchant-1',
      amount: 500,
      currency: 'EUR',
      card: { number: cardNumber, expMonth: 12, expYear: 2030 },
    });
    expect(answers).toEqual(
      ['order-1', 'order-2', 'order-3'].map((reference) => ({
        kind: 'approved',
        reference,
        authorizationCode: 'ABC123',
      })),
    );
  });

  it('keeps to authorizationBatchMax payments per request', async () => {
    const bank = await fakeBank(approvedAll);
    const client = connect(bank.url, { batchMax: 2 });

    await Promise.all(orders(5).map((request) => client.authorize(request)));

    expect(bank.seen.map((seen) => paymentsOf(seen).length).sort()).toEqual([1, 2, 2]);
  });

  it('reads each result as the single route would be answered: a problem fails its payment alone', async () => {
    const bank = await fakeBank((seen, response) =>
      json(response, 200, {
        results: [
          { reference: 'order-1', status: 'declined', declineReason: 'card_declined' },
          { reference: 'order-2', problem: problemOf(503, 'bank_unavailable') },
          { reference: 'order-3', problem: problemOf(409, 'reference_conflict') },
          { reference: 'order-4', problem: problemOf(504, 'answer_withheld') },
          { reference: 'order-5', status: 'cancelled' },
          { reference: 'order-6', status: 'approved' },
          { reference: 'order-7', status: 'approved', authorizationCode: 'XYZ789' },
        ].slice(0, paymentsOf(seen).length),
      }),
    );
    const client = connect(bank.url);

    const outcomes = await Promise.all(
      orders(7).map((request) => client.authorize(request).catch((error: unknown) => error)),
    );

    expect(outcomes[0]).toEqual({ kind: 'declined', reference: 'order-1', declineReason: 'card_declined' });
    expect(outcomes[1]).toBeInstanceOf(BankUnavailableError);
    expect(outcomes[1]).toMatchObject({ reference: 'order-2', status: 503, code: 'bank_unavailable' });
    expect(outcomes[2]).toBeInstanceOf(BankRejectedError);
    expect(outcomes[2]).toMatchObject({ reference: 'order-3', status: 409, code: 'reference_conflict' });
    expect(outcomes[3]).toBeInstanceOf(BankAnswerWithheldError);
    expect(outcomes[3]).toMatchObject({ reference: 'order-4', outcomeUnknown: true, retryable: false });
    // A payment is never answered `cancelled`, and an approval without its code is no answer.
    expect(outcomes[4]).toBeInstanceOf(BankMalformedResponseError);
    expect(outcomes[5]).toBeInstanceOf(BankMalformedResponseError);
    expect(outcomes[6]).toMatchObject({ kind: 'approved', reference: 'order-7' });
  });

  it('a result for another reference is an unknown outcome for that payment only', async () => {
    const bank = await fakeBank((_seen, response) =>
      json(response, 200, {
        results: [
          { reference: 'order-1', status: 'approved', authorizationCode: 'ABC123' },
          { reference: 'order-9', status: 'approved', authorizationCode: 'ABC123' },
        ],
      }),
    );
    const client = connect(bank.url);

    const outcomes = await Promise.all(
      orders(2).map((request) => client.authorize(request).catch((error: unknown) => error)),
    );

    expect(outcomes[0]).toMatchObject({ kind: 'approved', reference: 'order-1' });
    expect(outcomes[1]).toBeInstanceOf(BankMalformedResponseError);
    expect(outcomes[1]).toMatchObject({ reference: 'order-2', outcomeUnknown: true });
  });

  it('a 200 that is not a batch answer, or has the wrong number of results, is an unknown outcome for each', async () => {
    for (const body of [{ nonsense: true }, { results: [] }]) {
      const bank = await fakeBank((_seen, response) => json(response, 200, body));
      const client = connect(bank.url);

      const outcomes = await Promise.all(
        orders(2).map((request) => client.authorize(request).catch((error: unknown) => error)),
      );

      outcomes.forEach((outcome, index) => {
        expect(outcome).toBeInstanceOf(BankMalformedResponseError);
        expect(outcome).toMatchObject({ reference: `order-${index + 1}`, outcomeUnknown: true });
      });
    }
  });

  it('a batch without an answer in time is a timeout for each of its payments, each by its reference', async () => {
    const bank = await fakeBank(() => undefined);
    const client = connect(bank.url, { requestTimeoutMs: 100 });

    const outcomes = await Promise.all(
      orders(3).map((request) => client.authorize(request).catch((error: unknown) => error)),
    );

    outcomes.forEach((outcome, index) => {
      expect(outcome).toBeInstanceOf(BankTimeoutError);
      expect(outcome).toMatchObject({
        reference: `order-${index + 1}`,
        outcomeUnknown: true,
        retryable: false,
      });
    });
  });

  it('a batch answered 5xx is unavailable for each of its payments: nothing was processed', async () => {
    const bank = await fakeBank((_seen, response) => json(response, 503, problemOf(503, 'bank_overloaded')));
    const client = connect(bank.url);

    const outcomes = await Promise.all(
      orders(2).map((request) => client.authorize(request).catch((error: unknown) => error)),
    );

    outcomes.forEach((outcome, index) => {
      expect(outcome).toBeInstanceOf(BankUnavailableError);
      expect(outcome).toMatchObject({
        reference: `order-${index + 1}`,
        status: 503,
        code: 'bank_overloaded',
      });
    });
  });

  it('a batch refused as a request (4xx) is sent again one payment per request, each getting its own answer', async () => {
    const bank = await fakeBank((seen, response) => {
      if (seen.url === '/v1/payments/batch') {
        json(response, 400, problemOf(400, 'invalid_request', 'request /payments/1/card/expYear is invalid'));
        return;
      }
      const { reference } = seen.body as { reference: string };
      if (reference === 'order-2') json(response, 422, problemOf(422, 'invalid_card'));
      else json(response, 200, { reference, status: 'approved', authorizationCode: 'ABC123' });
    });
    const client = connect(bank.url);

    const outcomes = await Promise.all(
      orders(3).map((request) => client.authorize(request).catch((error: unknown) => error)),
    );

    expect(bank.seen.map((seen) => seen.url)).toEqual([
      '/v1/payments/batch',
      '/v1/payments',
      '/v1/payments',
      '/v1/payments',
    ]);
    expect(outcomes[0]).toMatchObject({ kind: 'approved', reference: 'order-1' });
    expect(outcomes[1]).toBeInstanceOf(BankRejectedError);
    expect(outcomes[1]).toMatchObject({ reference: 'order-2', code: 'invalid_card' });
    expect(outcomes[2]).toMatchObject({ kind: 'approved', reference: 'order-3' });
  });

  it('never puts a card number in an error message, even when a batch result echoes it', async () => {
    const bank = await fakeBank((_seen, response) =>
      json(response, 200, {
        results: [
          { reference: 'order-1', problem: problemOf(422, 'invalid_card', `card ${cardNumber} no good`) },
        ],
      }),
    );
    const failure = await connect(bank.url)
      .authorize(order)
      .catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(BankRejectedError);
    expect(String(failure)).not.toContain(cardNumber);
  });

  it('counts every payment waiting for a batch against inFlightRequestsMax', async () => {
    const bank = await fakeBank(() => undefined);
    const client = new BankClient({ baseUrl: bank.url, requestTimeoutMs: 200, inFlightRequestsMax: 2 });
    clients.push(client);

    const outcomes = await Promise.all(
      orders(3).map((request) => client.authorize(request).catch((error: unknown) => error)),
    );

    expect(outcomes[0]).toBeInstanceOf(BankTimeoutError);
    expect(outcomes[1]).toBeInstanceOf(BankTimeoutError);
    expect(outcomes[2]).toBeInstanceOf(BankUnavailableError);
    expect(paymentsOf(bank.seen[0] as Seen)).toHaveLength(2);
  });
});
