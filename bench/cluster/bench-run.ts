import { execFileSync } from 'node:child_process';

/** The commit the benchmark ran at, for its JSON; null outside a git checkout. */
export function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', timeout: 5_000 }).trim();
  } catch {
    return null;
  }
}

/** A progress line on stderr (stdout is the JSON), prefixed with the benchmark's name. */
export function progressOf(name: string): (message: string) => void {
  return (message) => process.stderr.write(`${name}: ${message}\n`);
}

/** Runs a benchmark's `main` and exits with its code, or 1 with the error on stderr. */
export function runBenchmark(name: string, main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(
        `${name}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exit(1);
    },
  );
}
