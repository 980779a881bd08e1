import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Database } from 'better-sqlite3';
import { z } from 'zod';
import { type WebhookEventType, webhookEventTypes } from '../../webhooks/webhook-event.js';
import { webhookDeliveryIdFor } from '../../webhooks/webhook-ids.js';
import type {
  StoredWebhookEvent,
  WebhookAttempt,
  WebhookDelivery,
  WebhookDeliveryStatus,
  WebhookEndpoint,
  WebhookStore,
} from '../../webhooks/webhook-store.js';
import { type Migration, migrateTo } from './migrations.js';
import { busyTimeoutMs, openWriterDatabase } from './open-database.js';

/**
 * The webhook store of one node: `webhooks.db` beside the journal. Not in the read model's file,
 * which is derived and dropped on a schema change: endpoints are the merchants' configuration,
 * and deliveries and attempts are history nothing could rebuild.
 *
 * Durability is chosen per write. What a merchant is told (an endpoint registered, rotated,
 * disabled, a resend accepted) commits with `synchronous=FULL`, as the journal does. What the
 * projection and the dispatcher write commits with `synchronous=NORMAL`, which in WAL mode
 * survives a crash of the process but may lose the last commits on a power loss: events and
 * their deliveries go back with the offset they were derived up to (one transaction) and are
 * derived again under the same ids, and a lost attempt record means the delivery is sent once
 * more, which at-least-once delivery allows. An fsync per attempt would stall the event loop the
 * order path shares. The next FULL commit syncs everything written before it.
 */

export const webhooksFileName = 'webhooks.db';

export function webhooksPath(dataDirectory: string): string {
  return join(dataDirectory, webhooksFileName);
}

/** A smaller cache than the journal's: the hot rows are the few pending deliveries. */
const webhooksCacheSizeBytes = 4 * 1024 * 1024;

/** Never edit a migration that has shipped: add the next version instead. */
export const webhookMigrations: readonly Migration[] = [
  {
    version: 1,
    description: 'webhook endpoints, events, deliveries, attempts and the projection offset',
    // STRICT tables refuse a value of the wrong type instead of storing it.
    sql: `
      CREATE TABLE webhook_endpoints (
        endpoint_id TEXT PRIMARY KEY,
        merchant_id TEXT NOT NULL,
        url TEXT NOT NULL,
        event_types TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),
        disabled_reason TEXT,
        secret TEXT NOT NULL,
        expiring_secret TEXT,
        expiring_secret_until INTEGER,
        failing_since INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX webhook_endpoints_by_merchant ON webhook_endpoints (merchant_id, created_at, endpoint_id);

      CREATE TABLE webhook_events (
        event_id TEXT PRIMARY KEY,
        merchant_id TEXT NOT NULL,
        type TEXT NOT NULL,
        subject_id TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at INTEGER NOT NULL
      ) STRICT;

      CREATE TABLE webhook_deliveries (
        delivery_id TEXT PRIMARY KEY,
        endpoint_id TEXT NOT NULL,
        merchant_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
        attempts INTEGER NOT NULL CHECK (attempts >= 0),
        first_attempt_at INTEGER,
        next_attempt_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (event_id, endpoint_id)
      ) STRICT;
      -- The dispatcher's poll: pending deliveries, earliest due first.
      CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, delivery_id)
        WHERE status = 'pending';
      -- An endpoint's deliveries, newest first (delivery ids grow with time).
      CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, delivery_id);

      CREATE TABLE webhook_attempts (
        delivery_id TEXT NOT NULL,
        number INTEGER NOT NULL CHECK (number >= 1),
        started_at INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL CHECK (duration_ms >= 0),
        http_status INTEGER,
        outcome TEXT NOT NULL,
        detail TEXT
      ) STRICT;
      CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, number);

      CREATE TABLE webhook_projection (
        name TEXT PRIMARY KEY,
        "offset" INTEGER NOT NULL CHECK ("offset" >= 0)
      ) STRICT;
    `,
  },
  {
    version: 2,
    description: "an endpoint's deliveries indexed by creation time, then id",
    // Delivery ids are hashes of (event, endpoint): listing newest first needs the creation time.
    sql: `
      DROP INDEX webhook_deliveries_by_endpoint;
      CREATE INDEX webhook_deliveries_by_endpoint
        ON webhook_deliveries (endpoint_id, created_at DESC, delivery_id DESC);
    `,
  },
];

