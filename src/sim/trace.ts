import { createHash, type Hash } from 'node:crypto';

/**
 * What happened in one seed, as text lines stamped with simulated time (milliseconds since the
 * seed's start). Every run hashes its lines, so two runs of one seed can be compared cheaply; the
 * lines themselves are kept only when asked (replaying a seed, the determinism test), because a
 * batch of hundreds of seeds does not need them.
 */
export class Trace {
  private readonly hash: Hash = createHash('sha256');
  private readonly kept: string[] | undefined;
  private count = 0;

  constructor(
    private readonly now: () => number,
    keepLines: boolean,
    /** Lines kept at most; past it only the hash and the count grow (a runaway seed stays bounded). */
    private readonly linesMax = 200_000,
  ) {
    this.kept = keepLines ? [] : undefined;
  }

  record(line: string): void {
    const stamped = `${this.now().toString().padStart(7, ' ')} ${line}`;
    this.hash.update(stamped);
    this.hash.update('\n');
    this.count++;
    if (this.kept !== undefined && this.kept.length < this.linesMax) this.kept.push(stamped);
  }

  get lineCount(): number {
    return this.count;
  }

  /** The lines (empty unless kept). */
  lines(): string[] {
    return this.kept === undefined ? [] : [...this.kept];
  }

  /** The hash of every line so far; finishes the trace (call once, at the end). */
  digest(): string {
    return this.hash.digest('hex').slice(0, 32);
  }
}
