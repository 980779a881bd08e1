import assert from 'node:assert/strict';
import type { Cancellable, Clock } from '../runtime/clock.js';
import { type Logger, silentLogger } from '../runtime/logger.js';
import type { Random } from '../runtime/random.js';
import {
  defaultWebhookDeliverySettings,
  nextAttemptAt,
  type WebhookDeliverySettings,
  webhookDeliverySettingsSchema,
} from './retry-schedule.js';
import { signWebhook, webhookSignatureHeader } from './signature.js';
import { type HostLookup, resolveDeliveryAddress, type WebhookUrlPolicy } from './url-policy.js';
import type { WebhookSender } from './webhook-sender.js';
import type { StoredWebhookEvent, WebhookDelivery, WebhookEndpoint, WebhookStore } from './webhook-store.js';

/**
 * The webhook dispatcher: sends due deliveries to merchants' endpoints, records every attempt, and
 * schedules the next by the retry schedule.
 *
 * **Queues.** Each endpoint has a queue of its own, bounded (`deliveriesQueuedPerEndpointMax`),
 * of which at most `deliveriesInFlightPerEndpointMax` are being sent; the rest wait. An endpoint
 * whose queue is full is left out of the next poll, so a slow or hanging endpoint fills only its
 * own queue and the others' deliveries are fetched and sent as before. A poll fetches at most
 * `deliveriesFetchedMax` rows and never more than the room left under `deliveriesQueuedMax`, the
 * bound of everything held in memory. Nothing the order path does waits for any of it.
 *
 * **An attempt.** Resolve the URL's host again and check the address against the URL policy
 * (refused: outcome `address_refused`), sign the body with the endpoint's secret (and the expiring
 * one while it is valid) at the attempt's time in seconds, POST it within `attemptTimeoutMs`. A
 * 2xx succeeds; anything else (`http_error`, `timeout`, `connection_failed`) is pending again at
 * `nextAttemptAt`, or failed once past the retry window. Each attempt is recorded with the
 * delivery's new state. An endpoint's first failure since its last success marks it failing; one
 * failing for `endpointDisableAfterFailingMs` is disabled (`failing`); a success clears the mark.
 *
 * **At least once.** A delivery stays pending in the store until an attempt's outcome is
 * recorded: a crash mid-attempt sends it again (the receiver deduplicates by event id). A failed
 * poll is logged and tried at the next; a delivery whose attempt could not be recorded is held
 * in memory until the time its next attempt would have had, so a failing store never turns into
 * a stream of resends.
 */

export interface WebhookDispatcherSettings {
  /** How often the store is asked for due deliveries when nothing prompts it sooner. */
  readonly pollIntervalMs: number;
  /** Rows one poll fetches at most. */
  readonly deliveriesFetchedMax: number;
  /** Deliveries held in memory at once (queued or being sent), over all endpoints. */
  readonly deliveriesQueuedMax: number;
  /** Deliveries one endpoint's queue holds (being sent or waiting); at least its in-flight bound. */
  readonly deliveriesQueuedPerEndpointMax: number;
  /** How long `stop()` waits for attempts in flight before aborting them (then not recorded). */
  readonly stopTimeoutMs: number;
}

export const defaultWebhookDispatcherSettings: WebhookDispatcherSettings = {
  pollIntervalMs: 1_000,
  deliveriesFetchedMax: 200,
  deliveriesQueuedMax: 2_000,
  deliveriesQueuedPerEndpointMax: 16,
  stopTimeoutMs: 5_000,
};

/** The reason an endpoint is disabled after failing too long. */
export const endpointFailingReason = 'failing';

