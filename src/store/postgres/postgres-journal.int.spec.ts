import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { describeJournalContract } from '../../testing/journal-contract.js';
import { dropSchema, testSchemaName } from '../../testing/postgres-test-schema.js';
import type { PersistedEvent } from '../journal.js';
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
