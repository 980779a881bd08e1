import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3';

/**
 * Sealed card numbers in their own SQLite file, apart from the journal: the vault can be backed up,
 * restricted and destroyed on its own schedule. `synchronous=FULL`: an order's token must never
 * outlive the sealed number it stands for.
 */
export class SqliteVaultStorage {
  private readonly database: Database;
  private readonly insert: Statement<[string, Buffer, number]>;
  private readonly select: Statement<[string], { sealed: unknown }>;

  constructor(path: string) {
    this.database = new BetterSqlite3(path);
    this.database.pragma('journal_mode = WAL');
    this.database.pragma('synchronous = FULL');
    this.database.pragma('busy_timeout = 5000');
    this.database.exec(
      'CREATE TABLE IF NOT EXISTS card_vault (token TEXT PRIMARY KEY, sealed BLOB NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID',
    );
    this.insert = this.database.prepare(
      'INSERT OR IGNORE INTO card_vault (token, sealed, created_at) VALUES (?, ?, ?)',
    );
    this.select = this.database.prepare('SELECT sealed FROM card_vault WHERE token = ?');
  }

  putIfAbsent(token: string, sealed: Buffer, createdAt: number): void {
    this.insert.run(token, sealed, createdAt);
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
