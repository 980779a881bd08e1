import { z } from 'zod';

/**
 * How a node reaches its PostgreSQL, parsed at the boundary (command line, environment). Every
 * limit is named here so an operator can see and set it.
 */
export const postgresSettingsSchema = z.object({
  /** `postgresql://user:password@host:port/database`. */
  url: z.string().min(1),
  /**
   * The schema holding every table of the stores; created on start if missing. Several Remit
   * installations can share one database under different schemas.
   */
  schema: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a schema name is 1-63 lower-case letters, digits and underscores'),
  /** Connections the node's pool opens at most. */
  poolSizeMax: z.number().int().min(1).max(1_000),
  /** The server cancels a statement that runs longer (PostgreSQL's `statement_timeout`). */
  statementTimeoutMs: z.number().int().min(1),
  /**
   * The server ends a session idle inside a transaction for longer (PostgreSQL's
   * `idle_in_transaction_session_timeout`): no transaction here waits on anything but the
   * database, so one that idles is a bug or a stalled process, and its locks must not outlive it.
   */
  idleInTransactionSessionTimeoutMs: z.number().int().min(1),
  /** How long the pool waits to open a connection (or for a free one) before failing. */
  connectionTimeoutMs: z.number().int().min(1),
  /**
   * How long the client waits for any answer before giving up on a query: a server that vanished
   * without closing the connection (power cut, partition) would otherwise leave it waiting forever.
   * Longer than `statementTimeoutMs`, so the server's own cancellation normally comes first.
   */
  queryTimeoutMs: z.number().int().min(1),
  /** How the node's connections are named in `pg_stat_activity`. */
  applicationName: z.string().min(1).max(63),
  /** An idle connection is closed after this long. */
  idleConnectionTimeoutMs: z.number().int().min(1),
});

export type PostgresSettings = z.infer<typeof postgresSettingsSchema>;

export const defaultPostgresSettings: Omit<PostgresSettings, 'url'> = {
  schema: 'remit',
  poolSizeMax: 10,
  statementTimeoutMs: 10_000,
  idleInTransactionSessionTimeoutMs: 10_000,
  connectionTimeoutMs: 5_000,
  queryTimeoutMs: 15_000,
  idleConnectionTimeoutMs: 30_000,
  applicationName: 'remit',
};

/** Parses settings given in part, filling the rest from the defaults. */
export function postgresSettings(
  input: { readonly url: string } & Partial<PostgresSettings>,
): PostgresSettings {
  return postgresSettingsSchema.parse({ ...defaultPostgresSettings, ...input });
}
