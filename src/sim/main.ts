import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { type FaultKind, faultKinds } from './faults.js';
import { explainedBy } from './known-issues.js';
import { type Sabotage, sabotages } from './sabotage.js';
import { runSeed, type SeedResult } from './simulation.js';

/**
 * `npm run sim -- --seeds N [--start S]`: runs seeds S..S+N-1 and prints a JSON summary.
 * `npm run sim -- --seed N`: runs one seed and prints its trace, step for step.
 * `--json FILE` also writes the summary (with every failing seed's violations) to FILE;
 * `--sabotage NAME` runs a deliberately broken variant; `--no-online-checks` leaves only the
 * end-state invariants; `--nodes N` (N > 1) runs a cluster of N nodes over one simulated database.
 * Exit code 1 when any seed fails.
 */

const usage =
  'usage: npm run sim -- (--seeds N [--start S] | --seed N) [--json FILE] [--with KINDS] [--without KINDS]\n' +
  '                      [--sabotage NAME] [--no-online-checks] [--nodes N]';

interface Summary {
  readonly seeds: number;
  readonly start: number;
  readonly sabotage: Sabotage | undefined;
  /** Every seed with a violation. `knownIssues` names the known bugs that explain all of them, if any do. */
  readonly failed: ReadonlyArray<{
    seed: number;
    replay: string;
    knownIssues: readonly string[] | undefined;
    violations: SeedResult['violations'];
  }>;
  /** Failed seeds that no known issue explains: new bugs (or new kinds of a known one). */
  readonly unexplained: readonly number[];
  readonly seedsPerSecond: number;
  readonly durationMs: number;
  readonly simulatedMinutes: number;
  readonly totals: Record<string, number>;
}

