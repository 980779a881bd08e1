import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MessageChannel, type MessagePort, threadId } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AppendRequest } from '../journal.js';
import { openDatabase, openSqliteStore, type SqliteStore } from './open-database.js';
import { SqliteVaultStorage } from './sqlite-vault-storage.js';
import { ThreadWriter, WriterFailedError } from './sqlite-writer.js';
import { JournalWrites } from './store-writes.js';

const echoGuest = new URL('../../testing/echo-guest.ts', import.meta.url);

function nextMessage(port: MessagePort): Promise<unknown> {
  return new Promise((resolve) => port.once('message', resolve));
}

function request(persistenceId: string, fromSeqNr: number): AppendRequest {
  return {
    persistenceId,
    fromSeqNr,
    events: [{ type: 'Happened', version: 1, payload: '{}' }],
    timestamp: 1_000,
  };
}

describe('the writer thread', () => {
  let directory: string;
  let store: SqliteStore;
  const failures: Error[] = [];

  beforeEach(() => {
    directory = fs.mkdtempSync(path.join(os.tmpdir(), 'remit-writer-'));
    failures.length = 0;
    store = openSqliteStore({
      path: path.join(directory, 'journal.db'),
      writer: 'thread',
      onWriterFailure: (error) => failures.push(error),
    });
  });

  afterEach(async () => {
    await store.close();
    fs.rmSync(directory, { recursive: true, force: true });
  });

  it('group-commits appends made in the same moment into one transaction', async () => {
    await Promise.all(
      Array.from({ length: 200 }, (_, index) => store.journal.append(request(`e-${index}`, 1))),
    );
    const stats = store.journal.stats();
    expect(stats.events).toBe(200);
    expect(stats.transactions).toBeLessThanOrEqual(2);
  });

  it("takes the next turn's batch while one commits, keeping each id's appends in order", async () => {
    // One entity appending in every turn without waiting (pipelined persistence), 40 others once
    // each turn: batches follow each other to the thread, several in flight at once.
    const appends: Array<Promise<void>> = [];
    for (let turn = 0; turn < 30; turn++) {
      appends.push(store.journal.append(request('pipelined', turn + 1)));
      for (let other = 0; other < 40; other++) {
        appends.push(store.journal.append(request(`t${turn}-${other}`, 1)));
      }
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await Promise.all(appends);
    expect(await store.journal.highestSeqNr('pipelined')).toBe(30);
    const events = await store.journal.read('pipelined', 1);
    expect(events.map((event) => event.seqNr)).toEqual(Array.from({ length: 30 }, (_, index) => index + 1));
    const stats = store.journal.stats();
    expect(stats.events).toBe(30 * 41);
    expect(stats.failedAppends).toBe(0);
  });

  it('writes a sealed card before any journal write asked for after it', async () => {
    const vault = new SqliteVaultStorage(path.join(directory, 'vault.db'), store.writer);
    try {
      // An append already waiting for the next batch, then a card, then an append naming it: the
      // batch holding both appends is posted after the card, though it was scheduled before.
      const earlier = store.journal.append(request('merchant-0', 1));
      vault.putIfAbsent('tok_a', Buffer.from([1, 2, 3]), 1);
      expect(store.writer.stats().vaultRowsQueued).toBe(1);
      await store.journal.append(request('merchant-a', 1));
      await earlier;
      // The append is durable, so the card queued before it is too: this thread's own connection sees it.
      expect(vault.get('tok_a')).toEqual(Buffer.from([1, 2, 3]));
      expect(store.writer.stats().vaultRowsQueued).toBe(0);
    } finally {
      vault.close();
    }
  });

  it('writes a sealed card that no write follows after a short delay', async () => {
    const vault = new SqliteVaultStorage(path.join(directory, 'vault.db'), store.writer);
    try {
      vault.putIfAbsent('tok_c', Buffer.from([4, 5]), 1);
      expect(store.writer.stats().vaultRowsQueued).toBe(1);
      await vi.waitFor(() => expect(vault.get('tok_c')).toEqual(Buffer.from([4, 5])), { timeout: 5_000 });
      expect(store.writer.stats().vaultRowsQueued).toBe(0);
    } finally {
      vault.close();
    }
  });

  it('fails what is pending when a vault write fails, writes nothing after it, and restarts', async () => {
    // A directory where the vault file should be: the writer thread cannot open it.
    const badVault = path.join(directory, 'not-a-file');
    fs.mkdirSync(badVault);
    store.writer.putVault(badVault, { token: 'tok_b', sealed: Buffer.from([9]), createdAt: 1 });
    const after = store.journal.append(request('merchant-b', 1));
    await expect(after).rejects.toBeInstanceOf(WriterFailedError);
    expect(await store.journal.highestSeqNr('merchant-b')).toBe(0);
    expect(store.writer.stats().threadFailures).toBe(1);
    expect(failures.length).toBeGreaterThanOrEqual(1);

    // The next write starts a new thread.
    await store.journal.append(request('merchant-b', 1));
    expect(await store.journal.highestSeqNr('merchant-b')).toBe(1);
  });

  it('drains queued appends on close, then refuses new ones', async () => {
    const appends = Array.from({ length: 50 }, (_, index) => store.journal.append(request(`d-${index}`, 1)));
    await store.close();
    await expect(Promise.all(appends)).resolves.toHaveLength(50);
    await expect(store.journal.append(request('late', 1))).rejects.toMatchObject({
      name: 'JournalClosedError',
    });
    const reopened = openSqliteStore({ path: path.join(directory, 'journal.db') });
    try {
      expect((await reopened.journal.readAll(0, 100)).length).toBe(50);
    } finally {
      await reopened.close();
    }
  });

  describe('hosting guests', () => {
    function hostEcho(settings: unknown): { port: MessagePort; ended: Promise<string | undefined> } {
      const writer = store.writer;
      if (!(writer instanceof ThreadWriter)) throw new Error('expected the thread writer');
      const { port1, port2 } = new MessageChannel();
      const { ended } = writer.host(echoGuest, settings, port2);
      return { port: port1, ended };
    }

    it('runs a guest in the writer thread, beside the writes, and reports its end', async () => {
      const guest = hostEcho({ name: 'echo' });
      try {
        const answer = nextMessage(guest.port);
        guest.port.postMessage('ping');
        const pong = (await answer) as { pong: unknown; threadId: number };
        expect(pong.pong).toEqual({ name: 'echo' });
        expect(pong.threadId).not.toBe(threadId);
        await store.journal.append(request('with-guest', 1));

        const last = nextMessage(guest.port);
        guest.port.postMessage('end');
        expect(await last).toBe('ending');
        expect(await guest.ended).toBeUndefined();
      } finally {
        guest.port.close();
      }
    });

    it('reports why a guest failed, and the writes go on', async () => {
      const guest = hostEcho({});
      guest.port.postMessage('fail');
      expect(await guest.ended).toBe('Error: asked to fail');
      guest.port.close();
      await store.journal.append(request('after-guest', 1));
      expect(store.writer.stats().threadFailures).toBe(0);
    });

    it('tells a guest it ended when the writer thread ends under it, and on close', async () => {
      const first = hostEcho({});
      const badVault = path.join(directory, 'not-a-file');
      fs.mkdirSync(badVault);
      store.writer.putVault(badVault, { token: 'tok_g', sealed: Buffer.from([7]), createdAt: 1 });
      await expect(store.journal.append(request('guest-b', 1))).rejects.toBeInstanceOf(WriterFailedError);
      expect(await first.ended).toMatch(/writer thread exited/);
      first.port.close();

      // A guest hosted afterwards starts the next thread; closing the store ends it too.
      const second = hostEcho({});
      const answer = nextMessage(second.port);
      second.port.postMessage('ping');
      await answer;
      await store.close();
      expect(await second.ended).toBe('the writer thread stopped');
      second.port.close();
    });
  });
});

describe('JournalWrites.appendBatches', () => {
  let directory: string;

  beforeEach(() => {
    directory = fs.mkdtempSync(path.join(os.tmpdir(), 'remit-writes-'));
  });

  afterEach(() => {
    fs.rmSync(directory, { recursive: true, force: true });
  });

  it('commits several batches in one transaction, each answered as if it had committed alone', () => {
    const database = openDatabase(path.join(directory, 'journal.db'));
    try {
      const writes = new JournalWrites(database);
      const results = writes.appendBatches([
        [request('a', 1), request('b', 1)],
        // a's second append is checked against the first batch's; c's is refused alone.
        [request('a', 2), request('c', 5)],
        [request('a', 2)],
      ]);
      expect(results.map((result) => result.outcomes.map((outcome) => outcome.ok))).toEqual([
        [true, true],
        [true, false],
        [false],
      ]);
      expect(results.map((result) => [result.appends, result.events, result.transactions])).toEqual([
        [2, 2, 1],
        [1, 1, 0],
        [0, 0, 0],
      ]);
      expect(results[2]?.outcomes[0]).toEqual({
        ok: false,
        persistenceId: 'a',
        expectedSeqNr: 2,
        actualHighestSeqNr: 2,
      });
      const count = database.prepare('SELECT count(*) FROM journal').pluck().get();
      expect(count).toBe(3);
    } finally {
      database.close();
    }
  });

  it('rolls back every batch when the transaction fails', () => {
    const database = openDatabase(path.join(directory, 'journal.db'));
    try {
      const writes = new JournalWrites(database);
      const malformed = { ...request('b', 1), events: [] };
      expect(() => writes.appendBatches([[request('a', 1)], [malformed]])).toThrow();
      const count = database.prepare('SELECT count(*) FROM journal').pluck().get();
      expect(count).toBe(0);
    } finally {
      database.close();
    }
  });
});
