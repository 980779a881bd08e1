import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { dropSchema, testSchemaName } from '../../testing/postgres-test-schema.js';
import type { AppendRequest } from '../journal.js';
import { latestSchemaVersion, migrate, SchemaTooNewError } from './migrations.js';
import { openPostgresStore, type PostgresStore } from './open-postgres-store.js';
import { createPool, DatabaseUnreachableError, withClient } from './postgres-pool.js';
import { postgresSettings } from './postgres-settings.js';

/**
 * The PostgreSQL store's own behaviour beyond the journal contract: migrations when several nodes
 * start at once, a clear error for a database that cannot be reached, and connections the server
 * or the network ends while the node runs.
 */

const url = inject('postgresUrl');
const pollIntervalMs = 5;

const opened: PostgresStore[] = [];
const schemas: string[] = [];
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  for (const store of opened.splice(0)) await store.close();
  for (const schema of schemas.splice(0)) await dropSchema(url, schema);
});

function newSchema(label: string): string {
  const schema = testSchemaName(label);
  schemas.push(schema);
  return schema;
}

function request(persistenceId: string, fromSeqNr: number): AppendRequest {
  return {
    persistenceId,
    fromSeqNr,
    events: [{ type: 'Happened', version: 1, payload: `{"seqNr":${fromSeqNr}}` }],
    timestamp: 1_000,
  };
}

async function query<R extends pg.QueryResultRow>(sql: string, values: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query<R>(sql, values)).rows;
  } finally {
    await client.end();
  }
}

async function waitUntil(
  condition: () => Promise<boolean>,
  what: string,
  attemptsMax = 2_000,
): Promise<void> {
  for (let attempt = 0; attempt < attemptsMax; attempt++) {
    if (await condition()) return;
    await delay(pollIntervalMs);
  }
  throw new Error(`gave up waiting until ${what}`);
}

/**
 * A TCP relay in front of the test server that the test can cut (closing every connection and
 * refusing new ones) and restore: the database "lost" and "back", as the node sees it.
 */
async function relayTo(
  target: URL,
): Promise<{ url: string; cut(): Promise<void>; restore(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const listener = net.createServer((incoming) => {
        const outgoing = net.connect(Number(target.port), target.hostname);
        for (const socket of [incoming, outgoing]) {
          sockets.add(socket);
          socket.on('close', () => sockets.delete(socket));
          socket.on('error', () => {
            incoming.destroy();
            outgoing.destroy();
          });
        }
        incoming.pipe(outgoing).pipe(incoming);
      });
      listener.once('error', reject);
      listener.listen(port, '127.0.0.1', () => {
        const address = listener.address();
        if (address !== null && typeof address === 'object') port = address.port;
        server = listener;
        resolve();
      });
    });
  const cut = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
    server = undefined;
  };
  await listen();
  cleanups.push(cut);
  const relayed = new URL(target);
  relayed.port = String(port);
  return { url: relayed.toString(), cut, restore: listen };
}

