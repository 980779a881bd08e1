import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../store/postgres/embedded-postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** `postgresql://…` of the test run's PostgreSQL server; tests make their own database or schema in it. */
    postgresUrl: string;
  }
}

/**
 * Vitest global setup: one embedded PostgreSQL for the whole run, started before the first test
 * file and stopped after the last — also when tests fail, since vitest calls the returned teardown
 * either way. Tests read its address with `inject('postgresUrl')` and each keeps to its own
 * schema (`src/testing/postgres-test-schema.ts`), so files run in parallel safely.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Files run in parallel, and a journal's pool keeps a few connections each.
  const server = await startEmbeddedPostgres({ durable: false, connectionsMax: 200 });
  project.provide('postgresUrl', server.url);
  return () => server.stop();
}
