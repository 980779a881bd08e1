import type { Database, Statement } from 'better-sqlite3';
import { busyTimeoutMs } from './open-database.js';
import type { StoreWriter } from './sqlite-writer.js';
import { openVaultDatabase, VaultWrites } from './store-writes.js';

/**
 * Sealed card numbers in their own SQLite file, apart from the journal: the vault can be backed up,
 * restricted and destroyed on its own schedule. `synchronous=FULL`: an order's token must never
 * outlive the sealed number it stands for.
 *
 * Given the journal's `StoreWriter`, a put is queued there and written (with the other cards
 * sealed in the same moment, in one transaction) before any journal write asked for after it —
 * so the event that names a token is never durable before its card. Without one, a put is written
 * at once on this thread. Reads use this object's own connection either way.
 */
export class SqliteVaultStorage {
  private readonly database: Database;
  private readonly inline: VaultWrites | undefined;
  private readonly select: Statement<[string], { sealed: unknown }>;

  constructor(
    private readonly path: string,
    private readonly writer?: StoreWriter,
  ) {
    this.database = openVaultDatabase(path, busyTimeoutMs);
    this.inline = writer === undefined ? new VaultWrites(this.database) : undefined;
    this.select = this.database.prepare('SELECT sealed FROM card_vault WHERE token = ?');
  }

  putIfAbsent(token: string, sealed: Buffer, createdAt: number): void {
    if (this.writer !== undefined) this.writer.putVault(this.path, { token, sealed, createdAt });
    else this.inline?.put([{ token, sealed, createdAt }]);
  }

  get(token: string): Buffer | undefined {
    const row = this.select.get(token);
    if (row === undefined) return undefined;
    if (!Buffer.isBuffer(row.sealed)) throw new Error(`vault entry ${token} is not a blob`);
    return row.sealed;
  }

  close(): void {
    this.database.close();
  }
}
