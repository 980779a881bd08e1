import type { LookupAddress, LookupOptions } from 'node:dns';
import { Agent, errors } from 'undici';
import type { DeliveryAddress } from './url-policy.js';

/**
 * One HTTP attempt of a webhook delivery: POST the body to the endpoint's URL, connecting to an
 * address the URL policy already checked, and report what happened. Behind an interface so the
 * dispatcher's queueing can be tested without sockets.
 */
export interface WebhookSendRequest {
  readonly url: URL;
  /** The address to connect to (from `resolveDeliveryAddress`); the name is never resolved again. */
  readonly address: DeliveryAddress;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** Aborts the attempt (its timeout, or the dispatcher stopping). */
  readonly signal: AbortSignal;
}

export type WebhookSendResult =
  | { readonly kind: 'answered'; readonly status: number }
  /** Connecting, sending or reading the status failed, or the request was aborted. */
  | {
      readonly kind: 'failed';
      readonly aborted: boolean;
      readonly timedOut: boolean;
      readonly detail: string;
    };

export interface WebhookSender {
  send(request: WebhookSendRequest): Promise<WebhookSendResult>;
  close(): Promise<void>;
}

export interface UndiciWebhookSenderSettings {
  /** Connecting (TCP and TLS) is abandoned after this; the attempt's own timeout bounds the rest. */
  readonly connectTimeoutMs: number;
  /** At most this many bytes of a response body are read (and dropped): only the status matters. */
  readonly responseBytesMax: number;
  /**
   * Connection pools kept, one per address connected to (each reused while the address stays the
   * same); the least recently used is closed beyond this.
   */
  readonly addressPoolsMax: number;
}

export const defaultUndiciWebhookSenderSettings: UndiciWebhookSenderSettings = {
  connectTimeoutMs: 10_000,
  responseBytesMax: 64 * 1024,
  addressPoolsMax: 256,
};

/**
 * The sender over undici. A pool per checked address, whose DNS lookup always answers that
 * address, so the connection goes where the policy allowed while TLS (SNI, certificate) and the
 * Host header still use the URL's name: a host name that rebinds to another address after the
 * check cannot redirect the request. Redirects are not followed (a 3xx is an answer that failed).
 */
export class UndiciWebhookSender implements WebhookSender {
  private readonly settings: UndiciWebhookSenderSettings;
  /** Insertion order is use order: the first entry is the least recently used. */
  private readonly pools = new Map<string, Agent>();

  constructor(settings: Partial<UndiciWebhookSenderSettings> = {}) {
    this.settings = { ...defaultUndiciWebhookSenderSettings, ...settings };
  }

  async send(request: WebhookSendRequest): Promise<WebhookSendResult> {
    try {
      const response = await this.poolFor(request.address).request({
        origin: request.url.origin,
        path: `${request.url.pathname}${request.url.search}`,
        method: 'POST',
        headers: request.headers,
        body: request.body,
        signal: request.signal,
      });
      // Read (and drop) at most `responseBytesMax`, so the connection can be reused.
      await response.body.dump({ limit: this.settings.responseBytesMax }).catch(() => undefined);
      return { kind: 'answered', status: response.statusCode };
    } catch (error) {
      const timedOut =
        error instanceof errors.ConnectTimeoutError ||
        error instanceof errors.HeadersTimeoutError ||
        error instanceof errors.BodyTimeoutError;
      return { kind: 'failed', aborted: request.signal.aborted, timedOut, detail: describeError(error) };
    }
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((pool) => pool.destroy().catch(() => undefined)));
  }

  private poolFor(address: DeliveryAddress): Agent {
    const key = `${address.family}/${address.address}`;
    const existing = this.pools.get(key);
    if (existing !== undefined) {
      this.pools.delete(key);
      this.pools.set(key, existing);
      return existing;
    }
    const pool = new Agent({
      connect: { timeout: this.settings.connectTimeoutMs, lookup: pinnedLookup(address) },
      // Connections idle this long are closed; an endpoint seldom used keeps nothing open.
      keepAliveTimeout: 4_000,
    });
    this.pools.set(key, pool);
    while (this.pools.size > this.settings.addressPoolsMax) {
      const [oldestKey, oldest] = this.pools.entries().next().value ?? [];
      if (oldestKey === undefined || oldest === undefined) break;
      this.pools.delete(oldestKey);
      // Requests in flight on it finish first.
      void oldest.close().catch(() => undefined);
    }
    return pool;
  }
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/** A `dns.lookup` that answers one fixed address, whichever name it is asked. */
function pinnedLookup(address: DeliveryAddress) {
  return (_hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    if (options.all === true) callback(null, [{ address: address.address, family: address.family }]);
    else callback(null, address.address, address.family);
  };
}

/** A short, safe description: the error's class and code, never a response body. */
function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error).slice(0, 200);
  const code = 'code' in error && typeof error.code === 'string' ? error.code : undefined;
  const cause = error.cause instanceof Error ? describeError(error.cause) : undefined;
  const own = code === undefined ? error.name : `${error.name} ${code}`;
  return (cause === undefined ? own : `${own} (${cause})`).slice(0, 200);
}
