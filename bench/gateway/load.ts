/**
 * The load generator: `POST /v1/orders` over keep-alive HTTP/1.1 connections without pipelining,
 * each order with its own idempotency key and its own approved card, each asking `Prefer: wait=N`
 * so that a 201 means the order reached its terminal status.
 *
 * Two clients: `raw` (the default, `http-client.ts`: one socket write per order, a small parser;
 * ~1/3 of undici's CPU per order, and that CPU is taken from the gateway on the same machine) and
 * `undici` (its Pool), kept to compare the two side by side.
 *
 * - closed loop: `connections` workers, each sending its next order when the previous answer has
 *   arrived. Measures throughput; latency is measured from the actual send.
 * - open loop: orders are due at fixed intervals (`rate` per second) whatever the answers do, and
 *   latency is measured from the INTENDED send time, so a stall in the gateway shows up in the
 *   latency of every order that should have been sent during it (no coordinated omission). At
 *   most `inFlightMax` orders are outstanding; an order due while that many are is not sent and
 *   counts as the error `dropped_in_flight_limit`.
 *
 * Time is split into a warm-up (not counted) and the measurement window. Throughput counts
 * executed orders whose answer arrived inside the window; latency and errors cover every order
 * sent (or, open loop, due) inside the window, waited for after the window closes (bounded).
 */
import { performance } from 'node:perf_hooks';
import { build, type Histogram } from 'hdr-histogram-js';
import { Pool } from 'undici';
import { approvedCard } from './cards.js';
import { HttpClientError, RawHttpClient } from './http-client.js';

export interface BenchMerchant {
  readonly id: string;
  readonly apiKey: string;
}

export type LoadMode =
  | { readonly kind: 'closed'; readonly connections: number }
  | {
      readonly kind: 'open';
      readonly connections: number;
      readonly ratePerSecond: number;
      readonly inFlightMax: number;
    };

/** The HTTP client the load generator sends with. */
export type LoadClient = 'raw' | 'undici';
export const loadClients: readonly LoadClient[] = ['raw', 'undici'];

export interface LoadPlan {
  /**
   * The servers to send to (one gateway, or every node of a cluster): the connections are split
   * evenly over them, and each order goes to one of them in turn (see `targetOf`).
   */
  readonly baseUrls: readonly string[];
  readonly client: LoadClient;
  /** Orders go to these merchants in turn. */
  readonly merchants: readonly BenchMerchant[];
  readonly mode: LoadMode;
  /** `performance.now()` at which the load starts; the warm-up runs from here. */
  readonly startAt: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Sent as `Prefer: wait=N`: how long the gateway may hold a request for the terminal status. */
  readonly waitSeconds: number;
  /**
   * A request without an answer by then is a `timeout` (undici: its headers and body timeouts;
   * raw: from the write to the last byte).
   */
  readonly requestTimeoutMs: number;
  /** Prefix of every idempotency key, so keys are unique across runs too. */
  readonly runId: string;
  /** Aborted on Ctrl-C: sending stops and requests in flight are abandoned. */
  readonly signal: AbortSignal;
  readonly onProgress?: (progress: LoadProgress) => void;
}

export interface LoadProgress {
  readonly elapsedS: number;
  /** Orders executed since the load started, warm-up included. */
  readonly executedTotal: number;
  readonly executedPerSecond: number;
  readonly inFlight: number;
  readonly errors: number;
}

export interface LatencySummary {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
  /** Executed orders whose latency is in the histogram. */
  readonly count: number;
}

/** Executed orders of one second of the window (by send time) and their worst latency. */
export interface LatencySecond {
  readonly second: number;
  readonly executed: number;
  readonly maxMs: number;
}

export interface LoadResult {
  /** Executed orders answered inside the measurement window. */
  readonly executedInWindow: number;
  /** Orders sent (open loop: due) inside the window. */
  readonly sentInWindow: number;
  readonly latencyMs: LatencySummary;
  /** Per second of the window: where a stall shows as a run of seconds with a high maximum. */
  readonly latencyBySecond: readonly LatencySecond[];
  readonly errors: number;
  readonly errorsByKind: Readonly<Record<string, number>>;
  readonly warmup: { readonly sent: number; readonly executed: number; readonly errors: number };
  readonly aborted: boolean;
}

