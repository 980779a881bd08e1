import pg from 'pg';
import { inject } from 'vitest';
import { openPostgresStore, type PostgresStore } from '../store/postgres/open-postgres-store.js';
import { postgresSettings } from '../store/postgres/postgres-settings.js';
import { describeClusterStoreContract } from '../testing/cluster-store-contract.js';
import { dropSchema, testSchemaName } from '../testing/postgres-test-schema.js';
import { PostgresClusterStore } from './postgres-cluster-store.js';

const url = inject('postgresUrl');

describeClusterStoreContract('postgres', async (timing) => {
  const schema = testSchemaName('cluster');
  const open = () => openPostgresStore({ settings: postgresSettings({ url, schema, poolSizeMax: 2 }) });
  const first = await open();
  const opened: PostgresStore[] = [first];
  const quoted = pg.escapeIdentifier(schema);
  return {
    store: new PostgresClusterStore(first.pool, first.quotedSchema, timing),
    // Its own pool, as another node has: a race between the two happens in the database.
    openNode: async () => {
      const other = await open();
      opened.push(other);
      return new PostgresClusterStore(other.pool, other.quotedSchema, timing);
    },
    // The server's clock cannot be moved, so every stored time moves back instead.
    passTime: async (ms) => {
      const shift = `${ms} milliseconds`;
      await first.pool.query(
        `UPDATE ${quoted}.cluster_members SET last_heartbeat_at = last_heartbeat_at - $1::interval, ` +
          'joined_at = joined_at - $1::interval',
        [shift],
      );
      await first.pool.query(`UPDATE ${quoted}.shard_leases SET expires_at = expires_at - $1::interval`, [
        shift,
      ]);
    },
    teardown: async () => {
      for (const store of opened) await store.close();
      await dropSchema(url, schema);
    },
  };
});
