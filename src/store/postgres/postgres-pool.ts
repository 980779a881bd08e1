import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import pg from 'pg';
import type { PostgresSettings } from './postgres-settings.js';

/**
 * The node's connection pool to PostgreSQL, with the behaviour the stores rely on:
 *
 * - 64-bit integers (sequence numbers, offsets, timestamps, checksums) arrive as numbers when they
 *   are safe integers, and as their text otherwise, which the row checks then refuse as corrupt;
 *   node-postgres's default is text for all of them.
 * - A connection the server ends (restart, failover, `idle_in_transaction_session_timeout`) makes
 *   node-postgres emit `'error'` on the pool (idle connections) or on the client (a checked-out
 *   one); unhandled, that kills the process. The pool's is handled here; `withClient` handles a
 *   checked-out client's for as long as it is out. The connection is dropped either way and the
 *   next query opens a new one, so a database that comes back is used again without a restart.
 */

/** Told of each connection the server or the network ended; for logs and metrics. */
export type ConnectionLostObserver = (error: Error) => void;

function parseInt8(text: string): number | string {
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : text;
}

const typeParsers = new pg.TypeOverrides();
typeParsers.setTypeParser(pg.types.builtins.INT8, parseInt8);

export function createPool(settings: PostgresSettings, onConnectionLost?: ConnectionLostObserver): pg.Pool {
  const pool = new pg.Pool({
    connectionString: settings.url,
    max: settings.poolSizeMax,
    connectionTimeoutMillis: settings.connectionTimeoutMs,
    idleTimeoutMillis: settings.idleConnectionTimeoutMs,
    statement_timeout: settings.statementTimeoutMs,
    idle_in_transaction_session_timeout: settings.idleInTransactionSessionTimeoutMs,
    query_timeout: settings.queryTimeoutMs,
    keepAlive: true,
    application_name: settings.applicationName,
    types: typeParsers,
  });
  pool.on('error', (error) => onConnectionLost?.(error));
  return pool;
}

/**
 * Runs `work` on one checked-out connection and returns it to the pool; a connection that failed
 * is destroyed instead of reused. For a transaction, which must stay on one connection.
 */
export async function withClient<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
  onConnectionLost?: ConnectionLostObserver,
): Promise<T> {
  const client = await pool.connect();
  let lost: Error | undefined;
  const onError = (error: Error) => {
    lost = error;
    onConnectionLost?.(error);
  };
  client.on('error', onError);
  try {
    return await work(client);
  } catch (error) {
    lost ??= error instanceof Error ? error : new Error(String(error));
    throw error;
  } finally {
    client.off('error', onError);
    // A failed transaction may have left the connection in an unknown state: it is not reused.
    client.release(lost);
  }
}

/** The database cannot be reached or refused the login: a sentence for the operator, no stack. */
export class DatabaseUnreachableError extends Error {
  override readonly name = 'DatabaseUnreachableError';
  constructor(
    readonly where: string,
    readonly reason: string,
  ) {
    super(`cannot reach PostgreSQL at ${where}: ${reason}`);
  }
}

/** `host:port/database` of a URL, without user or password, for messages. */
export function describeDatabase(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || '5432'}${parsed.pathname}`;
  } catch {
    return 'an unparseable URL';
  }
}

/** Says in words why a connection failed (refused, unknown host, login, missing database, timeout). */
export function connectionFailureReason(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = 'code' in error && typeof error.code === 'string' ? error.code : undefined;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused (is PostgreSQL running and listening there?)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name does not resolve';
    case 'ETIMEDOUT':
      return 'the connection timed out';
    case '28P01':
    case '28000':
      return 'the server refused the login (user or password)';
    case '3D000':
      return 'the database does not exist';
    default:
      return error.message;
  }
}

const unavailableSystemCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
/** What node-postgres says when a connection ends or does not open in time (it sets no code). */
const unavailableMessages = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Query read timeout',
  'is not queryable',
];

/**
 * Whether an error of a query means the database cannot be used now (down, unreachable, out of
 * connections, shutting down, or the query cancelled by a timeout), as opposed to a bug or bad data:
 * the caller can answer "unavailable, retry" rather than fail as for a bug.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = 'code' in error && typeof error.code === 'string' ? error.code : undefined;
  if (code !== undefined) {
    // SQLSTATE classes 08 (connection exception), 53 (insufficient resources), 57 (operator
    // intervention: shutdown, cannot connect now, query cancelled by statement_timeout).
    if (code.startsWith('08') || code.startsWith('53') || code.startsWith('57')) return true;
    if (unavailableSystemCodes.has(code)) return true;
  }
  return unavailableMessages.some((message) => error.message.includes(message));
}

/** PostgreSQL truncates longer identifiers, prepared statements' names included. */
const identifierBytesMax = 63;

/**
 * The name of a prepared statement of one schema's stores. A connection keeps its prepared
 * statements by name, so the name carries the schema (as a hash, to stay short: PostgreSQL would
 * cut a long name, and two cut names could collide).
 */
export function statementName(what: string, quotedSchema: string): string {
  const name = `remit-${what}-${crc32(quotedSchema).toString(16)}`;
  assert.ok(name.length <= identifierBytesMax, `statement name ${name} is too long`);
  return name;
}
