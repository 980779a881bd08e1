import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MessageChannel, type MessagePort, threadId } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AppendRequest } from '../journal.js';
import { openSqliteStore, type SqliteStore } from './open-database.js';
import { SqliteVaultStorage } from './sqlite-vault-storage.js';
import { ThreadWriter, WriterFailedError } from './sqlite-writer.js';

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
