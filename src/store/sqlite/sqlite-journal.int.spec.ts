import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeJournalContract } from '../../testing/journal-contract.js';
import { type AppendRequest, ConcurrentWriteError, type MessageKey } from '../journal.js';
import { latestSchemaVersion, migrations, SchemaTooNewError } from './migrations.js';
import {
  busyTimeoutMs,
  openDatabase,
  openSqliteStore,
  pageSizeBytes,
  type SqliteStore,
} from './open-database.js';
import { selectProcessedSql } from './sqlite-journal.js';

function temporaryDirectory(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'remit-sqlite-'));
}

/** Runs `change` on a second connection, as another process (or a failing disk) would. */
function onOtherConnection(file: string, change: (database: BetterSqlite3.Database) => void): void {
  const database = new BetterSqlite3(file);
  try {
    change(database);
  } finally {
    database.close();
  }
}

const writerModes = ['inline', 'thread'] as const;

for (const writer of writerModes)
  describeJournalContract(`sqlite, ${writer} writer`, async () => {
    const directory = temporaryDirectory();
    const file = path.join(directory, 'remit.db');
    const store = openSqliteStore({ path: file, writer });
    return {
      journal: store.journal,
      snapshots: store.snapshots,
      corrupt: async (persistenceId, seqNr) =>
        onOtherConnection(file, (database) => {
          const changed = database
            .prepare("UPDATE journal SET payload = payload || ' ' WHERE persistence_id = ? AND seq_nr = ?")
            .run(persistenceId, seqNr).changes;
          expect(changed).toBe(1);
        }),
      corruptSnapshot: async (persistenceId, seqNr) =>
        onOtherConnection(file, (database) => {
          const changed = database
            .prepare("UPDATE snapshots SET payload = payload || ' ' WHERE persistence_id = ? AND seq_nr = ?")
            .run(persistenceId, seqNr).changes;
          expect(changed).toBe(1);
        }),
      teardown: async () => {
        await store.close();
        fs.rmSync(directory, { recursive: true, force: true });
      },
    };
  });

function request(persistenceId: string, fromSeqNr: number, count = 1): AppendRequest {
  return {
    persistenceId,
    fromSeqNr,
    events: Array.from({ length: count }, (_, index) => ({
      type: 'Happened',
      version: 1,
      payload: JSON.stringify({ seqNr: fromSeqNr + index }),
    })),
    timestamp: 1_000,
  };
}