export interface WebhookDispatcherOptions {
  readonly store: WebhookStore;
  readonly sender: WebhookSender;
  readonly clock: Clock;
  readonly random: Random;
  readonly policy: WebhookUrlPolicy;
  /** Resolves endpoint host names (the system's DNS by default). */
  readonly lookup?: HostLookup;
  /**
   * The merchants whose deliveries this node sends: undefined for all (one node), else those
   * whose Merchant shard it owns (a cluster), asked at every poll.
   */
  readonly merchantIds: () => readonly string[] | undefined;
  readonly delivery?: Partial<WebhookDeliverySettings>;
  readonly settings?: Partial<WebhookDispatcherSettings>;
  readonly logger?: Logger;
}

export interface WebhookDispatcherStats {
  readonly attempts: number;
  readonly succeeded: number;
  readonly failedAttempts: number;
  /** Deliveries held now (queued or being sent). */
  readonly queued: number;
  readonly inFlight: number;
}

interface Job {
  readonly delivery: WebhookDelivery;
  readonly event: StoredWebhookEvent;
  readonly endpoint: WebhookEndpoint;
}

interface EndpointQueue {
  readonly waiting: Job[];
  inFlight: number;
}

type AttemptOutcome = 'ok' | 'http_error' | 'timeout' | 'connection_failed' | 'address_refused';

export class WebhookDispatcher {
  private readonly store: WebhookStore;
  private readonly sender: WebhookSender;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly policy: WebhookUrlPolicy;
  private readonly lookup: HostLookup | undefined;
  private readonly merchantIds: () => readonly string[] | undefined;
  private readonly log: Logger;
  readonly delivery: WebhookDeliverySettings;
  readonly settings: WebhookDispatcherSettings;

  private readonly queues = new Map<string, EndpointQueue>();
  /** Delivery ids held (queued or in flight), so a poll never takes one twice. */
  private readonly held = new Set<string>();
  private readonly attemptsInFlight = new Map<Promise<void>, AbortController>();
  /** Deliveries held after their attempt could not be recorded, released by these. */
  private readonly releaseTimers = new Set<Cancellable>();
  /** Each endpoint's health updates, one after another; the last one's promise. */
  private readonly healthUpdates = new Map<string, Promise<void>>();
  private timer: Cancellable | undefined;
  private polling: Promise<void> | undefined;
  private pollAgain = false;
  private running = false;
  private stopping = false;
  private counters = { attempts: 0, succeeded: 0, failedAttempts: 0 };

  constructor(options: WebhookDispatcherOptions) {
    this.store = options.store;
    this.sender = options.sender;
    this.clock = options.clock;
    this.random = options.random;
    this.policy = options.policy;
    this.lookup = options.lookup;
    this.merchantIds = options.merchantIds;
    this.log = (options.logger ?? silentLogger).child({ component: 'webhooks' });
    this.delivery = webhookDeliverySettingsSchema.parse({
      ...defaultWebhookDeliverySettings,
      ...options.delivery,
    });
    this.settings = { ...defaultWebhookDispatcherSettings, ...options.settings };
    const s = this.settings;
    for (const [name, value] of Object.entries(s)) {
      assert.ok(Number.isSafeInteger(value) && value >= 1, `${name} must be an integer >= 1, got ${value}`);
    }
    assert.ok(
      s.deliveriesQueuedPerEndpointMax >= this.delivery.deliveriesInFlightPerEndpointMax,
      'deliveriesQueuedPerEndpointMax must be at least deliveriesInFlightPerEndpointMax',
    );
  }

  start(): void {
    assert.ok(!this.running && !this.stopping, 'the webhook dispatcher starts once');
    this.running = true;
    this.poke();
  }

  /** New deliveries may be due (the projection stored events): poll now instead of at the next tick. */
  poke(): void {
    if (!this.running || this.stopping) return;
    if (this.polling !== undefined) {
      this.pollAgain = true;
      return;
    }
    this.timer?.cancel();
    this.timer = undefined;
    this.polling = this.poll().finally(() => {
      this.polling = undefined;
      if (this.pollAgain) {
        this.pollAgain = false;
        this.poke();
      } else this.scheduleNextPoll();
    });
  }

