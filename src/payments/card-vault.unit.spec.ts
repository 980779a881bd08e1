import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteVaultStorage } from '../store/sqlite/sqlite-vault-storage.js';
import { CardVault, MemoryVaultStorage, VaultKeyError } from './card-vault.js';

const pan = '4242424242424242';
const card = { number: pan, expMonth: 12, expYear: 2030 };

describe('CardVault', () => {
  it('replaces a card number by token, brand, BIN and last four, and reveals it from the token', async () => {
    const vault = new CardVault(randomBytes(32), new MemoryVaultStorage(), () => 0);
    const summary = vault.tokenize(card);
    expect(summary).toMatchObject({
      brand: 'visa',
      bin: '424242',
      last4: '4242',
      expMonth: 12,
      expYear: 2030,
    });
    expect(summary.luhnValid).toBe(true);
    expect(summary.token).toMatch(/^tok_[A-Za-z0-9_-]{32}$/);
    expect(JSON.stringify(summary)).not.toContain(pan);
    expect(await vault.reveal(summary.token)).toBe(pan);
  });

  it('gives one card one token under one key, and unrelated tokens under another key', () => {
    const key = randomBytes(32);
    const storage = new MemoryVaultStorage();
    const first = new CardVault(key, storage, () => 0).tokenize(card).token;
    expect(new CardVault(key, storage, () => 0).tokenize(card).token).toBe(first);
    expect(new CardVault(randomBytes(32), storage, () => 0).tokenize(card).token).not.toBe(first);
  });

  it('does not store a number that fails Luhn', async () => {
    const vault = new CardVault(randomBytes(32), new MemoryVaultStorage(), () => 0);
    const summary = vault.tokenize({ ...card, number: '4242424242424241' });
    expect(summary.luhnValid).toBe(false);
    expect(await vault.reveal(summary.token)).toBeUndefined();
  });

  it('refuses to open an entry under the wrong key or another token, never returning a wrong number', async () => {
    const storage = new MemoryVaultStorage();
    const token = new CardVault(randomBytes(32), storage, () => 0).tokenize(card).token;
    await expect(new CardVault(randomBytes(32), storage, () => 0).reveal(token)).rejects.toThrow();
    const other = new MemoryVaultStorage();
    const sealed = storage.get(token);
    if (sealed === undefined) throw new Error('not stored');
    other.putIfAbsent('tok_other', sealed);
    await expect(new CardVault(randomBytes(32), other, () => 0).reveal('tok_other')).rejects.toThrow();
  });

  it('insists on a 32-byte key', () => {
    expect(() => new CardVault(randomBytes(16), new MemoryVaultStorage(), () => 0)).toThrow(VaultKeyError);
  });

  it('keeps the number encrypted on disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'remit-vault-'));
    try {
      const storage = new SqliteVaultStorage(join(dir, 'vault.db'));
      const vault = new CardVault(randomBytes(32), storage, () => 0);
      const { token } = vault.tokenize(card);
      expect(await vault.reveal(token)).toBe(pan);
      storage.close();
      for (const file of readdirSync(dir)) {
        expect(readFileSync(join(dir, file)).includes(Buffer.from(pan))).toBe(false);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