describe.each(writerModes)('SQLite store, %s writer', (writer) => {
  let directory: string;
  let file: string;
  const opened: SqliteStore[] = [];

  const open = (): SqliteStore => {
    const store = openSqliteStore({ path: file, writer });
    opened.push(store);
    return store;
  };

  beforeEach(() => {
    directory = temporaryDirectory();
    file = path.join(directory, 'remit.db');
  });

  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
    fs.rmSync(directory, { recursive: true, force: true });
  });

  it('opens with WAL, synchronous=FULL and a busy timeout', () => {
    const database = openDatabase(file);
    try {
      expect(database.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(database.pragma('synchronous', { simple: true })).toBe(2 /* FULL */);
      expect(database.pragma('busy_timeout', { simple: true })).toBe(busyTimeoutMs);
      expect(database.pragma('page_size', { simple: true })).toBe(pageSizeBytes);
    } finally {
      database.close();
    }
  });

  it('keeps events, snapshots and processed ids across close and reopen', async () => {
    const first = open();
    await first.journal.append({
      ...request('a', 1, 3),
      processed: { receiverId: 'a', messages: [{ id: 'm1', time: 7 }] },
    });
    await first.snapshots.save({
      persistenceId: 'a',
      seqNr: 3,
      version: 1,
      payload: '{"s":3}',
      timestamp: 9,
    });
    const before = await first.journal.readAll(0, 100);
    await first.close();

    const second = open();
    expect(await second.journal.readAll(0, 100)).toEqual(before);
    expect(await second.journal.highestSeqNr('a')).toBe(3);
    expect(await second.journal.isProcessed('a', { id: 'm1', time: 7 })).toBe(true);
    expect((await second.snapshots.loadLatest('a'))?.seqNr).toBe(3);
    await second.journal.append(request('a', 4));
    const after = await second.journal.readAll(0, 100);
    expect(after.map((row) => row.seqNr)).toEqual([1, 2, 3, 4]);
    expect(after[3]?.offset).toBeGreaterThan(before[2]?.offset ?? Number.POSITIVE_INFINITY);
  });

  it('tells the commit observer of every batch, its duration and its appends', async () => {
    const commits: Array<{ seconds: number; appends: number }> = [];
    const store = openSqliteStore({
      path: file,
      writer,
      onCommitted: (seconds, appends) => commits.push({ seconds, appends }),
    });
    opened.push(store);
    await Promise.all([store.journal.append(request('a', 1)), store.journal.append(request('b', 1, 2))]);
    await store.journal.append(request('a', 2));
    expect(commits.map((commit) => commit.appends)).toEqual([2, 1]);
    for (const commit of commits) expect(commit.seconds).toBeGreaterThanOrEqual(0);
  });

  it('migrates once: reopening a migrated file applies nothing', async () => {
    await open().close();
    await open().close();
    onOtherConnection(file, (database) => {
      const versions = database
        .prepare('SELECT version FROM schema_migrations ORDER BY version')
        .pluck()
        .all();
      expect(versions).toEqual(Array.from({ length: latestSchemaVersion }, (_, index) => index + 1));
    });
  });

  it('refuses a file from a newer schema version with a clear error', async () => {
    await open().close();
    onOtherConnection(file, (database) => {
      database
        .prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)')
        .run(latestSchemaVersion + 1, 0);
    });
    expect(() => openSqliteStore({ path: file })).toThrow(SchemaTooNewError);
    expect(() => openSqliteStore({ path: file })).toThrow(
      new RegExp(`schema version ${latestSchemaVersion + 1}, newer than this build`),
    );
  });

  it('upgrades a version-1 file: its processed records still answer, whatever the message time', async () => {
    onOtherConnection(file, (database) => {
      database.exec(
        'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT',
      );
      database.exec(migrations[0]?.sql ?? '');
      database.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (1, 0)').run();
      const insert = database.prepare(
        'INSERT INTO processed_messages (receiver_id, message_id, processed_at) VALUES (?, ?, ?)',
      );
      insert.run('executor-a', 'before-1', 500);
      insert.run('executor-a', 'before-2', 1_500);
    });
    const store = open();
    const key = (id: string, time: number): MessageKey => ({ id, time });
    expect(await store.journal.isProcessed('executor-a', key('before-1', 1_700_000_000_000))).toBe(true);
    expect(await store.journal.isProcessed('executor-a', key('before-2', 0))).toBe(true);
    expect(await store.journal.isProcessed('executor-b', key('before-1', 0))).toBe(false);

    await store.journal.append({
      ...request('executor-a', 1),
      processed: { receiverId: 'executor-a', messages: [key('after-1', 1_700_000_000_000)] },
    });
    expect(await store.journal.isProcessed('executor-a', key('after-1', 1_700_000_000_000))).toBe(true);
    // Retention purges old and new records alike, by processing time.
    expect(await store.journal.purgeProcessed('executor-a', 1_000)).toBe(1);
    expect(await store.journal.isProcessed('executor-a', key('before-1', 0))).toBe(false);
    expect(await store.journal.isProcessed('executor-a', key('before-2', 0))).toBe(true);
    onOtherConnection(file, (database) => {
      expect(database.prepare('SELECT max(version) FROM schema_migrations').pluck().get()).toBe(
        latestSchemaVersion,
      );
      expect(
        database.prepare('SELECT message_time FROM processed_messages ORDER BY message_id').pluck().all(),
      ).toEqual([1_700_000_000_000, 0]);
    });
  });

  it('places processed records by message time: a lookup is a primary-key search, never a scan', async () => {
    await open().close();
    onOtherConnection(file, (database) => {
      const plan = database
        .prepare(`EXPLAIN QUERY PLAN ${selectProcessedSql}`)
        .all('r', 1, 'm')
        .map((row) => (row as { detail: string }).detail);
      expect(plan).toEqual([
        'SEARCH processed_messages USING PRIMARY KEY (receiver_id=? AND message_time=? AND message_id=?)',
      ]);
    });
  });

  it('fences a second store on the same file: only one writer of a seqNr wins', async () => {
    // Two stores on one file stand for two nodes that both believe they own the entity.
    const owner = open();
    const stale = open();
    await owner.journal.append(request('merchant-1', 1, 2));
    await expect(stale.journal.append(request('merchant-1', 1, 1))).rejects.toBeInstanceOf(
      ConcurrentWriteError,
    );
    await stale.journal.append(request('merchant-1', 3, 1));
    await expect(owner.journal.append(request('merchant-1', 3, 1))).rejects.toBeInstanceOf(
      ConcurrentWriteError,
    );
    expect(await owner.journal.highestSeqNr('merchant-1')).toBe(3);
  });

  it('fails the whole batch when the transaction fails, writing nothing of any append in it', async () => {
    // A trigger stands in for a failing disk: it aborts the insert of one event mid-append, after
    // the append's first event and a batch-mate's events were already inserted in the transaction.
    const store = open();
    onOtherConnection(file, (database) => {
      database.exec(
        "CREATE TRIGGER fail_poison BEFORE INSERT ON journal WHEN NEW.event_type = 'Poison' " +
          "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END",
      );
    });
    const poisoned: AppendRequest = {
      ...request('a', 1, 1),
      events: [...request('a', 1, 1).events, { type: 'Poison', version: 1, payload: '{}' }],
      processed: { receiverId: 'a', messages: [{ id: 'm1', time: 7 }] },
    };
    const results = await Promise.allSettled([
      store.journal.append(request('b', 1, 2)),
      store.journal.append(poisoned),
    ]);
    expect(results.map((result) => result.status)).toEqual(['rejected', 'rejected']);
    expect(results[1]?.status === 'rejected' && String(results[1].reason)).toMatch(/disk on fire/);
    expect(await store.journal.readAll(0, 10)).toEqual([]);
    expect(await store.journal.isProcessed('a', { id: 'm1', time: 7 })).toBe(false);
    expect(store.journal.stats()).toMatchObject({ appends: 0, events: 0, transactions: 0, failedAppends: 2 });

    onOtherConnection(file, (database) => database.exec('DROP TRIGGER fail_poison'));
    await store.journal.append(request('b', 1, 2));
    expect(await store.journal.highestSeqNr('b')).toBe(2);
  });

  it('never reuses an offset, even after the newest row is deleted', async () => {
    const store = open();
    await store.journal.append(request('a', 1, 2));
    const [, last] = await store.journal.readAll(0, 10);
    onOtherConnection(file, (database) => {
      database.prepare('DELETE FROM journal WHERE global_offset = ?').run(last?.offset);
    });
    await store.journal.append(request('b', 1));
    const [, next] = await store.journal.readAll(0, 10);
    expect(next?.offset).toBeGreaterThan(last?.offset ?? Number.POSITIVE_INFINITY);
  });

  it('treats a row whose checksum was changed behind its back as corrupt', async () => {
    const store = open();
    await store.journal.append(request('a', 1, 1));
    onOtherConnection(file, (database) => {
      database.prepare('UPDATE journal SET checksum = checksum + 1 WHERE persistence_id = ?').run('a');
    });
    await expect(store.journal.read('a', 1)).rejects.toMatchObject({ name: 'CorruptRowError', seqNr: 1 });
  });

  it('closes the file only when both the journal and the snapshot store are closed', async () => {
    const store = open();
    await store.journal.close();
    await store.snapshots.save({ persistenceId: 'a', seqNr: 1, version: 1, payload: '{}', timestamp: 1 });
    expect((await store.snapshots.loadLatest('a'))?.seqNr).toBe(1);
    await store.close();
  });
});