type Outcome = { readonly kind: 'executed' } | { readonly kind: 'error'; readonly key: string };
const executed: Outcome = { kind: 'executed' };

/** Sends orders over one client; `close` ends its connections, failing what is in flight. */
interface OrderTransport {
  readonly send: (sequence: number) => Promise<Outcome>;
  readonly close: () => Promise<void>;
}

/** A closed-loop worker sends at most this many orders (a bound on its loop, far above any run). */
const ordersPerWorkerMax = 100_000_000;
/** After the window, requests in flight get this long beyond the request timeout to answer. */
const drainGraceMs = 5_000;
const drainPollMs = 10;
const progressIntervalMs = 5_000;
/** Resolves at `at` (performance time), or at once when `signal` (if any) aborts. */
export function sleepUntil(at: number, signal?: AbortSignal): Promise<void> {
  const waitMs = at - performance.now();
  // Already due: no timer turn, so an open loop behind its schedule sends at once.
  if (waitMs <= 0 || signal?.aborted === true) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, waitMs);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Histogram range in microseconds: 1 µs to 10 minutes, 3 significant digits. */
const histogramMaxMicros = 600_000_000;
const orderAmount = 1_250;
const cardExpYear = new Date().getUTCFullYear() + 3;

export async function runLoad(plan: LoadPlan): Promise<LoadResult> {
  if (plan.merchants.length === 0) throw new Error('no merchants to send orders to');
  const windowStart = plan.startAt + plan.warmupMs;
  const windowEnd = windowStart + plan.durationMs;
  const recorder = new Recorder(windowStart, windowEnd);
  const transport = spreadSender(plan);
  const onAbort = (): void => {
    void transport.close();
  };
  plan.signal.addEventListener('abort', onAbort, { once: true });
  const send = transport.send;
  const progress = setInterval(() => {
    plan.onProgress?.(recorder.progress(performance.now() - plan.startAt, progressIntervalMs));
  }, progressIntervalMs);
  try {
    await sleepUntil(plan.startAt);
    if (plan.mode.kind === 'closed') {
      await closedLoop(plan.mode.connections, windowEnd, plan.signal, send, recorder);
    } else {
      await openLoop(plan.mode, plan.startAt, windowEnd, plan.signal, send, recorder);
      await drain(recorder, performance.now() + plan.requestTimeoutMs + drainGraceMs, plan.signal);
    }
  } finally {
    clearInterval(progress);
    plan.signal.removeEventListener('abort', onAbort);
    recorder.close();
    await transport.close();
  }
  return recorder.result(plan.signal.aborted);
}

