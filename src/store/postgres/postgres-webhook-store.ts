import assert from 'node:assert/strict';
import type pg from 'pg';
import { z } from 'zod';
import { webhookEventTypes } from '../../webhooks/webhook-event.js';
import { webhookDeliveryIdFor } from '../../webhooks/webhook-ids.js';
import type {
  StoredWebhookEvent,
  WebhookAttempt,
  WebhookDelivery,
  WebhookDeliveryStatus,
  WebhookEndpoint,
  WebhookStore,
} from '../../webhooks/webhook-store.js';
import { textArrayLiteral } from './array-literal.js';
import { withClient } from './postgres-pool.js';

/**
 * The webhook store of a cluster, in the stores' PostgreSQL schema (migration 4 of
 * `migrations.ts`): every node reads the same endpoints and deliveries, the webhook projection
 * (one node at a time) derives events into it, and each node's dispatcher delivers the due
 * deliveries of the merchants it serves.
 *
 * Rows are checked as they are read (`zod`): a row this code did not write the way it writes
 * rows is a crash, not a delivery signed with a wrong secret or sent to a wrong URL.
 */

const nullableNumber = z.number().int().nullable();
const nullableText = z.string().nullable();
const eventType = z.enum(webhookEventTypes);

const endpointRow = z.object({
  endpoint_id: z.string().min(1),
  merchant_id: z.string().min(1),
  url: z.string().min(1),
  event_types: z.array(eventType).min(1),
  status: z.enum(['enabled', 'disabled']),
  disabled_reason: nullableText,
  secret: z.string().min(1),
  expiring_secret: nullableText,
  expiring_secret_until: nullableNumber,
  failing_since: nullableNumber,
  created_at: z.number().int(),
  updated_at: z.number().int(),
});

const eventRow = z.object({
  event_id: z.string().min(1),
  merchant_id: z.string().min(1),
  event_type: eventType,
  subject_id: z.string().min(1),
  body: z.string(),
  created_at: z.number().int(),
});

const deliveryRow = z.object({
  delivery_id: z.string().min(1),
  endpoint_id: z.string().min(1),
  merchant_id: z.string().min(1),
  event_id: z.string().min(1),
  event_type: eventType,
  status: z.enum(['pending', 'succeeded', 'failed']),
  attempts: z.number().int().min(0),
  first_attempt_at: nullableNumber,
  next_attempt_at: nullableNumber,
  created_at: z.number().int(),
  updated_at: z.number().int(),
});

const attemptRow = z.object({
  delivery_id: z.string().min(1),
  number: z.number().int().min(1),
  started_at: z.number().int(),
  duration_ms: z.number().int().min(0),
  http_status: nullableNumber,
  outcome: z.string().min(1),
  detail: nullableText,
});

const offsetRow = z.object({ last_offset: z.number().int().min(0) });

const endpointColumns =
  'endpoint_id, merchant_id, url, event_types, status, disabled_reason, secret, expiring_secret, ' +
  'expiring_secret_until, failing_since, created_at, updated_at';
const deliveryColumns =
  'delivery_id, endpoint_id, merchant_id, event_id, event_type, status, attempts, first_attempt_at, ' +
  'next_attempt_at, created_at, updated_at';
const eventColumns = 'event_id, merchant_id, event_type, subject_id, body, created_at';

type EndpointChange = Parameters<WebhookStore['updateEndpoint']>[2];

/** The columns `updateEndpoint` may set, by the field that names them. */
const changeableColumns = {
  status: 'status',
  disabledReason: 'disabled_reason',
  secret: 'secret',
  expiringSecret: 'expiring_secret',
  expiringSecretUntil: 'expiring_secret_until',
  failingSince: 'failing_since',
  updatedAt: 'updated_at',
} as const satisfies Record<keyof EndpointChange, string>;

function toEndpoint(row: unknown): WebhookEndpoint {
  const parsed = endpointRow.parse(row);
  return {
    id: parsed.endpoint_id,
    merchantId: parsed.merchant_id,
    url: parsed.url,
    eventTypes: parsed.event_types,
    status: parsed.status,
    disabledReason: parsed.disabled_reason ?? undefined,
    secret: parsed.secret,
    expiringSecret: parsed.expiring_secret ?? undefined,
    expiringSecretUntil: parsed.expiring_secret_until ?? undefined,
    failingSince: parsed.failing_since ?? undefined,
    createdAt: parsed.created_at,
    updatedAt: parsed.updated_at,
  };
}

