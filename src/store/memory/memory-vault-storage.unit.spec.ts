import { MemoryVaultStorage } from '../../payments/card-vault.js';
import { describeVaultStorageContract } from '../../testing/vault-storage-contract.js';

describeVaultStorageContract('memory', async () => ({
  storage: new MemoryVaultStorage(),
  teardown: async () => undefined,
}));
