import assert from 'node:assert/strict';
import type { JsonSchemaToTsProvider } from '@fastify/type-provider-json-schema-to-ts';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { assertNever } from '../runtime/assert-never.js';
import type { Clock } from '../runtime/clock.js';
import { systemClock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { silentLogger } from '../runtime/logger.js';
import type { Random } from '../runtime/random.js';
import { systemRandom } from '../runtime/random.js';
import { authorizePayment, type PaymentOutcome } from './authorization.js';
import {
  type BankFaults,
  type CancelAnswerBody,
  type LedgerReportBody,
  noFaults,
  type PaymentAnswerBody,
  type PaymentBatchAnswerBody,
  type PaymentBatchResultBody,
  type PaymentRecordBody,
  type PaymentRequestBody,
  type Problem,
  type RefundAnswerBody,
  type RefundRecordBody,
  type RefundRequestBody,
  referenceCancelled,
} from './bank-protocol.js';
import {
  cancelAnswerSchema,
  cancelRequestSchema,
  faultsSchema,
  faultsUpdateSchema,
  healthSchema,
  ledgerQuerySchema,
  ledgerReportSchema,
  paymentAnswerSchema,
  paymentBatchAnswerSchema,
  paymentBatchRequestSchema,
  paymentRecordSchema,
  paymentRequestSchema,
  problemResponses,
  referenceLengthMax,
  referenceParamsSchema,
  refundAnswerSchema,
  refundRecordSchema,
  refundRequestSchema,
} from './bank-schemas.js';
import { type CancelOutcome, cancelReference } from './cancellation.js';
import { HeldResponses } from './held-responses.js';
import {
  BankLedger,
  type DecidedPayment,
  ledgerTotals,
  type PaymentRecord,
  type RefundRecord,
} from './ledger.js';
import { LedgerCommitter } from './ledger-committer.js';
import { problem, problemFromError, sendProblem } from './problems.js';
import { type RefundOutcome, refundPayment } from './refunds.js';

/**
 * The acquiring bank simulator: an HTTP server in front of the ledger, deduplicating payments and
 * refunds by reference, cancelling references for good, refunding approved payments up to their
 * amount, and answering only after the answer is durable.
 * Requests that write share ledger transactions (LedgerCommitter): one fsync for many answers.
 * Faults (latency, declines, errors and withheld answers) are injected through `PUT /v1/faults` so
 * a gateway can be tested against a bank that misbehaves the way real ones do.
 */

export interface BankServerSettings {
  /** Largest accepted request body. */
  readonly bodyLimitBytes: number;
  /** Largest accepted body of `POST /v1/payments/batch` (which carries at most `batchPaymentsMax` payments). */
  readonly batchBodyLimitBytes: number;
  /** How long the `timeoutRate` fault holds a committed answer before destroying the socket. */
  readonly timeoutHoldMs: number;
  /** Most answers held at once; beyond it a timed-out request's socket is destroyed at once. */
  readonly heldResponsesMax: number;
  /** An idle keep-alive connection is closed after this long. */
  readonly keepAliveTimeoutMs: number;
  /** A connection with no traffic at all is destroyed after this long; above `timeoutHoldMs`. */
  readonly socketIdleTimeoutMs: number;
  /** A request's headers must arrive within this long. */
  readonly headersTimeoutMs: number;
  /** A whole request (headers and body) must arrive within this long. */
  readonly requestReceiveTimeoutMs: number;
  /** Most simultaneous connections; Node closes further ones as soon as they are accepted. */
  readonly connectionsMax: number;
  /** Most requests whose ledger writes share one transaction (one fsync). */
  readonly ledgerBatchWritesMax: number;
  /**
   * Most requests waiting for, or in, a ledger transaction; a request beyond it is answered 503
   * `bank_overloaded` before anything is done.
   */
  readonly ledgerPendingWritesMax: number;
}

export const defaultBankServerSettings: BankServerSettings = {
  bodyLimitBytes: 16 * 1024,
  // A payment is about 200 bytes of JSON: room for a full batch of 1,024 with a margin.
  batchBodyLimitBytes: 512 * 1024,
  timeoutHoldMs: 60_000,
  heldResponsesMax: 10_000,
  keepAliveTimeoutMs: 5_000,
  socketIdleTimeoutMs: 120_000,
  headersTimeoutMs: 10_000,
  requestReceiveTimeoutMs: 30_000,
  connectionsMax: 16_384,
  // A batch's work runs on the event loop, about 10 µs a payment on the development machine, so a
  // full batch stalls it for about 10 ms. Ten batches' worth may wait: about a second of the
  // 10,000 payments/s the bank is sized for.
  ledgerBatchWritesMax: 1_024,
  ledgerPendingWritesMax: 10_240,
};

/**
 * Find-my-way bounds path parameters by their encoded length; percent-encoding turns one UTF-16
 * unit of a reference into at most nine characters (a three-byte UTF-8 sequence).
 */
const encodedReferenceLengthMax = referenceLengthMax * 9;

export interface BankAppDeps {
  readonly ledger: BankLedger;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger?: Logger;
  readonly settings?: Partial<BankServerSettings>;
  /** Faults in force from the start; `PUT /v1/faults` changes them later. */
  readonly faults?: Partial<BankFaults>;
}

export function buildBankApp(deps: BankAppDeps): FastifyInstance {
  const settings: BankServerSettings = { ...defaultBankServerSettings, ...deps.settings };
  const logger = (deps.logger ?? silentLogger).child({ component: 'bank' });
  const held = new HeldResponses(deps.clock, settings.timeoutHoldMs, settings.heldResponsesMax);
  let faults: BankFaults = { ...noFaults, ...deps.faults };
  const commits = new LedgerCommitter(
    deps.ledger,
    { batchWritesMax: settings.ledgerBatchWritesMax, pendingWritesMax: settings.ledgerPendingWritesMax },
    logger,
  );

  const app = Fastify({
    // Logging goes through the injected Logger, in the hooks below, without request bodies.
    logger: false,
    bodyLimit: settings.bodyLimitBytes,
    keepAliveTimeout: settings.keepAliveTimeoutMs,
    connectionTimeout: settings.socketIdleTimeoutMs,
    requestTimeout: settings.requestReceiveTimeoutMs,
    // close() must not wait for held answers or idle keep-alive connections.
    forceCloseConnections: true,
    // Fastify's own 503 while closing is not problem+json; closing is quick enough to do without it.
    return503OnClosing: false,
    routerOptions: { maxParamLength: encodedReferenceLengthMax },
    // Reject unknown fields instead of dropping them, and never coerce "12" into 12.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
    frameworkErrors: (error, _request, reply) => sendProblem(reply, problemFromError(error)),
  });
  app.server.headersTimeout = settings.headersTimeoutMs;
  app.server.maxConnections = settings.connectionsMax;
  // Only JSON bodies: without this, text/plain would reach the schema as a string.
  app.removeContentTypeParser('text/plain');

  app.setErrorHandler((error, request, reply) => {
    const body = problemFromError(error);
    // A refused or failed ledger write (503) is logged by the LedgerCommitter, once per batch.
    if (body.code === 'internal_error') {
      // Only the error's name, code and message: never the request, which may hold a card number.
      logger.error({ route: request.routeOptions.url, error: describeError(error) }, 'request failed');
    }
    return sendProblem(reply, body);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      // The path is not quoted: a caller could have put anything in it, a card number included.
      problem(404, 'route_not_found', `no ${request.method} route at this path`),
    ),
  );
  app.addHook('onResponse', async (request, reply) => {
    logger.debug(
      { method: request.method, route: request.routeOptions.url, status: reply.statusCode },
      'request answered',
    );
  });
  app.addHook('preClose', async () => held.releaseAll());
  // After the server stopped taking requests: the writes of requests in flight still commit.
  app.addHook('onClose', () => commits.close());

  // Every route's request and answer types come from its JSON schemas (bank-schemas.ts).
  const routes = app.withTypeProvider<JsonSchemaToTsProvider>();
  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      deps.clock.schedule(ms, resolve);
    });

  routes.post(
    '/v1/payments',
    { schema: { body: paymentRequestSchema, response: { 200: paymentAnswerSchema, ...problemResponses } } },
    async (request, reply) => {
      const current = faults;
      const nowMs = deps.clock.now();
      const outcome = await commits.write((ledger) =>
        authorizePayment(ledger, request.body, nowMs, current, deps.random),
      );
      logOutcome(logger, request.body, outcome);
      if (outcome.kind === 'answered' && outcome.hold) return holdAnswer(request, reply, held, logger);
      // The answer is durable already; the latency fault only delays telling the gateway.
      if (current.latencyMs > 0) await pause(current.latencyMs);
      const result = paymentResult(outcome);
      return result.ok ? result.body : sendProblem(reply, result.problem);
    },
  );

  routes.post(
    '/v1/payments/batch',
    {
      bodyLimit: settings.batchBodyLimitBytes,
      schema: {
        body: paymentBatchRequestSchema,
        response: { 200: paymentBatchAnswerSchema, ...problemResponses },
      },
    },
    async (request): Promise<PaymentBatchAnswerBody> => {
      const current = faults;
      const nowMs = deps.clock.now();
      // Submitted in one turn, in order: the payments share ledger transactions, each in a
      // savepoint of its own, each seeing those before it (two of one reference charge once).
      const results = await Promise.all(
        request.body.payments.map(async (payment): Promise<PaymentBatchResultBody> => {
          try {
            const outcome = await commits.write((ledger) =>
              authorizePayment(ledger, payment, nowMs, current, deps.random),
            );
            logOutcome(logger, payment, outcome);
            if (outcome.kind === 'answered' && outcome.hold) {
              return { reference: payment.reference, problem: answerWithheld };
            }
            const result = paymentResult(outcome);
            return result.ok ? result.body : { reference: payment.reference, problem: result.problem };
          } catch (error) {
            const body = problemFromError(error);
            if (body.code === 'internal_error') {
              logger.error({ route: '/v1/payments/batch', error: describeError(error) }, 'payment failed');
            }
            return { reference: payment.reference, problem: body };
          }
        }),
      );
      // Every answer is durable already; the latency fault delays telling the gateway, once per request.
      if (current.latencyMs > 0) await pause(current.latencyMs);
      return { results };
    },
  );

  routes.post(
    '/v1/payments/:reference/cancel',
    {
      schema: {
        params: referenceParamsSchema,
        body: cancelRequestSchema,
        response: { 200: cancelAnswerSchema, ...problemResponses },
      },
      // The body is optional: a POST without one is `{}`. Validation runs after this hook.
      preValidation: async (request) => {
        if (request.body === undefined) request.body = {};
      },
    },
    async (request, reply) => {
      const current = faults;
      const { reference } = request.params;
      const cancel = { reference, merchantId: request.body.merchantId };
      const nowMs = deps.clock.now();
      const outcome = await commits.write((ledger) =>
        cancelReference(ledger, cancel, nowMs, current, deps.random),
      );
      logCancel(logger, reference, outcome);
      if (outcome.kind === 'unavailable') {
        return sendProblem(reply, bankUnavailable);
      }
      // timeoutRate does not apply to cancels (see BankFaults); latency does, after the commit.
      if (current.latencyMs > 0) await pause(current.latencyMs);
      return answerBody(outcome.record);
    },
  );

  routes.get(
    '/v1/payments/:reference',
    {
      schema: { params: referenceParamsSchema, response: { 200: paymentRecordSchema, ...problemResponses } },
    },
    async (request, reply) => {
      const record = deps.ledger.find(request.params.reference);
      if (record === undefined) {
        return sendProblem(
          reply,
          problem(404, 'payment_not_found', 'the bank has never seen this reference'),
        );
      }
      return recordBody(record);
    },
  );

  routes.post(
    '/v1/refunds',
    { schema: { body: refundRequestSchema, response: { 200: refundAnswerSchema, ...problemResponses } } },
    async (request, reply) => {
      const current = faults;
      const nowMs = deps.clock.now();
      const outcome = await commits.write((ledger) =>
        refundPayment(ledger, request.body, nowMs, current, deps.random),
      );
      logRefund(logger, request.body, outcome);
      // The same faults as a payment's, through the same machinery: a withheld answer is committed.
      if (outcome.kind === 'answered' && outcome.hold) return holdAnswer(request, reply, held, logger);
      if (current.latencyMs > 0) await pause(current.latencyMs);
      const result = refundResult(outcome);
      return result.ok ? result.body : sendProblem(reply, result.problem);
    },
  );

  routes.get(
    '/v1/refunds/:reference',
    {
      schema: { params: referenceParamsSchema, response: { 200: refundRecordSchema, ...problemResponses } },
    },
    async (request, reply) => {
      const record = deps.ledger.findRefund(request.params.reference);
      if (record === undefined) {
        return sendProblem(
          reply,
          problem(404, 'refund_not_found', 'the bank has never seen this refund reference'),
        );
      }
      return refundRecordBody(record);
    },
  );

  routes.get(
    '/v1/ledger',
    {
      schema: { querystring: ledgerQuerySchema, response: { 200: ledgerReportSchema, ...problemResponses } },
    },
    async (request): Promise<LedgerReportBody> => {
      const merchantId = request.query.merchantId;
      const records = deps.ledger.list(merchantId);
      const refunds = deps.ledger.listRefunds(merchantId);
      return {
        payments: records.map(recordBody),
        refunds: refunds.map(refundRecordBody),
        totals: ledgerTotals(records, refunds, deps.ledger.rejectedRequests(merchantId)),
      };
    },
  );

  routes.get(
    '/v1/faults',
    { schema: { response: { 200: faultsSchema, ...problemResponses } } },
    async (): Promise<BankFaults> => faults,
  );

  routes.put(
    '/v1/faults',
    { schema: { body: faultsUpdateSchema, response: { 200: faultsSchema, ...problemResponses } } },
    async (request): Promise<BankFaults> => {
      faults = { ...faults, ...request.body };
      logger.info({ faults }, 'faults changed');
      return faults;
    },
  );

  routes.get('/health', { schema: { response: { 200: healthSchema } } }, async () => ({ status: 'ok' }));

  return app;
}