/** The single row of `webhook_projection`. */
const projectionName = 'webhooks';

// ---- rows -------------------------------------------------------------------------------------

const eventType = z.enum(webhookEventTypes);
const optionalText = z
  .string()
  .nullable()
  .transform((value) => value ?? undefined);
const optionalTime = z
  .number()
  .int()
  .nullable()
  .transform((value) => value ?? undefined);

const endpointRow = z
  .object({
    endpoint_id: z.string().min(1),
    merchant_id: z.string().min(1),
    url: z.string().min(1),
    event_types: z.string(),
    status: z.enum(['enabled', 'disabled']),
    disabled_reason: optionalText,
    secret: z.string().min(1),
    expiring_secret: optionalText,
    expiring_secret_until: optionalTime,
    failing_since: optionalTime,
    created_at: z.number().int(),
    updated_at: z.number().int(),
  })
  .transform(
    (row): WebhookEndpoint => ({
      id: row.endpoint_id,
      merchantId: row.merchant_id,
      url: row.url,
      eventTypes: z.array(eventType).min(1).parse(JSON.parse(row.event_types)),
      status: row.status,
      disabledReason: row.disabled_reason,
      secret: row.secret,
      expiringSecret: row.expiring_secret,
      expiringSecretUntil: row.expiring_secret_until,
      failingSince: row.failing_since,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    }),
  );

const eventRow = z
  .object({
    event_id: z.string().min(1),
    merchant_id: z.string().min(1),
    type: eventType,
    subject_id: z.string().min(1),
    body: z.string().min(1),
    created_at: z.number().int(),
  })
  .transform(
    (row): StoredWebhookEvent => ({
      id: row.event_id,
      merchantId: row.merchant_id,
      type: row.type,
      subjectId: row.subject_id,
      body: row.body,
      createdAt: row.created_at,
    }),
  );

const deliveryRow = z
  .object({
    delivery_id: z.string().min(1),
    endpoint_id: z.string().min(1),
    merchant_id: z.string().min(1),
    event_id: z.string().min(1),
    event_type: eventType,
    status: z.enum(['pending', 'succeeded', 'failed']),
    attempts: z.number().int().min(0),
    first_attempt_at: optionalTime,
    next_attempt_at: optionalTime,
    created_at: z.number().int(),
    updated_at: z.number().int(),
  })
  .transform(
    (row): WebhookDelivery => ({
      id: row.delivery_id,
      endpointId: row.endpoint_id,
      merchantId: row.merchant_id,
      eventId: row.event_id,
      eventType: row.event_type,
      status: row.status,
      attempts: row.attempts,
      firstAttemptAt: row.first_attempt_at,
      nextAttemptAt: row.status === 'pending' ? row.next_attempt_at : undefined,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    }),
  );

const attemptRow = z
  .object({
    delivery_id: z.string().min(1),
    number: z.number().int().min(1),
    started_at: z.number().int(),
    duration_ms: z.number().int().min(0),
    http_status: z.number().int().nullable(),
    outcome: z.string().min(1),
    detail: optionalText,
  })
  .transform(
    (row): WebhookAttempt => ({
      deliveryId: row.delivery_id,
      number: row.number,
      startedAt: row.started_at,
      durationMs: row.duration_ms,
      httpStatus: row.http_status ?? undefined,
      outcome: row.outcome,
      detail: row.detail,
    }),
  );

function parseRow<T>(schema: z.ZodType<T>, row: unknown, what: string): T {
  const result = schema.safeParse(row);
  if (!result.success) assert.fail(`webhook store ${what} row does not parse: ${result.error.message}`);
  return result.data;
}