  /**
   * Stops polling and waits for the attempts in flight, for at most `stopTimeoutMs`; those still
   * running then are aborted and not recorded (their deliveries stay pending, sent again later).
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.running = false;
    this.timer?.cancel();
    for (const timer of this.releaseTimers) timer.cancel();
    this.releaseTimers.clear();
    await this.polling;
    for (const queue of this.queues.values()) {
      for (const job of queue.waiting.splice(0)) this.held.delete(job.delivery.id);
    }
    if (this.attemptsInFlight.size > 0) {
      let deadline: Cancellable | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        deadline = this.clock.schedule(this.settings.stopTimeoutMs, () => resolve(true));
      });
      const drained = Promise.all(this.attemptsInFlight.keys()).then(() => false);
      const late = await Promise.race([drained, timedOut]);
      deadline?.cancel();
      if (late) {
        this.log.warn(
          { inFlight: this.attemptsInFlight.size },
          'webhook attempts still in flight at stop: aborted',
        );
        for (const controller of this.attemptsInFlight.values()) controller.abort();
        await Promise.all(this.attemptsInFlight.keys());
      }
    }
    await Promise.all(this.healthUpdates.values());
  }

  stats(): WebhookDispatcherStats {
    let inFlight = 0;
    for (const queue of this.queues.values()) inFlight += queue.inFlight;
    return { ...this.counters, queued: this.held.size, inFlight };
  }

  /** Keeps `deliveryId` from being fetched again until `at`. */
  private release(deliveryId: string, at: number): void {
    const timer = this.clock.schedule(at - this.clock.now(), () => {
      this.releaseTimers.delete(timer);
      this.held.delete(deliveryId);
    });
    this.releaseTimers.add(timer);
  }

  private scheduleNextPoll(): void {
    if (!this.running || this.stopping) return;
    this.timer = this.clock.schedule(this.settings.pollIntervalMs, () => {
      this.timer = undefined;
      this.poke();
    });
  }

  private async poll(): Promise<void> {
    const room = this.settings.deliveriesQueuedMax - this.held.size;
    if (room <= 0) return;
    const limit = Math.min(this.settings.deliveriesFetchedMax, room);
    let due: Job[];
    try {
      due = await this.store.dueDeliveries({
        now: this.clock.now(),
        limit,
        merchantIds: this.merchantIds(),
        excludeEndpoints: this.fullEndpoints(),
      });
    } catch (error) {
      this.log.error({ error: messageOf(error) }, 'webhook dispatcher could not read due deliveries');
      return;
    }
    let taken = 0;
    for (const job of due) {
      if (this.stopping) return;
      if (this.held.has(job.delivery.id)) continue;
      const queue = this.queueOf(job.endpoint.id);
      if (queue.waiting.length + queue.inFlight >= this.settings.deliveriesQueuedPerEndpointMax) continue;
      this.held.add(job.delivery.id);
      queue.waiting.push(job);
      taken++;
      this.startWaiting(job.endpoint.id, queue);
    }
    // A full page may have more behind it: look again at once.
    if (due.length === limit && taken > 0) this.pollAgain = true;
  }

  /** Endpoints whose queue is full: the store leaves them out, so other endpoints get the rows. */
  private fullEndpoints(): string[] {
    const full: string[] = [];
    for (const [endpointId, queue] of this.queues) {
      if (queue.waiting.length + queue.inFlight >= this.settings.deliveriesQueuedPerEndpointMax)
        full.push(endpointId);
    }
    return full;
  }

  private queueOf(endpointId: string): EndpointQueue {
    let queue = this.queues.get(endpointId);
    if (queue === undefined) {
      queue = { waiting: [], inFlight: 0 };
      this.queues.set(endpointId, queue);
    }
    return queue;
  }

