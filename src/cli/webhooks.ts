import type { Logger as PinoLogger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import type { WebhookApiDependencies } from '../api/webhook-routes.js';
import { JournalRefunds } from '../node/journal-refunds.js';
import type { OrderQueries } from '../node/order-service.js';
import type { Clock } from '../runtime/clock.js';
import { systemRandom } from '../runtime/random.js';
import type { Journal } from '../store/journal.js';
import { WebhookDispatcher } from '../webhooks/webhook-dispatcher.js';
import { WebhookProjection, type WebhookProjectionStatus } from '../webhooks/webhook-projection.js';
import { UndiciWebhookSender } from '../webhooks/webhook-sender.js';
import type { WebhookStore } from '../webhooks/webhook-store.js';
import type { StartConfig } from './config.js';

type WebhookConfig = Pick<
  StartConfig,
  'webhooksAllowInsecure' | 'webhookRetryDelayMaxMs' | 'webhookAttemptTimeoutMs'
>;

export interface WebhookRuntimeOptions {
  readonly store: WebhookStore;
  readonly config: WebhookConfig;
  readonly clock: Clock;
  readonly logger: PinoLogger;
  readonly journal: Journal;
  readonly queries: OrderQueries;
  /** The journal offset the read model has applied, as its queries see it. */
  readonly readModelOffset: () => Promise<number>;
  /** The merchants whose deliveries this node sends; undefined for all (one node). */
  readonly merchantIds: () => readonly string[] | undefined;
}

/**
 * A node's webhooks: the store, the dispatcher sending the deliveries of the merchants it serves,
 * and — where it is held — the projection deriving events from the journal once the read model
 * shows their orders (a refund's body is read from its Payment's events, which hold all of it). One
 * node holds the projection for good; on a cluster the node holding the webhook projection's lease
 * does, and a projection released is stopped after its batch in progress and made anew on the next
 * hold (the store dedups events by id and never moves its offset back, so two overlapping for a
 * moment derive nothing twice).
 */
export class WebhookRuntime {
  readonly store: WebhookStore;
  private readonly sender = new UndiciWebhookSender();
  private readonly dispatcher: WebhookDispatcher;
  private projection: WebhookProjection | undefined;
  private released: Promise<void> = Promise.resolve();
  private lastStatus: WebhookProjectionStatus | undefined;
  private readonly logger: PinoLogger;

  constructor(private readonly options: WebhookRuntimeOptions) {
    this.store = options.store;
    this.logger = options.logger.child({ component: 'webhooks' });
    this.dispatcher = new WebhookDispatcher({
      store: options.store,
      sender: this.sender,
      clock: options.clock,
      random: systemRandom,
      policy: { allowInsecure: options.config.webhooksAllowInsecure },
      merchantIds: options.merchantIds,
      delivery: {
        retryDelayMaxMs: options.config.webhookRetryDelayMaxMs,
        firstRetryDelayMs: Math.min(1_000, options.config.webhookRetryDelayMaxMs),
        attemptTimeoutMs: options.config.webhookAttemptTimeoutMs,
      },
      logger: this.logger,
    });
    if (options.config.webhooksAllowInsecure) {
      this.logger.warn(
        {},
        'webhooks may go to http and private addresses (--webhooks-allow-insecure): development only',
      );
    }
  }

  /** What the API's webhook routes need. */
  api(config: Pick<StartConfig, 'webhooksAllowInsecure'>): WebhookApiDependencies {
    return {
      store: this.store,
      urlPolicy: { allowInsecure: config.webhooksAllowInsecure },
      clock: this.options.clock,
      onDeliveriesDue: () => this.dispatcher.poke(),
    };
  }

  /** Starts sending deliveries. */
  start(): void {
    this.dispatcher.start();
  }

  /** Runs the projection here (no-op while it runs). */
  holdProjection(): void {
    if (this.projection !== undefined) return;
    const { options } = this;
    const projection = new WebhookProjection({
      journal: options.journal,
      store: options.store,
      orders: options.queries,
      refunds: new JournalRefunds(options.journal),
      readModelOffset: options.readModelOffset,
      clock: options.clock,
      logger: this.logger,
      onEvents: () => this.dispatcher.poke(),
    });
    this.projection = projection;
    // A projection made while the last is still stopping waits for it.
    void this.released.then(() => {
      if (this.projection === projection) projection.start();
    });
  }

  /** Stops the projection here, after its batch in progress. */
  releaseProjection(): Promise<void> {
    const projection = this.projection;
    if (projection === undefined) return this.released;
    this.projection = undefined;
    this.lastStatus = projection.status();
    this.released = projection.stop().catch((error: unknown) => {
      this.logger.error(
        { error: error instanceof Error ? error.message : String(error) },
        'webhook projection stop failed',
      );
    });
    return this.released;
  }

  /** The journal has grown: derive now, if the projection runs here. */
  notify(): void {
    this.projection?.notify();
  }

  projectionStatus(): WebhookProjectionStatus {
    return this.projection?.status() ?? this.lastStatus ?? { ...emptyStatus };
  }

  stats(): ReturnType<WebhookDispatcher['stats']> {
    return this.dispatcher.stats();
  }

  /** Stops the dispatcher (attempts in flight finish, bounded), the projection, then the store. */
  async stop(): Promise<void> {
    await this.dispatcher.stop();
    await this.releaseProjection();
    await this.sender.close();
    await this.store.close();
  }
}

export function addWebhookMetrics(registry: Registry, webhooks: WebhookRuntime): void {
  const gauges: Array<[string, string, () => number]> = [
    [
      'remit_webhook_attempts_total',
      'Webhook delivery attempts since start',
      () => webhooks.stats().attempts,
    ],
    [
      'remit_webhook_attempts_failed_total',
      'Webhook delivery attempts that did not get a 2xx, since start',
      () => webhooks.stats().failedAttempts,
    ],
    [
      'remit_webhook_deliveries_queued',
      'Webhook deliveries held in memory (queued or in flight)',
      () => webhooks.stats().queued,
    ],
    ['remit_webhook_deliveries_in_flight', 'Webhook attempts in flight', () => webhooks.stats().inFlight],
    [
      'remit_webhook_projection_offset',
      'The journal offset webhook events are derived up to',
      () => webhooks.projectionStatus().offset,
    ],
    [
      'remit_webhook_projection_consecutive_failures',
      'Webhook projection batches failed since the last that succeeded',
      () => webhooks.projectionStatus().consecutiveFailures,
    ],
  ];
  for (const [name, help, read] of gauges) {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  }
}

const emptyStatus: WebhookProjectionStatus = {
  offset: 0,
  batches: 0,
  events: 0,
  readModelWaits: 0,
  consecutiveFailures: 0,
  lastError: undefined,
};
