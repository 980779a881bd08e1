/**
 * The measured ceiling of this machine for a Node payment gateway: how many `POST /v1/orders` per
 * second ANY Node server answers here, loaded by the gateway benchmark's own load generator (raw
 * client, closed loop, on the same machine), when it does nothing but HTTP, and when it does the
 * least durable work "persist, then answer" demands; plus in-process micro figures of the work one
 * order needs, and from those a floor: the least CPU per order of the gateway's real flow.
 *
 * Stages, each in turn:
 * - `http`, `fastify`, `durable`, `durable-inline`: a stub server (`ceiling/stub-server.mjs`, plain
 *   JavaScript run by `node` without a loader) as a child process on 127.0.0.1, its own temp
 *   folder; warm-up, then the measurement window; the server's CPU from /proc, this process's
 *   (the load generator's) from `process.cpuUsage()`, both at the window's start and end. The stub
 *   gets SIGTERM (SIGKILL after 10 s) at the end, also on error and Ctrl-C, and the folder is removed.
 * - `micro`: in this process, no HTTP (`ceiling/micro.ts`).
 *
 * Prints JSON on stdout (progress on stderr). It is a benchmark, not a test: on this 2-core machine
 * the load generator and the server compete for the CPUs, and so does anything else running.
 *
 * Run: `npx tsx bench/ceiling.bench.ts --duration 10 --json ceiling.json` (or `npm run bench:ceiling`).
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { type Floor, floorOf } from './ceiling/floor.js';
import { type MicroResult, runMicro } from './ceiling/micro.js';
import { round, runServerStage, type ServerStageResult } from './ceiling/server-stage.js';
import { type ServerStage, serverStages, stubNodeFlags } from './ceiling/stub-process.js';
import { numberFlag } from './gateway/flags.js';

const usage = `Usage: npx tsx bench/ceiling.bench.ts [flags]

  --duration S      measurement window of each server stage, seconds (default 10)
  --warmup S        warm-up before it, not counted (default 3)
  --connections C   HTTP connections, closed loop: C requests in flight (default 64)
  --stages a,b,c    stages to run, in this order whatever the list's: ${[...serverStages, 'micro'].join(', ')} (default all)
  --json FILE       also write the result there`;

const allStages = [...serverStages, 'micro'] as const;
type Stage = (typeof allStages)[number];

interface Settings {
  readonly durationS: number;
  readonly warmupS: number;
  readonly connections: number;
  readonly stages: readonly Stage[];
  readonly json: string | undefined;
}

function stagesFlag(text: string | undefined): readonly Stage[] {
  if (text === undefined) return allStages;
  const asked = text.split(',').map((name) => name.trim());
  for (const name of asked) {
    if (!allStages.some((stage) => stage === name))
      throw new Error(`--stages: unknown stage ${name}; stages are ${allStages.join(', ')}`);
  }
  return allStages.filter((stage) => asked.includes(stage));
}

function parseSettings(args: readonly string[]): Settings | undefined {
  const { values } = parseArgs({
    args: [...args],
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      stages: { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help === true) return undefined;
  return {
    durationS: numberFlag(values.duration, 10, '--duration', { integer: false }),
    warmupS: numberFlag(values.warmup, 3, '--warmup', { integer: false }),
    connections: numberFlag(values.connections, 64, '--connections', { integer: true }),
    stages: stagesFlag(values.stages),
    json: values.json,
  };
}

function isServerStage(stage: Stage): stage is ServerStage {
  return stage !== 'micro';
}

/** The headline figures of every stage run, side by side. */
function summaryOf(stages: Partial<Record<ServerStage, ServerStageResult>>): Record<string, unknown> {
  return Object.fromEntries(
    Object.values(stages).map((stage) => [
      stage.stage,
      {
        requestsPerSecond: stage.requestsPerSecond,
        p50Ms: stage.latencyMs.p50,
        p99Ms: stage.latencyMs.p99,
        errors: stage.errors,
        serverCpuMicrosPerRequest: stage.server.cpuMicrosPerRequest,
        serverCores: stage.server.cpuCoresUsed,
        serverMainThreadCores: stage.server.mainThreadCoresUsed,
        loadGeneratorCpuMicrosPerRequest: stage.loadGenerator.cpuMicrosPerRequest,
        loadGeneratorCores: stage.loadGenerator.cpuCoresUsed,
      },
    ]),
  );
}

async function main(args: readonly string[]): Promise<number> {
  const settings = parseSettings(args);
  if (settings === undefined) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (): void => {
    signals++;
    if (signals === 1) {
      process.stderr.write('ceiling: stopping (again to kill at once)\n');
      controller.abort();
    } else {
      process.exit(130); // The exit handler in stub-process.ts SIGKILLs the stub.
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const startedAt = new Date().toISOString();
  const loadAverageAtStart = os.loadavg().map((value) => round(value, 2));
  const stages: Partial<Record<ServerStage, ServerStageResult>> = {};
  let micro: MicroResult | undefined;
  for (const stage of settings.stages) {
    if (controller.signal.aborted) break;
    if (isServerStage(stage)) {
      stages[stage] = await runServerStage(stage, settings, controller.signal);
    } else {
      process.stderr.write('ceiling: stage micro (in process, no HTTP)\n');
      micro = runMicro();
    }
  }
  const floor: Floor = floorOf(stages, micro);
  const result = {
    benchmark: 'ceiling: what any Node server answers on this machine, and the least CPU one order needs',
    command: `npx tsx bench/ceiling.bench.ts ${args.join(' ')}`.trim(),
    startedAt,
    loadGenerator:
      'same machine: runLoad of bench/gateway/load.ts, raw client, closed loop, one merchant (the stub ignores auth)',
    settings: {
      durationS: settings.durationS,
      warmupS: settings.warmupS,
      connections: settings.connections,
      stages: settings.stages,
      stubNodeFlags,
    },
    machine: {
      node: process.version,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      totalMemoryMb: Math.round(os.totalmem() / 2 ** 20),
      loadAverage1m5m15m: {
        atStart: loadAverageAtStart,
        atEnd: os.loadavg().map((value) => round(value, 2)),
      },
    },
    summary: summaryOf(stages),
    stages,
    micro: micro ?? null,
    floor,
    aborted: controller.signal.aborted,
  };
  const json = JSON.stringify(result, null, 2);
  process.stdout.write(`${json}\n`);
  if (settings.json !== undefined) writeFileSync(settings.json, `${json}\n`);
  const serverExited = Object.values(stages).some((stage) => stage.server.exitedDuringRun);
  if (controller.signal.aborted) return 130;
  return serverExited ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `ceiling: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
