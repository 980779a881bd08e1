/**
 * The chaos harness end to end, the short version CI runs on every change (about five
 * minutes on two cores: 75 s of load on SQLite, 35 s on PostgreSQL, 30 s on a three-node cluster,
 * each then settling, then a 10 s sabotaged run). First a real run: a bank and a gateway as real
 * processes, merchant clients under load (refunding some executed orders), the gateway SIGKILLed
 * (the plan always starts with that), the bank killed and paused, bank faults changing, and every
 * merchant's webhooks going to a receiver that answers 500s, hangs, drops connections and crashes;
 * it must settle and pass every check: orders, refunds against the bank's ledger, and webhooks.
 * Then the same on PostgreSQL, on a server the harness runs itself and SIGKILLs under load too.
 * Then three `remit node`s on a PostgreSQL of the run's own, the load spread over them, nodes
 * SIGKILLed, stopped gracefully and paused past their leases one at a time. Then the checker must
 * be able to fail:
 * the command is run with sabotage — a stray charge at the bank, a client that loses its
 * idempotency key, an event deleted from the journal (each standing for a real bug; see
 * sabotage.ts) — and must report exactly those violations and exit non-zero.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { type ChaosOptions, defaultChaosOptions, runChaos } from './harness.js';
import type { ChaosReport } from './report.js';
import { strayReference } from './sabotage.js';

const mainPath = fileURLToPath(new URL('./main.ts', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'remit-chaos-e2e-'));

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

/**
 * Runs the harness with the CI runs' common settings and `options`, and checks what every clean
 * run must show: no violation, everything settled, every node the chaos took down started again,
 * nothing that exited on its own, orders executed, and the temporary data folder removed.
 */
async function runClean(options: Partial<ChaosOptions>): Promise<{ report: ChaosReport; context: string }> {
  const lines: string[] = [];
  const report = await runChaos({
    ...defaultChaosOptions,
    clients: 8,
    settleTimeoutMs: 60_000,
    ...options,
    log: (line) => lines.push(line),
  });
  const context = `${lines.join('\n')}\n${JSON.stringify(report, null, 2)}`;
  expect(report.violations, context).toEqual([]);
  expect(report.ok).toBe(true);
  expect(report.settle.settled, context).toBe(true);
  const { disruptions } = report;
  expect(disruptions.nodeKills, context).toBeGreaterThanOrEqual(1);
  expect(disruptions.nodeRestarts, context).toBe(disruptions.nodeKills + disruptions.nodeStops);
  expect(disruptions.bankRestarts, context).toBe(disruptions.bankKills);
  expect(disruptions.databaseRestarts, context).toBe(disruptions.databaseKills);
  expect(disruptions.unexpectedExits, context).toBe(0);
  expect(report.orders.byFinalStatus.executed ?? 0, context).toBeGreaterThan(0);
  // Refunds were made and finished; every webhook the gateway owed reached the failing receiver.
  expect(report.refunds.byStatus.succeeded ?? 0, context).toBeGreaterThan(0);
  expect(report.webhooks?.expected ?? 0, context).toBeGreaterThan(0);
  expect(report.webhooks?.processed, context).toBe(report.webhooks?.expected);
  expect(report.dataKept).toBe(false);
  return { report, context };
}

describe.sequential('the chaos harness', () => {
  it('runs the gateway and the bank through kills, pauses and faults, and finds nothing wrong', async () => {
    const { report, context } = await runClean({
      // The "short version (about two minutes)" for every CI run, with the sabotaged run below.
      durationMs: 75_000,
      killIntervalMs: 5_000,
      seed: 7,
    });
    expect(report.orders.accepted, context).toBeGreaterThan(50);
    expect(report.requests.retries, context).toBeGreaterThan(0);
  }, 240_000);

  it('runs the gateway on PostgreSQL through kills of the database server too, and finds nothing wrong', async () => {
    const { report, context } = await runClean({
      store: 'postgres',
      // Long enough for the plan's first five disruptions, one of each kind, the database kill among them.
      durationMs: 35_000,
      killIntervalMs: 3_000,
      seed: 19,
    });
    expect(report.store, context).toMatchObject({ postgres: { serverOwned: true } });
    expect(report.disruptions.databaseKills, context).toBeGreaterThanOrEqual(1);
    expect(report.orders.accepted, context).toBeGreaterThan(20);
    expect(report.journal.events, context).toBeGreaterThan(0);
  }, 240_000);

  it('runs a three-node cluster through node kills, stops and pauses, and finds nothing wrong', async () => {
    const { report, context } = await runClean({
      nodes: 3,
      store: 'postgres',
      // Seed 1's plan: a node killed for 2 s (it restarts before its leases expire), another paused
      // past its leases, the first stopped gracefully, the bank killed. About 90 s with the start,
      // the settling and the checks.
      durationMs: 30_000,
      killIntervalMs: 4_000,
      seed: 1,
    });
    expect(report.nodes.map((node) => node.name)).toEqual(['node-1', 'node-2', 'node-3']);
    // Every bank is the role of two nodes, and every node took merchants' requests.
    const roles = report.nodes.flatMap((node) => node.roles);
    for (const bank of ['bank-a', 'bank-b', 'bank-c']) {
      expect(roles.filter((role) => role === bank)).toHaveLength(2);
    }
    for (const node of report.nodes) expect(node.requests, context).toBeGreaterThan(0);
    expect(report.orders.accepted, context).toBeGreaterThan(20);
    expect(report.journal.events, context).toBeGreaterThan(0);
  }, 180_000);

  it('reports the violations a broken system leaves, and exits non-zero', async () => {
    const jsonPath = join(scratch, 'report.json');
    const { code, stderr } = await runCommand([
      '--duration',
      '10',
      '--kill-interval',
      '4',
      '--seed',
      '11',
      '--clients',
      '4',
      '--settle-timeout',
      '30',
      '--data',
      join(scratch, 'sabotaged'),
      '--json',
      jsonPath,
      '--sabotage',
      'stray-charge,forget-key,drop-event',
    ]);
    expect(code, stderr).toBe(1);
    const report = JSON.parse(readFileSync(jsonPath, 'utf8')) as ChaosReport;
    const kinds = new Set(report.violations.map((violation) => violation.kind));
    // Exactly what the sabotage stands for, and nothing else: the rest of the run is sound.
    expect(kinds, JSON.stringify(report.violations, null, 2)).toEqual(
      new Set(['charged_unknown', 'key_many_orders', 'double_charge', 'journal_gap']),
    );
    expect(report.violations.find((violation) => violation.kind === 'charged_unknown')?.orderIds).toEqual([
      strayReference,
    ]);
    const doubleCharge = report.violations.find((violation) => violation.kind === 'double_charge');
    expect(doubleCharge?.orderIds).toHaveLength(2);
    expect(report.ok).toBe(false);
    expect(report.dataKept).toBe(true);
  }, 120_000);
});

/** Runs `tsx src/chaos/main.ts` as `npm run chaos` does, and collects its exit code and stderr. */
function runCommand(args: readonly string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', mainPath, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stderr }));
  });
}
