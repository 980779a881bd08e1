#!/usr/bin/env node
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type ChaosOptions, chaosNodesMax, chaosStores, defaultChaosOptions, runChaos } from './harness.js';
import { exitCodeFor } from './report.js';
import { parseSabotage } from './sabotage.js';

/**
 * `npm run chaos -- --duration 60 --kill-interval 5 --seed 7 [--clients 16] [--json FILE]
 * [--data DIR] [--keep-data] [--settle-timeout 60] [--sabotage stray-charge,forget-key,drop-event]
 * [--store sqlite|postgres] [--database-url URL] [--nodes N] [--no-webhooks]`
 *
 * Prints the JSON report on stdout (progress goes to stderr) and exits 0 when every check passed,
 * 1 on any violation, 2 when the run itself could not be carried out (bad flags, a process that
 * would not start or restart — which is worth a look too).
 */

const usage = `Usage: npm run chaos -- [flags]
  --duration S        seconds of load and chaos (default 60)
  --kill-interval S   a disruption every 0.5..1.5 × S seconds (default 5)
  --seed N            seeds the load mix, the kill moments and the faults (default 7)
  --clients N         concurrent merchant clients (default 16)
  --nodes N           1 (default): the single gateway; 2 to 6: a cluster of N remit nodes on
                      PostgreSQL (implies --store postgres), every bank's role on two nodes; nodes
                      are killed, stopped (SIGTERM) and paused past their leases, one at a time
  --store S           the gateway's store: sqlite (default) or postgres; postgres without
                      --database-url starts an embedded PostgreSQL of the run's own (fsync on) and
                      SIGKILLs it under load too
  --database-url URL  run the gateway on this PostgreSQL (implies --store postgres), in a fresh
                      schema dropped after a clean run; this database is never killed
  --settle-timeout S  how long to wait for every order to finish after the chaos (default 60)
  --json FILE         also write the report to FILE
  --data DIR          an empty folder for the processes' data (default: a fresh temporary one)
  --keep-data         keep the data folder (and the PostgreSQL schema) after a clean run
  --sabotage LIST     break the run on purpose to see the checker fail: stray-charge, forget-key, drop-event
  --no-webhooks       no webhook endpoints and no receiver (by default every merchant has an endpoint
                      on a receiver process that answers 500s, hangs, drops connections and crashes)`;

class UsageError extends Error {}

function parseOptions(argv: readonly string[]): {
  options: Omit<ChaosOptions, 'log'>;
  jsonPath?: string | undefined;
} {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        duration: { type: 'string' },
        'kill-interval': { type: 'string' },
        seed: { type: 'string' },
        clients: { type: 'string' },
        nodes: { type: 'string' },
        'settle-timeout': { type: 'string' },
        json: { type: 'string' },
        data: { type: 'string' },
        'keep-data': { type: 'boolean' },
        sabotage: { type: 'string' },
        store: { type: 'string' },
        'database-url': { type: 'string' },
        'no-webhooks': { type: 'boolean' },
        help: { type: 'boolean' },
      },
    }));
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  if (values.help === true) throw new UsageError('');
  const number = (name: string, fallback: number, min: number, max: number): number => {
    const raw = values[name];
    if (raw === undefined) return fallback;
    const parsed = Number(raw);
    if (typeof raw !== 'string' || !Number.isFinite(parsed) || parsed < min || parsed > max) {
      throw new UsageError(`--${name} must be a number from ${min} to ${max}`);
    }
    return parsed;
  };
  const text = (name: string): string | undefined => {
    const raw = values[name];
    return typeof raw === 'string' ? raw : undefined;
  };
  let sabotage: ChaosOptions['sabotage'];
  try {
    sabotage = parseSabotage(text('sabotage') ?? '');
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const databaseUrl = text('database-url');
  const nodes = Math.trunc(number('nodes', defaultChaosOptions.nodes, 1, chaosNodesMax));
  const storeName = text('store') ?? (databaseUrl === undefined && nodes === 1 ? 'sqlite' : 'postgres');
  const store = chaosStores.find((name) => name === storeName);
  if (store === undefined) throw new UsageError(`--store must be ${chaosStores.join(' or ')}`);
  if (store === 'sqlite' && databaseUrl !== undefined) {
    throw new UsageError('--database-url needs --store postgres');
  }
  if (store === 'sqlite' && nodes > 1) throw new UsageError('--nodes above 1 needs --store postgres');
  return {
    options: {
      ...defaultChaosOptions,
      durationMs: number('duration', defaultChaosOptions.durationMs / 1000, 1, 86_400) * 1000,
      killIntervalMs: number('kill-interval', defaultChaosOptions.killIntervalMs / 1000, 0.5, 86_400) * 1000,
      seed: Math.trunc(number('seed', defaultChaosOptions.seed, 0, 0x7fffffff)),
      clients: Math.trunc(number('clients', defaultChaosOptions.clients, 1, 256)),
      nodes,
      settleTimeoutMs: number('settle-timeout', defaultChaosOptions.settleTimeoutMs / 1000, 1, 3_600) * 1000,
      store,
      databaseUrl,
      dataDir: text('data'),
      keepData: values['keep-data'] === true,
      sabotage,
      webhooks: values['no-webhooks'] !== true,
    },
    jsonPath: text('json'),
  };
}

async function main(argv: readonly string[]): Promise<number> {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    if (error.message !== '') process.stderr.write(`chaos: ${error.message}\n\n`);
    process.stderr.write(`${usage}\n`);
    return error.message === '' ? 0 : 2;
  }
  // Ctrl-C or a SIGTERM ends the run early, but through runChaos's cleanup: no process left behind.
  const interrupt = new AbortController();
  const onSignal = (): void => interrupt.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const report = await runChaos({
      ...parsed.options,
      log: (line) => process.stderr.write(`chaos: ${line}\n`),
      signal: interrupt.signal,
    });
    const json = JSON.stringify(report, null, 2);
    process.stdout.write(`${json}\n`);
    if (parsed.jsonPath !== undefined) writeFileSync(parsed.jsonPath, `${json}\n`);
    if (report.dataKept) process.stderr.write(`chaos: data kept in ${report.dataDir}\n`);
    return exitCodeFor(report);
  } catch (error) {
    process.stderr.write(
      `chaos: the run failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    return 2;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`chaos: ${String(error)}\n`);
    process.exit(2);
  },
);