const prefixed = (prefix: string) => (column: string) => `${prefix}.${column} AS ${prefix}_${column}`;
const endpointColumns = [
  'endpoint_id',
  'merchant_id',
  'url',
  'event_types',
  'status',
  'disabled_reason',
  'secret',
  'expiring_secret',
  'expiring_secret_until',
  'failing_since',
  'created_at',
  'updated_at',
];
const eventColumns = ['event_id', 'merchant_id', 'type', 'subject_id', 'body', 'created_at'];
const deliveryColumns = [
  'delivery_id',
  'endpoint_id',
  'merchant_id',
  'event_id',
  'event_type',
  'status',
  'attempts',
  'first_attempt_at',
  'next_attempt_at',
  'created_at',
  'updated_at',
];

/** The columns of one table out of a joined row whose names carry the table's prefix. */
function unprefixed(row: Record<string, unknown>, prefix: string, columns: readonly string[]) {
  return Object.fromEntries(columns.map((column) => [column, row[`${prefix}_${column}`]]));
}

type EndpointChange = Parameters<WebhookStore['updateEndpoint']>[2];

const endpointChangeColumns = {
  status: 'status',
  disabledReason: 'disabled_reason',
  secret: 'secret',
  expiringSecret: 'expiring_secret',
  expiringSecretUntil: 'expiring_secret_until',
  failingSince: 'failing_since',
} as const satisfies Record<Exclude<keyof EndpointChange, 'updatedAt'>, string>;

export class SqliteWebhookStore implements WebhookStore {
  private readonly statements: ReturnType<typeof prepare>;
  private durability: 'full' | 'normal' = 'full';

  private constructor(
    private readonly database: Database,
    readonly path: string,
  ) {
    this.statements = prepare(database);
  }

  /** Opens (creating and migrating if needed) the webhook store at `path`. */
  static open(path: string, now: number): SqliteWebhookStore {
    const database = openWriterDatabase(path, busyTimeoutMs, webhooksCacheSizeBytes);
    try {
      migrateTo(database, path, now, webhookMigrations);
      return new SqliteWebhookStore(database, path);
    } catch (error) {
      database.close();
      throw error;
    }
  }

  // ---- endpoints ----

  async createEndpoint(endpoint: WebhookEndpoint): Promise<void> {
    assert.ok(endpoint.eventTypes.length > 0, 'an endpoint receives at least one event type');
    this.write('full', () => {
      this.statements.insertEndpoint.run(
        endpoint.id,
        endpoint.merchantId,
        endpoint.url,
        JSON.stringify(endpoint.eventTypes),
        endpoint.status,
        endpoint.disabledReason ?? null,
        endpoint.secret,
        endpoint.expiringSecret ?? null,
        endpoint.expiringSecretUntil ?? null,
        endpoint.failingSince ?? null,
        endpoint.createdAt,
        endpoint.updatedAt,
      );
    });
  }

  async getEndpoint(merchantId: string, endpointId: string): Promise<WebhookEndpoint | undefined> {
    return this.endpoint(merchantId, endpointId);
  }

  async listEndpoints(merchantId: string): Promise<WebhookEndpoint[]> {
    return this.statements.listEndpoints.all(merchantId).map((row) => parseRow(endpointRow, row, 'endpoint'));
  }

  async updateEndpoint(
    merchantId: string,
    endpointId: string,
    change: EndpointChange,
  ): Promise<WebhookEndpoint | undefined> {
    // A key present with the value undefined clears the column (e.g. `failingSince` after a success).
    const assignments: string[] = ['updated_at = ?'];
    const values: unknown[] = [change.updatedAt];
    for (const [key, column] of Object.entries(endpointChangeColumns)) {
      if (!Object.hasOwn(change, key)) continue;
      assignments.push(`${column} = ?`);
      values.push(change[key as keyof typeof endpointChangeColumns] ?? null);
    }
    return this.write('full', () => {
      const updated = this.database
        .prepare(
          `UPDATE webhook_endpoints SET ${assignments.join(', ')} WHERE endpoint_id = ? AND merchant_id = ?`,
        )
        .run(...values, endpointId, merchantId);
      return updated.changes === 0 ? undefined : this.endpoint(merchantId, endpointId);
    });
  }

