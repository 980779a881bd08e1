import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SimulatedClock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { silentLogger } from '../runtime/logger.js';
import { BankLedger, bankLedgerFileName, type PaymentRecord } from './ledger.js';
import {
  LedgerClosedError,
  LedgerCommitFailedError,
  type LedgerCommitSettings,
  LedgerCommitter,
  LedgerOverloadedError,
} from './ledger-committer.js';

/**
 * The ledger's group commit over a real ledger file. Writes are submitted synchronously in one
 * turn of the event loop, which is exactly what makes them share a batch, so the number of
 * transactions each test expects is exact, not a timing guess. Whether a write is durable is read
 * through a second connection to the file, which sees committed data only.
 */

const now = Date.UTC(2026, 5, 15);

function tombstone(reference: string): PaymentRecord {
  return {
    reference,
    merchantId: 'merchant-1',
    status: 'cancelled',
    createdAt: now,
    updatedAt: now,
    requestCount: 1,
  };
}

/** Inserts a tombstone for `reference` and returns the reference. */
function insertTombstone(reference: string): (ledger: BankLedger) => string {
  return (ledger) => {
    ledger.insert(tombstone(reference));
    return reference;
  };
}

function recordingLogger(lines: { level: string; message: string }[]): Logger {
  const write =
    (level: string) =>
    (_fields: object, message: string): void => {
      lines.push({ level, message });
    };
  const logger: Logger = {
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    child: () => logger,
  };
  return logger;
}