function describeError(error: unknown): object {
  if (!(error instanceof Error)) return { value: String(error) };
  const code: unknown = Reflect.get(error, 'code');
  return { name: error.name, message: error.message, ...(typeof code === 'string' ? { code } : {}) };
}

/** The `errorRate` fault's answer, to payments, refunds and cancels alike. */
const bankUnavailable = problem(503, 'bank_unavailable', 'the bank is unavailable; nothing was processed');

function answerBody(record: PaymentRecord): CancelAnswerBody {
  if (record.status === 'cancelled') return { reference: record.reference, status: record.status };
  return decidedAnswerBody(record);
}

function decidedAnswerBody(record: DecidedPayment): PaymentAnswerBody {
  return {
    reference: record.reference,
    status: record.status,
    ...(record.authorizationCode === undefined ? {} : { authorizationCode: record.authorizationCode }),
    ...(record.declineReason === undefined ? {} : { declineReason: record.declineReason }),
  };
}

function recordBody(record: PaymentRecord): PaymentRecordBody {
  const common = {
    ...answerBody(record),
    merchantId: record.merchantId,
    createdAt: new Date(record.createdAt).toISOString(),
    updatedAt: new Date(record.updatedAt).toISOString(),
    requestCount: record.requestCount,
  };
  // A tombstone was never a payment: amount 0 and no currency or card.
  if (record.status === 'cancelled') return { ...common, amount: 0 };
  return {
    ...common,
    amount: record.amount,
    currency: record.currency,
    cardBrand: record.card.brand,
    cardBin: record.card.bin,
    cardLast4: record.card.last4,
  };
}

