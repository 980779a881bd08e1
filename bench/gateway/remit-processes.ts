/**
 * Starts `remit start` and `remit bank` as child processes for the benchmark, on 127.0.0.1.
 *
 * Not `src/testing/processes.ts`'s `startRemit`: that one waits for the "ready" log line, which is
 * logged at info, and the benchmark runs with `--log-level warn` (logging every request would
 * dominate the measurement). So this launcher picks a free port itself and polls a health URL.
 *
 * The child is `node dist/cli/main.js …` (compiled, as `npm start` runs it): its pid is the remit
 * process, so /proc/<pid> describes the gateway or bank alone. Every child
 * started here is killed when this process exits, whatever the reason.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

/** Compiled by `npm run build` (the `bench` script runs it first), as `npm start` runs it. */
const mainPath = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
export const benchHost = '127.0.0.1';

/**
 * The heap limits and allocator setting `npm start` runs the gateway with (package.json's `start`
 * script; keep the two the same): the main thread's heap is capped at 192 MB (its live heap stays
 * at 55-80 MB whatever the history, see docs/architecture.md), its young generation at 2 × 8 MB
 * (V8's default, 2 × 16 MB, is 16 MB more resident for no measurable gain), and glibc keeps 2 malloc arenas
 * instead of up to 8 per core, which would otherwise hold on to freed memory per thread.
 */
export const productionNodeFlags: readonly string[] = ['--max-old-space-size=192', '--max-semi-space-size=8'];
const productionEnvironment = { MALLOC_ARENA_MAX: '2' };

/** Output kept per child for error messages: its last this many characters. */
const outputTailChars = 64 * 1024;
const readyPollIntervalMs = 100;
const readyAttemptsMax = 600;
const readyRequestTimeoutMs = 2_000;

export interface RemitChild {
  readonly name: string;
  readonly pid: number;
  readonly url: string;
  /** The last part of what the child wrote (stdout and stderr). */
  output(): string;
  running(): boolean;
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`; resolves once it has exited. */
  stop(graceMs: number): Promise<void>;
}

const liveChildren = new Set<ChildProcess>();

process.once('exit', () => {
  for (const child of liveChildren) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

/** A port that was free a moment ago (the OS's choice for port 0, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, benchHost, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

/**
 * Runs `remit <args> --host 127.0.0.1 --port <free port>` and resolves once `GET <readyPath>`
 * answers 200 (bounded: readyAttemptsMax polls), or rejects with the child's output.
 */
export async function startRemitChild(
  name: string,
  args: readonly string[],
  readyPath: string,
  nodeFlags: readonly string[] = [],
  /** Also write everything the child prints here (e.g. for `--trace-gc`). */
  outputFile?: string,
  /** Variables added to the child's environment (a cluster node's `REMIT_VAULT_KEY`). */
  environment: Readonly<Record<string, string>> = {},
): Promise<RemitChild> {
  if (!existsSync(mainPath))
    throw new Error(`${mainPath} is missing: run \`npm run build\` (npm run bench does)`);
  return startBenchChild({
    name: `remit ${name}`,
    nodeArgs: (port) => [
      ...nodeFlags,
      ...productionNodeFlags,
      mainPath,
      ...args,
      '--host',
      benchHost,
      '--port',
      String(port),
    ],
    readyPath,
    outputFile,
    environment,
  });
}

export interface BenchChildOptions {
  /** Names the child in errors. */
  readonly name: string;
  /** The `node` arguments (flags, script, its arguments) for the port it is to listen on. */
  readonly nodeArgs: (port: number) => readonly string[];
  /** Polled with GET until it answers 200. */
  readonly readyPath: string;
  /** Also write everything the child prints here. */
  readonly outputFile?: string | undefined;
  /** Variables added to the child's environment. */
  readonly environment?: Readonly<Record<string, string>> | undefined;
}

/**
 * Runs `node <nodeArgs(port)>` on a free port of 127.0.0.1, with the allocator setting of
 * production, and resolves once `GET <readyPath>` answers 200 (bounded: readyAttemptsMax polls),
 * or rejects with the child's output. The benchmark's gateway and bank, and the ceiling
 * benchmark's stub servers, start here.
 */
export async function startBenchChild(options: BenchChildOptions): Promise<RemitChild> {
  const { name, readyPath, outputFile } = options;
  const port = await freePort();
  const url = `http://${benchHost}:${port}`;
  const child = spawn(process.execPath, [...options.nodeArgs(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...withoutDatabaseVariables(process.env), ...productionEnvironment, ...options.environment },
  });
  liveChildren.add(child);
  let output = '';
  const file = outputFile === undefined ? undefined : createWriteStream(outputFile, { flags: 'a' });
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-outputTailChars);
    file?.write(chunk);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      liveChildren.delete(child);
      file?.end();
      resolve();
    });
  });
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const stop = async (graceMs: number): Promise<void> => {
    if (!running()) return exited;
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), graceMs);
    });
    const result = await Promise.race([exited, gaveUp]);
    clearTimeout(timer);
    if (result === 'late' && running()) {
      child.kill('SIGKILL');
      await exited;
    }
  };

  const pid = child.pid;
  if (pid === undefined) {
    await stop(0);
    throw new Error(`could not start ${name}`);
  }
  for (let attempt = 0; attempt < readyAttemptsMax; attempt++) {
    if (!running()) {
      throw new Error(
        `${name} exited with ${child.exitCode ?? child.signalCode} before it was ready:\n${output}`,
      );
    }
    if (await answersOk(`${url}${readyPath}`)) {
      return { name, pid, url, output: () => output, running, stop };
    }
    await new Promise((resolve) => setTimeout(resolve, readyPollIntervalMs));
  }
  await stop(5_000);
  throw new Error(`${name} was not ready after ${readyAttemptsMax} polls:\n${output}`);
}

/**
 * The environment without `REMIT_DATABASE_*` and `DATABASE_URL`: the benchmark picks the store by
 * flags alone, so a SQLite run stays on SQLite whatever the shell exports.
 */
function withoutDatabaseVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(env).filter(([name]) => !name.startsWith('REMIT_DATABASE_') && name !== 'DATABASE_URL'),
  );
}

async function answersOk(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(readyRequestTimeoutMs) });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}