describe('LedgerCommitter', () => {
  let dataDir: string;
  let ledger: BankLedger;
  let committers: LedgerCommitter[];

  const committer = (
    settings: Partial<LedgerCommitSettings> = {},
    logger: Logger = silentLogger,
  ): LedgerCommitter => {
    const created = new LedgerCommitter(
      ledger,
      { batchWritesMax: 1_024, pendingWritesMax: 10_000, ...settings },
      logger,
    );
    committers.push(created);
    return created;
  };

  /** The references committed to the file, read through a connection of their own. */
  const committedReferences = (): string[] => {
    const reader = new BetterSqlite3(path.join(dataDir, bankLedgerFileName), { readonly: true });
    try {
      return reader
        .prepare('SELECT reference FROM payments ORDER BY rowid')
        .pluck()
        .all()
        .map((value) => String(value));
    } finally {
      reader.close();
    }
  };

  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remit-ledger-committer-'));
    ledger = BankLedger.open({ dataDir, clock: new SimulatedClock(now) });
    committers = [];
  });

  afterEach(async () => {
    vi.restoreAllMocks();
    await Promise.all(committers.map((each) => each.close()));
    ledger.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('commits the writes of one turn in one transaction, each answered after the commit', async () => {
    const commits = committer();
    const before = ledger.transactionsCommitted;
    const references = Array.from({ length: 200 }, (_, index) => `order-${index}`);

    const answers = await Promise.all(
      references.map((reference) =>
        commits.write(insertTombstone(reference)).then((answered) => {
          // Resolved only once another connection can read it: committed, not merely written.
          expect(committedReferences()).toContain(answered);
          return answered;
        }),
      ),
    );

    expect(answers).toEqual(references);
    expect(ledger.transactionsCommitted - before).toBe(1);
    expect(committedReferences()).toEqual(references);
  });

  it('splits a turn into transactions of at most batchWritesMax writes', async () => {
    const commits = committer({ batchWritesMax: 64 });
    const before = ledger.transactionsCommitted;

    await Promise.all(
      Array.from({ length: 200 }, (_, index) => commits.write(insertTombstone(`order-${index}`))),
    );

    expect(ledger.transactionsCommitted - before).toBe(Math.ceil(200 / 64));
  });

  it('puts writes submitted while a transaction runs into the next one', async () => {
    const commits = committer();
    const before = ledger.transactionsCommitted;
    const late: Promise<string>[] = [];

    await commits.write((inside) => {
      for (let index = 0; index < 10; index++) late.push(commits.write(insertTombstone(`late-${index}`)));
      return insertTombstone('first')(inside);
    });
    expect(committedReferences()).toEqual(['first']);
    await Promise.all(late);

    expect(ledger.transactionsCommitted - before).toBe(2);
    expect(committedReferences()).toHaveLength(11);
  });

  it('runs the writes of a batch in order, each seeing the ones before it', async () => {
    const commits = committer();
    const seen = await Promise.all([
      commits.write((inside) => inside.find('order-1')?.status),
      commits.write(insertTombstone('order-1')),
      commits.write((inside) => inside.countRequest('order-1', now)?.requestCount),
    ]);

    expect(seen).toEqual([undefined, 'order-1', 2]);
    expect(ledger.transactionsCommitted).toBe(1);
  });

  it('fails a write that throws alone: its changes are undone, the rest of its batch commits', async () => {
    const commits = committer();
    const failure = new Error('a write that breaks');

    const results = await Promise.allSettled([
      commits.write(insertTombstone('order-1')),
      commits.write((inside) => {
        inside.insert(tombstone('order-2'));
        throw failure;
      }),
      commits.write(insertTombstone('order-3')),
    ]);

    expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(results[1]).toEqual({ status: 'rejected', reason: failure });
    expect(ledger.transactionsCommitted).toBe(1);
    expect(committedReferences()).toEqual(['order-1', 'order-3']);
  });

  it('fails every write of a batch whose transaction fails to commit, and records none of them', async () => {
    const lines: { level: string; message: string }[] = [];
    const commits = committer({}, recordingLogger(lines));
    const realTransaction = ledger.transaction.bind(ledger);
    // A COMMIT that fails (disk full, I/O error): the batch's work runs, then the transaction
    // throws and better-sqlite3 rolls it back. Only the batch's own transaction is replaced; the
    // savepoints inside it are real.
    vi.spyOn(ledger, 'transaction').mockImplementationOnce(
      <T>(work: () => T): T =>
        realTransaction(() => {
          work();
          throw new Error('disk I/O error');
        }),
    );

    const results = await Promise.allSettled(
      ['order-1', 'order-2', 'order-3'].map((reference) => commits.write(insertTombstone(reference))),
    );

    for (const result of results) {
      expect(result.status).toBe('rejected');
      if (result.status === 'rejected') {
        expect(result.reason).toBeInstanceOf(LedgerCommitFailedError);
        expect(result.reason).toMatchObject({ batchWrites: 3 });
      }
    }
    expect(committedReferences()).toEqual([]);
    expect(ledger.list()).toEqual([]);
    expect(lines.filter((line) => line.level === 'error')).toHaveLength(1);

    // The next batch commits as usual.
    expect(await commits.write(insertTombstone('order-4'))).toBe('order-4');
    expect(committedReferences()).toEqual(['order-4']);
  });

  it('refuses writes beyond pendingWritesMax before doing anything, and warns once', async () => {
    const lines: { level: string; message: string }[] = [];
    const commits = committer({ pendingWritesMax: 3 }, recordingLogger(lines));
    const work = vi.fn(insertTombstone('unused'));

    const results = await Promise.allSettled(
      Array.from({ length: 5 }, (_, index) =>
        commits.write(index < 3 ? insertTombstone(`order-${index}`) : work),
      ),
    );

    expect(results.map((result) => result.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'fulfilled',
      'rejected',
      'rejected',
    ]);
    expect(results[4]).toMatchObject({ reason: new LedgerOverloadedError(3) });
    expect(work).not.toHaveBeenCalled();
    expect(committedReferences()).toEqual(['order-0', 'order-1', 'order-2']);
    expect(lines.filter((line) => line.level === 'warn')).toHaveLength(1);

    // Room again once the batch committed.
    expect(await commits.write(insertTombstone('order-3'))).toBe('order-3');
  });

  it('commits what was submitted before close, and refuses writes after it', async () => {
    const commits = committer();
    const pending = commits.write(insertTombstone('order-1'));

    await commits.close();

    expect(await pending).toBe('order-1');
    expect(committedReferences()).toEqual(['order-1']);
    await expect(commits.write(insertTombstone('order-2'))).rejects.toBeInstanceOf(LedgerClosedError);
  });

  it('refuses settings without a bound', () => {
    expect(() => committer({ batchWritesMax: 0 })).toThrow(/batchWritesMax/);
    expect(() => committer({ pendingWritesMax: Number.POSITIVE_INFINITY })).toThrow(/pendingWritesMax/);
  });
});