  async deleteEndpoint(merchantId: string, endpointId: string): Promise<boolean> {
    return this.write('full', () => {
      const deleted = this.statements.deleteEndpoint.run(endpointId, merchantId);
      if (deleted.changes === 0) return false;
      this.statements.deletePendingAttempts.run(endpointId);
      this.statements.deletePendingDeliveries.run(endpointId);
      return true;
    });
  }

  // ---- derivation ----

  async offset(): Promise<number> {
    return this.currentOffset();
  }

  async appendEvents(events: readonly StoredWebhookEvent[], toOffset: number, now: number): Promise<void> {
    assert.ok(Number.isSafeInteger(toOffset) && toOffset >= 0, `a journal offset, got ${toOffset}`);
    this.write('normal', () => {
      for (const event of events) {
        const inserted = this.statements.insertEvent.run(
          event.id,
          event.merchantId,
          event.type,
          event.subjectId,
          event.body,
          event.createdAt,
        );
        if (inserted.changes === 0) continue;
        for (const endpointId of this.subscribedEndpoints(event.merchantId, event.type)) {
          this.statements.insertDelivery.run(
            webhookDeliveryIdFor(event.id, endpointId),
            endpointId,
            event.merchantId,
            event.id,
            event.type,
            now,
            now,
            now,
          );
        }
      }
      this.statements.upsertOffset.run(projectionName, toOffset);
    });
  }

  // ---- delivery ----

