import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeWebhookStoreContract } from '../../testing/webhook-store-contract.js';
import { SqliteWebhookStore, webhooksPath } from './sqlite-webhook-store.js';

describeWebhookStoreContract('sqlite', async () => {
  const directory = mkdtempSync(join(tmpdir(), 'remit-webhooks-contract-'));
  const opened: SqliteWebhookStore[] = [];
  const open = (): SqliteWebhookStore => {
    const store = SqliteWebhookStore.open(webhooksPath(directory), Date.now());
    opened.push(store);
    return store;
  };
  return {
    store: open(),
    reopen: async () => open(),
    teardown: async () => {
      for (const store of opened) await store.close().catch(() => {});
      rmSync(directory, { recursive: true, force: true });
    },
  };
});
