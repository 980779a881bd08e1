import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SimulatedClock } from '../runtime/clock.js';
import { BankLedger, bankLedgerFileName, type PaymentRecord } from './ledger.js';

/**
 * The ledger file across schema versions. A ledger written by the first release (before cancelled
 * tombstones) is built by hand with that release's exact DDL, then opened by this build: its
 * payments must come back unchanged and in their order, and it must then take tombstones.
 */

// The DDL of migration 1 as it shipped, frozen here: the point is a file this build did not write.
const schemaVersion1 = `
  CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT;
  CREATE TABLE payments (
    reference TEXT PRIMARY KEY,
    merchant_id TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL CHECK (length(currency) = 3),
    status TEXT NOT NULL CHECK (status IN ('approved', 'declined')),
    authorization_code TEXT CHECK ((status = 'approved') = (authorization_code IS NOT NULL)),
    decline_reason TEXT CHECK ((status = 'declined') = (decline_reason IS NOT NULL)),
    card_brand TEXT NOT NULL,
    card_bin TEXT NOT NULL CHECK (length(card_bin) = 6),
    card_last4 TEXT NOT NULL CHECK (length(card_last4) = 4),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    request_count INTEGER NOT NULL CHECK (request_count >= 1)
  ) STRICT;
  CREATE INDEX payments_by_merchant ON payments (merchant_id);
  CREATE TABLE rejected_requests (
    merchant_id TEXT PRIMARY KEY,
    count INTEGER NOT NULL CHECK (count >= 1)
  ) STRICT, WITHOUT ROWID;
  INSERT INTO schema_migrations VALUES (1, 0);
`;

const now = Date.UTC(2026, 5, 15);
const card = { brand: 'visa', bin: '424242', last4: '4242' } as const;

