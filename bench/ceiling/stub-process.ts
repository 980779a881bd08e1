/**
 * Starts the ceiling stub server (`stub-server.mjs`) as a child process on 127.0.0.1 and stops it.
 *
 * The child is `node stub-server.mjs …` under plain `node` (the stub is JavaScript, no loader), so
 * its pid is the server and /proc/<pid> describes it alone. It gets the heap flags and allocator
 * setting the gateway runs with (`startBenchChild` of `remit-processes.ts`, which also kills it
 * when this process exits), so a stage's garbage collection costs what the gateway's would.
 */
import { fileURLToPath } from 'node:url';
import { productionNodeFlags, type RemitChild, startBenchChild } from '../gateway/remit-processes.js';

const stubPath = fileURLToPath(new URL('./stub-server.mjs', import.meta.url));

/** The gateway's production flags (package.json `start`), which the stub runs with too. */
export const stubNodeFlags: readonly string[] = productionNodeFlags;

/** The stages the stub serves; `stub-server.mjs` knows the same names. */
export const serverStages = ['http', 'fastify', 'durable', 'durable-inline'] as const;
export type ServerStage = (typeof serverStages)[number];

export type StubChild = RemitChild;

/**
 * Runs the stub for `stage` on a free port of 127.0.0.1 (its journal, if any, in `dataDir`) and
 * resolves once `GET /health/live` answers 200, or rejects with the child's output.
 */
export function startStub(stage: ServerStage, dataDir: string): Promise<StubChild> {
  return startBenchChild({
    name: `the ${stage} stub`,
    nodeArgs: (port) => [
      ...stubNodeFlags,
      stubPath,
      '--stage',
      stage,
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--data',
      dataDir,
    ],
    readyPath: '/health/live',
  });
}
