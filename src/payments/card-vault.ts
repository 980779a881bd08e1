import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomFillSync } from 'node:crypto';
import { brandOf, type CardSummary, luhnValid } from './card.js';
import type { CardReader } from './executor-protocol.js';

/** Where sealed card numbers are kept. The vault never hands it a number in the clear. */
export interface VaultStorage {
  /**
   * Stores the sealed number under the token, unless the token is already there. A storage that
   * writes elsewhere than the journal (PostgreSQL, on its own connection) returns a promise that
   * resolves once the number is durable; one whose writes reach the journal's writer before the
   * event's (SQLite, memory) returns nothing, and nobody waits.
   */
  putIfAbsent(token: string, sealed: Buffer, createdAt: number): void | Promise<void>;
  get(token: string): Buffer | undefined | Promise<Buffer | undefined>;
}

export class MemoryVaultStorage implements VaultStorage {
  private readonly entries = new Map<string, Buffer>();

  putIfAbsent(token: string, sealed: Buffer): void {
    if (!this.entries.has(token)) this.entries.set(token, Buffer.from(sealed));
  }

  get(token: string): Buffer | undefined {
    return this.entries.get(token);
  }
}

export interface CardInput {
  readonly number: string;
  readonly expMonth: number;
  readonly expYear: number;
}

export const vaultKeyBytes = 32;
const ivBytes = 12;
const tagBytes = 16;

export class VaultKeyError extends Error {
  override readonly name = 'VaultKeyError';
}

export interface CardVaultSettings {
  /**
   * How many cards sealed by this vault are also kept in memory (sealed, as stored) until they are
   * revealed, newest first: the Executor reveals a card a few milliseconds after the API sealed it,
   * and finds it here instead of reading the vault's file, whose page cache every write of the
   * writer thread empties. 0 turns it off.
   */
  readonly recentSealedMax: number;
  /** Random IVs drawn from the CSPRNG at once (one call per this many seals). */
  readonly ivBatch: number;
}

export const defaultCardVaultSettings: CardVaultSettings = { recentSealedMax: 4_096, ivBatch: 256 };

/**
 * The card vault: card numbers are tokenized at the edge, the number is encrypted with
 * AES-256-GCM (a fresh random IV per seal; the token is bound in as associated data, so a sealed
 * number cannot be moved under another token), and everything past the edge holds only the
 * token, brand, BIN and last four.
 *
 * Tokens are deterministic — an HMAC of the number under a key derived from the vault key — so
 * one card always gets one token (velocity rules count per card) without storing anything that
 * can be reversed or brute-forced without the key. Encryption and MAC keys are derived from the
 * one configured key with HKDF, so neither is used for two purposes.
 */
export class CardVault implements CardReader {
  private readonly encryptionKey: Buffer;
  private readonly macKey: Buffer;
  /** Sealed numbers of the latest cards sealed here; a Map iterates oldest first. */
  private readonly recentSealed = new Map<string, Buffer>();
  /** Random bytes for the next IVs, used from `ivAt` on. */
  private readonly ivPool: Buffer;
  private ivAt: number;

