import type { WebhookEventType } from './webhook-event.js';

/**
 * Where webhooks live: merchants' endpoints (configuration, never rebuilt: not in the read model's
 * file, which is derived and dropped on a schema change), the events derived from the journal,
 * one delivery per (event, endpoint), and every attempt of each delivery. SQLite's
 * (`webhooks.db` beside the journal) on one node, PostgreSQL's on a cluster; both pass the same
 * contract suite. Every method is asynchronous so the two fit one interface.
 *
 * Times are milliseconds since the epoch, from the caller's Clock.
 */

export type WebhookEndpointStatus = 'enabled' | 'disabled';

export interface WebhookEndpoint {
  /** `we_…` */
  readonly id: string;
  readonly merchantId: string;
  readonly url: string;
  /** The event types it receives; never empty. */
  readonly eventTypes: readonly WebhookEventType[];
  readonly status: WebhookEndpointStatus;
  /** Why it is disabled: `disabled_by_merchant` or `failing` (every delivery failed for too long). */
  readonly disabledReason: string | undefined;
  /** Signs every delivery. Returned to the merchant once, when made (at registration or rotation). */
  readonly secret: string;
  /** The secret rotated out, which also signs until `expiringSecretUntil`. */
  readonly expiringSecret: string | undefined;
  readonly expiringSecretUntil: number | undefined;
  /** Since when every attempt failed (none succeeded since); undefined while it is healthy. */
  readonly failingSince: number | undefined;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** An event derived from the journal, with its body serialized once (`serializeWebhookEvent`). */
export interface StoredWebhookEvent {
  /** `evt_…` (`webhookEventIdFor`): deriving the same outcome again names the same event. */
  readonly id: string;
  readonly merchantId: string;
  readonly type: WebhookEventType;
  /** The order id, or the refund id. */
  readonly subjectId: string;
  /** The exact body every attempt sends and signs. */
  readonly body: string;
  readonly createdAt: number;
}

export type WebhookDeliveryStatus = 'pending' | 'succeeded' | 'failed';

export interface WebhookDelivery {
  /** `wd_…` */
  readonly id: string;
  readonly endpointId: string;
  readonly merchantId: string;
  readonly eventId: string;
  readonly eventType: WebhookEventType;
  /** `pending` (due at `nextAttemptAt`), `succeeded` (a 2xx), `failed` (the retry window ran out). */
  readonly status: WebhookDeliveryStatus;
  readonly attempts: number;
  readonly firstAttemptAt: number | undefined;
  /** When a pending delivery is due; undefined once it is not pending. */
  readonly nextAttemptAt: number | undefined;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface WebhookAttempt {
  readonly deliveryId: string;
  /** 1 for the first attempt. */
  readonly number: number;
  readonly startedAt: number;
  readonly durationMs: number;
  /** The HTTP status, when one came back. */
  readonly httpStatus: number | undefined;
  /** `ok`, `http_error`, `timeout`, `connection_failed`, `address_refused` (the URL policy). */
  readonly outcome: string;
  /** A short, safe description (never the response body). */
  readonly detail: string | undefined;
}

export interface WebhookStore {
  // ---- endpoints (the API) ----
  createEndpoint(endpoint: WebhookEndpoint): Promise<void>;
  getEndpoint(merchantId: string, endpointId: string): Promise<WebhookEndpoint | undefined>;
  /** The merchant's endpoints, oldest first (at most `endpointsPerMerchantMax` exist). */
  listEndpoints(merchantId: string): Promise<WebhookEndpoint[]>;
  /**
   * Applies `change` to the endpoint: a field named in it is set (to nothing when its value is
   * `undefined`), a field not named is kept. Undefined if the endpoint does not exist.
   */
  updateEndpoint(
    merchantId: string,
    endpointId: string,
    change: Partial<
      Pick<
        WebhookEndpoint,
        'status' | 'disabledReason' | 'secret' | 'expiringSecret' | 'expiringSecretUntil' | 'failingSince'
      >
    > & { readonly updatedAt: number },
  ): Promise<WebhookEndpoint | undefined>;
  /** Deletes the endpoint and its pending deliveries; false if it did not exist. */
  deleteEndpoint(merchantId: string, endpointId: string): Promise<boolean>;

  // ---- derivation (the webhook projection) ----
  /** The journal offset the webhook projection has derived events up to; it never moves back. */
  offset(): Promise<number>;
  /**
   * Stores the events (an event already stored is left as it is), a pending delivery due now for
   * each enabled endpoint of its merchant subscribed to its type, and `toOffset`, in one
   * transaction: a crash never loses an event nor derives one twice.
   */
  appendEvents(events: readonly StoredWebhookEvent[], toOffset: number, now: number): Promise<void>;

  // ---- delivery (the dispatcher) ----
  /**
   * Pending deliveries due at `now` of these merchants (all merchants when `merchantIds` is
   * undefined), earliest due first, at most `limit`, skipping the endpoints in `excludeEndpoints`
   * (full already), each with its event and endpoint. Deliveries of a disabled endpoint are not
   * due: they wait, pending, until it is enabled again.
   */
  dueDeliveries(query: {
    readonly now: number;
    readonly limit: number;
    readonly merchantIds: readonly string[] | undefined;
    readonly excludeEndpoints: readonly string[];
  }): Promise<
    {
      readonly delivery: WebhookDelivery;
      readonly event: StoredWebhookEvent;
      readonly endpoint: WebhookEndpoint;
    }[]
  >;
  /**
   * Records an attempt and the delivery's new state: `succeeded`, or `pending` again at
   * `nextAttemptAt`, or `failed` (no next attempt). An attempt of a delivery not in the state the
   * caller read (another node delivered it meanwhile) is still recorded, but a succeeded delivery
   * stays succeeded; an attempt of a delivery that no longer exists is dropped.
   */
  recordAttempt(
    attempt: WebhookAttempt,
    next: {
      readonly status: WebhookDeliveryStatus;
      readonly nextAttemptAt: number | undefined;
      readonly firstAttemptAt: number;
    },
  ): Promise<void>;
  /**
   * The endpoint's deliveries, newest first (by creation time, then id), paged by delivery id: the
   * page after `startingAfter`, empty when that is not a delivery of the endpoint.
   */
  listDeliveries(query: {
    readonly merchantId: string;
    readonly endpointId: string;
    readonly limit: number;
    readonly startingAfter: string | undefined;
  }): Promise<{ readonly data: WebhookDelivery[]; readonly hasMore: boolean }>;
  getDelivery(merchantId: string, deliveryId: string): Promise<WebhookDelivery | undefined>;
  listAttempts(deliveryId: string): Promise<WebhookAttempt[]>;
  /**
   * Makes the delivery pending again, due at `now` (a resend on request), keeping its attempts and
   * first attempt time (so a failure retries only within its first window); undefined if unknown.
   */
  resendDelivery(merchantId: string, deliveryId: string, now: number): Promise<WebhookDelivery | undefined>;

  close(): Promise<void>;
}