describe('PostgreSQL store', () => {
  it('migrates once when several nodes start at once on a new schema', async () => {
    const schema = newSchema('migrate');
    const stores = await Promise.all(
      Array.from({ length: 4 }, () => openPostgresStore({ settings: postgresSettings({ url, schema }) })),
    );
    opened.push(...stores);
    const rows = await query<{ version: number }>(
      `SELECT version FROM ${pg.escapeIdentifier(schema)}.schema_migrations ORDER BY version`,
    );
    expect(rows.map((row) => row.version)).toEqual(
      Array.from({ length: latestSchemaVersion }, (_, index) => index + 1),
    );
    // Every node uses the one schema: what one appends, another reads.
    await stores[0]?.journal.append(request('merchant-1', 1));
    expect(await stores[3]?.journal.highestSeqNr('merchant-1')).toBe(1);
  });

  it('refuses a schema written by a newer version', async () => {
    const schema = newSchema('newer');
    opened.push(await openPostgresStore({ settings: postgresSettings({ url, schema }) }));
    await query(
      `INSERT INTO ${pg.escapeIdentifier(schema)}.schema_migrations (version, applied_at) VALUES ($1, 0)`,
      [latestSchemaVersion + 1],
    );
    const pool = createPool(postgresSettings({ url, schema }));
    try {
      await expect(migrate(pool, schema, 0)).rejects.toBeInstanceOf(SchemaTooNewError);
    } finally {
      await pool.end();
    }
  });

  it('says in a sentence that a database it cannot reach is unreachable, without the password', async () => {
    const relay = await relayTo(new URL(url));
    await relay.cut();
    const attempt = openPostgresStore({
      settings: postgresSettings({ url: relay.url, schema: newSchema('unreachable') }),
    });
    await expect(attempt).rejects.toBeInstanceOf(DatabaseUnreachableError);
    await expect(attempt).rejects.toThrow(
      /^cannot reach PostgreSQL at 127\.0\.0\.1:\d+\/postgres: connection refused \(is PostgreSQL running/,
    );
    await expect(attempt).rejects.not.toThrow(new URL(url).password);
  });

  it('survives the server ending its connections and goes on with new ones', async () => {
    const schema = newSchema('terminated');
    const applicationName = `${schema}-node`;
    const lost: Error[] = [];
    const store = await openPostgresStore({
      settings: postgresSettings({ url, schema, applicationName }),
      onConnectionLost: (error) => lost.push(error),
    });
    opened.push(store);
    await store.journal.append(request('merchant-1', 1));

    // Ends the node's idle connections from the server side: node-postgres emits 'error' on them.
    const ended = await query<{ ended: boolean }>(
      'SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE application_name = $1',
      [applicationName],
    );
    expect(ended.length).toBeGreaterThan(0);
    await waitUntil(async () => lost.length > 0, 'the pool reports the lost connections');

    await store.journal.append(request('merchant-1', 2));
    expect(await store.journal.highestSeqNr('merchant-1')).toBe(2);
    expect(await store.isReachable()).toBe(true);
  });

  it('survives the server ending a connection that is checked out, and drops that connection', async () => {
    const schema = newSchema('checkedout');
    const lost: Error[] = [];
    const settings = postgresSettings({ url, schema, poolSizeMax: 1 });
    const pool = createPool(settings, (error) => lost.push(error));
    cleanups.push(() => pool.end());
    const work = withClient(
      pool,
      async (client) => {
        const own = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        await query('SELECT pg_terminate_backend($1)', [own.rows[0]?.pid]);
        await waitUntil(async () => lost.length > 0, 'the client reports its lost connection');
        await client.query('SELECT 1');
      },
      (error) => lost.push(error),
    );
    await expect(work).rejects.toThrow();
    // The one connection of the pool was dropped, not returned: the next query opens a new one.
    expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('fails writes while the database is lost, loses nothing, and writes again once it is back', async () => {
    const relay = await relayTo(new URL(url));
    const schema = newSchema('lost');
    const store = await openPostgresStore({
      settings: postgresSettings({ url: relay.url, schema, connectionTimeoutMs: 1_000 }),
      onConnectionLost: () => undefined,
    });
    opened.push(store);
    await store.journal.append(request('merchant-1', 1));

    await relay.cut();
    expect(await store.isReachable()).toBe(false);
    await expect(store.journal.append(request('merchant-1', 2))).rejects.toThrow();
    await expect(store.journal.read('merchant-1', 1)).rejects.toThrow();

    await relay.restore();
    await waitUntil(() => store.isReachable(), 'the database is reachable again');
    // The entity restarts from the journal: the failed append did not happen, the first did.
    expect(await store.journal.highestSeqNr('merchant-1')).toBe(1);
    await store.journal.append(request('merchant-1', 2));
    expect((await store.journal.read('merchant-1', 1)).map((event) => event.seqNr)).toEqual([1, 2]);
  });
});