describe('bank ledger migrations', () => {
  let dataDir: string;
  const clock = new SimulatedClock(now);

  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remit-bank-ledger-'));
  });

  afterEach(() => {
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('opens a version 1 ledger: its payments unchanged and in order, and it then takes tombstones', () => {
    const old = new BetterSqlite3(path.join(dataDir, bankLedgerFileName));
    old.exec(schemaVersion1);
    const insert = old.prepare('INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
    // Inserted out of alphabetical order: the ledger lists by first-seen order, which must survive.
    insert.run(
      'order-b',
      'merchant-1',
      500,
      'EUR',
      'approved',
      'ABC123',
      null,
      'visa',
      '424242',
      '4242',
      1,
      2,
      3,
    );
    insert.run(
      'order-a',
      'merchant-2',
      7,
      'USD',
      'declined',
      null,
      'card_declined',
      'visa',
      '424242',
      '4242',
      4,
      4,
      1,
    );
    old.prepare('INSERT INTO rejected_requests VALUES (?, ?)').run('merchant-1', 2);
    old.close();

    const ledger = BankLedger.open({ dataDir, clock });
    try {
      const expected: PaymentRecord[] = [
        {
          reference: 'order-b',
          merchantId: 'merchant-1',
          amount: 500,
          currency: 'EUR',
          status: 'approved',
          authorizationCode: 'ABC123',
          card,
          createdAt: 1,
          updatedAt: 2,
          requestCount: 3,
        },
        {
          reference: 'order-a',
          merchantId: 'merchant-2',
          amount: 7,
          currency: 'USD',
          status: 'declined',
          declineReason: 'card_declined',
          card,
          createdAt: 4,
          updatedAt: 4,
          requestCount: 1,
        },
      ];
      expect(ledger.list()).toEqual(expected);
      expect(ledger.list('merchant-2').map((record) => record.reference)).toEqual(['order-a']);
      expect(ledger.rejectedRequests()).toBe(2);

      const tombstone: PaymentRecord = {
        reference: 'order-c',
        merchantId: '',
        status: 'cancelled',
        createdAt: now,
        updatedAt: now,
        requestCount: 1,
      };
      ledger.insert(tombstone);
      expect(ledger.list()).toEqual([...expected, tombstone]);
      expect(ledger.countRequest('order-c', now + 1)).toEqual({
        ...tombstone,
        updatedAt: now + 1,
        requestCount: 2,
      });
    } finally {
      ledger.close();
    }

    // Reopening runs no migration twice and reads the same rows.
    const reopened = BankLedger.open({ dataDir, clock });
    try {
      expect(reopened.list().map((record) => [record.reference, record.status])).toEqual([
        ['order-b', 'approved'],
        ['order-a', 'declined'],
        ['order-c', 'cancelled'],
      ]);
      // The migrated file takes refunds of its old payments.
      reopened.insertRefund({
        reference: 'refund-1',
        paymentReference: 'order-b',
        merchantId: 'merchant-1',
        amount: 200,
        currency: 'EUR',
        status: 'succeeded',
        createdAt: now,
        updatedAt: now,
        requestCount: 1,
      });
      expect(reopened.refundedAmount('order-b')).toBe(200);
    } finally {
      reopened.close();
    }
  });

  it('refuses a cancelled row carrying payment details, and a payment row without them', () => {
    const ledger = BankLedger.open({ dataDir, clock });
    ledger.close();
    const raw = new BetterSqlite3(path.join(dataDir, bankLedgerFileName));
    try {
      const insert = raw.prepare('INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
      type Column = 'amount' | 'currency' | 'status' | 'code' | 'brand' | 'bin' | 'last4';
      const row = (overrides: Partial<Record<Column, unknown>>) => {
        const values = {
          amount: 0,
          currency: null,
          status: 'cancelled',
          code: null,
          brand: null,
          bin: null,
          last4: null,
          ...overrides,
        };
        return [
          `ref-${JSON.stringify(overrides)}`,
          '',
          values.amount,
          values.currency,
          values.status,
          values.code,
          null,
          values.brand,
          values.bin,
          values.last4,
          now,
          now,
          1,
        ];
      };

      expect(() => insert.run(...row({}))).not.toThrow();
      for (const broken of [
        { amount: 5 },
        { currency: 'EUR' },
        { brand: 'visa' },
        { bin: '424242' },
        { last4: '4242' },
        { status: 'declined' },
      ]) {
        expect(() => insert.run(...row(broken)), JSON.stringify(broken)).toThrow(/CHECK constraint/);
      }
      const approved = {
        status: 'approved',
        amount: 5,
        currency: 'EUR',
        code: 'ABC123',
        brand: 'visa',
        bin: '424242',
        last4: '4242',
      };
      expect(() => insert.run(...row(approved))).not.toThrow();
      for (const missing of ['currency', 'brand', 'bin', 'last4'] as const) {
        expect(() => insert.run(...row({ ...approved, [missing]: null })), missing).toThrow(/constraint/);
      }
    } finally {
      raw.close();
    }
  });

  it('refuses a refund row whose status does not match its failure reason, or with no amount', () => {
    const ledger = BankLedger.open({ dataDir, clock });
    ledger.close();
    const raw = new BetterSqlite3(path.join(dataDir, bankLedgerFileName));
    try {
      const insert = raw.prepare('INSERT INTO refunds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
      const row = (reference: string, amount: number, status: string, reason: string | null) => [
        reference,
        'order-1',
        'merchant-1',
        amount,
        'EUR',
        status,
        reason,
        now,
        now,
        1,
      ];

      expect(() => insert.run(...row('refund-1', 5, 'succeeded', null))).not.toThrow();
      expect(() => insert.run(...row('refund-2', 5, 'failed', 'refund_declined'))).not.toThrow();
      for (const [amount, status, reason] of [
        [5, 'succeeded', 'refund_declined'],
        [5, 'failed', null],
        [0, 'succeeded', null],
        [5, 'pending', null],
      ] as const) {
        expect(() => insert.run(...row(`refund-${status}-${amount}`, amount, status, reason))).toThrow(
          /CHECK constraint/,
        );
      }
    } finally {
      raw.close();
    }
  });
});