  constructor(
    masterKey: Buffer,
    private readonly storage: VaultStorage,
    private readonly now: () => number,
    private readonly settings: CardVaultSettings = defaultCardVaultSettings,
  ) {
    if (masterKey.length !== vaultKeyBytes) {
      throw new VaultKeyError(`the vault key must be ${vaultKeyBytes} bytes, got ${masterKey.length}`);
    }
    assert.ok(
      Number.isSafeInteger(settings.recentSealedMax) && settings.recentSealedMax >= 0,
      `recentSealedMax must be a non-negative integer, not ${settings.recentSealedMax}`,
    );
    assert.ok(
      Number.isSafeInteger(settings.ivBatch) && settings.ivBatch >= 1,
      `ivBatch must be a positive integer, not ${settings.ivBatch}`,
    );
    this.ivPool = Buffer.alloc(ivBytes * settings.ivBatch);
    this.ivAt = this.ivPool.length;
    this.encryptionKey = Buffer.from(
      hkdfSync('sha256', masterKey, Buffer.alloc(0), 'remit card vault: aes', 32),
    );
    this.macKey = Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), 'remit card vault: token', 32));
  }

  /**
   * Replaces a card number by its summary. A number that fails Luhn is summarised but not stored:
   * the Validator rejects its order and nothing will ever need it.
   */
  tokenize(card: CardInput): CardSummary {
    const { summary, stored } = this.tokenizeCard(card);
    assert.ok(
      stored === undefined,
      'tokenize needs a vault storage that stores at once; use tokenizeAndStore',
    );
    return summary;
  }

  /**
   * Like `tokenize`, for a caller about to persist an event naming the token: with a storage that
   * stores asynchronously it resolves once the card is durable (the event must not be durable
   * before its card), and rejects if the card could not be stored. With one that stores at once it
   * answers at once, without a promise, so that path costs nothing more.
   */
  tokenizeAndStore(card: CardInput): CardSummary | Promise<CardSummary> {
    const { summary, stored } = this.tokenizeCard(card);
    return stored === undefined ? summary : stored.then(() => summary);
  }

  private tokenizeCard(card: CardInput): { summary: CardSummary; stored: Promise<void> | undefined } {
    const token = this.tokenOf(card.number);
    const valid = luhnValid(card.number);
    let stored: Promise<void> | undefined;
    if (valid) {
      const sealed = this.seal(token, card.number);
      const put = this.storage.putIfAbsent(token, sealed, this.now());
      if (put instanceof Promise) stored = put;
      this.remember(token, sealed);
    }
    return { summary: this.summaryOf(card, token, valid), stored };
  }

  private summaryOf(card: CardInput, token: string, valid: boolean): CardSummary {
    return {
      token,
      brand: brandOf(card.number),
      bin: card.number.slice(0, 6),
      last4: card.number.slice(-4),
      expMonth: card.expMonth,
      expYear: card.expYear,
      luhnValid: valid,
    };
  }

  /**
   * The card behind a token. A card sealed here recently is taken from memory, and forgotten there:
   * an order's card is revealed once per bank call, so the entry dies young (before the garbage
   * collector would move it to the old generation); a second call reads the vault's file.
   */
  async reveal(token: string): Promise<string | undefined> {
    const recent = this.recentSealed.get(token);
    if (recent !== undefined) this.recentSealed.delete(token);
    const sealed = recent ?? (await this.storage.get(token));
    return sealed === undefined ? undefined : this.open(token, sealed);
  }

  /** Keyed request fingerprints (idempotency) must not be brute-forceable either. */
  fingerprint(data: string): string {
    return createHmac('sha256', this.macKey).update('request\u0000').update(data).digest('base64url');
  }

  private tokenOf(number: string): string {
    const digest = createHmac('sha256', this.macKey).update('card\u0000').update(number).digest('base64url');
    return `tok_${digest.slice(0, 32)}`;
  }

  private remember(token: string, sealed: Buffer): void {
    if (this.settings.recentSealedMax === 0) return;
    this.recentSealed.delete(token);
    this.recentSealed.set(token, sealed);
    if (this.recentSealed.size > this.settings.recentSealedMax) {
      const oldest = this.recentSealed.keys().next();
      if (oldest.done !== true) this.recentSealed.delete(oldest.value);
    }
  }

  /**
   * A fresh random IV: a view of a pool refilled from the CSPRNG when used up, so valid only until
   * the next call (`seal` copies it into the sealed entry at once). Never handed out twice.
   */
  private nextIv(): Buffer {
    if (this.ivAt + ivBytes > this.ivPool.length) {
      randomFillSync(this.ivPool);
      this.ivAt = 0;
    }
    const iv = this.ivPool.subarray(this.ivAt, this.ivAt + ivBytes);
    this.ivAt += ivBytes;
    return iv;
  }

  private seal(token: string, number: string): Buffer {
    const iv = this.nextIv();
    const cipher = createCipheriv('aes-256-gcm', this.encryptionKey, iv);
    cipher.setAAD(Buffer.from(token));
    const ciphertext = Buffer.concat([cipher.update(number, 'utf8'), cipher.final()]);
    // Its own memory, not a slice of Node's shared 8 KiB pool: the entry is kept (recentSealed), and
    // a kept pool slice would keep the whole chunk alive.
    const sealed = Buffer.allocUnsafeSlow(ivBytes + tagBytes + ciphertext.length);
    iv.copy(sealed, 0);
    cipher.getAuthTag().copy(sealed, ivBytes);
    ciphertext.copy(sealed, ivBytes + tagBytes);
    return sealed;
  }

  private open(token: string, sealed: Buffer): string {
    const iv = sealed.subarray(0, ivBytes);
    const tag = sealed.subarray(ivBytes, ivBytes + tagBytes);
    const decipher = createDecipheriv('aes-256-gcm', this.encryptionKey, iv);
    decipher.setAAD(Buffer.from(token));
    decipher.setAuthTag(tag);
    // A wrong key or a tampered entry throws here: never a wrong card number.
    return Buffer.concat([decipher.update(sealed.subarray(ivBytes + tagBytes)), decipher.final()]).toString(
      'utf8',
    );
  }
}
