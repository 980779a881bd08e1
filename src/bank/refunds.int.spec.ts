import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SimulatedClock } from '../runtime/clock.js';
import { SeededRandom } from '../runtime/random.js';
import { processPayment } from './authorization.js';
import { type BankFaults, noFaults, type RefundRequestBody } from './bank-protocol.js';
import { processCancel } from './cancellation.js';
import { BankLedger } from './ledger.js';
import { processRefund } from './refunds.js';

/**
 * The bank's refund rules on a real ledger file, without HTTP: each refund is decided in a
 * transaction of its own, as `processRefund` does for the simulation. What must hold: the succeeded
 * refunds of a payment never add up to more than its amount; a refund reference is answered once
 * and moves money at most once; only approved payments, in their own currency, can be refunded;
 * and faults strike at the payments' points (errorRate before anything, timeoutRate after the
 * record is written). Fault rates are 0 or 1 and the Random is seeded, so every run is the same.
 */

const now = Date.UTC(2026, 5, 15, 12);
const visa = { number: '4242424242424242', expMonth: 12, expYear: 2030 };

describe('refunds in the bank ledger', () => {
  let dataDir: string;
  let ledger: BankLedger;
  const clock = new SimulatedClock(now);
  const random = new SeededRandom(11);

  const pay = (reference: string, amount = 1_000, card = visa, currency = 'EUR') =>
    processPayment(
      ledger,
      { reference, merchantId: 'merchant-1', amount, currency, card },
      now,
      noFaults,
      random,
    );

  const refund = (
    reference: string,
    amount: number,
    overrides: Partial<RefundRequestBody> = {},
    faults: BankFaults = noFaults,
  ) =>
    processRefund(
      ledger,
      { reference, paymentReference: 'order-1', amount, currency: 'EUR', ...overrides },
      now,
      faults,
      random,
    );

  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remit-bank-refunds-'));
    ledger = BankLedger.open({ dataDir, clock });
  });

  afterEach(() => {
    ledger.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('refunds an approved payment in parts, up to its whole amount and not one unit more', () => {
    pay('order-1');

    expect(refund('refund-1', 400)).toMatchObject({
      kind: 'answered',
      firstTime: true,
      hold: false,
      record: { reference: 'refund-1', paymentReference: 'order-1', amount: 400, status: 'succeeded' },
    });
    expect(refund('refund-2', 600)).toMatchObject({ kind: 'answered', record: { status: 'succeeded' } });
    expect(refund('refund-3', 1)).toMatchObject({ kind: 'exceeds_payment', remaining: 0 });
    expect(ledger.refundedAmount('order-1')).toBe(1_000);
    expect(ledger.findRefund('refund-3')).toBeUndefined();
  });

  it('refuses a refund above what remains, records nothing, and takes one that fits afterwards', () => {
    pay('order-1');
    refund('refund-1', 700);

    expect(refund('refund-2', 301)).toMatchObject({ kind: 'exceeds_payment', remaining: 300 });
    expect(ledger.listRefunds().map((each) => each.reference)).toEqual(['refund-1']);
    expect(refund('refund-2', 300)).toMatchObject({ kind: 'answered', record: { status: 'succeeded' } });
  });

  it('answers a repeated reference with its first answer, counts it, and refunds nothing more', () => {
    pay('order-1');
    const first = refund('refund-1', 1_000);
    // Faults never touch a reference the bank already answered.
    const again = refund(
      'refund-1',
      1_000,
      {},
      { ...noFaults, errorRate: 1, declineRate: 1, timeoutRate: 1 },
    );

    expect(first).toMatchObject({ kind: 'answered', firstTime: true });
    expect(again).toMatchObject({
      kind: 'answered',
      firstTime: false,
      hold: false,
      record: { status: 'succeeded', requestCount: 2 },
    });
    expect(ledger.refundedAmount('order-1')).toBe(1_000);
    expect(ledger.listRefunds()).toHaveLength(1);
  });

  it('refuses a known reference with another payment, amount or currency as a conflict, moving nothing', () => {
    pay('order-1');
    pay('order-2');
    refund('refund-1', 100);

    for (const other of [
      { amount: 200 },
      { paymentReference: 'order-2' },
      { currency: 'USD' },
    ] satisfies Array<Partial<RefundRequestBody>>) {
      expect(refund('refund-1', other.amount ?? 100, other), JSON.stringify(other)).toMatchObject({
        kind: 'conflict',
        record: { amount: 100, paymentReference: 'order-1' },
      });
    }
    expect(ledger.refundedAmount('order-1')).toBe(100);
    expect(ledger.refundedAmount('order-2')).toBe(0);
    expect(ledger.findRefund('refund-1')?.requestCount).toBe(4);
  });

  it('refuses refunds of an unknown, a declined or a cancelled payment, and one in another currency', () => {
    pay('order-declined', 1_000, { number: '4000000000000002', expMonth: 12, expYear: 2030 });
    processCancel(ledger, { reference: 'order-cancelled', merchantId: 'merchant-1' }, now, noFaults, random);
    pay('order-1');

    expect(refund('refund-1', 100, { paymentReference: 'never-paid' })).toEqual({ kind: 'payment_unknown' });
    expect(refund('refund-2', 100, { paymentReference: 'order-declined' })).toMatchObject({
      kind: 'payment_not_approved',
      payment: { status: 'declined' },
    });
    expect(refund('refund-3', 100, { paymentReference: 'order-cancelled' })).toMatchObject({
      kind: 'payment_not_approved',
      payment: { status: 'cancelled' },
    });
    expect(refund('refund-4', 100, { currency: 'USD' })).toMatchObject({ kind: 'currency_mismatch' });
    expect(ledger.listRefunds()).toEqual([]);
  });

  it('declineRate fails a refund with refund_declined: recorded, nothing moved, the whole amount still refundable', () => {
    pay('order-1');

    expect(refund('refund-1', 1_000, {}, { ...noFaults, declineRate: 1 })).toMatchObject({
      kind: 'answered',
      record: { status: 'failed', failureReason: 'refund_declined' },
    });
    expect(ledger.refundedAmount('order-1')).toBe(0);
    expect(refund('refund-2', 1_000)).toMatchObject({ kind: 'answered', record: { status: 'succeeded' } });
    // The failed reference stays failed: its repeat is its first answer, not a second chance.
    expect(refund('refund-1', 1_000)).toMatchObject({ record: { status: 'failed' }, firstTime: false });
  });

  it('errorRate refuses before anything is looked at and records only the rejection', () => {
    pay('order-1');

    expect(refund('refund-1', 100, {}, { ...noFaults, errorRate: 1 })).toEqual({ kind: 'unavailable' });
    expect(ledger.findRefund('refund-1')).toBeUndefined();
    expect(ledger.rejectedRequests('merchant-1')).toBe(1);
  });

  it('timeoutRate commits the refund and asks for its answer to be withheld: the inquiry finds it, also after a reopen', () => {
    pay('order-1');

    expect(refund('refund-1', 250, {}, { ...noFaults, timeoutRate: 1 })).toMatchObject({
      kind: 'answered',
      hold: true,
      record: { status: 'succeeded' },
    });
    ledger.close();
    ledger = BankLedger.open({ dataDir, clock });
    expect(ledger.findRefund('refund-1')).toEqual({
      reference: 'refund-1',
      paymentReference: 'order-1',
      merchantId: 'merchant-1',
      amount: 250,
      currency: 'EUR',
      status: 'succeeded',
      createdAt: now,
      updatedAt: now,
      requestCount: 1,
    });
    expect(ledger.refundedAmount('order-1')).toBe(250);
  });

  it('lists refunds in the order the bank saw them, optionally of one merchant', () => {
    processPayment(
      ledger,
      { reference: 'order-2', merchantId: 'merchant-2', amount: 50, currency: 'USD', card: visa },
      now,
      noFaults,
      random,
    );
    pay('order-1');
    refund('refund-b', 10, { paymentReference: 'order-2', currency: 'USD' });
    refund('refund-a', 20);

    expect(ledger.listRefunds().map((each) => each.reference)).toEqual(['refund-b', 'refund-a']);
    expect(ledger.listRefunds('merchant-1').map((each) => each.reference)).toEqual(['refund-a']);
  });

  it('whatever refunds are asked, the succeeded ones never exceed the payment, and each fits when taken', () => {
    let runs = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.array(fc.record({ amount: fc.integer({ min: 1, max: 4_000 }), repeat: fc.boolean() }), {
          maxLength: 20,
        }),
        (paymentAmount, asks) => {
          // Each run refunds a payment of its own in the one ledger.
          runs++;
          const reference = `order-run-${runs}`;
          pay(reference, paymentAmount);
          let refunded = 0;
          asks.forEach((ask, index) => {
            // A repeat reuses the previous reference with its amount: it must move nothing more.
            const previous = asks[index - 1];
            const refundReference =
              ask.repeat && previous !== undefined ? `${reference}-r${index - 1}` : `${reference}-r${index}`;
            const amount = ask.repeat && previous !== undefined ? previous.amount : ask.amount;
            const before = ledger.findRefund(refundReference);
            const outcome = refund(refundReference, amount, { paymentReference: reference });
            if (before !== undefined) {
              expect(outcome).toMatchObject({ kind: 'answered', firstTime: false });
            } else if (refunded + amount <= paymentAmount) {
              expect(outcome).toMatchObject({ kind: 'answered', record: { status: 'succeeded' } });
              refunded += amount;
            } else {
              expect(outcome).toMatchObject({ kind: 'exceeds_payment', remaining: paymentAmount - refunded });
            }
            expect(ledger.refundedAmount(reference)).toBe(refunded);
          });
          expect(refunded).toBeLessThanOrEqual(paymentAmount);
        },
      ),
      { seed: 21, numRuns: 60 },
    );
  });
});