function integer(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 0) throw new Error(`--${name} must be a whole number >= 0`);
  return parsed;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seeds: { type: 'string' },
      start: { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'string' },
      sabotage: { type: 'string' },
      without: { type: 'string' },
      with: { type: 'string' },
      'no-online-checks': { type: 'boolean' },
      nodes: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help === true) {
    console.log(usage);
    return 0;
  }
  const sabotage = values.sabotage as Sabotage | undefined;
  if (sabotage !== undefined && !sabotages.includes(sabotage)) {
    throw new Error(`--sabotage must be one of ${sabotages.join(', ')}`);
  }
  const without = kindsOf(values.without, 'without');
  const withFaults = kindsOf(values.with, 'with');
  const nodes = integer(values.nodes, 'nodes') ?? 1;
  if (nodes < 1) throw new Error('--nodes must be at least 1');
  const options = {
    sabotage,
    without,
    with: withFaults,
    onlineChecks: values['no-online-checks'] !== true,
    nodes,
  };
  const replayFlags = [
    sabotage === undefined ? '' : ` --sabotage ${sabotage}`,
    without.length === 0 ? '' : ` --without ${without.join(',')}`,
    withFaults.length === 0 ? '' : ` --with ${withFaults.join(',')}`,
    options.onlineChecks ? '' : ' --no-online-checks',
    nodes === 1 ? '' : ` --nodes ${nodes}`,
  ].join('');

  const single = integer(values.seed, 'seed');
  if (single !== undefined) {
    const result = await runSeed(single, { ...options, keepTrace: true });
    for (const line of result.trace) console.log(line);
    console.log(
      JSON.stringify(
        {
          seed: result.seed,
          ok: result.ok,
          traceHash: result.traceHash,
          violations: result.violations,
          stats: result.stats,
        },
        (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value),
        2,
      ),
    );
    return result.ok ? 0 : 1;
  }

  const count = integer(values.seeds, 'seeds');
  if (count === undefined) throw new Error(usage);
  const start = integer(values.start, 'start') ?? 1;
  const began = performance.now();
  const failed: Array<Summary['failed'][number]> = [];
  const totals: Record<string, number> = {
    orders: 0,
    attempts: 0,
    nodeCrashes: 0,
    entityStops: 0,
    entityCrashes: 0,
    failedAppends: 0,
    messagesDropped: 0,
    messagesDuplicated: 0,
    bankTimeouts: 0,
    bankLateRequests: 0,
    bankApproved: 0,
    apiReplays: 0,
    apiKeyReused: 0,
    clientAnswersLost: 0,
    bankRequestCountMax: 0,
    authorizationsPerReferenceMax: 0,
  };
  let simulatedMs = 0;
  for (let seed = start; seed < start + count; seed++) {
    const result = await runSeed(seed, options);
    const { stats } = result;
    simulatedMs += stats.simulatedMs;
    addTo(totals, 'orders', stats.orders);
    addTo(totals, 'attempts', stats.attempts);
    addTo(totals, 'nodeCrashes', stats.nodeCrashes);
    addTo(totals, 'entityStops', stats.entityStops);
    addTo(totals, 'entityCrashes', stats.entityCrashes);
    addTo(totals, 'failedAppends', stats.failedAppends);
    addTo(totals, 'messagesDropped', stats.network.dropped + stats.transport.dropped);
    addTo(totals, 'framesSent', stats.transport.sent);
    addTo(totals, 'framesDelivered', stats.transport.delivered);
    addTo(totals, 'nodePauses', stats.nodePauses);
    addTo(totals, 'databaseOutages', stats.databaseOutages);
    addTo(totals, 'staleWritesRefused', stats.staleWritesRefused);
    addTo(totals, 'messagesDuplicated', stats.network.duplicated);
    addTo(totals, 'bankTimeouts', stats.bank.timeouts);
    addTo(totals, 'bankLateRequests', stats.bank.lateRequests);
    addTo(totals, 'bankApproved', stats.bankApproved);
    addTo(totals, 'apiReplays', stats.answers.replay ?? 0);
    addTo(totals, 'apiKeyReused', stats.answers['422 idempotency_key_reused'] ?? 0);
    addTo(totals, 'clientAnswersLost', stats.clientRepliesLost);
    addTo(totals, 'refundRequests', stats.refunds.requests);
    addTo(totals, 'refundsAccepted', stats.refunds.refundsAccepted);
    addTo(totals, 'refundsRefused', stats.refunds.refundsRefused);
    addTo(totals, 'bankRefunds', stats.refunds.bankRefunds);
    addTo(totals, 'bankRefundSends', stats.bank.refundSent);
    totals.bankRequestCountMax = Math.max(totals.bankRequestCountMax ?? 0, stats.bankRequestCountMax);
    totals.authorizationsPerReferenceMax = Math.max(
      totals.authorizationsPerReferenceMax ?? 0,
      stats.authorizationsPerReferenceMax,
    );
    if (!result.ok) {
      const replay = `npm run sim -- --seed ${seed}${replayFlags}`;
      const known = explainedBy(result.violations, {
        entityStops: stats.entityStops,
        passivation: result.profile.passivateAfterMs > 0,
      });
      failed.push({ seed, replay, knownIssues: known, violations: result.violations });
      const why = known === undefined ? 'NEW' : `known: ${known.join(', ')}`;
      console.error(`seed ${seed} FAILED (${why}) — replay with: ${replay}`);
      for (const violation of result.violations)
        console.error(`  ${violation.invariant}: ${violation.detail}`);
    }
  }
  const durationMs = performance.now() - began;
  const summary: Summary = {
    seeds: count,
    start,
    sabotage,
    failed,
    unexplained: failed.filter((entry) => entry.knownIssues === undefined).map((entry) => entry.seed),
    seedsPerSecond: Number((count / (durationMs / 1000)).toFixed(2)),
    durationMs: Math.round(durationMs),
    simulatedMinutes: Math.round(simulatedMs / 60_000),
    totals,
  };
  const text = JSON.stringify(summary, null, 2);
  if (values.json !== undefined) fs.writeFileSync(values.json, `${text}\n`);
  console.log(text);
  return failed.length === 0 ? 0 : 1;
}

function kindsOf(list: string | undefined, flag: string): FaultKind[] {
  const kinds = (list ?? '').split(',').filter((kind) => kind !== '') as FaultKind[];
  for (const kind of kinds) {
    if (!faultKinds.includes(kind)) throw new Error(`--${flag} takes a list of ${faultKinds.join(', ')}`);
  }
  return kinds;
}

function addTo(totals: Record<string, number>, key: string, value: number): void {
  totals[key] = (totals[key] ?? 0) + value;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    process.exitCode = 2;
  },
);