function refundAnswerBody(record: RefundRecord): RefundAnswerBody {
  return {
    reference: record.reference,
    paymentReference: record.paymentReference,
    amount: record.amount,
    currency: record.currency,
    status: record.status,
    ...(record.failureReason === undefined ? {} : { failureReason: record.failureReason }),
  };
}

function refundRecordBody(record: RefundRecord): RefundRecordBody {
  return {
    ...refundAnswerBody(record),
    merchantId: record.merchantId,
    createdAt: new Date(record.createdAt).toISOString(),
    updatedAt: new Date(record.updatedAt).toISOString(),
    requestCount: record.requestCount,
  };
}

type RefundResult =
  | { readonly ok: true; readonly body: RefundAnswerBody }
  | { readonly ok: false; readonly problem: Problem };

/** What a refund is answered with: its record's answer, or the problem that refused it. */
function refundResult(outcome: RefundOutcome): RefundResult {
  switch (outcome.kind) {
    case 'answered':
      return { ok: true, body: refundAnswerBody(outcome.record) };
    case 'conflict':
      return {
        ok: false,
        problem: problem(
          409,
          'reference_conflict',
          'the refund reference is already used by a refund of another payment, amount or currency',
          '/reference',
        ),
      };
    case 'payment_unknown':
      return {
        ok: false,
        problem: problem(
          422,
          'refund_payment_unknown',
          'the bank has never seen a payment of this reference; nothing was refunded',
          '/paymentReference',
        ),
      };
    case 'payment_not_approved':
      return {
        ok: false,
        problem: problem(
          422,
          'refund_payment_not_approved',
          `the payment is ${outcome.payment.status}, so nothing was charged to refund`,
          '/paymentReference',
        ),
      };
    case 'currency_mismatch':
      return {
        ok: false,
        problem: problem(
          422,
          'refund_currency_mismatch',
          `the payment is in ${outcome.payment.currency}; a refund is in the payment's currency`,
          '/currency',
        ),
      };
    case 'exceeds_payment':
      return {
        ok: false,
        problem: problem(
          422,
          'refund_exceeds_payment',
          `the refund exceeds what remains of the payment (${outcome.remaining} of ${outcome.payment.amount} minor units); nothing was refunded`,
          '/amount',
        ),
      };
    case 'unavailable':
      return { ok: false, problem: bankUnavailable };
    default:
      return assertNever(outcome, 'refund outcome');
  }
}