  private startWaiting(endpointId: string, queue: EndpointQueue): void {
    while (
      !this.stopping &&
      queue.inFlight < this.delivery.deliveriesInFlightPerEndpointMax &&
      queue.waiting.length > 0
    ) {
      const job = queue.waiting.shift();
      if (job === undefined) break;
      queue.inFlight++;
      const controller = new AbortController();
      let holdUntil: number | undefined;
      const attempt = this.attempt(job, controller.signal)
        .catch((error: unknown) => {
          // The store still says it is due: left to the next poll, it would be sent again at once,
          // and again, for as long as the store fails. It is held (counted in `held`, so bounded)
          // until the time its next attempt would have had.
          holdUntil = error instanceof UnrecordedAttemptError ? error.holdUntil : undefined;
          this.log.error(
            { deliveryId: job.delivery.id, error: messageOf(error) },
            'webhook attempt could not be recorded; the delivery stays pending',
          );
        })
        .finally(() => {
          this.attemptsInFlight.delete(attempt);
          if (holdUntil === undefined) this.held.delete(job.delivery.id);
          else this.release(job.delivery.id, holdUntil);
          queue.inFlight--;
          if (queue.inFlight === 0 && queue.waiting.length === 0) this.queues.delete(endpointId);
          else this.startWaiting(endpointId, queue);
          // A slot was freed: the endpoint may have been left out of the last poll.
          if (this.running) this.poke();
        });
      this.attemptsInFlight.set(attempt, controller);
    }
  }

  private async attempt(job: Job, stopSignal: AbortSignal): Promise<void> {
    const { delivery, event, endpoint } = job;
    const startedAt = this.clock.now();
    const result = await this.send(job, startedAt, stopSignal);
    // Aborted by stop(): nothing is known of the outcome; the delivery stays pending.
    if (result === undefined) return;
    const finishedAt = Math.max(startedAt, this.clock.now());
    const number = delivery.attempts + 1;
    const firstAttemptAt = delivery.firstAttemptAt ?? startedAt;
    const ok = result.outcome === 'ok';
    const next = ok
      ? undefined
      : nextAttemptAt(firstAttemptAt, number, finishedAt, this.random, this.delivery);
    this.counters.attempts++;
    if (ok) this.counters.succeeded++;
    else this.counters.failedAttempts++;
    const record = this.store.recordAttempt(
      {
        deliveryId: delivery.id,
        number,
        startedAt,
        durationMs: finishedAt - startedAt,
        httpStatus: result.httpStatus,
        outcome: result.outcome,
        detail: result.detail,
      },
      {
        status: ok ? 'succeeded' : next === undefined ? 'failed' : 'pending',
        nextAttemptAt: next,
        firstAttemptAt,
      },
    );
    try {
      await record;
    } catch (error) {
      throw new UnrecordedAttemptError(next ?? finishedAt + this.delivery.retryDelayMaxMs, error);
    }
    this.log.debug(
      {
        deliveryId: delivery.id,
        eventId: event.id,
        endpointId: endpoint.id,
        number,
        outcome: result.outcome,
      },
      'webhook attempt',
    );
    if (next === undefined && !ok) {
      this.log.warn(
        { deliveryId: delivery.id, endpointId: endpoint.id, attempts: number },
        'webhook delivery failed',
      );
    }
    this.updateHealth(endpoint, ok, startedAt);
  }

