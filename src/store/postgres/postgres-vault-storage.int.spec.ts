import { inject } from 'vitest';
import { dropSchema, testSchemaName } from '../../testing/postgres-test-schema.js';
import { describeVaultStorageContract } from '../../testing/vault-storage-contract.js';
import { openPostgresStore, type PostgresStore } from './open-postgres-store.js';
import { postgresSettings } from './postgres-settings.js';

const url = inject('postgresUrl');

describeVaultStorageContract('postgres', async () => {
  const schema = testSchemaName('vault');
  const open = () => openPostgresStore({ settings: postgresSettings({ url, schema, poolSizeMax: 2 }) });
  const first = await open();
  const stores: PostgresStore[] = [first];
  return {
    storage: first.vault,
    reopen: async () => {
      const store = await open();
      stores.push(store);
      return store.vault;
    },
    teardown: async () => {
      for (const store of stores) await store.close();
      await dropSchema(url, schema);
    },
  };
});
