import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BankPort, PaymentRequest, RefundRequest } from '../payments/executor-protocol.js';
import { SimulatedClock } from '../runtime/clock.js';
import { SeededRandom } from '../runtime/random.js';
import { BankClient } from './bank-client.js';
import { BankConnection, classifyBankError } from './bank-connection.js';
import {
  BankConnectionLostError,
  BankMalformedResponseError,
  BankRejectedError,
  BankTimeoutError,
} from './bank-errors.js';
import { type RunningBankServer, startBankServer } from './bank-server.js';
import { SimulatedBank, SimulatedBankRefusal } from './simulated-bank.js';

/**
 * The Executor's BankPort over real HTTP: a BankConnection in front of the bank simulator on
 * 127.0.0.1 (a free port, the ledger in a temporary directory). It checks the adapter speaks the
 * domain's types, that cancel settles a reference as the in-memory SimulatedBank does, and that
 * every way the bank fails is classified as the Executor must treat it. The bank's clock is fixed
 * so card expiry is deterministic; fault rates are 0 or 1, so every run is the same.
 */

const bankNow = Date.UTC(2026, 5, 15, 12, 0, 0);

function payment(reference: string, overrides: Partial<PaymentRequest> = {}): PaymentRequest {
  return {
    reference,
    merchantId: 'merchant-1',
    amount: 1_250n,
    currency: 'EUR',
    card: { number: '4242424242424242', expMonth: 12, expYear: 2030 },
    ...overrides,
  };
}

function refund(reference: string, overrides: Partial<RefundRequest> = {}): RefundRequest {
  return {
    reference,
    paymentReference: 'order-1',
    merchantId: 'merchant-a',
    amount: 500n,
    currency: 'EUR',
    ...overrides,
  };
}