/**
 * The `timeoutRate` fault's answer to one payment of a batch: it was committed, and may have been
 * charged, but the caller is told nothing more — the unknown outcome a lost answer leaves.
 */
const answerWithheld = problem(
  504,
  'answer_withheld',
  'the payment may have been processed, but its answer is withheld; inquire before any resend',
);

type PaymentResult =
  | { readonly ok: true; readonly body: PaymentAnswerBody }
  | { readonly ok: false; readonly problem: Problem };

/** What a payment is answered with, alone or in a batch. */
function paymentResult(outcome: PaymentOutcome): PaymentResult {
  switch (outcome.kind) {
    case 'answered':
      return { ok: true, body: decidedAnswerBody(outcome.record) };
    case 'cancelled':
      return {
        ok: true,
        body: { reference: outcome.record.reference, status: 'declined', declineReason: referenceCancelled },
      };
    case 'conflict':
      return {
        ok: false,
        problem: problem(
          409,
          'reference_conflict',
          'the reference is already used by a payment with another merchant, amount, currency or card',
          '/reference',
        ),
      };
    case 'invalid_card':
      return {
        ok: false,
        problem: problem(422, 'invalid_card', 'the card number fails the Luhn check', '/card/number'),
      };
    case 'unavailable':
      return { ok: false, problem: bankUnavailable };
    default:
      return assertNever(outcome, 'payment outcome');
  }
}

