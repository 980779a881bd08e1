/**
 * CPU of the order projection per journal event: rebuilds a read model from a journal written by
 * a real gateway, as the projection thread does, and prints JSON.
 *
 * Goal: measure changes to the projection side by side on the same events, without the noise of
 * a whole node. Get a journal with `npm run bench -- --duration 10 --keep-data` (it is
 * `<data>/gateway/journal.db`), then:
 *
 *   npm run bench:projection -- --journal /tmp/remit-bench-XXXX/gateway/journal.db [--runs 3]
 *
 * The journal is only read. Each run projects into a fresh read model in a temp dir, removed
 * after; `cpuMicrosPerEvent` is this process's user + system CPU over the events it read.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SqliteJournalReader } from '../src/readmodel/journal-reader.js';
import { OrderProjection } from '../src/readmodel/order-projection.js';
import { OrderReadModel } from '../src/readmodel/order-read-model.js';
import { systemClock } from '../src/runtime/clock.js';

const { values } = parseArgs({
  options: { journal: { type: 'string' }, runs: { type: 'string' }, json: { type: 'string' } },
  strict: true,
});
const journalPath = values.journal;
if (journalPath === undefined) throw new Error('--journal PATH is required (see the header of this file)');
const runs = Number(values.runs ?? '3');
if (!Number.isSafeInteger(runs) || runs < 1)
  throw new Error(`--runs must be a positive integer, got ${values.runs}`);

interface RunResult {
  readonly events: number;
  readonly wallMs: number;
  readonly eventsPerSecond: number;
  readonly cpuMicrosPerEvent: number;
}

async function projectOnce(): Promise<RunResult> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'remit-projection-bench-'));
  const journal = SqliteJournalReader.open(journalPath ?? '');
  const readModel = OrderReadModel.open(path.join(directory, 'readmodel.db'));
  const projection = new OrderProjection({ journal, readModel, clock: systemClock });
  try {
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    void projection.start();
    await projection.caughtUp();
    const cpu = process.cpuUsage(cpuBefore);
    const wallMs = performance.now() - started;
    const events = projection.stats().events;
    return {
      events,
      wallMs: Math.round(wallMs),
      eventsPerSecond: Math.round((events / wallMs) * 1000),
      cpuMicrosPerEvent: Number(((cpu.user + cpu.system) / Math.max(1, events)).toFixed(1)),
    };
  } finally {
    await projection.stop();
    readModel.close();
    journal.close();
    fs.rmSync(directory, { recursive: true, force: true });
  }
}

const results: RunResult[] = [];
for (let run = 0; run < runs; run++) results.push(await projectOnce());
const output = {
  benchmark: 'order projection: rebuild of a read model from a gateway journal',
  journal: journalPath,
  node: process.version,
  runs: results,
  bestCpuMicrosPerEvent: Math.min(...results.map((result) => result.cpuMicrosPerEvent)),
};
const text = JSON.stringify(output, null, 2);
process.stdout.write(`${text}\n`);
if (values.json !== undefined) fs.writeFileSync(values.json, `${text}\n`);