  async dueDeliveries(query: Parameters<WebhookStore['dueDeliveries']>[0]) {
    assert.ok(Number.isSafeInteger(query.limit) && query.limit >= 1, `limit must be >= 1: ${query.limit}`);
    const rows = this.statements.dueDeliveries.all({
      now: query.now,
      limit: query.limit,
      allMerchants: query.merchantIds === undefined ? 1 : 0,
      merchantIds: JSON.stringify(query.merchantIds ?? []),
      excluded: JSON.stringify(query.excludeEndpoints),
    }) as Record<string, unknown>[];
    return rows.map((row) => ({
      delivery: parseRow(deliveryRow, unprefixed(row, 'd', deliveryColumns), 'delivery'),
      event: parseRow(eventRow, unprefixed(row, 'v', eventColumns), 'event'),
      endpoint: parseRow(endpointRow, unprefixed(row, 'e', endpointColumns), 'endpoint'),
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
    assert.ok(
      (next.status === 'pending') === (next.nextAttemptAt !== undefined),
      'a pending delivery has a next attempt time, and only a pending one',
    );
    this.write('normal', () => {
      const exists = this.statements.deliveryExists.get(attempt.deliveryId);
      // A delivery deleted with its endpoint meanwhile has nothing left to record against.
      if (exists === undefined) return;
      this.statements.insertAttempt.run(
        attempt.deliveryId,
        attempt.number,
        attempt.startedAt,
        attempt.durationMs,
        attempt.httpStatus ?? null,
        attempt.outcome,
        attempt.detail ?? null,
      );
      this.statements.updateDeliveryAfterAttempt.run({
        deliveryId: attempt.deliveryId,
        status: next.status,
        nextAttemptAt: next.nextAttemptAt ?? null,
        firstAttemptAt: next.firstAttemptAt,
        updatedAt: attempt.startedAt + attempt.durationMs,
      });
    });
  }

  async listDeliveries(query: Parameters<WebhookStore['listDeliveries']>[0]) {
    assert.ok(Number.isSafeInteger(query.limit) && query.limit >= 1, `limit must be >= 1: ${query.limit}`);
    const rows = this.statements.listDeliveries.all({
      merchantId: query.merchantId,
      endpointId: query.endpointId,
      after: query.startingAfter ?? null,
      limit: query.limit + 1,
    });
    const data = rows.slice(0, query.limit).map((row) => parseRow(deliveryRow, row, 'delivery'));
    return { data, hasMore: rows.length > query.limit };
  }

  async getDelivery(merchantId: string, deliveryId: string): Promise<WebhookDelivery | undefined> {
    return this.delivery(merchantId, deliveryId);
  }

  async listAttempts(deliveryId: string): Promise<WebhookAttempt[]> {
    return this.statements.listAttempts.all(deliveryId).map((row) => parseRow(attemptRow, row, 'attempt'));
  }

  async resendDelivery(
    merchantId: string,
    deliveryId: string,
    now: number,
  ): Promise<WebhookDelivery | undefined> {
    return this.write('full', () => {
      const updated = this.statements.resendDelivery.run(now, now, deliveryId, merchantId);
      return updated.changes === 0 ? undefined : this.delivery(merchantId, deliveryId);
    });
  }

  async close(): Promise<void> {
    if (this.database.open) this.database.close();
  }

  // ---- helpers ----

  private endpoint(merchantId: string, endpointId: string): WebhookEndpoint | undefined {
    const row = this.statements.getEndpoint.get(endpointId, merchantId);
    return row === undefined ? undefined : parseRow(endpointRow, row, 'endpoint');
  }

  private delivery(merchantId: string, deliveryId: string): WebhookDelivery | undefined {
    const row = this.statements.getDelivery.get(deliveryId, merchantId);
    return row === undefined ? undefined : parseRow(deliveryRow, row, 'delivery');
  }

  private currentOffset(): number {
    const stored: unknown = this.statements.selectOffset.get(projectionName);
    if (stored === undefined) return 0;
    assert.ok(
      typeof stored === 'number' && Number.isSafeInteger(stored) && stored >= 0,
      `webhook projection offset does not parse: ${String(stored)}`,
    );
    return stored;
  }

  private subscribedEndpoints(merchantId: string, type: WebhookEventType): string[] {
    return this.statements.subscribedEndpoints.all(merchantId, type) as string[];
  }

  /** Runs `work` in one IMMEDIATE transaction at the durability asked for. */
  private write<T>(durability: 'full' | 'normal', work: () => T): T {
    assert.ok(this.database.open, `webhook store ${this.path} is closed`);
    if (this.durability !== durability) {
      this.database.pragma(`synchronous = ${durability === 'full' ? 'FULL' : 'NORMAL'}`);
      this.durability = durability;
    }
    return this.database.transaction(work).immediate();
  }
}

function prepare(database: Database) {
  const pendingOfEndpoint =
    "SELECT delivery_id FROM webhook_deliveries WHERE endpoint_id = ? AND status = 'pending'";
  const statements = {
    insertEndpoint: database.prepare(
      `INSERT INTO webhook_endpoints (${endpointColumns.join(', ')}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    getEndpoint: database.prepare(
      `SELECT ${endpointColumns.join(', ')} FROM webhook_endpoints WHERE endpoint_id = ? AND merchant_id = ?`,
    ),
    listEndpoints: database.prepare(
      `SELECT ${endpointColumns.join(', ')} FROM webhook_endpoints WHERE merchant_id = ? ORDER BY created_at, endpoint_id`,
    ),
    deleteEndpoint: database.prepare(
      'DELETE FROM webhook_endpoints WHERE endpoint_id = ? AND merchant_id = ?',
    ),
    deletePendingAttempts: database.prepare(
      `DELETE FROM webhook_attempts WHERE delivery_id IN (${pendingOfEndpoint})`,
    ),
    deletePendingDeliveries: database.prepare(
      "DELETE FROM webhook_deliveries WHERE endpoint_id = ? AND status = 'pending'",
    ),
    selectOffset: database.prepare('SELECT "offset" FROM webhook_projection WHERE name = ?').pluck(),
    upsertOffset: database.prepare(
      // Never back: a projection that lost its lease may still write an older batch.
      'INSERT INTO webhook_projection (name, "offset") VALUES (?, ?) ' +
        'ON CONFLICT (name) DO UPDATE SET "offset" = max("offset", excluded."offset")',
    ),
    insertEvent: database.prepare(
      `INSERT INTO webhook_events (${eventColumns.join(', ')}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING`,
    ),
    subscribedEndpoints: database
      .prepare(
        "SELECT endpoint_id FROM webhook_endpoints WHERE merchant_id = ? AND status = 'enabled' " +
          'AND EXISTS (SELECT 1 FROM json_each(event_types) WHERE value = ?) ORDER BY created_at, endpoint_id',
      )
      .pluck(),
    insertDelivery: database.prepare(
      `INSERT INTO webhook_deliveries (${deliveryColumns.join(', ')}) ` +
        "VALUES (?, ?, ?, ?, ?, 'pending', 0, NULL, ?, ?, ?) ON CONFLICT (event_id, endpoint_id) DO NOTHING",
    ),
    dueDeliveries: database.prepare(
      `SELECT ${[
        ...deliveryColumns.map(prefixed('d')),
        ...eventColumns.map(prefixed('v')),
        ...endpointColumns.map(prefixed('e')),
      ].join(', ')} ` +
        'FROM webhook_deliveries d ' +
        'JOIN webhook_events v ON v.event_id = d.event_id ' +
        'JOIN webhook_endpoints e ON e.endpoint_id = d.endpoint_id ' +
        "WHERE d.status = 'pending' AND d.next_attempt_at <= @now AND e.status = 'enabled' " +
        'AND (@allMerchants = 1 OR d.merchant_id IN (SELECT value FROM json_each(@merchantIds))) ' +
        'AND d.endpoint_id NOT IN (SELECT value FROM json_each(@excluded)) ' +
        'ORDER BY d.next_attempt_at, d.delivery_id LIMIT @limit',
    ),
    deliveryExists: database.prepare('SELECT 1 FROM webhook_deliveries WHERE delivery_id = ?').pluck(),
    insertAttempt: database.prepare(
      'INSERT INTO webhook_attempts (delivery_id, number, started_at, duration_ms, http_status, outcome, detail) ' +
        'VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    // A success stands whatever came before or after it (another node's attempt may land late);
    // anything else only changes a delivery that is still pending.
    updateDeliveryAfterAttempt: database.prepare(
      'UPDATE webhook_deliveries SET attempts = attempts + 1, ' +
        'first_attempt_at = COALESCE(first_attempt_at, @firstAttemptAt), ' +
        "status = CASE WHEN status = 'succeeded' THEN status WHEN @status = 'succeeded' OR status = 'pending' " +
        'THEN @status ELSE status END, ' +
        "next_attempt_at = CASE WHEN status = 'succeeded' THEN NULL WHEN @status = 'succeeded' OR status = 'pending' " +
        'THEN @nextAttemptAt ELSE next_attempt_at END, ' +
        'updated_at = max(updated_at, @updatedAt) WHERE delivery_id = @deliveryId',
    ),
    listDeliveries: database.prepare(
      `SELECT ${deliveryColumns.join(', ')} FROM webhook_deliveries ` +
        'WHERE endpoint_id = @endpointId AND merchant_id = @merchantId ' +
        // An unknown cursor makes the row comparison NULL: an empty page.
        'AND (@after IS NULL OR (created_at, delivery_id) < (SELECT created_at, delivery_id ' +
        'FROM webhook_deliveries WHERE delivery_id = @after AND endpoint_id = @endpointId AND merchant_id = @merchantId)) ' +
        'ORDER BY created_at DESC, delivery_id DESC LIMIT @limit',
    ),
    getDelivery: database.prepare(
      `SELECT ${deliveryColumns.join(', ')} FROM webhook_deliveries WHERE delivery_id = ? AND merchant_id = ?`,
    ),
    listAttempts: database.prepare(
      'SELECT delivery_id, number, started_at, duration_ms, http_status, outcome, detail ' +
        'FROM webhook_attempts WHERE delivery_id = ? ORDER BY number, started_at, rowid',
    ),
    resendDelivery: database.prepare(
      "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ? " +
        'WHERE delivery_id = ? AND merchant_id = ?',
    ),
  };
  return statements;
}
