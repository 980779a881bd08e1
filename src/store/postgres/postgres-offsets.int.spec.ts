import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { dropSchema, testSchemaName } from '../../testing/postgres-test-schema.js';
import { type AppendRequest, ConcurrentWriteError, type OffsetEvent } from '../journal.js';
import { openPostgresStore, type PostgresStore } from './open-postgres-store.js';
import { insertBatchValues, journalStatements } from './postgres-journal.js';
import { postgresSettings } from './postgres-settings.js';

/**
 * Global offsets a projection can trust, and fencing between nodes, on a real PostgreSQL.
 *
 * The hazard: an offset handed out before commit (a sequence) lets a reader see offset 12 while
 * 11 is still uncommitted; a projection that then moves past 11 never reads it. The first test
 * shows the hazard is real with a sequence, so the others could fail. The journal hands out
 * offsets under a row lock held to commit (see PostgresJournal); the second test holds such a
 * transaction open on the lowest offsets while two "nodes" (two stores, two pools) keep appending
 * and a projection keeps reading, and checks that the projection sees every event exactly once.
 */

const url = inject('postgresUrl');
/** How often the projection and the condition waits poll the database. */
const pollIntervalMs = 5;

const opened: PostgresStore[] = [];
const clients: pg.Client[] = [];
const schemas: string[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) await client.end().catch(() => undefined);
  for (const store of opened.splice(0)) await store.close();
  for (const schema of schemas.splice(0)) await dropSchema(url, schema);
});

async function connect(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  clients.push(client);
  return client;
}

function newSchema(label: string): string {
  const schema = testSchemaName(label);
  schemas.push(schema);
  return schema;
}

async function openStore(schema: string, applicationName: string): Promise<PostgresStore> {
  const store = await openPostgresStore({
    settings: postgresSettings({ url, schema, poolSizeMax: 4, applicationName }),
  });
  opened.push(store);
  return store;
}

function request(persistenceId: string, fromSeqNr: number, count: number): AppendRequest {
  return {
    persistenceId,
    fromSeqNr,
    events: Array.from({ length: count }, (_, index) => ({
      type: 'Happened',
      version: 1,
      payload: JSON.stringify({ persistenceId, seqNr: fromSeqNr + index }),
    })),
    timestamp: 1_000,
  };
}

/** Waits until `condition` holds, polling; fails the test after `attemptsMax` polls. */
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

/** Sessions of `applicationName` waiting on a lock (a row lock held by another transaction). */
async function sessionsWaitingOnLock(observer: pg.Client, applicationName: string): Promise<number> {
  const result = await observer.query<{ waiting: string }>(
    "SELECT count(*) AS waiting FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
    [applicationName],
  );
  return Number(result.rows[0]?.waiting ?? 0);
}

