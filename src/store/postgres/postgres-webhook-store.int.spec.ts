import { inject } from 'vitest';
import { dropSchema, testSchemaName } from '../../testing/postgres-test-schema.js';
import { describeWebhookStoreContract } from '../../testing/webhook-store-contract.js';
import { openPostgresStore, type PostgresStore } from './open-postgres-store.js';
import { postgresSettings } from './postgres-settings.js';
import { PostgresWebhookStore } from './postgres-webhook-store.js';

const url = inject('postgresUrl');

describeWebhookStoreContract('postgres', async () => {
  const schema = testSchemaName('webhooks');
  const open = () => openPostgresStore({ settings: postgresSettings({ url, schema, poolSizeMax: 2 }) });
  const first = await open();
  const stores: PostgresStore[] = [first];
  return {
    store: new PostgresWebhookStore(first.pool, first.quotedSchema),
    reopen: async () => {
      const store = await open();
      stores.push(store);
      return new PostgresWebhookStore(store.pool, store.quotedSchema);
    },
    teardown: async () => {
      for (const store of stores) await store.close();
      await dropSchema(url, schema);
    },
  };
});