/**
 * The `timeoutRate` fault: the payment is committed (charged), but the gateway never hears so.
 * Fastify lets go of the reply; the socket is destroyed when the hold ends.
 */
function holdAnswer(
  request: FastifyRequest,
  reply: FastifyReply,
  held: HeldResponses,
  logger: Logger,
): FastifyReply {
  reply.hijack();
  if (!held.hold(request.raw.socket)) {
    logger.warn({ held: held.size }, 'too many held answers; destroyed the connection at once');
  }
  return reply;
}

/** Logs what the bank decided, with the card reduced to what the ledger keeps. */
function logOutcome(logger: Logger, request: PaymentRequestBody, outcome: PaymentOutcome): void {
  const fields = { reference: request.reference, merchantId: request.merchantId };
  switch (outcome.kind) {
    case 'answered':
      logger.info(
        {
          ...fields,
          status: outcome.record.status,
          declineReason: outcome.record.declineReason,
          cardBrand: outcome.record.card.brand,
          cardLast4: outcome.record.card.last4,
          requestCount: outcome.record.requestCount,
          firstTime: outcome.firstTime,
          held: outcome.hold,
        },
        'payment answered',
      );
      return;
    case 'conflict':
      logger.warn({ ...fields, requestCount: outcome.record.requestCount }, 'payment reference conflict');
      return;
    case 'cancelled':
      logger.info(
        { ...fields, requestCount: outcome.record.requestCount },
        'payment of a cancelled reference refused',
      );
      return;
    case 'invalid_card':
      logger.info(fields, 'payment with an invalid card number refused');
      return;
    case 'unavailable':
      logger.info(fields, 'payment refused by the errorRate fault');
      return;
    default:
      assertNever(outcome, 'payment outcome');
  }
}