describe('BankConnection against the bank simulator', () => {
  let dataDir: string;
  let server: RunningBankServer | undefined;
  const clients: BankClient[] = [];

  const start = async (): Promise<RunningBankServer> => {
    server = await startBankServer({
      port: 0,
      dataDir,
      clock: new SimulatedClock(bankNow),
      random: new SeededRandom(42),
    });
    return server;
  };

  const connect = (
    running: RunningBankServer,
    requestTimeoutMs = 5_000,
  ): { bank: BankConnection; client: BankClient } => {
    const client = new BankClient({ baseUrl: running.url, requestTimeoutMs, connections: 2 });
    clients.push(client);
    return { bank: new BankConnection(client), client };
  };

  const failureOf = (call: Promise<unknown>): Promise<unknown> =>
    call.then(
      () => {
        throw new Error('expected the call to fail');
      },
      (error: unknown) => error,
    );

  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remit-bank-connection-'));
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    await server?.close();
    server = undefined;
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('approves, and an inquiry finds the same answer', async () => {
    const { bank } = connect(await start());

    const answer = await bank.authorize(payment('order-1'));

    expect(answer).toEqual({
      kind: 'approved',
      reference: 'order-1',
      authorizationCode: expect.stringMatching(/^[A-Z0-9]{6}$/),
    });
    expect(await bank.inquire('order-1')).toEqual(answer);
  });

  it('declines, and an inquiry finds the decline', async () => {
    const { bank } = connect(await start());

    const answer = await bank.authorize(
      payment('order-1', { card: { number: '4000000000009995', expMonth: 1, expYear: 2030 } }),
    );

    expect(answer).toEqual({ kind: 'declined', reference: 'order-1', declineReason: 'insufficient_funds' });
    expect(await bank.inquire('order-1')).toEqual(answer);
  });

  it('an inquiry of a reference the bank never saw is not_found', async () => {
    const { bank } = connect(await start());
    expect(await bank.inquire('never-sent')).toEqual({ kind: 'not_found', reference: 'never-sent' });
  });

  describe('cancel', () => {
    it('settles an unseen reference: cancelled, a later authorization is declined, nothing is charged', async () => {
      const { bank, client } = connect(await start());

      expect(await bank.cancel('order-1')).toEqual({ kind: 'cancelled', reference: 'order-1' });
      expect(await bank.authorize(payment('order-1'))).toEqual({
        kind: 'declined',
        reference: 'order-1',
        declineReason: 'reference_cancelled',
      });
      // An inquiry tells a cancelled reference apart: the executor reports it failed, not declined.
      expect(await bank.inquire('order-1')).toEqual({ kind: 'cancelled', reference: 'order-1' });
      expect(await bank.cancel('order-1')).toEqual({ kind: 'cancelled', reference: 'order-1' });
      expect((await client.ledger()).totals).toMatchObject({
        approved: 0,
        cancelled: 1,
        approvedAmountByCurrency: {},
      });
    });

    it('is too late for an approved payment and answers a declined one with its decline', async () => {
      const { bank } = connect(await start());
      const approved = await bank.authorize(payment('order-1'));
      const declined = await bank.authorize(
        payment('order-2', { card: { number: '4000000000000002', expMonth: 1, expYear: 2030 } }),
      );

      expect(await bank.cancel('order-1')).toEqual(approved);
      expect(await bank.cancel('order-2')).toEqual(declined);
    });
  });

  describe('refunds', () => {
    it('speaks the domain types: succeeded, failed with its reason, and not_found', async () => {
      const { bank, client } = connect(await start());
      await bank.authorize(payment('order-1'));

      expect(await bank.refund(refund('refund-1'))).toEqual({ kind: 'succeeded', reference: 'refund-1' });
      await client.setFaults({ declineRate: 1 });
      expect(await bank.refund(refund('refund-2'))).toEqual({
        kind: 'failed',
        reference: 'refund-2',
        failureReason: 'refund_declined',
      });
      expect(await bank.inquireRefund('refund-2')).toEqual({
        kind: 'failed',
        reference: 'refund-2',
        failureReason: 'refund_declined',
      });
      expect(await bank.inquireRefund('refund-3')).toEqual({ kind: 'not_found', reference: 'refund-3' });
    });

    /**
     * The in-memory SimulatedBank stands in for the simulator in most of the gateway's tests, so
     * both must answer one sequence of operations alike: the same answers, and the same refusals
     * under the same problem codes. Faults are off in both; their draws differ by design.
     */
    it('the in-memory SimulatedBank answers a sequence of operations as the simulator does', async () => {
      const { bank: connection } = connect(await start());
      const simulated = new SimulatedBank(new SeededRandom(5));
      const operations: Array<(bank: BankPort) => Promise<unknown>> = [
        (bank) => bank.authorize(payment('order-1')),
        (bank) =>
          bank.authorize(
            payment('order-2', { card: { number: '4000000000000002', expMonth: 12, expYear: 2030 } }),
          ),
        (bank) => bank.cancel('order-3'),
        (bank) => bank.refund(refund('refund-1')),
        (bank) => bank.refund(refund('refund-2', { amount: 750n })),
        (bank) => bank.refund(refund('refund-3', { amount: 1n })),
        (bank) => bank.refund(refund('refund-1')),
        (bank) => bank.refund(refund('refund-1', { amount: 499n })),
        (bank) => bank.refund(refund('refund-4', { paymentReference: 'never-paid' })),
        (bank) => bank.refund(refund('refund-5', { paymentReference: 'order-2' })),
        (bank) => bank.refund(refund('refund-6', { paymentReference: 'order-3' })),
        (bank) => bank.refund(refund('refund-7', { currency: 'USD' })),
        (bank) => bank.inquireRefund('refund-2'),
        (bank) => bank.inquireRefund('refund-3'),
      ];
      const outcome = (call: Promise<unknown>): Promise<unknown> =>
        call.then(
          (value) => {
            // Authorization codes are drawn, not decided: compare that there is one.
            if (typeof value === 'object' && value !== null && 'authorizationCode' in value) {
              return { ...value, authorizationCode: 'drawn' };
            }
            return value;
          },
          (error: unknown) => {
            if (error instanceof SimulatedBankRefusal || error instanceof BankRejectedError) {
              return { refused: error.code };
            }
            throw error;
          },
        );

      const overHttp: unknown[] = [];
      const inMemory: unknown[] = [];
      for (const operation of operations) {
        overHttp.push(await outcome(operation(connection)));
        inMemory.push(await outcome(operation(simulated)));
      }

      expect(inMemory).toEqual(overHttp);
      expect(overHttp.slice(3, 12)).toEqual([
        { kind: 'succeeded', reference: 'refund-1' },
        { kind: 'succeeded', reference: 'refund-2' },
        { refused: 'refund_exceeds_payment' },
        { kind: 'succeeded', reference: 'refund-1' },
        { refused: 'reference_conflict' },
        { refused: 'refund_payment_unknown' },
        { refused: 'refund_payment_not_approved' },
        { refused: 'refund_payment_not_approved' },
        { refused: 'refund_currency_mismatch' },
      ]);
      expect(simulated.refunded('order-1')).toBe(1_250n);
    });
  });

  describe('classifyBankError', () => {
    it('a bank that is down is retryable: nothing can have been sent', async () => {
      const running = await start();
      const { bank } = connect(running);
      await running.close();

      // Each failure is caught as the call is made: they settle in any order (an authorization
      // waits a turn of the event loop for its batch).
      const failures = await Promise.all(
        [bank.authorize(payment('order-1')), bank.inquire('order-1'), bank.cancel('order-1')].map(failureOf),
      );
      for (const failure of failures) expect(classifyBankError(failure)).toBe('retryable');
    });

    it('errorRate 1 (a 503) is retryable', async () => {
      const { bank, client } = connect(await start());
      await client.setFaults({ errorRate: 1 });

      expect(classifyBankError(await failureOf(bank.authorize(payment('order-1'))))).toBe('retryable');
      expect(classifyBankError(await failureOf(bank.cancel('order-1')))).toBe('retryable');
    });

    it('a timed-out authorization is an unknown outcome, and the inquiry finds it charged', async () => {
      const { bank, client } = connect(await start(), 200);
      await client.setFaults({ timeoutRate: 1 });

      const failure = await failureOf(bank.authorize(payment('order-1')));

      expect(classifyBankError(failure)).toBe('unknown_outcome');
      expect((await bank.inquire('order-1')).kind).toBe('approved');
    });

    it('an invalid card is refused', async () => {
      const { bank } = connect(await start());

      const failure = await failureOf(
        bank.authorize(
          payment('order-1', { card: { number: '4242424242424241', expMonth: 12, expYear: 2030 } }),
        ),
      );

      expect(classifyBankError(failure)).toBe('refused');
      expect(await bank.inquire('order-1')).toEqual({ kind: 'not_found', reference: 'order-1' });
    });

    it('a reference reused with another amount is refused', async () => {
      const { bank } = connect(await start());
      await bank.authorize(payment('order-1'));

      const failure = await failureOf(bank.authorize(payment('order-1', { amount: 1n })));

      expect(classifyBankError(failure)).toBe('refused');
    });

    it('an unknown outcome matters only for a call that moves money: an inquiry or a cancel is just made again', () => {
      for (const operation of ['authorize', 'inquire', 'cancel', 'refund', 'inquireRefund'] as const) {
        const expected =
          operation === 'authorize' || operation === 'refund' ? 'unknown_outcome' : 'retryable';
        expect(classifyBankError(new BankTimeoutError(operation, 'order-1', 200)), operation).toBe(expected);
        expect(classifyBankError(new BankConnectionLostError(operation, 'order-1', 'ECONNRESET'))).toBe(
          expected,
        );
        expect(classifyBankError(new BankMalformedResponseError(operation, 'order-1', 200, 'garbage'))).toBe(
          expected,
        );
      }
      expect(
        classifyBankError(new BankRejectedError('cancel', 'order-1', 400, 'invalid_request', 'bad')),
      ).toBe('refused');
    });

    it('refunds: unreachable or 503 is retryable, a timeout an unknown outcome the inquiry settles, an over-refund refused', async () => {
      const down = await start();
      const unreachable = connect(down).bank;
      await down.close();
      for (const call of [unreachable.refund(refund('refund-1')), unreachable.inquireRefund('refund-1')]) {
        expect(classifyBankError(await failureOf(call))).toBe('retryable');
      }

      const { bank, client } = connect(await start(), 200);
      await bank.authorize(payment('order-1'));
      await client.setFaults({ errorRate: 1 });
      expect(classifyBankError(await failureOf(bank.refund(refund('refund-1'))))).toBe('retryable');
      await client.setFaults({ errorRate: 0, timeoutRate: 1 });
      expect(classifyBankError(await failureOf(bank.refund(refund('refund-1'))))).toBe('unknown_outcome');
      expect(await bank.inquireRefund('refund-1')).toEqual({ kind: 'succeeded', reference: 'refund-1' });
      await client.setFaults({ timeoutRate: 0 });
      expect(classifyBankError(await failureOf(bank.refund(refund('refund-2', { amount: 751n }))))).toBe(
        'refused',
      );
    });

    it('anything it does not recognise is retryable', () => {
      expect(classifyBankError(new Error('boom'))).toBe('retryable');
      expect(classifyBankError('not an error')).toBe('retryable');
    });
  });
});
