import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const mainPath = fileURLToPath(new URL('../cli/main.ts', import.meta.url));

export interface RemitProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** Everything the process wrote, stdout and stderr, for assertions (e.g. no card numbers). */
  output(): string;
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `remit <command>` as a real child process (through tsx, as `npm run remit` does) and
 * resolves once its "ready" log line names the URL it listens on. Output is kept for the test.
 */
export async function startRemit(
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
  readyTimeoutMs = 30_000,
): Promise<RemitProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', mainPath, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`remit ${args.join(' ')} not ready:\n${output}`));
    }, readyTimeoutMs);
    const onData = (): void => {
      const url = readyUrl(output);
      if (url === undefined) return;
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      resolve(url);
    };
    child.stdout?.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`remit ${args.join(' ')} exited with ${code} before it was ready:\n${output}`));
    });
  });
  return {
    url,
    child,
    output: () => output,
    kill: async (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** The URL of the process's "ready" log line (pino JSON), once it has been written. */
function readyUrl(output: string): string | undefined {
  for (const line of output.split('\n')) {
    if (!['"gateway ready"', '"bank simulator ready"', '"node ready"'].some((ready) => line.includes(ready)))
      continue;
    try {
      const parsed = JSON.parse(line) as { url?: unknown };
      if (typeof parsed.url === 'string') return parsed.url;
    } catch {
      // A partial line: wait for the rest.
    }
  }
  return undefined;
}