function toEvent(row: unknown): StoredWebhookEvent {
  const parsed = eventRow.parse(row);
  return {
    id: parsed.event_id,
    merchantId: parsed.merchant_id,
    type: parsed.event_type,
    subjectId: parsed.subject_id,
    body: parsed.body,
    createdAt: parsed.created_at,
  };
}

function toDelivery(row: unknown): WebhookDelivery {
  const parsed = deliveryRow.parse(row);
  return {
    id: parsed.delivery_id,
    endpointId: parsed.endpoint_id,
    merchantId: parsed.merchant_id,
    eventId: parsed.event_id,
    eventType: parsed.event_type,
    status: parsed.status,
    attempts: parsed.attempts,
    firstAttemptAt: parsed.first_attempt_at ?? undefined,
    nextAttemptAt: parsed.next_attempt_at ?? undefined,
    createdAt: parsed.created_at,
    updatedAt: parsed.updated_at,
  };
}

function toAttempt(row: unknown): WebhookAttempt {
  const parsed = attemptRow.parse(row);
  return {
    deliveryId: parsed.delivery_id,
    number: parsed.number,
    startedAt: parsed.started_at,
    durationMs: parsed.duration_ms,
    httpStatus: parsed.http_status ?? undefined,
    outcome: parsed.outcome,
    detail: parsed.detail ?? undefined,
  };
}

/** Prefixes each column of a list with a table's alias, and each name in the result with `prefix`. */
function aliased(columns: string, alias: string, prefix: string): string {
  return columns
    .split(',')
    .map((column) => `${alias}.${column.trim()} AS ${prefix}${column.trim()}`)
    .join(', ');
}

/** The columns of one table out of a joined row, by their prefix. */
function unprefixed(row: Record<string, unknown>, prefix: string): Record<string, unknown> {
  const columns: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(row)) {
    if (name.startsWith(prefix)) columns[name.slice(prefix.length)] = value;
  }
  return columns;
}

function assertTime(value: number, what: string): void {
  assert.ok(
    Number.isSafeInteger(value) && value >= 0,
    `${what} must be milliseconds since the epoch, got ${value}`,
  );
}

