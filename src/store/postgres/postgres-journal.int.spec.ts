import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { PostgresClusterStore } from '../../cluster/postgres-cluster-store.js';
import { describeJournalContract } from '../../testing/journal-contract.js';
import { dropSchema, testSchemaName } from '../../testing/postgres-test-schema.js';
import { type PersistedEvent, StaleEpochError } from '../journal.js';
import { openPostgresStore } from './open-postgres-store.js';
import { postgresSettings } from './postgres-settings.js';

const url = inject('postgresUrl');

/** Runs `sql` on a connection of its own, as another process (or a failing disk) would. */
async function onOtherConnection(sql: string, values: unknown[]): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql, values)).rowCount ?? 0;
  } finally {
    await client.end();
  }
}

describeJournalContract('postgres', async () => {
  const schema = testSchemaName('contract');
  const store = await openPostgresStore({ settings: postgresSettings({ url, schema, poolSizeMax: 4 }) });
  const quoted = pg.escapeIdentifier(schema);
  return {
    journal: store.journal,
    snapshots: store.snapshots,
    leases: new PostgresClusterStore(store.pool, store.quotedSchema, {
      memberTimeoutMs: 5_000,
      leaseTtlMs: 4_000,
    }),
    corrupt: async (persistenceId, seqNr) => {
      const changed = await onOtherConnection(
        `UPDATE ${quoted}.journal SET payload = payload || ' ' WHERE persistence_id = $1 AND seq_nr = $2`,
        [persistenceId, seqNr],
      );
      expect(changed).toBe(1);
    },
    corruptSnapshot: async (persistenceId, seqNr) => {
      const changed = await onOtherConnection(
        `UPDATE ${quoted}.snapshots SET payload = payload || ' ' WHERE persistence_id = $1 AND seq_nr = $2`,
        [persistenceId, seqNr],
      );
      expect(changed).toBe(1);
    },
    teardown: async () => {
      await store.close();
      await dropSchema(url, schema);
    },
  };
});

describe('PostgreSQL journal: text that array literals must escape', () => {
  it('stores ids, types, payloads and message ids with quotes, backslashes, braces and commas exactly', async () => {
    const schema = testSchemaName('literals');
    const store = await openPostgresStore({ settings: postgresSettings({ url, schema, poolSizeMax: 2 }) });
    try {
      const awkward = ['a"b', 'c\\d', '{e,f}', ' g ', 'NULL', '"', '\\', 'é ✓ \n\t', ','];
      const written: PersistedEvent[] = [];
      await Promise.all(
        awkward.map((text, index) => {
          const persistenceId = `id ${text}`;
          const events = [
            { type: `Type${text}`, version: 1, payload: JSON.stringify({ text, index }) },
            { type: 'Plain', version: 2, payload: text },
          ];
          written.push(
            ...events.map((event, offset) => ({
              ...event,
              persistenceId,
              seqNr: offset + 1,
              timestamp: index,
            })),
          );
          return store.journal.append({
            persistenceId,
            fromSeqNr: 1,
            events,
            timestamp: index,
            processed: { receiverId: persistenceId, messages: [{ id: `message ${text}`, time: index + 1 }] },
          });
        }),
      );
      for (const text of awkward) {
        const persistenceId = `id ${text}`;
        expect(await store.journal.read(persistenceId, 1)).toEqual(
          written.filter((event) => event.persistenceId === persistenceId),
        );
        expect(await store.journal.isProcessed(persistenceId, { id: `message ${text}`, time: 0 })).toBe(
          false,
        );
        expect(
          await store.journal.isProcessed(persistenceId, {
            id: `message ${text}`,
            time: awkward.indexOf(text) + 1,
          }),
        ).toBe(true);
      }
      expect(store.journal.stats().transactions).toBe(1);
    } finally {
      await store.close();
      await dropSchema(url, schema);
    }
  });
});

describe('PostgreSQL journal: a fence is checked against the lease as it is at the write', () => {
  it('refuses an append that waited on the lease row while a takeover committed', async () => {
    const schema = testSchemaName('fence_race');
    const store = await openPostgresStore({ settings: postgresSettings({ url, schema, poolSizeMax: 2 }) });
    const leases = new PostgresClusterStore(store.pool, store.quotedSchema, {
      memberTimeoutMs: 5_000,
      leaseTtlMs: 4_000,
    });
    const takeover = new pg.Client({ connectionString: url });
    await takeover.connect();
    try {
      const grant = await leases.acquireLease('orders/1', 'node-a');
      if (grant === undefined) expect.fail('acquire failed');
      const fence = { shardId: grant.shardId, epoch: grant.epoch, owner: grant.owner };
      // Another node's takeover, in a transaction held open so the append must wait for its outcome.
      await takeover.query('BEGIN');
      await takeover.query(
        `UPDATE ${pg.escapeIdentifier(schema)}.shard_leases SET owner = 'node-b', epoch = epoch + 1 WHERE shard_id = $1`,
        ['orders/1'],
      );
      const append = store.journal.append({
        persistenceId: 'order-1',
        fromSeqNr: 1,
        events: [{ type: 'OrderCreated', version: 1, payload: '{}' }],
        timestamp: 1_000,
        fence,
      });
      const outcome = append.then(
        () => 'committed',
        (error: unknown) => error,
      );
      await waitForLockWait(takeover, schema);
      await takeover.query('COMMIT');
      expect(await outcome).toBeInstanceOf(StaleEpochError);
      expect(await store.journal.highestSeqNr('order-1')).toBe(0);
    } finally {
      await takeover.end();
      await store.close();
      await dropSchema(url, schema);
    }
  });
});

/** Waits until a statement on `schema`'s tables is blocked on a lock, polling the server's activity. */
async function waitForLockWait(client: pg.Client, schema: string, pollsMax = 500): Promise<void> {
  for (let poll = 0; poll < pollsMax; poll++) {
    const result = await client.query(
      "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND position($1 in query) > 0",
      [schema],
    );
    if (result.rows.length > 0) return;
  }
  expect.fail('no statement came to wait on the lease row');
}
