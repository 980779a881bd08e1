import type pg from 'pg';
import { z } from 'zod';
import { withClient } from './postgres-pool.js';

/** A merchant as every node of a cluster reads it: its bank and the SHA-256 hash of its API key. */
export interface StoredMerchant {
  readonly id: string;
  readonly bank: string;
  readonly apiKeyHash: string;
}

const merchantRow = z.object({
  merchant_id: z.string().min(1),
  bank: z.string().min(1),
  api_key_hash: z.string().length(64),
});
const tokenRow = z.object({ token_hash: z.string().length(64) });

/**
 * The merchants and admin tokens of a cluster in PostgreSQL (`merchants`, `admin_tokens`), so any
 * node authenticates any merchant and any administrator. Only hashes are stored.
 */
export class PostgresMerchants {
  constructor(
    private readonly pool: pg.Pool,
    /** The schema's quoted name (`escapeIdentifier`). */
    private readonly quotedSchema: string,
  ) {}

  /**
   * Creates the merchants and the admin token unless the table already holds merchants, in one
   * transaction. Race-safe: of nodes calling this at once, the inserts of all but one wait on the
   * first one's rows and then insert nothing, so exactly one caller gets `true` and should hand
   * the plain keys out.
   */
  async createIfEmpty(merchants: readonly StoredMerchant[], adminTokenHash: string): Promise<boolean> {
    const schema = this.quotedSchema;
    return withClient(this.pool, async (client) => {
      await client.query('BEGIN');
      try {
        const existing = await client.query(`SELECT 1 FROM ${schema}.merchants LIMIT 1`);
        let created = 0;
        if (existing.rowCount === 0) {
          for (const merchant of merchants) {
            const inserted = await client.query(
              `INSERT INTO ${schema}.merchants (merchant_id, bank, api_key_hash) VALUES ($1, $2, $3)
               ON CONFLICT (merchant_id) DO NOTHING`,
              [merchant.id, merchant.bank, merchant.apiKeyHash],
            );
            created += inserted.rowCount ?? 0;
          }
        }
        const won = created === merchants.length && merchants.length > 0;
        if (won) {
          await client.query(`INSERT INTO ${schema}.admin_tokens (token_hash) VALUES ($1)`, [adminTokenHash]);
          await client.query('COMMIT');
        } else {
          // Another node created them (or some of them): keep theirs, add nothing.
          await client.query('ROLLBACK');
        }
        return won;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    });
  }

  async merchants(): Promise<StoredMerchant[]> {
    const result = await this.pool.query(
      `SELECT merchant_id, bank, api_key_hash FROM ${this.quotedSchema}.merchants ORDER BY merchant_id`,
    );
    return result.rows.map((row) => {
      const parsed = merchantRow.parse(row);
      return { id: parsed.merchant_id, bank: parsed.bank, apiKeyHash: parsed.api_key_hash };
    });
  }

  async adminTokenHashes(): Promise<string[]> {
    const result = await this.pool.query(`SELECT token_hash FROM ${this.quotedSchema}.admin_tokens`);
    return result.rows.map((row) => tokenRow.parse(row).token_hash);
  }
}