export class PostgresWebhookStore implements WebhookStore {
  private readonly endpoints: string;
  private readonly events: string;
  private readonly deliveries: string;
  private readonly attempts: string;
  private readonly offsetTable: string;
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    /** The schema's quoted name (`escapeIdentifier`). */
    quotedSchema: string,
  ) {
    this.endpoints = `${quotedSchema}.webhook_endpoints`;
    this.events = `${quotedSchema}.webhook_events`;
    this.deliveries = `${quotedSchema}.webhook_deliveries`;
    this.attempts = `${quotedSchema}.webhook_attempts`;
    this.offsetTable = `${quotedSchema}.webhook_offset`;
  }

  async createEndpoint(endpoint: WebhookEndpoint): Promise<void> {
    this.assertOpen();
    assert.ok(endpoint.eventTypes.length > 0, 'an endpoint receives at least one event type');
    await this.pool.query(
      `INSERT INTO ${this.endpoints} (${endpointColumns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
      [
        endpoint.id,
        endpoint.merchantId,
        endpoint.url,
        textArrayLiteral(endpoint.eventTypes),
        endpoint.status,
        endpoint.disabledReason ?? null,
        endpoint.secret,
        endpoint.expiringSecret ?? null,
        endpoint.expiringSecretUntil ?? null,
        endpoint.failingSince ?? null,
        endpoint.createdAt,
        endpoint.updatedAt,
      ],
    );
  }

  async getEndpoint(merchantId: string, endpointId: string): Promise<WebhookEndpoint | undefined> {
    this.assertOpen();
    const result = await this.pool.query(
      `SELECT ${endpointColumns} FROM ${this.endpoints} WHERE merchant_id = $1 AND endpoint_id = $2`,
      [merchantId, endpointId],
    );
    const row = result.rows[0];
    return row === undefined ? undefined : toEndpoint(row);
  }

  async listEndpoints(merchantId: string): Promise<WebhookEndpoint[]> {
    this.assertOpen();
    const result = await this.pool.query(
      `SELECT ${endpointColumns} FROM ${this.endpoints} WHERE merchant_id = $1 ORDER BY created_at, endpoint_id`,
      [merchantId],
    );
    return result.rows.map(toEndpoint);
  }

  async updateEndpoint(
    merchantId: string,
    endpointId: string,
    change: EndpointChange,
  ): Promise<WebhookEndpoint | undefined> {
    this.assertOpen();
    assert.ok(change.secret === undefined || change.secret !== '', 'a signing secret cannot be empty');
    // A field named in the change is set, to NULL when it is undefined; a field not named is kept.
    const assignments: string[] = [];
    const values: unknown[] = [merchantId, endpointId];
    for (const [field, column] of Object.entries(changeableColumns)) {
      if (!Object.hasOwn(change, field)) continue;
      if (field === 'secret' && change.secret === undefined) continue;
      if (field === 'status' && change.status === undefined) continue;
      values.push(change[field as keyof EndpointChange] ?? null);
      assignments.push(`${column} = $${values.length}`);
    }
    const result = await this.pool.query(
      `UPDATE ${this.endpoints} SET ${assignments.join(', ')} WHERE merchant_id = $1 AND endpoint_id = $2 ` +
        `RETURNING ${endpointColumns}`,
      values,
    );
    const row = result.rows[0];
    return row === undefined ? undefined : toEndpoint(row);
  }

  async deleteEndpoint(merchantId: string, endpointId: string): Promise<boolean> {
    this.assertOpen();
    return this.transaction(async (client) => {
      const deleted = await client.query(
        `DELETE FROM ${this.endpoints} WHERE merchant_id = $1 AND endpoint_id = $2`,
        [merchantId, endpointId],
      );
      if (deleted.rowCount === 0) return false;
      // Their attempts go with them (ON DELETE CASCADE).
      await client.query(
        `DELETE FROM ${this.deliveries} WHERE endpoint_id = $1 AND merchant_id = $2 AND status = 'pending'`,
        [endpointId, merchantId],
      );
      return true;
    });
  }

  async offset(): Promise<number> {
    this.assertOpen();
    const result = await this.pool.query(`SELECT last_offset FROM ${this.offsetTable}`);
    return offsetRow.parse(result.rows[0]).last_offset;
  }

  async appendEvents(events: readonly StoredWebhookEvent[], toOffset: number, now: number): Promise<void> {
    this.assertOpen();
    assert.ok(
      Number.isSafeInteger(toOffset) && toOffset >= 0,
      `an offset is an integer >= 0, got ${toOffset}`,
    );
    assertTime(now, 'now');
    // The first of each id in the batch, as if the batch were stored one event at a time.
    const unique = [
      ...new Map(events.map((event) => [event.id, event] as const).reverse()).values(),
    ].reverse();
    await this.transaction(async (client) => {
      // Taken first: a second derivation waits here for this one's whole batch.
      await client.query(`SELECT last_offset FROM ${this.offsetTable} FOR UPDATE`);
      if (unique.length > 0) await this.insertEventsAndDeliveries(client, unique, now);
      await client.query(`UPDATE ${this.offsetTable} SET last_offset = GREATEST(last_offset, $1)`, [
        toOffset,
      ]);
    });
  }

  async dueDeliveries(
    query: Parameters<WebhookStore['dueDeliveries']>[0],
  ): ReturnType<WebhookStore['dueDeliveries']> {
    this.assertOpen();
    assert.ok(
      Number.isSafeInteger(query.limit) && query.limit >= 1,
      `limit must be >= 1, got ${query.limit}`,
    );
    if (query.merchantIds !== undefined && query.merchantIds.length === 0) return [];
    const result = await this.pool.query<Record<string, unknown>>(
      `SELECT ${aliased(deliveryColumns, 'd', 'd_')}, ${aliased(eventColumns, 'v', 'v_')},
              ${aliased(endpointColumns, 'p', 'p_')}
         FROM ${this.deliveries} d
         JOIN ${this.endpoints} p ON p.endpoint_id = d.endpoint_id AND p.merchant_id = d.merchant_id
         JOIN ${this.events} v ON v.event_id = d.event_id
        WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND p.status = 'enabled'
          AND ($2::text[] IS NULL OR d.merchant_id = ANY($2::text[]))
          AND NOT (d.endpoint_id = ANY($3::text[]))
        ORDER BY d.next_attempt_at, d.delivery_id
        LIMIT $4`,
      [
        query.now,
        query.merchantIds === undefined ? null : textArrayLiteral(query.merchantIds),
        textArrayLiteral(query.excludeEndpoints),
        query.limit,
      ],
    );
    return result.rows.map((row) => ({
      delivery: toDelivery(unprefixed(row, 'd_')),
      event: toEvent(unprefixed(row, 'v_')),
      endpoint: toEndpoint(unprefixed(row, 'p_')),
    }));
  }

  async recordAttempt(
    attempt: WebhookAttempt,
    next: {
      readonly status: WebhookDeliveryStatus;
      readonly nextAttemptAt: number | undefined;
      readonly firstAttemptAt: number;
    },
  ): Promise<void> {
    this.assertOpen();
    assert.ok(
      (next.status === 'pending') === (next.nextAttemptAt !== undefined),
      'a pending delivery has a next attempt time, and only a pending one',
    );
    assert.ok(Number.isSafeInteger(attempt.number) && attempt.number >= 1, 'attempts count from 1');
    assertTime(attempt.startedAt, 'startedAt');
    assert.ok(
      Number.isSafeInteger(attempt.durationMs) && attempt.durationMs >= 0,
      'durationMs is an integer >= 0',
    );
    // One statement: the update locks the delivery, so it cannot be deleted between the two
    // writes; a delivery already deleted updates no row and the attempt is dropped with it. A
    // succeeded delivery stays succeeded whatever a late attempt says.
    await this.pool.query(
      `WITH updated AS (
         UPDATE ${this.deliveries}
            SET attempts = attempts + 1,
                status = CASE WHEN status = 'succeeded' THEN status ELSE $2 END,
                next_attempt_at = CASE WHEN status = 'succeeded' THEN next_attempt_at ELSE $3::bigint END,
                first_attempt_at = COALESCE(first_attempt_at, $4::bigint),
                updated_at = GREATEST(updated_at, $5::bigint + $6::bigint)
          WHERE delivery_id = $1
          RETURNING delivery_id)
       INSERT INTO ${this.attempts} (delivery_id, number, started_at, duration_ms, http_status, outcome, detail)
       SELECT delivery_id, $7, $5, $6, $8, $9, $10 FROM updated`,
      [
        attempt.deliveryId,
        next.status,
        next.nextAttemptAt ?? null,
        next.firstAttemptAt,
        attempt.startedAt,
        attempt.durationMs,
        attempt.number,
        attempt.httpStatus ?? null,
        attempt.outcome,
        attempt.detail ?? null,
      ],
    );
  }

  async listDeliveries(
    query: Parameters<WebhookStore['listDeliveries']>[0],
  ): Promise<{ readonly data: WebhookDelivery[]; readonly hasMore: boolean }> {
    this.assertOpen();
    assert.ok(
      Number.isSafeInteger(query.limit) && query.limit >= 1,
      `limit must be >= 1, got ${query.limit}`,
    );
    // An unknown cursor makes the row comparison NULL: an empty page.
    const result = await this.pool.query(
      `SELECT ${deliveryColumns} FROM ${this.deliveries}
        WHERE merchant_id = $1 AND endpoint_id = $2
          AND ($3::text IS NULL OR (created_at, delivery_id) < (
                SELECT created_at, delivery_id FROM ${this.deliveries}
                 WHERE delivery_id = $3 AND endpoint_id = $2 AND merchant_id = $1))
        ORDER BY created_at DESC, delivery_id DESC
        LIMIT $4`,
      [query.merchantId, query.endpointId, query.startingAfter ?? null, query.limit + 1],
    );
    const rows = result.rows.map(toDelivery);
    return { data: rows.slice(0, query.limit), hasMore: rows.length > query.limit };
  }

  async getDelivery(merchantId: string, deliveryId: string): Promise<WebhookDelivery | undefined> {
    this.assertOpen();
    const result = await this.pool.query(
      `SELECT ${deliveryColumns} FROM ${this.deliveries} WHERE merchant_id = $1 AND delivery_id = $2`,
      [merchantId, deliveryId],
    );
    const row = result.rows[0];
    return row === undefined ? undefined : toDelivery(row);
  }

  async listAttempts(deliveryId: string): Promise<WebhookAttempt[]> {
    this.assertOpen();
    const result = await this.pool.query(
      `SELECT delivery_id, number, started_at, duration_ms, http_status, outcome, detail
         FROM ${this.attempts} WHERE delivery_id = $1 ORDER BY attempt_id`,
      [deliveryId],
    );
    return result.rows.map(toAttempt);
  }

  async resendDelivery(
    merchantId: string,
    deliveryId: string,
    now: number,
  ): Promise<WebhookDelivery | undefined> {
    this.assertOpen();
    assertTime(now, 'now');
    const result = await this.pool.query(
      `UPDATE ${this.deliveries} SET status = 'pending', next_attempt_at = $3, updated_at = $3
        WHERE merchant_id = $1 AND delivery_id = $2 RETURNING ${deliveryColumns}`,
      [merchantId, deliveryId, now],
    );
    const row = result.rows[0];
    return row === undefined ? undefined : toDelivery(row);
  }

  /** Refuses further calls. The pool is its owner's to end. */
  async close(): Promise<void> {
    this.closed = true;
  }

  private async insertEventsAndDeliveries(
    client: pg.PoolClient,
    events: readonly StoredWebhookEvent[],
    now: number,
  ): Promise<void> {
    const inserted = await client.query<{ event_id: unknown }>(
      `INSERT INTO ${this.events} (${eventColumns})
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
       ON CONFLICT (event_id) DO NOTHING
       RETURNING event_id`,
      [
        textArrayLiteral(events.map((event) => event.id)),
        textArrayLiteral(events.map((event) => event.merchantId)),
        textArrayLiteral(events.map((event) => event.type)),
        textArrayLiteral(events.map((event) => event.subjectId)),
        textArrayLiteral(events.map((event) => event.body)),
        `{${events.map((event) => event.createdAt).join(',')}}`,
      ],
    );
    const newIds = new Set(inserted.rows.map((row) => String(row.event_id)));
    const fresh = events.filter((event) => newIds.has(event.id));
    if (fresh.length === 0) return;
    // FOR SHARE: an endpoint being deleted meanwhile is waited for, then skipped, so no pending
    // delivery is left behind for an endpoint that is gone.
    const merchants = [...new Set(fresh.map((event) => event.merchantId))];
    const subscribed = await client.query(
      `SELECT ${endpointColumns} FROM ${this.endpoints}
        WHERE merchant_id = ANY($1::text[]) AND status = 'enabled'
        ORDER BY endpoint_id FOR SHARE`,
      [textArrayLiteral(merchants)],
    );
    const endpoints = subscribed.rows.map(toEndpoint);
    const deliveries = fresh.flatMap((event) =>
      endpoints
        .filter(
          (endpoint) => endpoint.merchantId === event.merchantId && endpoint.eventTypes.includes(event.type),
        )
        .map((endpoint) => ({ event, endpoint })),
    );
    if (deliveries.length === 0) return;
    await client.query(
      `INSERT INTO ${this.deliveries}
         (delivery_id, endpoint_id, merchant_id, event_id, event_type, status, attempts, next_attempt_at, created_at, updated_at)
       SELECT id, endpoint_id, merchant_id, event_id, event_type, 'pending', 0, $6, $6, $6
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
           AS batch (id, endpoint_id, merchant_id, event_id, event_type)`,
      [
        textArrayLiteral(
          deliveries.map(({ event, endpoint }) => webhookDeliveryIdFor(event.id, endpoint.id)),
        ),
        textArrayLiteral(deliveries.map(({ endpoint }) => endpoint.id)),
        textArrayLiteral(deliveries.map(({ event }) => event.merchantId)),
        textArrayLiteral(deliveries.map(({ event }) => event.id)),
        textArrayLiteral(deliveries.map(({ event }) => event.type)),
        now,
      ],
    );
  }

  private transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return withClient(this.pool, async (client) => {
      await client.query('BEGIN');
      try {
        const result = await work(client);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    });
  }

  private assertOpen(): void {
    assert.ok(!this.closed, 'the webhook store is closed');
  }
}
