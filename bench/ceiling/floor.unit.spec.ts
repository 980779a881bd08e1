/**
 * The ceiling benchmark's floor is arithmetic over measured figures; these tests pin that
 * arithmetic with hand-made figures: which durable stage it takes, what it counts per order, how
 * the load generator is added, and that it says what is missing instead of inventing a figure.
 */
import { describe, expect, it } from 'vitest';
import { floorOf } from './floor.js';
import type { MicroResult, OperationCost, SqliteCost } from './micro.js';
import type { ServerStageResult } from './server-stage.js';
import type { ServerStage } from './stub-process.js';

function operation(cpuMicrosPerOperation: number): OperationCost {
  return { operations: 1_000, cpuMicrosPerOperation, wallMicrosPerOperation: cpuMicrosPerOperation };
}

function sqlite(cpuMicrosPerRow: number, synchronous: 'FULL' | 'NORMAL'): SqliteCost {
  return {
    table: 'journal',
    synchronous,
    rowsPerTransaction: 64,
    rowBytes: 350,
    transactions: 10,
    rows: 640,
    cpuMicrosPerRow,
    cpuMicrosPerTransaction: cpuMicrosPerRow * 64,
    wallMicrosPerCommit: { mean: 300, p50: 280, p99: 1_500 },
  };
}

const micro: MicroResult = {
  eventBytes: 350,
  json: { stringify: operation(2), parse: operation(1.5), stringifyAndParse: operation(4) },
  sqlite: {
    eventRowFull: sqlite(4, 'FULL'),
    smallRowFull: sqlite(3, 'FULL'),
    smallRowNormal: sqlite(2.5, 'NORMAL'),
  },
  cardTokenAndSeal: operation(15),
  orderIdSha256: operation(4.5),
};

function stage(
  name: ServerStage,
  serverMicros: number | null,
  loadGeneratorMicros: number,
): ServerStageResult {
  return {
    stage: name,
    description: name,
    requestsPerSecond: 20_000,
    executedRequests: 200_000,
    requestsSent: 200_000,
    latencyMs: { p50: 3, p90: 4, p99: 7, p999: 9, max: 12, mean: 3.2, count: 200_000 },
    errors: 0,
    errorsByKind: {},
    server: {
      cpuSeconds: serverMicros === null ? null : (serverMicros * 200_000) / 1e6,
      cpuMicrosPerRequest: serverMicros,
      cpuCoresUsed: 1,
      mainThreadCpuSeconds: null,
      mainThreadCpuMicrosPerRequest: null,
      mainThreadCoresUsed: null,
      peakRssMb: 80,
      exitedDuringRun: false,
    },
    loadGenerator: { cpuSeconds: 5, cpuMicrosPerRequest: loadGeneratorMicros, cpuCoresUsed: 0.5 },
    windowSeconds: 10,
    loadAverage1m: { atWindowStart: 1, atWindowEnd: 1 },
    warmup: { sent: 1_000, executed: 1_000, errors: 0 },
    aborted: false,
  };
}

describe('floorOf', () => {
  it('adds the named terms, starting from the cheaper durable stage', () => {
    const floor = floorOf(
      {
        http: stage('http', 40, 25),
        durable: stage('durable', 55, 22),
        'durable-inline': stage('durable-inline', 50, 20),
      },
      micro,
    );
    if ('missing' in floor) throw new Error(`unexpected: ${floor.missing.join(', ')}`);
    // 50 (durable-inline) + 5 × 4 + 5 × 2 + 2 × 3 + 15 + 3 + 4.5 + 4 + 3 + 6 × 1.5 + 2.5 + 40 / 256
    const expected = 50 + 20 + 10 + 6 + 15 + 3 + 4.5 + 4 + 3 + 9 + 2.5 + 40 / 256;
    expect(floor.cpuMicrosPerOrder).toBeCloseTo(expected, 1);
    expect(floor.terms[0]?.measuredBy).toContain('durable-inline');
    expect(floor.ordersPerSecondOnTwoCores).toBe(Math.round(2_000_000 / floor.cpuMicrosPerOrder));
    expect(floor.loadGeneratorCpuMicrosPerRequest).toBe(20);
    expect(floor.ordersPerSecondOnTwoCoresWithLoadGenerator).toBe(
      Math.round(2_000_000 / (floor.cpuMicrosPerOrder + 20)),
    );
    expect(floor.leftOut.some((line) => line.includes('Fastify'))).toBe(true);
  });

  it('leaves out the bank server share when stage http did not run', () => {
    const floor = floorOf({ durable: stage('durable', 55, 22) }, micro);
    if ('missing' in floor) throw new Error(`unexpected: ${floor.missing.join(', ')}`);
    expect(floor.terms.some((term) => term.name.startsWith('bank: its server'))).toBe(false);
    expect(floor.cpuMicrosPerOrder).toBeCloseTo(55 + 20 + 10 + 6 + 15 + 3 + 4.5 + 4 + 3 + 9 + 2.5, 1);
  });

  it('names what is missing instead of computing a floor without it', () => {
    expect(floorOf({ http: stage('http', 40, 25) }, micro)).toEqual({
      missing: ['stage durable or durable-inline (with a CPU figure)'],
    });
    expect(floorOf({ durable: stage('durable', null, 22) }, undefined)).toEqual({
      missing: ['stage micro', 'stage durable or durable-inline (with a CPU figure)'],
    });
  });
});