function logRefund(logger: Logger, request: RefundRequestBody, outcome: RefundOutcome): void {
  const fields = { reference: request.reference, paymentReference: request.paymentReference };
  switch (outcome.kind) {
    case 'answered':
      logger.info(
        {
          ...fields,
          status: outcome.record.status,
          failureReason: outcome.record.failureReason,
          amount: outcome.record.amount,
          requestCount: outcome.record.requestCount,
          firstTime: outcome.firstTime,
          held: outcome.hold,
        },
        'refund answered',
      );
      return;
    case 'conflict':
      logger.warn({ ...fields, requestCount: outcome.record.requestCount }, 'refund reference conflict');
      return;
    case 'unavailable':
      logger.info(fields, 'refund refused by the errorRate fault');
      return;
    case 'payment_unknown':
    case 'payment_not_approved':
    case 'currency_mismatch':
    case 'exceeds_payment':
      logger.info({ ...fields, refusal: outcome.kind }, 'refund refused');
      return;
    default:
      assertNever(outcome, 'refund outcome');
  }
}

function logCancel(logger: Logger, reference: string, outcome: CancelOutcome): void {
  if (outcome.kind === 'unavailable') {
    logger.info({ reference }, 'cancel refused by the errorRate fault');
    return;
  }
  const { record, firstTime } = outcome;
  logger.info(
    { reference, status: record.status, requestCount: record.requestCount, firstTime },
    firstTime ? 'reference cancelled' : 'cancel answered with the existing record',
  );
}

export interface BankServerOptions {
  /** Interface to listen on; 127.0.0.1 unless told. */
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Where the ledger file lives; created if missing. */
  readonly dataDir: string;
  readonly clock?: Clock;
  readonly random?: Random;
  readonly logger?: Logger;
  readonly settings?: Partial<BankServerSettings>;
  readonly faults?: Partial<BankFaults>;
}

export interface RunningBankServer {
  /** Base URL to reach the server, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly port: number;
  readonly ledger: BankLedger;
  /** Closes the HTTP server (held and keep-alive connections included), then the ledger. */
  close(): Promise<void>;
}

export async function startBankServer(options: BankServerOptions): Promise<RunningBankServer> {
  const clock = options.clock ?? systemClock;
  const ledger = BankLedger.open({ dataDir: options.dataDir, clock });
  const app = buildBankApp({
    ledger,
    clock,
    random: options.random ?? systemRandom,
    logger: options.logger,
    settings: options.settings,
    faults: options.faults,
  });
  const host = options.host ?? '127.0.0.1';
  try {
    await app.listen({ host, port: options.port });
  } catch (error) {
    await app.close();
    ledger.close();
    throw error;
  }
  const address = app.server.address();
  assert.ok(typeof address === 'object' && address !== null, 'a listening TCP server has an address');
  const port = address.port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost(host)}:${port}`,
    port,
    ledger,
    close: () => {
      closing ??= app.close().then(() => ledger.close());
      return closing;
    },
  };
}

/** The host to put in a URL: a wildcard address is reached through loopback; IPv6 needs brackets. */
export function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}
