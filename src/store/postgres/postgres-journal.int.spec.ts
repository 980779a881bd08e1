import pg from 'pg';
import { expect, inject } from 'vitest';
import { dropSchema, testSchemaName } from '../../testing/postgres-test-schema.js';
import { describeJournalContract } from '../journal-contract.js';
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