describe('global offsets on PostgreSQL', () => {
  it('a sequence-assigned offset would be skipped by a reader (the hazard the journal avoids)', async () => {
    const schema = pg.escapeIdentifier(newSchema('sequence'));
    const [slow, fast, reader] = [await connect(), await connect(), await connect()];
    await reader.query(`CREATE SCHEMA ${schema}`);
    await reader.query(`CREATE TABLE ${schema}.stream (global_offset bigserial PRIMARY KEY, event text)`);

    await slow.query('BEGIN');
    await slow.query(`INSERT INTO ${schema}.stream (event) VALUES ('first')`);
    await fast.query(`INSERT INTO ${schema}.stream (event) VALUES ('second')`);
    const readAfter = async (after: number) =>
      (
        await reader.query<{ global_offset: string; event: string }>(
          `SELECT global_offset, event FROM ${schema}.stream WHERE global_offset > $1 ORDER BY global_offset`,
          [after],
        )
      ).rows;
    const firstPage = await readAfter(0);
    expect(firstPage.map((row) => row.event)).toEqual(['second']);
    await slow.query('COMMIT');
    const position = Number(firstPage[0]?.global_offset);
    // The reader moved past offset 1 while it was uncommitted: 'first' is lost to it.
    expect(await readAfter(position)).toEqual([]);
  });

  it('a projection sees every event exactly once while a transaction holds a lower offset open', async () => {
    const schemaName = newSchema('offsets');
    const nodeA = await openStore(schemaName, `${schemaName}-a`);
    const nodeB = await openStore(schemaName, `${schemaName}-b`);
    const schema = pg.escapeIdentifier(schemaName);
    const [holder, observer] = [await connect(), await connect()];

    // A writer takes the lowest offsets with the journal's own statement and does not commit yet.
    const held = [request('held-1', 1, 3), request('held-2', 1, 2)];
    await holder.query('BEGIN');
    const insertBatch = journalStatements(schema).insertBatch;
    await holder.query(insertBatch.text, insertBatchValues(held));

    // Two nodes append concurrently: 12 entities each, 8 appends of 1-3 events per entity.
    const entitiesPerNode = 12;
    const appendsPerEntity = 8;
    const appendAll = async (store: PostgresStore, node: string) => {
      const entities = Array.from({ length: entitiesPerNode }, async (_, entity) => {
        let next = 1;
        for (let append = 0; append < appendsPerEntity; append++) {
          const count = 1 + ((entity + append) % 3);
          await store.journal.append(request(`${node}-${entity}`, next, count));
          next += count;
        }
        return next - 1;
      });
      return (await Promise.all(entities)).reduce((sum, events) => sum + events, 0);
    };
    const appending = Promise.all([appendAll(nodeA, 'a'), appendAll(nodeB, 'b')]);

    // The projection: pages through the global stream from its last offset, as order-projection does.
    const projected: OffsetEvent[] = [];
    let position = 0;
    const project = async () => {
      const page = await nodeA.journal.readAll(position, 17);
      projected.push(...page);
      position = page.at(-1)?.offset ?? position;
      return page.length;
    };

    // Both nodes' batches are waiting for the held offsets; nothing later than them is visible.
    await waitUntil(
      async () =>
        (await sessionsWaitingOnLock(observer, `${schemaName}-a`)) > 0 &&
        (await sessionsWaitingOnLock(observer, `${schemaName}-b`)) > 0,
      'both nodes wait for the held offsets',
    );
    expect(await project()).toBe(0);

    await holder.query('COMMIT');
    const [eventsOfA, eventsOfB] = await appending;
    const total = eventsOfA + eventsOfB + 5;
    // Keep projecting until everything appended is seen; the projection ran alongside the appends.
    await waitUntil(async () => {
      await project();
      return projected.length >= total;
    }, 'the projection has read every event');
    expect(await project()).toBe(0);

    const keys = projected.map((event) => `${event.persistenceId}#${event.seqNr}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(projected).toHaveLength(total);
    for (let index = 1; index < projected.length; index++) {
      expect(projected[index]?.offset).toBeGreaterThan(
        projected[index - 1]?.offset ?? Number.POSITIVE_INFINITY,
      );
    }
    // The held events came first: their offsets were handed out first.
    expect(keys.slice(0, 5)).toEqual(['held-1#1', 'held-1#2', 'held-1#3', 'held-2#1', 'held-2#2']);
    // Every event of every entity, in its own order.
    for (const node of ['a', 'b']) {
      for (let entity = 0; entity < entitiesPerNode; entity++) {
        const id = `${node}-${entity}`;
        const seqNrs = projected.filter((event) => event.persistenceId === id).map((event) => event.seqNr);
        expect(seqNrs).toEqual(Array.from({ length: seqNrs.length }, (_, index) => index + 1));
        expect(seqNrs.length).toBe(await nodeB.journal.highestSeqNr(id));
      }
    }
  });
});

describe('fencing between nodes on PostgreSQL', () => {
  it('refuses the append that loses a race decided after its check, and keeps the winner', async () => {
    const schemaName = newSchema('fencing');
    const node = await openStore(schemaName, `${schemaName}-node`);
    const schema = pg.escapeIdentifier(schemaName);
    const [other, observer] = [await connect(), await connect()];

    // Another node has written merchant-1's first event and not committed yet.
    const winner = request('merchant-1', 1, 2);
    await other.query('BEGIN');
    await other.query(journalStatements(schema).insertBatch.text, insertBatchValues([winner]));

    // This node's check sees no event yet, so its write goes ahead and waits for the other's.
    const loser = node.journal.append(request('merchant-1', 1, 1));
    const bystander = node.journal.append(request('merchant-2', 1, 1));
    await waitUntil(
      async () => (await sessionsWaitingOnLock(observer, `${schemaName}-node`)) > 0,
      'the write waits for the other node',
    );
    await other.query('COMMIT');

    await expect(loser).rejects.toBeInstanceOf(ConcurrentWriteError);
    await expect(loser).rejects.toMatchObject({ expectedSeqNr: 1, actualHighestSeqNr: 2 });
    await expect(bystander).resolves.toBeUndefined();
    const stored = await node.journal.read('merchant-1', 1);
    expect(stored.map((event) => event.payload)).toEqual(winner.events.map((event) => event.payload));
    expect(await node.journal.highestSeqNr('merchant-2')).toBe(1);
  });

  it('refuses an append that continues what this node last wrote when another node wrote since', async () => {
    const schemaName = newSchema('overtaken');
    const stale = await openStore(schemaName, `${schemaName}-stale`);
    const current = await openStore(schemaName, `${schemaName}-current`);

    await stale.journal.append(request('merchant-1', 1, 1));
    // The entity moved to another node, which appended after it.
    await current.journal.append(request('merchant-1', 2, 2));
    // The old node still believes merchant-1 ends at 1; the unique constraint tells it otherwise.
    const overtaken = stale.journal.append(request('merchant-1', 2, 1));
    await expect(overtaken).rejects.toBeInstanceOf(ConcurrentWriteError);
    await expect(overtaken).rejects.toMatchObject({ expectedSeqNr: 2, actualHighestSeqNr: 3 });
    expect((await stale.journal.read('merchant-1', 1)).map((event) => event.payload)).toEqual([
      ...request('merchant-1', 1, 1).events.map((event) => event.payload),
      ...request('merchant-1', 2, 2).events.map((event) => event.payload),
    ]);
    // Told, it appends after the real end.
    await stale.journal.append(request('merchant-1', 4, 1));
    expect(await current.journal.highestSeqNr('merchant-1')).toBe(4);
  });
});
