/**
 * The API on the real in-process stack (entities, in-memory journal, read model, vault, a
 * simulated bank), driven through `app.inject`: whatever a client sends — random JSON, wrong
 * types, odd headers — the answer is a 2xx or a 4xx problem+json with a code, never a 5xx.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifySimulatedBankError, SimulatedBank } from '../bank/simulated-bank.js';
import { assembleNode } from '../node/assemble-node.js';
import { demoConfig } from '../node/demo-merchants.js';
import { MemoryVaultStorage } from '../payments/card-vault.js';
import { orderQueries } from '../readmodel/audit-trail.js';
import { OrderProjection } from '../readmodel/order-projection.js';
import { OrderReadModel } from '../readmodel/order-read-model.js';
import { systemClock } from '../runtime/clock.js';
import { silentLogger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import { MemoryJournal } from '../store/memory/memory-journal.js';
import { type AppDependencies, buildApp, MerchantDirectory, registeredRoutes } from './app.js';

const apiKey = 'sk_test_property';
let app: FastifyInstance;
let dependencies: AppDependencies;
const stops: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  const directory = mkdtempSync(join(tmpdir(), 'remit-api-'));
  stops.push(() => rmSync(directory, { recursive: true, force: true }));
  const memory = new MemoryJournal();
  stops.push(() => memory.close());
  const readModel = OrderReadModel.open(join(directory, 'readmodel.db'));
  stops.push(() => readModel.close());
  const projection = new OrderProjection({ journal: memory, readModel, clock: systemClock });
  stops.push(() => projection.stop());
  const queries = orderQueries(readModel, memory);
  const node = assembleNode({
    stores: { journal: memory, vault: new MemoryVaultStorage(), queries },
    vaultKey: randomBytes(32),
    bank: new SimulatedBank(new SeededRandom(3)),
    classifyBankError: classifySimulatedBankError,
    clock: systemClock,
    random: new SeededRandom(1),
    logger: silentLogger,
    projection,
    name: 'api',
  });
  stops.push(() => node.close());
  await node.boot([{ id: 'merchant-a', config: demoConfig('bank-a') }], 5_000);
  void projection.start();
  dependencies = {
    orders: node.orders,
    queries,
    merchants: new MerchantDirectory([
      { merchantId: 'merchant-a', apiKeyHash: MerchantDirectory.hashKey(apiKey) },
    ]),
    ready: () => true,
    waitDefaultMs: 2_000,
    waitMaxMs: 5_000,
  };
  app = await buildApp(dependencies);
  stops.push(() => app.close());
});

afterAll(async () => {
  for (const stop of stops.reverse()) await stop();
});

const card = fc.record(
  {
    number: fc.oneof(
      fc.constantFrom('4111111111111111', '4000000000000002', '4111111111111112'),
      fc.string(),
    ),
    expMonth: fc.oneof(fc.integer({ min: -2, max: 14 }), fc.string()),
    expYear: fc.oneof(fc.integer({ min: 1990, max: 2110 }), fc.constant(null)),
    cvc: fc.oneof(fc.constant('123'), fc.string()),
  },
  { requiredKeys: [] },
);

const body = fc.oneof(
  fc.record(
    {
      amount: fc.oneof(fc.integer({ min: -5, max: 2_000_000 }), fc.double(), fc.string(), fc.constant(null)),
      currency: fc.oneof(fc.constantFrom('EUR', 'USD', 'GBP', 'XYZ', 'eur', ''), fc.string()),
      card: fc.oneof(card, fc.anything()),
      description: fc.oneof(fc.string(), fc.integer()),
      reference: fc.string(),
      extra: fc.anything(),
    },
    { requiredKeys: [] },
  ),
  fc.anything(),
);

describe('API under arbitrary input', () => {
  it('answers every request with a 2xx, or a 4xx problem+json with a code — never a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        body,
        fc.option(fc.string({ maxLength: 300 })),
        fc.option(fc.string()),
        fc.boolean(),
        async (payload, idempotencyKey, prefer, asText) => {
          const headers: Record<string, string> = {
            authorization: `Bearer ${apiKey}`,
            'content-type': 'application/json',
          };
          if (idempotencyKey !== null && /^[\x20-\x7e]*$/.test(idempotencyKey))
            headers['idempotency-key'] = idempotencyKey;
          if (prefer !== null && /^[\x20-\x7e]*$/.test(prefer)) headers.prefer = prefer;
          const response = await app.inject({
            method: 'POST',
            url: '/v1/orders',
            headers,
            payload: asText
              ? String(JSON.stringify(payload) ?? '').slice(0, -1)
              : JSON.stringify(payload ?? null),
          });
          expect(response.statusCode).toBeLessThan(500);
          if (response.statusCode >= 400) {
            expect(response.headers['content-type']).toContain('application/problem+json');
            expect(response.json()).toMatchObject({ status: response.statusCode, code: expect.any(String) });
          }
        },
      ),
      { numRuns: 300, seed: 7 },
    );
  });

  it('answers arbitrary paths and query strings without a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.webPath(), fc.webQueryParameters(), async (path, query) => {
        const response = await app.inject({
          method: 'GET',
          url: `/v1/orders${path}?${query}`,
          headers: { authorization: `Bearer ${apiKey}` },
        });
        expect(response.statusCode).toBeLessThan(500);
      }),
      { numRuns: 200, seed: 8 },
    );
  });
});

describe('OpenAPI document', () => {
  it('lists every route the app registered, each with a summary, tags and responses', async () => {
    const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json() as {
      paths: Record<string, Record<string, { summary?: string; tags?: string[]; responses?: object }>>;
    };
    const routes = registeredRoutes(app);
    expect(routes.map((route) => `${route.method} ${route.url}`)).toEqual(
      expect.arrayContaining(['GET /health/live', 'GET /health/ready', 'GET /metrics', 'POST /v1/orders']),
    );
    for (const route of routes) {
      const path = route.url.replace(/:([A-Za-z]+)/g, '{$1}');
      const operation = document.paths[path]?.[route.method.toLowerCase()];
      expect(operation, `${route.method} ${route.url}`).toBeDefined();
      expect(operation?.summary, `${route.method} ${route.url}`).toMatch(/\w/);
      expect(operation?.tags?.length, `${route.method} ${route.url}`).toBeGreaterThan(0);
      const answers = Object.keys(operation?.responses ?? {});
      expect(
        answers.some((status) => status.startsWith('2')),
        `${route.method} ${route.url}`,
      ).toBe(true);
    }
    const operations = Object.values(document.paths).flatMap((methods) => Object.keys(methods));
    expect(operations).toHaveLength(routes.length);
  });
});

describe('access log', () => {
  it('writes one line per request answered, at the level asked for, naming the route and never the URL', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(line) });
    const logged = await buildApp({ ...dependencies, logger, accessLogLevel: 'debug' });
    try {
      await logged.inject({ method: 'GET', url: '/health/live' });
      await logged.inject({
        method: 'GET',
        url: '/v1/orders/4242424242424242',
        headers: { authorization: `Bearer ${apiKey}` },
      });
    } finally {
      await logged.close();
    }

    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records).toEqual([
      expect.objectContaining({ level: 20, msg: 'request answered', route: '/health/live', status: 200 }),
      expect.objectContaining({ level: 20, msg: 'request answered', route: '/v1/orders/:id', status: 404 }),
    ]);
    expect(lines.join('')).not.toContain('4242424242424242');
    for (const line of lines) {
      const keys = [...line.matchAll(/"([A-Za-z]+)":/g)].map((match) => match[1]);
      expect(keys).toEqual([...new Set(keys)]);
    }
  });

  it('writes none when the level is silent', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'trace' }, { write: (line: string) => lines.push(line) });
    const quiet = await buildApp({ ...dependencies, logger, accessLogLevel: 'silent' });
    try {
      await quiet.inject({ method: 'GET', url: '/health/live' });
    } finally {
      await quiet.close();
    }
    expect(lines).toEqual([]);
  });
});
