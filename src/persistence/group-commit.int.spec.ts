/**
 * Group commit seen from the entities: 500 accounts on the SQLite journal each take a command at
 * the same moment. Every reply arrives only after its event is durable, and the 500 appends share
 * a handful of transactions (each one fsync) instead of taking one each.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { ActorSystem } from '../runtime/actor-system.js';
import { SimulatedClock } from '../runtime/clock.js';
import { entityAddress } from '../runtime/entity-address.js';
import { silentLogger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import { openSqliteStore, type SqliteStore } from '../store/sqlite/open-database.js';
import { type AccountCommand, type AccountReply, accountDefinition } from '../testing/fixtures/account.js';
import { EntityRegistry } from './entity-registry.js';

let cleanup: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

it('500 entities writing at once share a few transactions, and each reply follows its commit', async () => {
  const directory = mkdtempSync(join(tmpdir(), 'remit-group-commit-'));
  const store: SqliteStore = openSqliteStore({ path: join(directory, 'journal.db') });
  const clock = new SimulatedClock();
  const system = new ActorSystem({ name: 'gc', clock, random: new SeededRandom(1), logger: silentLogger });
  cleanup.push(
    () => rmSync(directory, { recursive: true, force: true }),
    () => store.close(),
    () => system.terminate(),
  );
  const registry = new EntityRegistry({
    system,
    journal: store.journal,
    snapshots: store.snapshots,
    clock,
    random: new SeededRandom(2),
    logger: silentLogger,
  });
  registry.register(accountDefinition());
  const entities = Array.from({ length: 500 }, (_, i) => entityAddress<AccountCommand>('account', `a${i}`));
  // Recover them all first, so the deposits below arrive together.
  await Promise.all(
    entities.map((address) =>
      registry.ask<AccountCommand, AccountReply>(
        address,
        (replyTo) => ({ type: 'GetBalance', replyTo }),
        5_000,
      ),
    ),
  );
  const before = store.journal.stats();

  const replies = await Promise.all(
    entities.map(async (address) => {
      const reply = await registry.ask<AccountCommand, AccountReply>(
        address,
        (replyTo) => ({ type: 'Deposit', amount: 7n, replyTo }),
        5_000,
      );
      // When the reply arrives, the event is already in the journal.
      const rows = await store.journal.read(`account-${address.entityId}`, 1);
      return { reply, rows: rows.length };
    }),
  );

  expect(replies.every(({ reply, rows }) => reply.type === 'Accepted' && rows === 1)).toBe(true);
  const after = store.journal.stats();
  const appends = after.appends - before.appends;
  const transactions = after.transactions - before.transactions;
  expect(appends).toBe(500);
  expect(transactions).toBeLessThanOrEqual(5);
});
