import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteVaultStorage } from '../store/sqlite/sqlite-vault-storage.js';
import { CardVault, MemoryVaultStorage, VaultKeyError, type VaultStorage } from './card-vault.js';

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

  it('reveals the latest cards it sealed from memory once, and others from storage', async () => {
    const stored = new MemoryVaultStorage();
    let reads = 0;
    const storage: VaultStorage = {
      putIfAbsent: (token, sealed) => stored.putIfAbsent(token, sealed),
      get: (token) => {
        reads++;
        return stored.get(token);
      },
    };
    const key = randomBytes(32);
    const vault = new CardVault(key, storage, () => 0, { recentSealedMax: 2, ivBatch: 4 });
    const numbers = ['4242424242424242', '4000056655665556', '5555555555554444'];
    const tokens = numbers.map((number) => vault.tokenize({ ...card, number }).token);
    expect(await vault.reveal(tokens[2] ?? '')).toBe(numbers[2]);
    expect(await vault.reveal(tokens[1] ?? '')).toBe(numbers[1]);
    expect(reads).toBe(0);
    // Revealed once, a card leaves memory: the next reveal reads storage.
    expect(await vault.reveal(tokens[2] ?? '')).toBe(numbers[2]);
    expect(reads).toBe(1);
    // The first card was pushed out of memory by the later two: it comes from storage.
    expect(await vault.reveal(tokens[0] ?? '')).toBe(numbers[0]);
    expect(reads).toBe(2);
    // What memory holds is what storage holds: a vault that sealed nothing reads the same numbers.
    const fresh = new CardVault(key, storage, () => 0);
    for (const [index, token] of tokens.entries()) expect(await fresh.reveal(token)).toBe(numbers[index]);
  });

  it('seals every card under its own random IV, across refills of the IV pool', async () => {
    const storage = new MemoryVaultStorage();
    const vault = new CardVault(randomBytes(32), storage, () => 0, { recentSealedMax: 0, ivBatch: 3 });
    const ivs = new Set<string>();
    const numbers = Array.from({ length: 10 }, (_, index) => withLuhnDigit(`42424242424242${index}`));
    for (const number of numbers) {
      const { token } = vault.tokenize({ ...card, number });
      const sealed = storage.get(token);
      if (sealed === undefined) throw new Error(`${number} not stored`);
      ivs.add(sealed.subarray(0, 12).toString('hex'));
      expect(await vault.reveal(token)).toBe(number);
    }
    expect(ivs.size).toBe(numbers.length);
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

/** `digits` followed by the check digit that makes it pass Luhn. */
function withLuhnDigit(digits: string): string {
  let sum = 0;
  for (let index = 0; index < digits.length; index++) {
    let digit = Number(digits[digits.length - 1 - index]);
    if (index % 2 === 0) digit = digit * 2 > 9 ? digit * 2 - 9 : digit * 2;
    sum += digit;
  }
  return `${digits}${(10 - (sum % 10)) % 10}`;
}
