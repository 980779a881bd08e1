import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describeVaultStorageContract } from '../../testing/vault-storage-contract.js';
import { SqliteVaultStorage } from './sqlite-vault-storage.js';

describeVaultStorageContract('sqlite', async () => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'remit-vault-'));
  const file = path.join(directory, 'vault.db');
  const first = new SqliteVaultStorage(file);
  const opened = [first];
  return {
    storage: first,
    reopen: async () => {
      const storage = new SqliteVaultStorage(file);
      opened.push(storage);
      return storage;
    },
    teardown: async () => {
      for (const storage of opened) storage.close();
      fs.rmSync(directory, { recursive: true, force: true });
    },
  };
});
