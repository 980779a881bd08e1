import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { monotonicMs, sleep } from './timing.js';

/**
 * A `remit` process (or another script of the run, the webhook receiver) the chaos harness can kill, pause and start again on the same port.
 *
 * A variant of `src/testing/processes.ts` for two reasons: readiness is read from the health
 * endpoint rather than the "ready" log line (the chaos run starts processes with `--log-level
 * warn`, which silences that line, and restarts them many times), and the port is fixed up front,
 * so the gateway's clients and the gateway's `--bank-url` keep one address across restarts.
 */

const repositoryRoot = fileURLToPath(new URL('../../', import.meta.url));
const mainPath = fileURLToPath(new URL('../cli/main.ts', import.meta.url));

export interface ProcessSettings {
  /** How long a start may take to answer its health check; beyond it the start fails. */
  readonly readyTimeoutMs: number;
  readonly readyPollIntervalMs: number;
  /** How long a graceful stop (SIGTERM) may take before SIGKILL. */
  readonly stopTimeoutMs: number;
  /** How much of the latest output is kept, for the error when a start fails. */
  readonly outputTailChars: number;
}

export const defaultProcessSettings: ProcessSettings = {
  readyTimeoutMs: 30_000,
  readyPollIntervalMs: 100,
  stopTimeoutMs: 10_000,
  outputTailChars: 16_384,
};

export interface ProcessSpec {
  /** For messages and the report: `gateway`, `node-2` or `bank`. */
  readonly name: string;
  /** Arguments of `remit`, e.g. `['bank', '--port', '41234', ...]`. */
  readonly args: readonly string[];
  /** The script to run (through tsx); `remit` itself (src/cli/main.ts) when undefined. */
  readonly entry?: string | undefined;
  /** Answers 200 once the process serves requests. */
  readonly healthUrl: string;
  /** Variables added to the harness's environment (a cluster's shared `REMIT_VAULT_KEY`). */
  readonly env?: Readonly<Record<string, string>> | undefined;
  /**
   * A file every start appends the process's output to (kept with the data folder, so a failed
   * run's logs can be read); none when undefined.
   */
  readonly logPath?: string | undefined;
  /** Called with every whole line the process writes, stdout and stderr alike. */
  readonly onLine?: ((line: string) => void) | undefined;
}

/**
 * Children alive right now. However the harness's own process ends — a library's signal hook may
 * call `process.exit` before the harness has stopped them — they are SIGKILLed on its way out, so
 * no gateway or bank outlives the run.
 */
const liveChildren = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

export class ManagedProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private paused = false;
  /** Set while the harness itself takes the process down, so its exit is not "unexpected". */
  private stopping = false;
  private tail = '';
  private unexpected = 0;
  private crashedFlag = false;

  constructor(
    readonly spec: ProcessSpec,
    private readonly settings: ProcessSettings = defaultProcessSettings,
  ) {}

  /** Alive (possibly paused). */
  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Exits the harness did not cause: crashes of the process on its own. */
  get unexpectedExits(): number {
    return this.unexpected;
  }

  /** It exited on its own since its last start (and so should be started again). */
  get crashed(): boolean {
    return this.crashedFlag;
  }

  outputTail(): string {
    return this.tail;
  }

  /** Spawns the process and resolves once its health check answers 200. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.spec.name} is already running`);
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', this.spec.entry ?? mainPath, ...this.spec.args],
      {
        cwd: repositoryRoot,
        env: { ...childEnvironment(), ...this.spec.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.child = child;
    liveChildren.add(child);
    this.paused = false;
    this.stopping = false;
    this.crashedFlag = false;
    const onLine = this.spec.onLine;
    const log =
      this.spec.logPath === undefined ? undefined : createWriteStream(this.spec.logPath, { flags: 'a' });
    if (log !== undefined) child.once('exit', () => log.end());
    const collector = (): ((chunk: Buffer) => void) => {
      // Each stream keeps its own unfinished line, so lines of the two never mix.
      let partial = '';
      return (chunk) => {
        const text = chunk.toString('utf8');
        this.tail = (this.tail + text).slice(-this.settings.outputTailChars);
        log?.write(chunk);
        if (onLine === undefined) return;
        const lines = (partial + text).split('\n');
        partial = (lines.pop() ?? '').slice(-this.settings.outputTailChars);
        for (const line of lines) onLine(line);
      };
    };
    child.stdout?.on('data', collector());
    child.stderr?.on('data', collector());
    let hasExited = false;
    this.exited = new Promise((resolve) => {
      child.once('exit', () => {
        liveChildren.delete(child);
        hasExited = true;
        if (!this.stopping) {
          this.unexpected++;
          this.crashedFlag = true;
        }
        resolve();
      });
    });
    const deadline = monotonicMs() + this.settings.readyTimeoutMs;
    while (monotonicMs() < deadline) {
      if (hasExited) {
        throw new Error(`${this.spec.name} exited before it was ready:\n${this.tail}`);
      }
      if (await healthy(this.spec.healthUrl, this.settings.readyPollIntervalMs * 5)) return;
      await sleep(this.settings.readyPollIntervalMs);
    }
    await this.kill();
    throw new Error(`${this.spec.name} not ready after ${this.settings.readyTimeoutMs} ms:\n${this.tail}`);
  }

  /** SIGKILL, and wait until the process is gone. A paused process dies too. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.stopping = true;
    this.child?.kill('SIGKILL');
    await this.exited;
    this.paused = false;
  }

  pause(): void {
    if (!this.running || this.paused) return;
    this.child?.kill('SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    if (!this.running || !this.paused) return;
    this.child?.kill('SIGCONT');
    this.paused = false;
  }

  /**
   * SIGTERM (after SIGCONT, since a stopped process cannot act on it), then SIGKILL if it lingers.
   * True when it ended on the SIGTERM (or was not running), false when it had to be killed.
   */
  async stop(): Promise<boolean> {
    if (!this.running) return true;
    this.stopping = true;
    this.resume();
    this.child?.kill('SIGTERM');
    const stopped = await Promise.race([
      this.exited.then(() => true),
      sleep(this.settings.stopTimeoutMs).then(() => false),
    ]);
    if (!stopped) await this.kill();
    return stopped;
  }
}

/**
 * The harness's environment without the variables that would put the gateway on a database of
 * the caller's (`REMIT_DATABASE_*`, `DATABASE_URL`): the run chooses its store by flags alone, so
 * a SQLite run stays on SQLite whatever the shell exports.
 */
function childEnvironment(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => !name.startsWith('REMIT_DATABASE_') && name !== 'DATABASE_URL',
    ),
  );
}

async function healthy(url: string, timeoutMs: number): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await response.arrayBuffer();
    return response.status === 200;
  } catch {
    return false;
  }
}

/**
 * A loopback port free at the moment of asking: listen on port 0, read the port, close. Another
 * program could take it before the process binds it; the process then fails to listen and exits,
 * and the start fails with its output.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}
