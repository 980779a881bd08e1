import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type AuthorizeRequest, BankClient } from './bank-client.js';
import {
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

type Handler = (request: http.IncomingMessage, response: http.ServerResponse) => void;

describe('BankClient against misbehaving banks', () => {
  const servers: http.Server[] = [];
  const clients: BankClient[] = [];

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

  const connect = (
    baseUrl: string,
    options: { requestTimeoutMs?: number; inFlightRequestsMax?: number; deadlineSharingMs?: number } = {},
  ) => {
    const client = new BankClient({
      baseUrl,
      requestTimeoutMs: options.requestTimeoutMs ?? 2_000,
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

  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    await Promise.all(clients.splice(0).map((client) => client.close()));
  });

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
