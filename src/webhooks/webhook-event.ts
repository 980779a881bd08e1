import { createHash } from 'node:crypto';

/**
 * The event a webhook delivers, and its body. The body is serialized once, when the event is
 * made, and that exact string is what every attempt sends and signs: serializing again per
 * attempt could reorder or reformat it, and the signature is over the raw bytes.
 */

export const webhookEventTypes = [
  'order.executed',
  'order.declined',
  'order.failed',
  'refund.succeeded',
  'refund.failed',
] as const;

export type WebhookEventType = (typeof webhookEventTypes)[number];

/** JSON as the API renders it: amounts are already integers of minor units, times ISO strings. */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

export interface WebhookEvent {
  /** Stable for the same outcome, so a receiver deduplicates by it (see `webhookEventIdFor`). */
  readonly id: string;
  readonly type: WebhookEventType;
  /** When the outcome was recorded (the journal event's time), ISO 8601. */
  readonly createdAt: string;
  /** The order or refund exactly as the API shows it. */
  readonly data: { readonly [key: string]: JsonValue };
}

export interface WebhookEventSource {
  readonly merchantId: string;
  readonly type: WebhookEventType;
  /** The order id for `order.*` events, the refund id for `refund.*` events. */
  readonly subjectId: string;
}

/** 128 bits: collisions among a merchant's events are not a concern at any volume. */
const eventIdDigestBytes = 16;

/**
 * The event id: `evt_` and a hash of (merchant, type, order or refund id).
 *
 * Each of the five event types is a terminal outcome, which an order or a refund reaches at most
 * once, so (type, subject) names the fact itself. The id is the same however often the event is
 * derived again: after a crash, on another node of the cluster, after a replay of the journal, or
 * if a journal is migrated or its events move to another entity. An id from the journal's position
 * (persistence id and sequence number) would be stable too, but only as long as the layout of the
 * journal stays the same, and a receiver that saw an outcome under one id and again under another
 * would act on it twice. The merchant is in the hash so that no id could ever be shared by two
 * merchants. The hash keeps ids one length and reveals nothing a merchant doesn't already have.
 */
export function webhookEventIdFor(source: WebhookEventSource): string {
  const digest = createHash('sha256')
    .update(JSON.stringify([source.merchantId, source.type, source.subjectId]))
    .digest();
  return `evt_${digest.subarray(0, eventIdDigestBytes).toString('base64url')}`;
}

export interface WebhookEventInput extends WebhookEventSource {
  /** Milliseconds since the epoch of the journal event that recorded the outcome. */
  readonly createdAtMs: number;
  readonly data: { readonly [key: string]: JsonValue };
}

export function webhookEvent(input: WebhookEventInput): WebhookEvent {
  return {
    id: webhookEventIdFor(input),
    type: input.type,
    createdAt: new Date(input.createdAtMs).toISOString(),
    data: input.data,
  };
}

/** The raw body: `{ id, type, createdAt, data }` in that order, serialized once. */
export function serializeWebhookEvent(event: WebhookEvent): string {
  return JSON.stringify({ id: event.id, type: event.type, createdAt: event.createdAt, data: event.data });
}
