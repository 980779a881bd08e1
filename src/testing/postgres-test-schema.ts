import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * A fresh schema name for one test: the stores keep every table in the schema their settings name,
 * so tests sharing the run's one server never see each other's rows.
 */
export function testSchemaName(label: string): string {
  return `test_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
}

/** Drops a test's schema and everything in it. */
export async function dropSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${client.escapeIdentifier(schema)} CASCADE`);
  } finally {
    await client.end();
  }
}