/** C workers, each with one order in flight at a time, until the window ends. */
async function closedLoop(
  connections: number,
  windowEnd: number,
  signal: AbortSignal,
  send: (sequence: number) => Promise<Outcome>,
  recorder: Recorder,
): Promise<void> {
  let sequence = 0;
  const worker = async (): Promise<void> => {
    for (let count = 0; count < ordersPerWorkerMax; count++) {
      const sentAt = performance.now();
      if (sentAt >= windowEnd || signal.aborted) return;
      recorder.sent(sentAt);
      recorder.inFlight++;
      const outcome = await send(sequence++);
      recorder.inFlight--;
      recorder.record(sentAt, performance.now(), outcome);
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
}

/** Orders due every 1/rate seconds from `startAt` to `windowEnd`, never more than inFlightMax out. */
async function openLoop(
  mode: Extract<LoadMode, { kind: 'open' }>,
  startAt: number,
  windowEnd: number,
  signal: AbortSignal,
  send: (sequence: number) => Promise<Outcome>,
  recorder: Recorder,
): Promise<void> {
  const intervalMs = 1_000 / mode.ratePerSecond;
  const plannedTotal = Math.floor((windowEnd - startAt) / intervalMs);
  // Every tick sends at least one due order unless a timer fires early; twice the orders is ample.
  const ticksMax = 2 * plannedTotal + 10_000;
  let next = 0;
  for (let tick = 0; tick < ticksMax && next < plannedTotal && !signal.aborted; tick++) {
    const due = Math.min(plannedTotal, Math.floor((performance.now() - startAt) / intervalMs) + 1);
    for (; next < due; next++) {
      const intendedAt = startAt + next * intervalMs;
      recorder.sent(intendedAt);
      if (recorder.inFlight >= mode.inFlightMax) {
        recorder.record(intendedAt, intendedAt, { kind: 'error', key: 'dropped_in_flight_limit' });
        continue;
      }
      recorder.inFlight++;
      void send(next).then((outcome) => {
        recorder.inFlight--;
        recorder.record(intendedAt, performance.now(), outcome);
      });
    }
    await sleepUntil(startAt + next * intervalMs);
  }
}

/** Waits (bounded) until no order is in flight. */
async function drain(recorder: Recorder, deadline: number, signal: AbortSignal): Promise<void> {
  const pollsMax = Math.ceil((deadline - performance.now()) / drainPollMs) + 1;
  for (let poll = 0; poll < pollsMax && recorder.inFlight > 0 && !signal.aborted; poll++) {
    if (performance.now() >= deadline) return;
    await sleepUntil(performance.now() + drainPollMs);
  }
}

/**
 * The order's JSON body, as `JSON.stringify` writes it, from a template: only the card number
 * (digits, nothing to escape) differs between orders.
 */
const bodyBeforeCard = `{"amount":${orderAmount},"currency":"EUR","card":{"number":"`;
const bodyAfterCard = `","expMonth":12,"expYear":${cardExpYear},"cvc":"123"}}`;

function orderBody(sequence: number): string {
  return bodyBeforeCard + approvedCard(sequence) + bodyAfterCard;
}

/**
 * In a 201 the gateway's order as Fastify's response schema serializes it (src/api/app.ts,
 * `orderSchema`): no whitespace, `status` a top-level string, the only `status` key (the nested
 * `card` has `brand` and `last4`), and every `"` inside a string value escaped. So this text occurs
 * in a 201's body exactly when the order's status is `executed`; anything else goes to `classify`.
 */
const executedMarker = '"status":"executed"';

/**
 * Which of `count` servers order `sequence` goes to. Orders go to the merchants in turn
 * (`sequence % merchants`), so the server changes once per round of merchants: every merchant's
 * orders reach every server, not merchant i always server i.
 */
export function targetOf(sequence: number, merchants: number, count: number): number {
  return Math.floor(sequence / merchants) % count;
}

/** Splits the plan's connections over its servers, one sender each, and sends each order to one in turn. */
function spreadSender(plan: LoadPlan): OrderTransport {
  const count = plan.baseUrls.length;
  if (count === 0) throw new Error('no server to send orders to');
  const connections = Math.max(1, Math.ceil(plan.mode.connections / count));
  const senders = plan.baseUrls.map((baseUrl) =>
    plan.client === 'undici'
      ? undiciSender(plan, baseUrl, connections)
      : rawSender(plan, baseUrl, connections),
  );
  if (senders.length === 1 && senders[0] !== undefined) return senders[0];
  const send = (sequence: number): Promise<Outcome> => {
    const sender = senders[targetOf(sequence, plan.merchants.length, count)];
    if (sender === undefined) throw new Error('no server to send orders to');
    return sender.send(sequence);
  };
  return {
    send,
    close: async () => {
      await Promise.all(senders.map((sender) => sender.close()));
    },
  };
}

/** The raw `node:net` client: each merchant's head built once, per order its key and body. */
function rawSender(plan: LoadPlan, baseUrl: string, connections: number): OrderTransport {
  const client = new RawHttpClient({
    baseUrl,
    connections,
    // Never more orders than the loop has in flight: closed loop its connections (all of them may
    // land on one server in a row), open loop `inFlightMax`.
    queueMax: plan.mode.kind === 'open' ? plan.mode.inFlightMax : plan.mode.connections,
    requestTimeoutMs: plan.requestTimeoutMs,
  });
  const heads = plan.merchants.map((merchant) =>
    client.head('POST', '/v1/orders', {
      authorization: `Bearer ${merchant.apiKey}`,
      'content-type': 'application/json',
      prefer: `wait=${plan.waitSeconds}`,
    }),
  );
  const keyPrefix = `idempotency-key: ${plan.runId}-`;
  const send = async (sequence: number): Promise<Outcome> => {
    const head = heads[sequence % heads.length];
    if (head === undefined) throw new Error('no merchants to send orders to');
    try {
      const response = await client.request(`${head}${keyPrefix}${sequence}\r\n`, orderBody(sequence));
      if (response.status === 201 && response.body.includes(executedMarker)) return executed;
      return classify(response.status, response.body);
    } catch (error) {
      // The client's kinds are already `timeout:…`, `network:…`, `protocol:…`, `queue_full`, `aborted`.
      return { kind: 'error', key: error instanceof HttpClientError ? error.kind : errorKind(error) };
    }
  };
  return { send, close: () => client.destroy() };
}

/** undici's Pool, one request in flight per connection (as before the raw client). */
function undiciSender(plan: LoadPlan, baseUrl: string, connections: number): OrderTransport {
  const pool = new Pool(baseUrl, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: plan.requestTimeoutMs,
    bodyTimeout: plan.requestTimeoutMs,
  });
  const headersOf = plan.merchants.map((merchant) => ({
    authorization: `Bearer ${merchant.apiKey}`,
    'content-type': 'application/json',
    prefer: `wait=${plan.waitSeconds}`,
  }));
  const send = async (sequence: number): Promise<Outcome> => {
    const headers = headersOf[sequence % headersOf.length];
    if (headers === undefined) throw new Error('no merchants to send orders to');
    try {
      const response = await pool.request({
        method: 'POST',
        path: '/v1/orders',
        headers: { ...headers, 'idempotency-key': `${plan.runId}-${sequence}` },
        body: orderBody(sequence),
      });
      return classify(response.statusCode, await response.body.text());
    } catch (error) {
      return { kind: 'error', key: errorKind(error) };
    }
  };
  return { send, close: () => pool.destroy() };
}

/** 201 + executed is the only success; everything else is an error of a named kind. */
export function classify(statusCode: number, text: string): Outcome {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { kind: 'error', key: `http_${statusCode}:unparseable_body` };
  }
  const field = (name: string): string => {
    const value: unknown = typeof json === 'object' && json !== null ? Reflect.get(json, name) : undefined;
    return typeof value === 'string' ? value : 'none';
  };
  if (statusCode === 201) {
    const status = field('status');
    return status === 'executed' ? executed : { kind: 'error', key: `terminal_${status}:${field('reason')}` };
  }
  if (statusCode === 202) return { kind: 'error', key: 'not_terminal_202' };
  return { kind: 'error', key: `http_${statusCode}:${field('code')}` };
}

