import { afterEach, beforeEach, describe, expect, it } from 'vitest';

/**
 * The storage of sealed card numbers, as every backend offers it. The SQLite and memory stores
 * answer at once; PostgreSQL's answer is a promise. The suite awaits either.
 */
export interface VaultStorageUnderTest {
  putIfAbsent(token: string, sealed: Buffer, createdAt: number): void | Promise<void>;
  get(token: string): Buffer | undefined | Promise<Buffer | undefined>;
}

export interface VaultStorageContractFixture {
  readonly storage: VaultStorageUnderTest;
  /** A second storage over the same place (a restarted process, another node); optional. */
  reopen?(): Promise<VaultStorageUnderTest>;
  /** Closes what the fixture opened and removes its files or schema. */
  teardown(): Promise<void>;
}

/** Bytes shaped like a sealed number (IV, ciphertext, tag); never a card number in the clear. */
function sealedBytes(fill: number, length = 44): Buffer {
  return Buffer.alloc(length, fill);
}

/**
 * The behaviour every vault storage must show. A backend joins with one line:
 * `describeVaultStorageContract('postgres', async () => ({ ... }))`.
 */
export function describeVaultStorageContract(
  name: string,
  setup: () => Promise<VaultStorageContractFixture>,
): void {
  describe(`vault storage contract: ${name}`, () => {
    let fixture: VaultStorageContractFixture;

    beforeEach(async () => {
      fixture = await setup();
    });

    afterEach(async () => {
      await fixture.teardown();
    });

    it('gives back the bytes stored under a token, and nothing for an unknown token', async () => {
      await fixture.storage.putIfAbsent('tok_a', sealedBytes(1), 1_000);
      expect(await fixture.storage.get('tok_a')).toEqual(sealedBytes(1));
      expect(await fixture.storage.get('tok_unknown')).toBeUndefined();
    });

    it('keeps the first bytes stored under a token', async () => {
      await fixture.storage.putIfAbsent('tok_a', sealedBytes(1), 1_000);
      await fixture.storage.putIfAbsent('tok_a', sealedBytes(2), 2_000);
      expect(await fixture.storage.get('tok_a')).toEqual(sealedBytes(1));
    });

    it("keeps a copy: changing the caller's buffer afterwards changes nothing stored", async () => {
      const sealed = sealedBytes(3);
      await fixture.storage.putIfAbsent('tok_a', sealed, 1_000);
      sealed.fill(9);
      expect(await fixture.storage.get('tok_a')).toEqual(sealedBytes(3));
    });

    it('stores many tokens put at the same moment, every byte value intact', async () => {
      const every = Buffer.from(Array.from({ length: 256 }, (_, index) => index));
      await Promise.all(
        Array.from({ length: 200 }, (_, index) =>
          fixture.storage.putIfAbsent(
            `tok_${index}`,
            Buffer.concat([every, sealedBytes(index % 256, 8)]),
            index,
          ),
        ),
      );
      for (let index = 0; index < 200; index += 37) {
        expect(await fixture.storage.get(`tok_${index}`)).toEqual(
          Buffer.concat([every, sealedBytes(index % 256, 8)]),
        );
      }
    });

    it('finds what was stored after a restart', async (context) => {
      const reopen = fixture.reopen;
      if (reopen === undefined) {
        context.skip();
        return;
      }
      await fixture.storage.putIfAbsent('tok_a', sealedBytes(4), 1_000);
      const reopened = await reopen();
      expect(await reopened.get('tok_a')).toEqual(sealedBytes(4));
    });
  });
}
