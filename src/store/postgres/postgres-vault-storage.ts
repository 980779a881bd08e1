import assert from 'node:assert/strict';
import type pg from 'pg';
import { defaultGroupCommitSettings, type GroupCommitSettings, GroupCommitter } from '../group-commit.js';
import { statementName } from './postgres-pool.js';

interface VaultRow {
  readonly token: string;
  readonly sealed: Buffer;
  readonly createdAt: number;
}

/**
 * Sealed card numbers in the stores' PostgreSQL schema (`card_vault`). Its calls are asynchronous,
 * unlike the SQLite vault's: a put resolves once the sealed number is committed, and the caller
 * appends the event that names its token only after that, so the event is never durable before
 * its card. Puts made at the same moment are written together, one multi-row insert in one
 * transaction (group commit, as the journal's appends).
 */
export class PostgresVaultStorage {
  private readonly committer: GroupCommitter<VaultRow>;
  private readonly insert: { readonly name: string; readonly text: string };
  private readonly select: { readonly name: string; readonly text: string };

  constructor(
    private readonly pool: pg.Pool,
    /** The schema's quoted name (`escapeIdentifier`). */
    quotedSchema: string,
    groupCommit: Partial<GroupCommitSettings> = {},
  ) {
    const table = `${quotedSchema}.card_vault`;
    // DO NOTHING: one card always has one token, and its first sealed copy stays.
    this.insert = {
      name: statementName('vault-insert', quotedSchema),
      text:
        `INSERT INTO ${table} (token, sealed, created_at) ` +
        'SELECT * FROM unnest($1::text[], $2::bytea[], $3::bigint[]) ON CONFLICT (token) DO NOTHING',
    };
    this.select = {
      name: statementName('vault-select', quotedSchema),
      text: `SELECT sealed FROM ${table} WHERE token = $1`,
    };
    this.committer = new GroupCommitter<VaultRow>((rows) => this.write(rows), {
      ...defaultGroupCommitSettings,
      ...groupCommit,
    });
  }

  /** Stores the sealed number under the token, unless the token is already there. */
  putIfAbsent(token: string, sealed: Buffer, createdAt: number): Promise<void> {
    assert.ok(token.length > 0, 'a vault token must be a non-empty string');
    assert.ok(Number.isSafeInteger(createdAt) && createdAt >= 0, 'createdAt must be an integer >= 0');
    return this.committer.submit({ token, sealed: Buffer.from(sealed), createdAt });
  }

  async get(token: string): Promise<Buffer | undefined> {
    const result = await this.pool.query<{ sealed: unknown }>({ ...this.select, values: [token] });
    const row = result.rows[0];
    if (row === undefined) return undefined;
    if (!Buffer.isBuffer(row.sealed)) throw new Error(`vault entry ${token} is not a byte string`);
    return row.sealed;
  }

  /** Writes what is queued, then refuses further puts. The pool is its owner's to end. */
  close(): Promise<void> {
    return this.committer.close();
  }

  private async write(rows: readonly VaultRow[]): Promise<ReadonlyArray<Error | undefined>> {
    await this.pool.query({
      ...this.insert,
      values: [rows.map((row) => row.token), rows.map((row) => row.sealed), rows.map((row) => row.createdAt)],
    });
    return rows.map(() => undefined);
  }
}