const timeoutCodes = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

function errorKind(error: unknown): string {
  const code = codeOf(error) ?? codeOf(error instanceof Error ? error.cause : undefined);
  if (code !== undefined && timeoutCodes.has(code)) return `timeout:${code}`;
  if (code === 'UND_ERR_ABORTED' || code === 'UND_ERR_DESTROYED') return 'aborted';
  return `network:${code ?? (error instanceof Error ? error.name : 'unknown')}`;
}

function codeOf(error: unknown): string | undefined {
  const code: unknown = typeof error === 'object' && error !== null ? Reflect.get(error, 'code') : undefined;
  return typeof code === 'string' ? code : undefined;
}

class Recorder {
  /** Orders sent and not answered yet. */
  inFlight = 0;
  private readonly histogram: Histogram = build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: histogramMaxMicros,
    numberOfSignificantValueDigits: 3,
  });
  private readonly errorsByKind = new Map<string, number>();
  /** Indexed by the second of the window an order was sent (open loop: due) in. */
  private readonly executedBySecond: number[] = [];
  private readonly maxMicrosBySecond: number[] = [];
  private executedInWindow = 0;
  private sentInWindow = 0;
  private answeredInWindow = 0;
  private errorsInWindow = 0;
  private warmupSent = 0;
  private warmupExecuted = 0;
  private warmupErrors = 0;
  private executedTotal = 0;
  private errorsTotal = 0;
  private executedAtLastProgress = 0;
  private closed = false;

  constructor(
    private readonly windowStart: number,
    private readonly windowEnd: number,
  ) {}

  sent(sentAt: number): void {
    if (this.closed) return;
    if (sentAt < this.windowStart) this.warmupSent++;
    else if (sentAt < this.windowEnd) this.sentInWindow++;
  }

  record(sentAt: number, answeredAt: number, outcome: Outcome): void {
    if (this.closed) return;
    if (outcome.kind === 'executed') {
      this.executedTotal++;
      if (answeredAt >= this.windowStart && answeredAt < this.windowEnd) this.executedInWindow++;
    } else {
      this.errorsTotal++;
    }
    if (sentAt < this.windowStart) {
      if (outcome.kind === 'executed') this.warmupExecuted++;
      else this.warmupErrors++;
      return;
    }
    if (sentAt >= this.windowEnd) return;
    this.answeredInWindow++;
    if (outcome.kind === 'executed') {
      const micros = Math.max(1, Math.round((answeredAt - sentAt) * 1_000));
      this.histogram.recordValue(micros);
      const second = Math.floor((sentAt - this.windowStart) / 1_000);
      this.executedBySecond[second] = (this.executedBySecond[second] ?? 0) + 1;
      this.maxMicrosBySecond[second] = Math.max(this.maxMicrosBySecond[second] ?? 0, micros);
    } else {
      this.countError(outcome.key);
    }
  }

  progress(elapsedMs: number, intervalMs: number): LoadProgress {
    const executed = this.executedTotal - this.executedAtLastProgress;
    this.executedAtLastProgress = this.executedTotal;
    return {
      elapsedS: Math.round(elapsedMs / 100) / 10,
      executedTotal: this.executedTotal,
      executedPerSecond: Math.round((executed * 1_000) / intervalMs),
      inFlight: this.inFlight,
      errors: this.errorsTotal,
    };
  }

  /** Stops recording; orders of the window still unanswered become `unfinished_at_end`. */
  close(): void {
    if (this.closed) return;
    const unfinished = this.sentInWindow - this.answeredInWindow;
    if (unfinished > 0) this.countError('unfinished_at_end', unfinished);
    this.closed = true;
  }

  result(aborted: boolean): LoadResult {
    const count = this.histogram.totalCount;
    const maxMicros = this.histogram.maxValue;
    // A percentile is the top of its bucket, which can lie above the exact maximum: clamp it.
    const micros = (value: number): number => Math.round(Math.min(value, maxMicros)) / 1_000;
    return {
      executedInWindow: this.executedInWindow,
      sentInWindow: this.sentInWindow,
      latencyMs: {
        p50: count === 0 ? 0 : micros(this.histogram.getValueAtPercentile(50)),
        p90: count === 0 ? 0 : micros(this.histogram.getValueAtPercentile(90)),
        p99: count === 0 ? 0 : micros(this.histogram.getValueAtPercentile(99)),
        p999: count === 0 ? 0 : micros(this.histogram.getValueAtPercentile(99.9)),
        max: count === 0 ? 0 : micros(this.histogram.maxValue),
        mean: count === 0 ? 0 : micros(this.histogram.mean),
        count,
      },
      latencyBySecond: Array.from({ length: this.executedBySecond.length }, (_, second) => ({
        second,
        executed: this.executedBySecond[second] ?? 0,
        maxMs: (this.maxMicrosBySecond[second] ?? 0) / 1_000,
      })),
      errors: this.errorsInWindow,
      errorsByKind: Object.fromEntries([...this.errorsByKind].sort(([a], [b]) => a.localeCompare(b))),
      warmup: { sent: this.warmupSent, executed: this.warmupExecuted, errors: this.warmupErrors },
      aborted,
    };
  }

  private countError(key: string, count = 1): void {
    this.errorsInWindow += count;
    this.errorsByKind.set(key, (this.errorsByKind.get(key) ?? 0) + count);
  }
}