  /** One HTTP attempt; undefined when `stop()` aborted it. */
  private async send(
    { event, endpoint }: Job,
    startedAt: number,
    stopSignal: AbortSignal,
  ): Promise<
    { readonly outcome: AttemptOutcome; readonly httpStatus?: number; readonly detail?: string } | undefined
  > {
    const url = new URL(endpoint.url);
    const address = await resolveDeliveryAddress(url, {
      ...this.policy,
      ...(this.lookup === undefined ? {} : { lookup: this.lookup }),
    });
    if (stopSignal.aborted) return undefined;
    if (!address.ok) return { outcome: 'address_refused', detail: `${address.code}: ${address.detail}` };
    const expiring =
      endpoint.expiringSecret !== undefined && (endpoint.expiringSecretUntil ?? 0) > startedAt
        ? endpoint.expiringSecret
        : undefined;
    const signature = signWebhook({
      secret: endpoint.secret,
      ...(expiring === undefined ? {} : { expiringSecret: expiring }),
      body: event.body,
      timestampSeconds: Math.floor(startedAt / 1000),
    });
    const timeout = new AbortController();
    const timer = this.clock.schedule(this.delivery.attemptTimeoutMs, () => timeout.abort());
    try {
      const result = await this.sender.send({
        url,
        address: address.value,
        headers: {
          'content-type': 'application/json',
          [webhookSignatureHeader.toLowerCase()]: signature,
          'user-agent': 'Remit-Webhooks/1',
        },
        body: event.body,
        signal: AbortSignal.any([timeout.signal, stopSignal]),
      });
      if (stopSignal.aborted) return undefined;
      if (result.kind === 'answered') {
        const ok = result.status >= 200 && result.status < 300;
        return ok
          ? { outcome: 'ok', httpStatus: result.status }
          : { outcome: 'http_error', httpStatus: result.status, detail: `HTTP ${result.status}` };
      }
      if (timeout.signal.aborted || result.timedOut) {
        return { outcome: 'timeout', detail: `no answer within ${this.delivery.attemptTimeoutMs} ms` };
      }
      return { outcome: 'connection_failed', detail: result.detail };
    } finally {
      timer.cancel();
    }
  }

  /**
   * Marks the endpoint failing at its first failure since a success, disables it once it has been
   * failing for `endpointDisableAfterFailingMs`, and clears the mark on a success. Read from the
   * store and updated one at a time per endpoint, so concurrent attempts agree.
   */
  private updateHealth(endpoint: WebhookEndpoint, ok: boolean, at: number): void {
    const previous = this.healthUpdates.get(endpoint.id) ?? Promise.resolve();
    const update = previous
      .then(async () => {
        const current = await this.store.getEndpoint(endpoint.merchantId, endpoint.id);
        if (current === undefined) return;
        const now = this.clock.now();
        if (ok) {
          if (current.failingSince !== undefined) {
            await this.store.updateEndpoint(current.merchantId, current.id, {
              failingSince: undefined,
              updatedAt: now,
            });
          }
          return;
        }
        if (current.failingSince === undefined) {
          await this.store.updateEndpoint(current.merchantId, current.id, {
            failingSince: at,
            updatedAt: now,
          });
        } else if (
          current.status === 'enabled' &&
          now - current.failingSince >= this.delivery.endpointDisableAfterFailingMs
        ) {
          await this.store.updateEndpoint(current.merchantId, current.id, {
            status: 'disabled',
            disabledReason: endpointFailingReason,
            updatedAt: now,
          });
          this.log.warn(
            { endpointId: current.id, merchantId: current.merchantId, failingSince: current.failingSince },
            'webhook endpoint disabled: every delivery failed for too long',
          );
        }
      })
      .catch((error: unknown) => {
        this.log.error(
          { endpointId: endpoint.id, error: messageOf(error) },
          'webhook endpoint health not updated',
        );
      })
      .finally(() => {
        if (this.healthUpdates.get(endpoint.id) === update) this.healthUpdates.delete(endpoint.id);
      });
    this.healthUpdates.set(endpoint.id, update);
  }
}

/** An attempt was made but its record failed; the delivery should wait until `holdUntil`. */
class UnrecordedAttemptError extends Error {
  override readonly name = 'UnrecordedAttemptError';
  constructor(
    readonly holdUntil: number,
    cause: unknown,
  ) {
    super(`the attempt could not be recorded: ${messageOf(cause)}`, { cause });
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
